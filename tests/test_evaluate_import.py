"""`evaluate` gives precision, recall and F1 per class and accepts checkpoints (naming the file
it used); `import` turns plain np.savez weights into a model file."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_blobs
from steadynet import TrainConfig, load, train
from steadynet.cli.import_weights import import_weights
from steadynet.errors import ModelFileError
from steadynet.metrics import classification_report


def steadynet(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "steadynet", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = make_blobs(n_train=300, n_test=60)
    folder = tmp_path_factory.mktemp("eval")
    np.savez(folder / "blobs.npz", x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    result = train(
        TrainConfig(data=str(folder / "blobs.npz"), epochs=2, hidden=(5,), val_size=50, augment_shift=0),
        str(folder / "run"),
    )
    return folder, result


def test_classification_report_matches_counts_worked_by_hand():
    y = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 1])
    report = classification_report(y, y_pred, 3)
    c0, c1, c2 = report["classes"]
    assert (c0["precision"], c0["recall"], c0["support"]) == (1.0, 2 / 3, 3)
    assert c1["precision"] == 2 / 4 and c1["recall"] == 1.0 and c1["f1"] == pytest.approx(2 * 0.5 / 1.5)
    assert c2["precision"] is None and c2["recall"] == 0.0 and c2["f1"] is None  # never predicted
    assert report["accuracy"] == 4 / 6
    assert report["macro"]["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_evaluate_gives_precision_recall_f1_and_names_the_file(run):
    folder, result = run
    r = steadynet("evaluate", folder / "run", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"].endswith("model.npz") and out["test_accuracy"] == pytest.approx(result["test_accuracy"])
    assert [row["class"] for row in out["classification"]["classes"]] == [0, 1, 2]
    assert out["per_class_accuracy"] == pytest.approx(result["per_class_accuracy"])


@pytest.mark.parametrize("name", ["last.npz", "best.npz"])
def test_evaluate_and_gradcheck_accept_checkpoints(run, name):
    folder, _ = run
    path = folder / "run" / "checkpoints" / name
    r = steadynet("evaluate", path)  # was: "expected a steadynet-model file, found format 'steadynet-checkpoint'"
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"model {path}" and "precision" in r.stdout
    r = steadynet("gradcheck", path, "--batch-size", "4", "--json")
    assert r.returncode == 0, r.stderr


def test_a_run_folder_without_model_uses_its_latest_checkpoint(run, tmp_path):
    folder, _ = run
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(folder / "run", partial)
    (partial / "model.npz").unlink()
    (partial / "checkpoints" / "best.npz").unlink()
    r = steadynet("evaluate", partial)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"model {partial / 'checkpoints' / 'last.npz'}"


@pytest.mark.parametrize("layout", ["in-out", "out-in"])
def test_import_plain_numpy_weights_either_layout(run, tmp_path, layout):
    folder, result = run
    model = result.model
    params = model.state_dict()
    if layout == "out-in":  # as (outputs, inputs), with (n, 1) biases, as many hand-written networks store them
        params = {k: (v.T if k.startswith("W") else v.reshape(-1, 1)) for k, v in params.items()}
    np.savez(tmp_path / "mine.npz", **params)
    r = steadynet("import", tmp_path / "mine.npz", "--activation", model.activation, "--out", tmp_path / "m.npz")
    assert r.returncode == 0, r.stderr
    assert "imported a 16-5-3" in r.stdout and ("transposed" in r.stdout) == (layout == "out-in")
    imported = load(str(tmp_path / "m.npz"))
    X = make_blobs(n_train=300, n_test=60).x_test
    assert np.array_equal(imported.predict(X), model.predict(X))
    model2, info = import_weights(tmp_path / "mine.npz", model.activation)
    assert info["layout"] == layout


def test_import_of_unnamed_arrays_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "unnamed.npz", rng.normal(size=(4, 3)), np.zeros(3), rng.normal(size=(3, 2)), np.zeros(2))
    model, info = import_weights(tmp_path / "unnamed.npz", "relu")
    assert model.layer_sizes == (4, 3, 2) and "arr_0" in info["names"]
    np.savez(
        tmp_path / "bad.npz", W1=rng.normal(size=(4, 3)), b1=np.zeros(3), W2=rng.normal(size=(5, 2)), b2=np.zeros(2)
    )
    with pytest.raises(ModelFileError, match=r"bad.npz: the shapes do not chain as layers either way"):
        import_weights(tmp_path / "bad.npz", "relu")
    np.savez_compressed(tmp_path / "packed.npz", W1=rng.normal(size=(4, 3)), b1=np.zeros(3))
    with pytest.raises(ModelFileError, match=r"np.savez \(not np.savez_compressed\)"):
        import_weights(tmp_path / "packed.npz", "relu")
    r = steadynet("import", tmp_path / "bad.npz", "--activation", "relu")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
