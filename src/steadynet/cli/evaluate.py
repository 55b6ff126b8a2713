"""``steadynet evaluate``: test accuracy and per-class accuracy of a trained model."""

from .app import add_common, print_json


def add_parser(sub):
    p = sub.add_parser("evaluate", help="test accuracy of a model or run folder",
                       description="Evaluate a model on the test split of a data set.")
    p.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder or a model .npz file")
    add_common(p, data=True)
    p.set_defaults(run=run)


def evaluate(model_path, data=None):
    """Evaluate a saved model; ``data`` defaults to the run's own data set (or mnist).

    Returns a dict: ``data``, ``n``, ``test_loss``, ``test_accuracy``, ``per_class_accuracy``.
    """
    from ..data import check_compatible, load_data
    from ..persistence import load_model, run_data_spec
    from ..train.trainer import per_class_accuracy

    model = load_model(model_path)
    if data is None:
        data = run_data_spec(model_path) or "mnist"
    dataset = load_data(data)
    check_compatible(dataset, model, model_path)
    loss, acc = model.evaluate(dataset.x_test, dataset.y_test)
    return {"data": data, "n": int(dataset.x_test.shape[0]), "test_loss": loss, "test_accuracy": acc,
            "per_class_accuracy": per_class_accuracy(model, dataset)}


def run(args):
    result = evaluate(args.model, args.data)
    if args.json:
        print_json(result)
        return 0
    print(f"test accuracy {result['test_accuracy']:.4f} on {result['n']} images of {result['data']} "
          f"(loss {result['test_loss']:.4f})")
    for k, acc in enumerate(result["per_class_accuracy"] or []):
        print(f"  class {k}: {'-' if acc is None else f'{acc:.4f}'}")
    return 0
