"""Max-norm, the moving average of the weights, the one-cycle schedule, and new config checks."""

import numpy as np
import pytest

from conftest import make_blobs
from steadynet import MLP, TrainConfig, train
from steadynet.errors import ConfigError
from steadynet.schedules import learning_rate
from steadynet.train.weights import WeightAverage, hidden_weights, max_norm_


def test_max_norm_caps_long_columns_and_leaves_short_ones():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(20, 6)).astype(np.float32)
    W[:, :3] *= 0.05  # short columns, well under the cap
    before = W.copy()
    max_norm_([W], 1.0)
    norms = np.linalg.norm(W, axis=0)
    assert np.array_equal(W[:, :3], before[:, :3])
    assert np.allclose(norms[3:], 1.0, rtol=1e-6)
    assert np.allclose(W[:, 3:], before[:, 3:] / np.linalg.norm(before[:, 3:], axis=0), rtol=1e-5)  # same direction


def test_max_norm_acts_on_the_models_hidden_units_in_place():
    model = MLP((16, 8, 5, 3), "relu")
    model.theta[...] *= 10
    out_before = model.params["W3"].copy()
    max_norm_(hidden_weights(model), 0.5)
    assert np.linalg.norm(model.params["W1"], axis=0).max() <= 0.5 + 1e-6
    assert np.linalg.norm(model.params["W2"], axis=0).max() <= 0.5 + 1e-6
    assert np.array_equal(model.params["W3"], out_before)  # the output layer is not a hidden unit


def test_training_with_max_norm_keeps_every_hidden_column_under_the_cap():
    result = train(
        data=make_blobs(),
        epochs=2,
        hidden=(12,),
        val_size=100,
        augment_shift=0,
        batch_size=20,
        learning_rate=0.5,
        max_norm=0.7,
    )
    assert np.linalg.norm(result.model.params["W1"], axis=0).max() <= 0.7 + 1e-5


def test_weight_average_follows_the_formula():
    theta = np.zeros(4)
    ema = WeightAverage(theta, 0.9)
    expected = theta.copy()
    for t in range(30):
        theta = theta + 1.0
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * theta
        ema.update(theta, t)
    assert np.allclose(ema.theta, expected, rtol=1e-12)
    model = MLP((4, 3, 2))
    own = model.theta.copy()
    avg = WeightAverage(model.theta * 0 + 1, 0.5)
    with avg.applied(model):
        assert np.all(model.theta == 1)
    assert np.array_equal(model.theta, own)


def test_averaged_weights_are_the_validated_and_saved_model(tmp_path):
    from steadynet import load

    config = dict(epochs=3, hidden=(8,), val_size=100, augment_shift=0, batch_size=20, learning_rate=0.3)
    plain = train(data=make_blobs(), **config)
    averaged = train(data=make_blobs(), out=str(tmp_path / "run"), ema_decay=0.95, **config)
    assert not np.array_equal(plain.model.theta, averaged.model.theta)
    assert np.array_equal(load(str(tmp_path / "run")).theta, averaged.model.theta)
    # the last epoch's validation accuracy is the saved model's
    from steadynet.train import split_validation

    _, _, X_val, y_val = split_validation(make_blobs(), 100, 0)
    assert averaged.model.evaluate(X_val, y_val)[1] == averaged["epochs"][-1]["val_accuracy"]


def test_one_cycle_rises_then_falls_to_almost_nothing():
    lrs = [learning_rate(s, 100, 1.0, "onecycle") for s in range(100)]
    peak = int(np.argmax(lrs))
    assert peak == 30 and lrs[peak] == pytest.approx(1.0)
    assert lrs[0] == pytest.approx(1 / 25)
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))
    assert lrs[-1] == pytest.approx(1 / 25 / 1e4)
    assert int(np.argmax([learning_rate(s, 100, 1.0, "onecycle", warmup_steps=10) for s in range(100)])) == 10


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("augment_rotate", 90, r"^augment_rotate must be in \[0, 45\]"),
        ("augment_scale", 1.0, r"^augment_scale must be in \[0, 1\)"),
        ("elastic_alpha", -1, r"^elastic_alpha must be in \[0, 100\]"),
        ("elastic_sigma", 0.1, r"^elastic_sigma must be in \[0.5, 20\]"),
        ("max_norm", 0, "^max_norm must be a finite number > 0"),
        ("ema_decay", 1.0, r"^ema_decay must be in \[0, 1\)"),
        ("distill_weight", 1.5, r"^distill_weight must be in \[0, 1\]"),
        ("distill_temperature", 0, r"^distill_temperature must be in \(0, 100\]"),
    ],
)
def test_new_settings_are_validated(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value}).validate()


def test_warps_need_images(tmp_path):
    flat = make_blobs(n_features=10)  # 10 features: not a square image
    with pytest.raises(ConfigError, match="^augment_rotate/augment_scale/augment_shear/elastic_alpha need images"):
        train(data=flat, epochs=1, hidden=(3,), val_size=100, augment_shift=0, augment_rotate=5)
