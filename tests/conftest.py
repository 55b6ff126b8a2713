"""Shared fixtures: tiny synthetic data for unit tests, real MNIST for the few integration tests."""

import os
import signal

import numpy as np
import pytest
from hypothesis import settings

from steadynet.data import Dataset

# generous deadline: CI machines are slow and shared
settings.register_profile("steadynet", deadline=None, max_examples=50)
settings.load_profile("steadynet")


def interrupt_at(steps, epoch=1):
    """An ``on_step`` that sends this process SIGINT (Ctrl-C) right after each of ``steps``,
    counted from the start of epoch ``epoch`` (1: from the run's first step)."""

    def on_step(info):
        if info.step - (epoch - 1) * info.batches in steps:
            os.kill(os.getpid(), signal.SIGINT)

    return on_step


def make_blobs(n_train=600, n_test=200, n_features=16, n_classes=3, seed=0):
    """A small, learnable data set: one Gaussian blob per class, pixels clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(n_classes, n_features))

    def draw(n):
        y = rng.integers(0, n_classes, size=n)
        X = centres[y] + rng.normal(0, 0.08, size=(n, n_features))
        return np.clip(X, 0, 1).astype(np.float32), y.astype(np.int64)

    Xtr, ytr = draw(n_train)
    Xte, yte = draw(n_test)
    side = int(np.sqrt(n_features))
    shape = (side, side) if side * side == n_features else (n_features,)
    return Dataset(Xtr, ytr, Xte, yte, shape, "blobs")


@pytest.fixture
def blobs():
    return make_blobs()


# the short real run the plot and report tests draw (tests/test_viz.py, tests/test_report.py)
NOISY_RUN = dict(hidden=(16,), epochs=3, batch_size=32, val_size=100, augment_shift=0)


def noisy_blobs():
    """28x28 blobs with every 10th test label shifted, so there are mistakes to draw."""
    data = make_blobs(n_features=784, n_classes=4)
    data.y_test[::10] = (data.y_test[::10] + 1) % 4
    return data


@pytest.fixture(scope="session")
def noisy_data():
    return noisy_blobs()


@pytest.fixture(scope="session")
def noisy_run(tmp_path_factory, noisy_data):
    """``(run folder, result)`` of a short real run on :func:`noisy_blobs` (in memory, so the
    folder's config cannot reload its data). Tests may add plots and a report to it; those that
    change its files change a copy."""
    import steadynet

    out = tmp_path_factory.mktemp("noisy") / "run"
    result = steadynet.train(data=noisy_data, out=str(out), **NOISY_RUN)
    return str(out), result


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST, fetched once into the user cache (or $STEADYNET_HOME) and reused."""
    from steadynet.data import load_data

    return load_data("mnist", log=print)


@pytest.fixture(scope="session")
def digit_model(mnist):
    """784-128-10 ReLU, 2 epochs of Adam on 20,000 MNIST training images (about 95% on the test
    digits), for the tests that read photos and scans of digits (test_pictures, test_hostile_digits)."""
    from steadynet import MLP
    from steadynet.data.dataset import as_float_batch
    from steadynet.optim import make_optimizer
    from steadynet.train.step import train_step

    model = MLP((784, 128, 10), "relu", seed=0)
    optimizer = make_optimizer("adam", model.n_weights)
    rng = np.random.default_rng(0)
    for _ in range(2):
        order = rng.permutation(20_000)
        for start in range(0, 20_000, 100):
            idx = order[start : start + 100]
            train_step(model, optimizer, as_float_batch(mnist.x_train[idx], model.dtype), mnist.y_train[idx], 1e-3)
    return model


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty $STEADYNET_HOME for tests that must not see the real cache."""
    monkeypatch.setenv("STEADYNET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
