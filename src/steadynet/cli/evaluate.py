"""``steadynet evaluate``: test accuracy, per-class accuracy, and precision, recall and F1 per
class of a trained model, a run folder or one of its checkpoints."""

from ..data import check_compatible, load_data
from ..metrics import classification_report, format_classification_report
from ..runs import RunFolder
from .app import add_common, print_json


def add_parser(sub):
    p = sub.add_parser(
        "evaluate",
        help="test accuracy, precision, recall and F1 of a model or run folder",
        description="Evaluate a model on the test split of a data set: accuracy, then precision, "
        "recall and F1 per class. A run folder stands for its model.npz (or, for a run "
        "that has not finished, its latest checkpoint); a checkpoint file "
        "(checkpoints/last.npz, best.npz) is accepted too. The file used is named.",
    )
    p.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder, a model .npz file or a checkpoint")
    add_common(p, data=True)
    p.set_defaults(run=run)


def open_model(path):
    """Load the model that ``path`` names: a model file, a checkpoint, or a run folder (its
    ``model.npz``, else ``checkpoints/best.npz``, else ``checkpoints/last.npz``: ``prefer="best"``
    of :meth:`steadynet.runs.RunFolder.model_file`).

    Returns
    -------
    (MLP, str, str or None): the model, the file it came from, and the data set the run was
    trained on when the files say so.
    """
    model, path, meta = RunFolder(path).load_model(prefer="best")
    # the data: the config.json of the run the file belongs to, else the checkpoint's own config
    run = RunFolder.containing(path)
    data = run.data_spec() if run is not None else None
    if data is None and isinstance(meta.get("config"), dict):
        data = meta["config"].get("data")
    return model, path, data


def run_standardised(path):
    """Whether the run that ``path`` belongs to was trained on standardised inputs."""
    run = RunFolder.containing(path)
    return run is not None and run.standardised()


def evaluate(model_path, data=None):
    """Evaluate a saved model; ``data`` defaults to the run's own data set (or mnist).

    Returns a dict: ``model`` (the file used), ``data``, ``n``, ``test_loss``,
    ``test_accuracy``, ``per_class_accuracy`` and ``classification`` (precision, recall and F1
    per class and their macro means, see :func:`steadynet.metrics.classification_report`).
    """
    model, used, run_data = open_model(model_path)
    data = data or run_data or "mnist"
    dataset = load_data(data, standardised=run_standardised(model_path))
    check_compatible(dataset, model, used)
    loss, acc = model.evaluate(dataset.x_test, dataset.y_test)
    report = classification_report(dataset.y_test, model.predict(dataset.x_test), model.n_classes)
    return {
        "model": used,
        "data": data,
        "n": int(dataset.x_test.shape[0]),
        "test_loss": loss,
        "test_accuracy": acc,
        "per_class_accuracy": [row["recall"] for row in report["classes"]],
        "classification": report,
    }


def run(args):
    result = evaluate(args.model, args.data)
    if args.json:
        print_json(result)
        return 0
    print(f"model {result['model']}")
    print(
        f"test accuracy {result['test_accuracy']:.4f} on {result['n']} images of {result['data']} "
        f"(loss {result['test_loss']:.4f})"
    )
    print("per class (recall is the class's accuracy):")
    print(format_classification_report(result["classification"]))
    return 0
