"""Divergence: exploding values stop training at their step with the weights from before it,
and the report ranks the true cause first."""

import math

import numpy as np
import pytest

from steadynet import MLP, TrainConfig
from steadynet.diagnostics.divergence import ExplosionDetector, explain_divergence, format_causes
from steadynet.diagnostics.health import HealthMonitor
from steadynet.optim import make_optimizer
from steadynet.train import DivergenceError, train_loop


def diverge(blobs, scale=1.0, activation="sigmoid", **kw):
    """Train until the loop's guard stops it; returns (error, model, config, X, monitor, weights
    after each accepted step)."""
    config = TrainConfig(
        data="blobs", val_size=0, epochs=3, batch_size=32, hidden=(16,), augment_shift=0, activation=activation, **kw
    )
    model = MLP((16, 16, 3), activation, seed=0)
    X = blobs.x_train * scale
    monitor = HealthMonitor(model)
    weights = [model.theta.copy()]  # weights[s]: after step s

    def on_step(info):  # called for accepted steps only: the loop raises before a refused one
        monitor.on_step(info)
        weights.append(model.theta.copy())

    with pytest.raises(DivergenceError) as caught:
        for _ in train_loop(
            model,
            make_optimizer(config.optimizer, model.n_weights),
            config,
            X,
            blobs.y_train,
            blobs.image_shape,
            on_step=on_step,
        ):
            pass
    return caught.value, model, config, X, monitor, weights


def test_detector_accepts_a_steady_run_and_flags_explosions():
    detect = ExplosionDetector(n_classes=10)
    for t in range(100):  # a loss falling from ln(10), gradients wobbling
        assert detect(2.3 * 0.98**t, 1.0 + 0.5 * math.sin(t)) is None
    assert "running median" in detect(0.3, 500.0)
    assert "non-finite loss" in detect(math.nan, 1.0)
    assert "non-finite gradient" in detect(0.3, math.inf)
    assert "earlier level" in detect(20.0, 1.0)
    assert detect(2.0, 1.0) is None  # worse than before, but not worse than 2 ln(k): not an explosion


def test_a_hard_batch_late_in_a_run_that_fits_its_data_is_not_an_explosion():
    # best on permuted MNIST, epoch 32: training accuracy 99.99%, the gradient's running median
    # 0.0097, one batch at 0.99, a tenth of the first steps' typical norm: it was refused
    detect = ExplosionDetector(n_classes=10)
    for t in range(64):  # the first steps: norms about 10
        assert detect(2.3 * 0.95**t, 10.0 + math.sin(t)) is None
    for t in range(200):  # the network fits its batches: losses and gradients tiny
        assert detect(0.0005, 0.0097 * (1 + 0.1 * math.sin(t))) is None
    assert detect(0.026, 0.99) is None
    assert "running median" in detect(0.3, 200.0)  # past a hundred times the floor: an explosion still


def test_a_resumed_detector_keeps_the_floor_of_the_runs_first_steps():
    # a run resumed late starts a new detector whose first steps are the fitted network's tiny
    # gradients (the CI run of 2026-12-03: 0.717 refused as 126x a median of 0.0057); given the
    # first run's memory it measures the hard batch as the uninterrupted run did
    late = [(0.0005, 0.0057 * (1 + 0.1 * math.sin(t))) for t in range(64)]
    fresh, resumed = ExplosionDetector(n_classes=3), ExplosionDetector(n_classes=3, first_loss=1.1, early_grad_norm=8.0)
    for loss, norm in late:
        assert fresh(loss, norm) is None and resumed(loss, norm) is None
    assert "running median" in fresh(0.11, 0.717)
    assert resumed(0.11, 0.717) is None
    assert resumed.first_loss == 1.1 and resumed.early_grad_norm == 8.0


def test_detector_flags_exploded_logits_at_the_first_step():
    assert "100 ln(k)" in ExplosionDetector(n_classes=10)(300.0, 1.0)


def test_huge_learning_rate_stops_at_the_exploding_step_and_ranks_learning_rate_first(blobs):
    err, model, config, X, monitor, weights = diverge(blobs, learning_rate=1e4, optimizer="sgd")
    report = err.report
    step = report["step"]
    assert step == len(weights)  # weights[0..step-1] were accepted; step `step` was refused
    # the loss of step `step` is the first to show the damage of step `step - 1`, a step that
    # moved the weights by far more than 1% of their norm: the model goes back to before it
    kept = report["kept"]
    assert kept["restored"] and kept["step"] == step - 2
    np.testing.assert_array_equal(model.theta, weights[step - 2])
    assert np.isfinite(model.theta).all()
    explained = explain_divergence(report, model, config, X, monitor.recent)
    assert explained["causes"][0]["cause"] == "learning_rate"
    assert "(--lr 1000)" in explained["causes"][0]["fix"]
    assert [c["score"] for c in explained["causes"]] == sorted((c["score"] for c in explained["causes"]), reverse=True)
    assert explained["norm_history"][-1]["step"] == step
    assert "learning_rate" in format_causes(explained)


def test_unscaled_inputs_are_ranked_first(blobs):
    err, model, config, X, monitor, weights = diverge(blobs, scale=255, activation="relu")
    explained = explain_divergence(err.report, model, config, X, monitor.recent)
    assert [c["cause"] for c in explained["causes"]][0] == "unscaled_inputs"
    assert "255" in explained["causes"][0]["evidence"]
    np.testing.assert_array_equal(model.theta, weights[err.report["step"] - 1])


def test_overflowing_update_stops_within_the_step_and_keeps_finite_weights(blobs):
    # lr * grad is finite, but the update would overflow float32 weights: refused before it
    err, model, config, X, monitor, weights = diverge(blobs, learning_rate=1e38, optimizer="sgd", schedule="constant")
    assert err.report["step"] == 1 and err.report["first"] == "weights"
    assert "would overflow float32" in err.report["reason"]
    np.testing.assert_array_equal(model.theta, weights[0])  # the initial weights, untouched
    explained = explain_divergence(err.report, model, config, X, monitor.recent)
    assert explained["causes"][0]["cause"] == "learning_rate"


def test_full_batch_huge_rate_keeps_the_weights_from_before_the_step_that_exploded(blobs, tmp_path):
    from steadynet import train
    from steadynet.data.dataset import as_float_batch
    from steadynet.functional import softmax_cross_entropy
    from steadynet.persistence import load_model

    with pytest.raises(DivergenceError) as caught:
        train(
            data=blobs,
            batch_size="full",
            learning_rate=50,
            epochs=5,
            hidden=(16,),
            val_size=0,
            augment_shift=0,
            out=str(tmp_path / "run"),
            plots=False,
        )
    report = caught.value.report
    assert report["kept"] == {"step": 0, "loss": report["norm_history"][0]["loss"], "restored": True}
    kept = load_model(str(tmp_path / "run" / "last_finite.npz"))
    X = as_float_batch(blobs.x_train, np.dtype("float32"))
    loss_kept = softmax_cross_entropy(kept.forward(X), blobs.y_train)[0]
    assert loss_kept == pytest.approx(report["kept"]["loss"], rel=1e-5)  # the start, not the exploded weights
    assert loss_kept < 2 * math.log(3)
    # the last line names the first-ranked cause's change
    assert "Most likely learning_rate" in str(caught.value)


def test_last_line_follows_the_first_ranked_cause(blobs, tmp_path):
    from steadynet import Dataset, train

    data = Dataset(blobs.x_train * 255, blobs.y_train, blobs.x_test * 255, blobs.y_test, image_shape=(4, 4))
    with pytest.raises(DivergenceError) as caught:
        train(
            data=data,
            learning_rate=0.5,
            optimizer="sgd",
            epochs=3,
            hidden=(16,),
            activation="relu",
            val_size=0,
            augment_shift=0,
            plots=False,
            standardised_inputs=True,
        )  # kept unscaled, as asked
    first = caught.value.report["causes"][0]["cause"]
    assert first == "unscaled_inputs" and f"Most likely {first}" in str(caught.value)


def test_seed_init_is_ranked_when_it_is_the_cause(blobs):
    model = MLP((16, 16, 3), init="uniform_01", seed=0)
    report = {
        "epoch": 1,
        "step": 2,
        "batch": 2,
        "loss": 400.0,
        "learning_rate": 0.1,
        "first": "loss",
        "weight_norms": {"W1": 9.0},
    }
    config = TrainConfig(optimizer="sgd", batch_size=32, init="uniform_01")
    explained = explain_divergence(report, model, config, blobs.x_train)
    assert explained["causes"][0]["cause"] == "init_scale"
    assert "every weight is positive" in explained["causes"][0]["evidence"]
    assert [h["step"] for h in explained["norm_history"]] == [2]  # only the refused step is known


def test_guard_lets_a_healthy_run_finish(blobs):
    config = TrainConfig(data="blobs", val_size=0, epochs=8, batch_size=32, hidden=(16,), augment_shift=0)
    model = MLP((16, 16, 3), seed=0)
    results = list(
        train_loop(
            model,
            make_optimizer(config.optimizer, model.n_weights),
            config,
            blobs.x_train,
            blobs.y_train,
            blobs.image_shape,
        )
    )
    assert len(results) == 8 and results[-1].train_accuracy > 0.9
