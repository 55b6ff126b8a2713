"""Training end to end on small synthetic data: convergence, determinism, the seed's regime,
run folders and the metrics.json contract."""

import json

import numpy as np
import pytest

import steadynet
from conftest import make_blobs
from steadynet import ConfigError, TrainConfig
from steadynet.train import split_validation

FAST = dict(hidden=(16,), epochs=5, batch_size=32, val_size=100, augment_shift=0)


def test_converges_on_blobs(blobs):
    result = steadynet.train(data=blobs, **FAST)
    assert result["test_accuracy"] > 0.95
    losses = [e["train_loss"] for e in result["epochs"]]
    assert losses[-1] < 0.8 * losses[0]


def test_same_seed_same_run_bit_for_bit(blobs):
    settings = {**FAST, "augment_shift": 1, "dropout": 0.1}
    a = steadynet.train(data=blobs, **settings, seed=7)
    b = steadynet.train(data=blobs, **settings, seed=7)
    c = steadynet.train(data=blobs, **settings, seed=8)
    np.testing.assert_array_equal(a.model.theta, b.model.theta)
    assert a["epochs"] == [{**e, "seconds": a["epochs"][i]["seconds"]} for i, e in enumerate(b["epochs"])]
    assert not np.array_equal(a.model.theta, c.model.theta)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_trains_in_the_requested_dtype(blobs, dtype):
    result = steadynet.train(data=blobs, **FAST, dtype=dtype)
    assert result.model.theta.dtype == np.dtype(dtype)
    assert result["test_accuracy"] > 0.9


@pytest.mark.parametrize(
    "optimizer, lr", [("sgd", 0.5), ("momentum", 0.1), ("nesterov", 0.1), ("adam", 0.01), ("adamw", 0.01)]
)
def test_every_optimiser_learns(blobs, optimizer, lr):
    result = steadynet.train(
        data=blobs, **{**FAST, "epochs": 10}, optimizer=optimizer, learning_rate=lr, weight_decay=1e-4, clip_norm=5.0
    )
    assert result["test_accuracy"] > 0.9


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_deeper_networks_learn(blobs, activation):
    result = steadynet.train(
        data=blobs, **{**FAST, "hidden": (16, 12), "epochs": 20}, activation=activation, learning_rate=0.2
    )
    assert result["test_accuracy"] > 0.9


def test_seed_regime_full_batch_loss_falls_every_iteration():
    """Full batch, 30 sigmoid units, 100 iterations, the default full-batch learning rate."""
    data = make_blobs(n_train=500, n_features=64, n_classes=10, seed=1)
    losses = []
    result = steadynet.train(
        data=data,
        hidden=(30,),
        batch_size="full",
        epochs=100,
        val_size=0,
        augment_shift=0,
        on_epoch=lambda r: losses.append(r.train_loss),
    )
    assert len(losses) == 100 and all(np.isfinite(losses))
    assert all(b < a for a, b in zip(losses, losses[1:])), "the loss rose at some iteration"
    assert result["test_accuracy"] > 0.9


def test_validation_split_is_seeded_and_disjoint(blobs):
    X, y, Xv, yv = split_validation(blobs, 100, seed=3)
    X2, _, Xv2, _ = split_validation(blobs, 100, seed=3)
    assert X.shape[0] == 500 and Xv.shape[0] == 100
    np.testing.assert_array_equal(Xv, Xv2)
    rows = {r.tobytes() for r in X}
    assert not any(r.tobytes() in rows for r in Xv)


def test_early_stopping_restores_the_best_epoch(blobs):
    result = steadynet.train(data=blobs, **{**FAST, "epochs": 40}, learning_rate=0.5, patience=2, schedule="constant")
    best = result["best_epoch"]
    assert len(result["epochs"]) == best + 2  # stopped `patience` epochs after the best
    val_best = result["epochs"][best - 1]["val_accuracy"]
    X, y, Xv, yv = split_validation(blobs, 100, seed=0)
    assert result.model.evaluate(Xv, yv)[1] == pytest.approx(val_best)


def test_early_stopping_is_one_rule_for_the_loop_and_for_an_interrupted_run(blobs):
    """A stop request at the epoch where early stopping ends the run leaves a completed run
    (the same rule says so after the loop); one an epoch earlier leaves an interrupted one."""
    import signal

    from steadynet.train import Interrupted
    from steadynet.train.trainer import EarlyStopping

    settings = dict(data=blobs, **{**FAST, "epochs": 40}, learning_rate=0.5, patience=2, schedule="constant")
    ref = steadynet.train(**settings)
    last = len(ref["epochs"])
    assert last < 40 and EarlyStopping(2).stopped(last) is False  # no best epoch yet: never stopped

    def interrupt_at(epoch):
        return lambda result: signal.raise_signal(signal.SIGINT) if result.epoch == epoch else None

    stopped = steadynet.train(**settings, handle_signals=True, on_epoch=interrupt_at(last))
    assert stopped["status"] == "completed" and stopped["best_epoch"] == ref["best_epoch"]
    np.testing.assert_array_equal(stopped.model.theta, ref.model.theta)
    with pytest.raises(Interrupted):
        steadynet.train(**settings, handle_signals=True, on_epoch=interrupt_at(last - 1))


def test_the_early_stopping_rule():
    from steadynet.train.loop import EpochResult
    from steadynet.train.trainer import EarlyStopping

    def epoch(n, val_accuracy):
        return EpochResult(n, 10 * n, 0.5, 0.8, 0.4, val_accuracy, 0.1, 1.0)

    stopping, theta = EarlyStopping(2), np.arange(3.0)
    assert stopping.observe(epoch(1, 0.7), theta) and stopping.best.epoch == 1
    theta[...] = 0  # the best epoch's weights are a copy
    assert not stopping.observe(epoch(2, 0.7), theta) and not stopping.stopped(2)  # equal is not better
    assert not stopping.observe(epoch(3, None), theta) and stopping.stopped(3)
    np.testing.assert_array_equal(stopping.best.theta, [0.0, 1.0, 2.0])
    assert not EarlyStopping(None).stopped(100) and not EarlyStopping(0).stopped(100)


def test_run_folder_and_metrics_contract(blobs, tmp_path):
    out = tmp_path / "run"
    result = steadynet.train(data=blobs, out=str(out), **FAST)
    for name in ["config.json", "metrics.json", "model.npz", "checkpoints/last.npz", "checkpoints/best.npz"]:
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert set(metrics) >= {"config", "epochs", "test_accuracy", "train_seconds"}
    assert metrics["config"]["hidden"] == [16]
    assert len(metrics["epochs"]) == 5
    for e in metrics["epochs"]:
        assert set(e) >= {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds"}
    assert metrics["test_accuracy"] == pytest.approx(result["test_accuracy"])
    config = json.loads((out / "config.json").read_text())
    assert config["learning_rate"] == TrainConfig().resolved_learning_rate()
    model = steadynet.load(str(out))  # a run folder stands for its model
    np.testing.assert_array_equal(model.theta, result.model.theta)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"epochs": 0}, "^epochs must be an integer >= 1, got 0"),
        ({"learning_rate": -0.1}, "^learning_rate must be a finite number > 0, got -0.1"),
        ({"batch_size": "half"}, "^batch_size must be an integer >= 1 or 'full'"),
        ({"activation": "swish"}, "^activation must be one of"),
        ({"hidden": (10**6, 10**6, 10**6)}, "^hidden must be small enough to fit in memory"),
        ({"optimizer": "lbfgs"}, "^optimizer must be one of"),
    ],
)
def test_absurd_settings_are_refused_before_training(blobs, overrides, match):
    with pytest.raises(ConfigError, match=match):
        steadynet.train(data=blobs, **{**FAST, **overrides})


def test_batch_larger_than_the_data_is_refused(blobs):
    with pytest.raises(ConfigError, match=r"^batch_size must be at most the number of training images \(500"):
        steadynet.train(data=blobs, **{**FAST, "batch_size": 10_000})
