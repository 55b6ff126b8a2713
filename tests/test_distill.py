"""Distillation: the soft-target loss and its gradient, and training a student from a teacher."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_blobs
from gradcheck_util import central_difference
from steadynet import functional as F
from steadynet import train
from steadynet.errors import ConfigError


def case(seed=0, n=6, k=4):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, k)) * 2
    y = rng.integers(0, k, size=n)
    P = F.softmax(rng.normal(size=(n, k)) * 3)  # a teacher's probabilities
    return Z, y, P


@pytest.mark.parametrize("T, weight, smoothing", [(1.0, 0.5, 0.0), (4.0, 0.7, 0.0), (2.5, 1.0, 0.0), (3.0, 0.3, 0.1)])
def test_distillation_gradient_matches_central_differences(T, weight, smoothing):
    Z, y, P = case()
    _, dZ = F.distillation_cross_entropy(Z, y, P, T, weight, smoothing)
    numeric = central_difference(lambda Zc: F.distillation_cross_entropy(Zc, y, P, T, weight, smoothing)[0], Z.copy())
    assert np.abs(numeric - dZ).max() / np.abs(dZ).max() < 1e-6


def test_loss_is_the_documented_mixture():
    Z, y, P = case(1)
    T, weight = 3.0, 0.4
    loss, _ = F.distillation_cross_entropy(Z, y, P, T, weight)
    hard = -np.mean(F.log_softmax(Z)[np.arange(6), y])
    soft = np.mean((P * (np.log(P) - F.log_softmax(Z / T))).sum(axis=1)) * T**2  # KL(P || Q)
    assert loss == pytest.approx((1 - weight) * hard + weight * soft, rel=1e-12)
    P[0] = np.eye(4)[y[0]]  # a certain teacher: its zeros add nothing
    assert np.isfinite(F.distillation_cross_entropy(Z, y, P, T, weight)[0])
    # a student equal to a certain teacher has (almost) no loss left
    Z_match = 30 * np.eye(4)[y]
    assert F.distillation_cross_entropy(Z_match, y, np.eye(4)[y], 1.0, 0.5)[0] < 1e-9


def test_weight_zero_is_plain_cross_entropy_and_a_matching_student_feels_no_pull():
    Z, y, P = case(2)
    assert np.array_equal(F.distillation_cross_entropy(Z, y, P, 4.0, 0.0)[1] * 1.0, F.softmax_cross_entropy(Z, y)[1])
    T = 2.0
    _, dZ = F.distillation_cross_entropy(Z, y, F.softmax(Z / T), T, 1.0)  # the teacher is the student
    assert np.abs(dZ).max() < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distillation_keeps_the_dtype(dtype):
    Z, y, P = case(3)
    _, dZ = F.distillation_cross_entropy(Z.astype(dtype), y, P.astype(dtype), 4.0, 0.5)
    assert dZ.dtype == dtype


# ------------------------------------------------------------------ training with a teacher

# engine numpy: a run with a teacher always takes the NumPy step, so the plain run it is
# compared with bit for bit must too (the compiled step agrees with it only to rounding)
SMALL = dict(
    epochs=2, hidden=(4,), batch_size=40, val_size=100, augment_shift=0, learning_rate=0.2, seed=1, engine="numpy"
)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    result = train(
        data=make_blobs(),
        out=str(out),
        epochs=4,
        hidden=(32,),
        batch_size=40,
        val_size=100,
        augment_shift=0,
        learning_rate=0.3,
    )
    assert result["test_accuracy"] > 0.9
    return out


def test_student_learns_from_the_teacher_and_weight_zero_ignores_it(teacher_run):
    data = make_blobs()
    plain = train(data=data, **SMALL)
    ignored = train(data=data, teacher=str(teacher_run), distill_weight=0.0, **SMALL)
    taught = train(
        data=data, teacher=str(teacher_run / "model.npz"), distill_weight=0.8, distill_temperature=3.0, **SMALL
    )
    assert np.array_equal(ignored.model.theta, plain.model.theta)
    assert not np.array_equal(taught.model.theta, plain.model.theta)
    assert taught["test_accuracy"] > 0.8  # the soft targets point the same way as the labels


def test_teacher_that_does_not_fit_the_data_is_refused(tmp_path):
    other = tmp_path / "other"
    train(data=make_blobs(n_features=25), out=str(other), epochs=1, hidden=(3,), val_size=100, augment_shift=0)
    with pytest.raises(ConfigError, match=r"^teacher .*other: a 25-3-3 network, but the data calls for 16 inputs"):
        train(data=make_blobs(), teacher=str(other), **SMALL)
    with pytest.raises(ConfigError, match=r"^teacher: .*missing: no such model file or run folder"):
        train(data=make_blobs(), teacher=str(tmp_path / "missing"), **SMALL)


def test_cli_distils_and_records_the_teacher(teacher_run, tmp_path):
    from steadynet.data.npz import write_npz

    data_path = tmp_path / "blobs.npz"
    write_npz(data_path, make_blobs())
    out = tmp_path / "student"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "steadynet",
            "train",
            "--data",
            str(data_path),
            "--out",
            str(out),
            "--hidden",
            "4",
            "--epochs",
            "2",
            "--val-size",
            "100",
            "--augment-shift",
            "0",
            "--teacher",
            str(teacher_run),
            "--distill-temperature",
            "2",
            "--distill-weight",
            "0.6",
            "--quiet",
            "--no-plots",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["teacher"], config["distill_temperature"], config["distill_weight"]) == (str(teacher_run), 2.0, 0.6)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "steadynet",
            "train",
            "--data",
            str(data_path),
            "--out",
            str(tmp_path / "x"),
            "--teacher",
            str(tmp_path / "nothing"),
            "--epochs",
            "1",
            "--val-size",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr and "--teacher" in r.stderr


def test_cached_teacher_outputs_are_the_teachers_outputs_on_the_shifted_images(teacher_run):
    """Without warps the loop looks the teacher's outputs up instead of computing them per
    batch: the entry for each image's drawn offset must be the output on the shifted image."""
    from steadynet import load
    from steadynet.data.augment import random_shifts
    from steadynet.data.dataset import as_float_batch
    from steadynet.train.loop import teacher_outputs

    teacher, data = load(str(teacher_run)), make_blobs()
    P = teacher_outputs(teacher, data.x_train, (4, 4), shift=1, temperature=2.0, dtype=np.dtype("float32"), chunk=64)
    assert P.shape == (9, 600, 3) and np.allclose(P.sum(axis=2), 1, atol=1e-6)
    order = np.random.default_rng(0).permutation(600)
    X_epoch, offsets = random_shifts(
        data.x_train, (4, 4), 1, np.random.default_rng(1), index=order, return_offsets=True
    )
    looked_up = P[(offsets[:, 0] + 1) * 3 + offsets[:, 1] + 1, order]
    direct = F.softmax(teacher.forward(as_float_batch(X_epoch, teacher.dtype)) / 2.0)
    assert np.allclose(looked_up, direct, atol=1e-6)
    assert len(np.unique(offsets, axis=0)) == 9
