"""The compiled path (steadynet.kernels, numba) against the NumPy reference: the same step,
to rounding, for every activation and every optimiser."""

import json

import numpy as np
import pytest

from steadynet import kernels
from steadynet.config import TrainConfig
from steadynet.errors import ConfigError
from steadynet.functional import ACTIVATIONS
from steadynet.kernels import resolve_engine
from steadynet.model import MLP
from steadynet.optim import OPTIMIZERS, make_optimizer

needs_numba = pytest.mark.skipif(
    not kernels.available(), reason="the compiled path needs numba and SciPy: pip install 'steadynet[fast]'"
)

# float32: a few units in the last place of values around 1; float64: far below any step
TOLERANCE = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-11, atol=1e-13)}


def batch(n=24, n_in=12, k=5, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in)).astype(dtype), rng.integers(0, k, size=n)


def pair(sizes, activation, dtype):
    """Two identical networks, one on each engine."""
    reference, compiled = MLP(sizes, activation, dtype=dtype, seed=3), MLP(sizes, activation, dtype=dtype, seed=3)
    compiled.engine = "numba"
    return reference, compiled


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("sizes", [(12, 7, 5), (12, 9, 6, 5), (12, 5)])
def test_compiled_loss_gradient_and_activations_agree_with_numpy(sizes, activation, dtype):
    reference, compiled = pair(sizes, activation, dtype)
    X, y = batch(dtype=dtype)
    loss_ref, Z_ref = reference.loss_and_grad(X, y)
    loss, Z = compiled.loss_and_grad(X, y)
    tol = TOLERANCE[dtype]
    assert loss == pytest.approx(loss_ref, rel=tol["rtol"])
    assert Z.dtype == Z_ref.dtype and compiled.grad.dtype == np.dtype(dtype)
    np.testing.assert_allclose(Z, Z_ref, **tol)
    np.testing.assert_allclose(compiled.grad, reference.grad, **tol)
    assert np.abs(reference.grad).max() > 0  # a gradient to compare
    # the hidden activations the health monitor reads are those of this batch
    for mine, theirs in zip(compiled.layers, reference.layers):
        if getattr(theirs, "A", None) is not None:
            np.testing.assert_allclose(mine.A, theirs.A, **tol)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_compiled_updates_agree_with_numpy_over_many_steps(name, weight_decay, dtype):
    """70 steps: past the subnormal flush at step 64 and far enough for Adam's bias correction
    to change; the gradient (with its L2 term) is compared too."""
    rng = np.random.default_rng(1)
    n, n_weights = 300, 250
    theta_ref = rng.normal(size=n).astype(dtype)
    theta = theta_ref.copy()
    reference = make_optimizer(name, n_weights, weight_decay, 0.9)
    compiled = make_optimizer(name, n_weights, weight_decay, 0.9, engine="numba")
    for step in range(70):
        g_ref = rng.normal(size=n).astype(dtype)
        g_ref[:10] = 0  # entries whose gradient stops, as a border pixel's
        g = g_ref.copy()
        lr = 0.05 / (1 + step)
        reference.step(theta_ref, g_ref, lr)
        compiled.step(theta, g, lr)
        np.testing.assert_allclose(g, g_ref, **TOLERANCE[dtype])
    np.testing.assert_allclose(theta, theta_ref, **TOLERANCE[dtype])
    for state in reference.state_names:
        np.testing.assert_allclose(getattr(compiled, state), getattr(reference, state), **TOLERANCE[dtype])
    assert not np.allclose(theta, rng.normal(size=n))  # it moved (a check that could fail)


@needs_numba
def test_a_label_out_of_range_is_refused_as_on_the_numpy_path():
    _, compiled = pair((12, 7, 5), "relu", "float32")
    X, y = batch()
    y[3] = 5
    with pytest.raises(ConfigError, match="labels must be class indices 0 to 4"):
        compiled.loss_and_grad(X, y)


@needs_numba
def test_training_on_the_compiled_path_matches_numpy_to_rounding(tmp_path):
    """Two epochs of the real loop, each engine: the same weights to float32 rounding."""
    from steadynet import train
    from steadynet.data import Dataset

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(300, 64), dtype=np.uint8)
    y = rng.integers(0, 10, size=300)
    data = Dataset(X, y, X[:20], y[:20], (8, 8), "noise")
    runs = {
        engine: train(
            data=data, epochs=2, val_size=0, batch_size=32, hidden=(16,), engine=engine, out=str(tmp_path / engine)
        )
        for engine in ("numpy", "numba")
    }
    for engine in runs:
        recorded = json.loads((tmp_path / engine / "config.json").read_text())["execution"]
        assert recorded["engine"] == engine and recorded["threads"]["used"] == 1
    np.testing.assert_allclose(runs["numba"].model.theta, runs["numpy"].model.theta, rtol=1e-4, atol=1e-5)
    assert not np.array_equal(runs["numpy"].model.theta, MLP((64, 16, 10), seed=0).theta)


@needs_numba
def test_auto_picks_numba_where_it_covers_the_settings_and_numpy_otherwise():
    assert resolve_engine(TrainConfig()) == "numba"
    assert resolve_engine(TrainConfig(dropout=0.2)) == "numpy"
    assert resolve_engine(TrainConfig(engine="numpy")) == "numpy"
    with pytest.raises(ConfigError, match="^engine numba does not cover dropout; use engine auto"):
        resolve_engine(TrainConfig(engine="numba", dropout=0.2))


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_batch_gathering_equals_the_numpy_conversion_bit_for_bit(dtype):
    from steadynet.data.dataset import as_float_batch
    from steadynet.kernels import float_batch

    X = np.random.default_rng(0).integers(0, 256, size=(50, 20), dtype=np.uint8)
    rows = np.random.default_rng(1).permutation(50)[:17]
    for picked in (rows, slice(40, 60)):
        expected = as_float_batch(X[picked], np.dtype(dtype))
        got = float_batch(X, picked, np.dtype(dtype))
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_without_numba_auto_falls_back_to_numpy_and_numba_says_how_to_install(monkeypatch):
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert resolve_engine(TrainConfig()) == "numpy"
    with pytest.raises(ConfigError, match=r'^engine numba needs numba.*pip install "steadynet\[fast\]"'):
        TrainConfig(engine="numba").validate()


@needs_numba
def test_the_float32_rational_tanh_stays_within_its_stated_error_and_keeps_nan():
    from steadynet._numba import tanh_rational

    x = np.concatenate([np.linspace(-12, 12, 20001), [0.0, 1e-30, -1e-30, 9.0, 1e4, -1e4]]).astype(np.float32)
    got = np.array([tanh_rational(v) for v in x], dtype=np.float32)
    assert np.abs(got.astype(np.float64) - np.tanh(x.astype(np.float64))).max() < 3.5e-7
    assert np.abs(got).max() <= 1 and got[x == 1e4][0] == 1 and got[x == -1e4][0] == -1
    assert np.isnan(tanh_rational(np.float32("nan")))
