"""``steadynet evaluate``: test accuracy, per-class accuracy, and precision, recall and F1 per
class of a trained model, a run folder or one of its checkpoints, with or without test-time
augmentation (``--tta``; by default as the run chose)."""

from ..data import check_compatible, load_data
from ..metrics import classification_report, format_classification_report
from ..runs import RunFolder, recorded_tta
from ..tta import NO_RECORD, tta_evaluate, use_tta
from .app import add_common, add_tta, print_json


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
    add_tta(p)
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


def evaluate(model_path, data=None, tta="auto"):
    """Evaluate a saved model; ``data`` defaults to the run's own data set (or mnist).

    ``tta`` (``"on"``, ``"off"`` or ``"auto"``): whether the predictions are averaged over
    each image and its one-pixel shifts (:mod:`steadynet.tta`); ``auto`` does as the run
    decided for its ``model.npz`` and is off for any other file.

    Returns a dict: ``model`` (the file used), ``data``, ``n``, ``test_loss``,
    ``test_accuracy``, ``per_class_accuracy``, ``classification`` (precision, recall and F1
    per class and their macro means, see :func:`steadynet.metrics.classification_report`) and
    ``tta`` (``{"setting", "used", "reason"}``, with ``test_accuracy_plain`` where used).
    """
    model, used, run_data = open_model(model_path)
    data = data or run_data or "mnist"
    dataset = load_data(data, standardised=run_standardised(model_path))
    check_compatible(dataset, model, used)
    averaged, reason = use_tta(tta, recorded_tta(used), dataset.image_shape, dataset.source)
    loss, acc = model.evaluate(dataset.x_test, dataset.y_test)
    record = {"setting": tta, "used": averaged, "reason": reason}
    if averaged:
        record["test_accuracy_plain"] = acc
        loss, acc, y_pred = tta_evaluate(model, dataset.x_test, dataset.y_test, dataset.image_shape)
    else:
        y_pred = model.predict(dataset.x_test)
    report = classification_report(dataset.y_test, y_pred, model.n_classes)
    return {
        "model": used,
        "data": data,
        "n": int(dataset.x_test.shape[0]),
        "test_loss": loss,
        "test_accuracy": acc,
        "per_class_accuracy": [row["recall"] for row in report["classes"]],
        "classification": report,
        "tta": record,
    }


def run(args):
    result = evaluate(args.model, args.data, args.tta)
    if args.json:
        print_json(result)
        return 0
    print(f"model {result['model']}")
    print(
        f"test accuracy {result['test_accuracy']:.4f} on {result['n']} images of {result['data']} "
        f"(loss {result['test_loss']:.4f})"
    )
    tta = result["tta"]
    if tta["used"]:
        print(f"with test-time augmentation ({tta['reason']}); {tta['test_accuracy_plain']:.4f} without")
    elif args.tta != "auto" or tta["reason"] != NO_RECORD:
        print(f"without test-time augmentation ({tta['reason']})")
    print("per class (recall is the class's accuracy):")
    print(format_classification_report(result["classification"]))
    return 0
