"""train_step, the one optimiser step: the training loop, the scikit-learn estimator and
doctor all step through it, and one step of each from the same weights on the same batch
gives the same weights as train_step itself."""

import importlib
import warnings

import numpy as np
import pytest

from steadynet import MLP, TrainConfig
from steadynet.diagnostics.divergence import non_finite
from steadynet.model import as_float_batch
from steadynet.optim import SGD, make_optimizer
from steadynet.train import train_loop, train_step

# the modules themselves (the packages export functions of the same names)
loop = importlib.import_module("steadynet.train.loop")
doctor = importlib.import_module("steadynet.diagnostics.doctor")
CONFIG = TrainConfig(
    hidden=(8,),
    activation="relu",
    epochs=1,
    batch_size="full",
    optimizer="sgd",
    val_size=0,
    augment_shift=0,
    engine="numpy",
)


def fresh(config=CONFIG, n_features=16, n_classes=3):
    return MLP.from_config(config, n_features, n_classes)


def one_step(X, y, lr):
    """The reference: train_step itself, from a fresh network, with plain SGD."""
    model = fresh()
    step = train_step(model, SGD(model.n_weights), X, y, lr)
    assert step.refused is None
    return model.theta


def test_one_step_of_the_loop_and_of_doctor_is_train_step(blobs):
    X, y = as_float_batch(blobs.x_train, np.dtype("float32")), blobs.y_train
    model, steps = fresh(), []
    list(train_loop(model, SGD(model.n_weights), CONFIG, blobs.x_train, y, blobs.image_shape, on_step=steps.append))
    assert len(steps) == 1  # full batch, one epoch
    np.testing.assert_array_equal(model.theta, one_step(X, y, steps[0].learning_rate))

    model = fresh()
    doctor.sgd_steps(model, X, y, CONFIG, 0.1, steps=1)
    np.testing.assert_array_equal(model.theta, one_step(X, y, 0.1))


def test_one_step_of_the_estimator_is_train_step(blobs):
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state

    from steadynet.sklearn import MLPClassifier

    X, y = blobs.x_train.astype(np.float64), blobs.y_train
    clf = MLPClassifier(
        (8,),
        solver="sgd",
        momentum=0.0,
        alpha=0.0,
        batch_size=len(y),
        max_iter=1,
        shuffle=False,
        random_state=3,
        centre_inputs="off",  # the plain step (blobs, mean 0.5 and std 0.2, would be centred)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    # the estimator's starting network: its seed is drawn first from random_state
    seed = int(check_random_state(3).randint(np.iinfo(np.int32).max))
    model = MLP((16, 8, 3), "relu", dtype="float64", seed=seed)
    train_step(model, SGD(model.n_weights), X, y, 0.001)  # learning_rate_init's default
    np.testing.assert_array_equal(clf.model_.theta, model.theta)


def test_the_loop_the_estimator_and_doctor_call_train_step(blobs, monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("check"))
        return train_step(*args, **kwargs)

    for module in (loop, doctor):
        monkeypatch.setattr(module, "train_step", spy)
    model = fresh()
    list(train_loop(model, SGD(model.n_weights), CONFIG, blobs.x_train, blobs.y_train, blobs.image_shape))
    assert len(calls) == 1
    X = as_float_batch(blobs.x_train, np.dtype("float32"))
    doctor.sgd_steps(fresh(), X, blobs.y_train, CONFIG, 0.1, steps=3)
    doctor.lr_range_test(fresh(), X, blobs.y_train, CONFIG, [1e-3, 1e-2], batch_size=64)
    assert len(calls) == 1 + 3 + 2
    pytest.importorskip("sklearn")
    estimator = importlib.import_module("steadynet.sklearn")
    monkeypatch.setattr(estimator, "train_step", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        estimator.MLPClassifier((8,), batch_size=200, max_iter=2, random_state=0).fit(
            blobs.x_train.astype(np.float64), blobs.y_train
        )
    assert len(calls) == 6 + 2 * 3  # 600 samples in batches of 200, two epochs


def test_a_refused_step_leaves_the_weights_alone():
    model = fresh()
    X, y = np.full((4, 16), np.inf, np.float32), np.zeros(4, np.int64)
    before = model.theta.copy()
    with np.errstate(invalid="ignore"):
        step = train_step(model, make_optimizer("adam", model.n_weights), X, y, 0.1)
    assert step.refused == "non-finite loss" and step.refused.kind == "loss"
    np.testing.assert_array_equal(model.theta, before)


def test_the_check_every_step_gets():
    assert non_finite(1.0, 2.0) is None
    assert (non_finite(float("nan"), 1.0), non_finite(1.0, float("inf"))) == ("non-finite loss", "non-finite gradient")
    assert non_finite(1.0, float("inf")).kind == "gradient norm"
