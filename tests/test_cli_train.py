"""The command line: train and evaluate through `python -m steadynet`, and one-line errors."""

import json
import re
import subprocess
import sys

import h5py
import pytest

from conftest import make_blobs


def steadynet(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "steadynet", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.fixture
def h5_data(tmp_path):
    """Blobs written in the seed's HDF5 layout (float pixels in [0, 1], labels (n, 1))."""
    data = make_blobs(n_train=400, n_test=100, n_features=16, n_classes=3)
    path = tmp_path / "blobs.hdf5"
    with h5py.File(path, "w") as f:
        f["x_train"], f["y_train"] = data.x_train, data.y_train.reshape(-1, 1)
        f["x_test"], f["y_test"] = data.x_test, data.y_test.reshape(-1, 1)
    return path


def test_train_then_evaluate(h5_data, tmp_path):
    out = tmp_path / "run"
    r = steadynet(
        "train",
        "--data",
        h5_data,
        "--out",
        out,
        "--hidden",
        "8",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--lr",
        "0.3",
        "--val-size",
        "50",
        "--augment-shift",
        "0",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["status"] == "completed" and result["test_accuracy"] > 0.8
    assert "epoch 3/3" in r.stderr  # per-epoch lines, as stderr is not a terminal
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result["test_accuracy"]

    r = steadynet("evaluate", out, "--data", h5_data, "--json")
    assert r.returncode == 0, r.stderr
    evaluation = json.loads(r.stdout)
    assert evaluation["test_accuracy"] == pytest.approx(result["test_accuracy"])
    assert len(evaluation["per_class_accuracy"]) == 3

    r = steadynet("evaluate", out / "model.npz", "--data", h5_data)
    assert r.returncode == 0 and "test accuracy" in r.stdout
    assert re.search(r"^\s+2\s+\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4}\s+\d+$", r.stdout, re.M)  # class 2's P, R, F1


def test_refuses_to_overwrite_a_run(h5_data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", h5_data, "--out", out, "--hidden", "4", "--epochs", "1", "--val-size", "10"]
    assert steadynet(*args).returncode == 0
    r = steadynet(*args)
    assert r.returncode == 1 and "already holds a run" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--lr", "-1"], "--learning-rate must be a finite number > 0, got -1.0."),
        (["train", "--hidden", "30,x"], "--hidden must be comma-separated integers"),
        (["train", "--batch-size", "big"], "--batch-size must be an integer or 'full', got 'big'."),
        (["train", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
        (["train", "--data", "no/such/file.h5"], "--data no/such/file.h5: no such file or folder."),
        (["train", "--data", "imagenet"], "not a file, folder or registered data set"),
        (["evaluate", "missing_run"], "missing_run: no such model file or run folder."),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(args, message, tmp_path):
    r = steadynet(*args, cwd=tmp_path)
    assert r.returncode != 0
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_a_corrupted_model_is_refused(h5_data, tmp_path):
    out = tmp_path / "run"
    assert (
        steadynet(
            "train", "--data", h5_data, "--out", out, "--hidden", "4", "--epochs", "1", "--val-size", "10"
        ).returncode
        == 0
    )
    raw = bytearray((out / "model.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (out / "model.npz").write_bytes(bytes(raw))
    r = steadynet("evaluate", out, "--data", h5_data)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_help_lists_every_training_option():
    r = steadynet("train", "--help")
    for flag in [
        "--hidden",
        "--batch-size",
        "--optimizer",
        "--lr",
        "--schedule",
        "--clip-norm",
        "--weight-decay",
        "--augment-shift",
        "--patience",
        "--seed",
        "--data",
        "--out",
        "--resume",
    ]:
        assert flag in r.stdout
    assert "(default: 30)" in r.stdout
