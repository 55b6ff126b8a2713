"""HealthMonitor: sampled per-layer statistics and their warnings."""

import math

import numpy as np
import pytest

from steadynet import MLP, TrainConfig
from steadynet.diagnostics.health import HealthMonitor, health_warnings, layer_stats
from steadynet.optim import make_optimizer
from steadynet.train import train_loop


def run(blobs, epochs=2, scale=1.0, hidden=12, **kw):
    """Train a small model through the loop with a HealthMonitor on both hooks."""
    config = TrainConfig(
        data="blobs", val_size=0, epochs=epochs, batch_size=50, hidden=(hidden,), augment_shift=0, **kw
    )
    model = MLP((16, hidden, 3), config.activation, init=config.init, seed=0)
    monitor = HealthMonitor(model)
    optimizer = make_optimizer(config.optimizer, model.n_weights)
    epochs_out = [
        monitor.on_epoch(r)
        for r in train_loop(
            model, optimizer, config, blobs.x_train * scale, blobs.y_train, blobs.image_shape, on_step=monitor.on_step
        )
    ]
    return model, monitor, epochs_out


def test_healthy_run_has_stats_and_no_warnings(blobs):
    model, monitor, epochs = run(blobs, learning_rate=0.05, optimizer="sgd", schedule="constant")
    first = epochs[0]
    assert first["initial_loss"] == pytest.approx(math.log(3), rel=0.3)
    assert first["expected_initial_loss"] == pytest.approx(math.log(3))
    assert [L["layer"] for L in first["layers"]] == [1, 2]
    assert set(first["layers"][0]) == {"layer", "weight_norm", "grad_norm", "update_ratio", "saturated"}
    assert 1e-5 < first["layers"][0]["update_ratio"] < 1e-2
    assert first["warnings"] == [] and epochs[1]["warnings"] == []
    assert "initial_loss" not in epochs[1]
    assert len(monitor.history) == 2 and len(monitor.recent) == 20


def test_update_ratio_is_the_measured_step(blobs):
    # plain SGD: the update is exactly lr * grad, so the ratio is lr * ||dW|| / ||W||
    model, monitor, epochs = run(blobs, epochs=1, learning_rate=0.05, optimizer="sgd", schedule="constant")
    ratio = epochs[0]["layers"][1]["update_ratio"]
    assert 0 < ratio < 0.05 * max(r["grad_norm"] for r in monitor.recent) / 0.1


def test_seed_init_warns_about_initial_loss_and_saturation(blobs):
    _, _, epochs = run(
        blobs,
        epochs=1,
        scale=255,
        hidden=64,
        init="uniform_01",
        learning_rate=0.05,
        optimizer="sgd",
        schedule="constant",
    )
    text = " ".join(epochs[0]["warnings"])
    assert "initial loss" in text and "ln(3)" in text
    assert "saturated" in text and "barely learns" in text  # saturated: no gradient, no update
    assert epochs[0]["layers"][0]["saturated"] > 0.9


def test_large_learning_rate_warns_about_update_ratio(blobs):
    _, _, epochs = run(blobs, epochs=1, learning_rate=5.0, optimizer="sgd", schedule="constant")
    assert any("learning rate is too large" in w for w in epochs[0]["warnings"])


def test_dead_relus_are_counted():
    model = MLP((4, 6, 3), "relu", seed=0)
    model.params["b1"][...] = -100.0  # every unit's output is 0 for any input in [0, 1]
    model.forward(np.random.default_rng(0).uniform(0, 1, (20, 4)).astype(np.float32))
    stats = layer_stats(model)
    assert stats[0]["dead"] == 1.0 and "dead" not in stats[1]
    assert any("dead" in w for w in health_warnings(stats))


def test_sampling_is_sparse(blobs):
    config = TrainConfig(data="blobs", val_size=0, epochs=1, batch_size=10, hidden=(12,), augment_shift=0)
    model = MLP((16, 12, 3), seed=0)
    monitor = HealthMonitor(model)
    for _ in train_loop(
        model,
        make_optimizer("sgd", model.n_weights),
        config,
        blobs.x_train,
        blobs.y_train,
        blobs.image_shape,
        on_step=monitor.on_step,
    ):
        pass
    assert monitor.every == 6  # 60 batches -> 10 samples
    assert len(monitor._samples) == 10


def test_small_updates_at_the_end_of_a_schedule_are_not_warned_about():
    layers = [{"layer": 1, "update_ratio": 1e-8}]
    assert any("barely learns" in w for w in health_warnings(layers))
    assert health_warnings(layers, lr_decayed=True) == []


def test_a_distilled_loss_is_not_compared_with_chance(blobs):
    model = MLP((16, 8, 3), seed=0)
    monitor = HealthMonitor(model, plain_loss=False)
    config = TrainConfig(data="blobs", val_size=0, epochs=1, batch_size=32, hidden=(8,), augment_shift=0)
    X = blobs.x_train * 50  # huge logits: the initial loss is far above ln(3)
    for result in train_loop(
        model,
        make_optimizer("sgd", model.n_weights),
        config,
        X,
        blobs.y_train,
        blobs.image_shape,
        on_step=monitor.on_step,
        detector=lambda loss, g: None,
    ):
        entry = monitor.on_epoch(result)
    assert "initial_loss" not in entry and not any("initial loss" in w for w in entry["warnings"])


def test_health_and_divergence_measure_units_with_one_function(blobs):
    """The monitor's per-layer statistics and the divergence evidence agree on the same batch."""
    from steadynet.data.dataset import as_float_batch
    from steadynet.diagnostics.divergence import unit_evidence
    from steadynet.diagnostics.health import unit_fractions

    assert unit_fractions("sigmoid", np.array([[0.001, 0.5], [0.999, 0.5]])) == {"saturated": 0.5}
    assert unit_fractions("relu", np.array([[0.0, 1.0], [0.0, 0.0]])) == {"dead": 0.5}
    assert unit_fractions("identity", np.ones((2, 2))) == {}
    for activation, init, key in (("sigmoid", "uniform_01", "saturated"), ("relu", "he_normal", "dead")):
        model = MLP((blobs.n_features, 16, 8, blobs.n_classes), activation, init=init)
        X = as_float_batch(blobs.x_train[:64], model.dtype)
        model.loss_and_grad(X, blobs.y_train[:64])
        per_layer = [s[key] for s in layer_stats(model) if key in s]
        assert unit_evidence(model, X)[key] == max(per_layer)
