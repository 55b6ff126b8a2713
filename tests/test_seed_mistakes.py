"""One test per mistake in the seed network (shared/seed README): each fails if it comes back.

The seed: a 784-30-10 sigmoid/softmax network whose weights reached NaN by iteration 3.
"""

import warnings

import numpy as np
import pytest

from gradcheck_util import numeric_grad, relative_error
from steadynet import MLP
from steadynet import functional as F
from steadynet.optim import SGD


def batch(n=32, d=20, k=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, size=(n, d)), rng.integers(0, k, size=n)


def test_1_labels_are_one_hot_in_the_gradient():
    """Integer labels fed to `y - A2` gave output errors up to 9; ours are P - Y, within [-1, 1]."""
    rng = np.random.default_rng(1)
    Z, y = rng.normal(size=(50, 10)), rng.integers(0, 10, size=50)
    _, dZ = F.softmax_cross_entropy(Z, y)
    P_minus_Y = F.softmax(Z) - F.one_hot(y, 10, dtype=np.float64)
    np.testing.assert_allclose(dZ * 50, P_minus_Y, atol=1e-12)
    assert np.abs(dZ * 50).max() <= 1.0


def test_2_softmax_is_per_sample_and_overflow_free():
    """Normalising over the batch, without the max subtracted, overflowed exp."""
    Z = np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = F.softmax(Z)
    np.testing.assert_allclose(P.sum(axis=1), [1.0, 1.0])  # each sample sums to 1
    np.testing.assert_allclose(P[1], [1 / 3] * 3)  # unaffected by the other row
    assert P[0, 0] == 1.0


def test_3_cross_entropy_picks_each_samples_true_class():
    """`v[y]` picked whole rows; the loss is the mean of -log P[i, y_i]."""
    rng = np.random.default_rng(2)
    Z, y = rng.normal(size=(6, 4)), np.array([0, 3, 1, 1, 2, 0])
    loss, _ = F.softmax_cross_entropy(Z, y)
    P = F.softmax(Z)
    assert loss == pytest.approx(-np.mean(np.log(P[np.arange(6), y])), rel=1e-12)


def test_4_no_extra_softmax_derivative_at_the_logits():
    """The gradient at the logits is P - Y; multiplying by a 'softmax derivative' breaks it."""
    rng = np.random.default_rng(3)
    Z, y = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    _, dZ = F.softmax_cross_entropy(Z, y)
    numeric = np.zeros_like(Z)
    for i in np.ndindex(Z.shape):
        E = np.zeros_like(Z)
        E[i] = 1e-6
        numeric[i] = (F.softmax_cross_entropy(Z + E, y)[0] - F.softmax_cross_entropy(Z - E, y)[0]) / 2e-6
    assert relative_error(numeric, dZ) < 1e-7
    P = F.softmax(Z)
    assert relative_error(numeric, dZ * P * (1 - P)) > 0.1  # the seed's version is far off


def test_5_sigmoid_derivative_is_taken_of_the_activation():
    """z * (1 - z) applied to Z (~50 at the seed's init) gave ~ -2500 instead of [0, 0.25]."""
    Z = np.array([-50.0, -2.0, 0.0, 2.0, 50.0])
    d = F.sigmoid_grad(F.sigmoid(Z))
    assert np.all((d >= 0) & (d <= 0.25))
    numeric = (F.sigmoid(Z + 1e-6) - F.sigmoid(Z - 1e-6)) / 2e-6
    np.testing.assert_allclose(d, numeric, atol=1e-9)
    # and the network's backprop (through large pre-activations) agrees with differences
    model = MLP((20, 30, 10), "sigmoid", dtype="float64", seed=0)
    model.params["W1"][...] *= 8  # push pre-activations out to |Z| ~ 10
    X, y = batch()
    model.loss_and_grad(X, y)
    assert relative_error(numeric_grad(model, X, y), model.grad) < 1e-6


def test_6_the_step_goes_downhill():
    """`y - A2` is the negative gradient; subtracting it climbs. One small step must lower the loss."""
    model = MLP((20, 30, 10), "sigmoid", dtype="float64", seed=0)
    X, y = batch()
    before = model.loss_and_grad(X, y)[0]
    SGD(model.n_weights).step(model.theta, model.grad, 0.1)
    assert model.loss_and_grad(X, y)[0] < before


def test_7_gradients_are_averaged_not_summed():
    """Summing over 60,000 samples made the step 60,000x larger: the gradient of a batch repeated
    k times must equal the gradient of the batch once."""
    model = MLP((20, 30, 10), "sigmoid", dtype="float64", seed=0)
    X, y = batch()
    model.loss_and_grad(X, y)
    once = model.grad.copy()
    model.loss_and_grad(np.tile(X, (5, 1)), np.tile(y, 5))
    np.testing.assert_allclose(model.grad, once, rtol=1e-12, atol=1e-15)


def test_8_initialisation_is_scaled_and_centred():
    """np.random.rand weights (all positive, up to 1) put the 784-input sigmoids at Z ~ +50."""
    model = MLP((784, 30, 10), "sigmoid", seed=0)
    W1 = model.params["W1"]
    assert abs(float(W1.mean())) < 0.005 and float(np.abs(W1).max()) <= np.sqrt(6 / (784 + 30))
    X = np.random.default_rng(0).uniform(0, 1, size=(100, 784)).astype(np.float32) * 0.3
    Z1 = X @ W1
    assert float(np.abs(Z1).mean()) < 3  # the seed's init: about 0.3 * 784 * 0.5 ~ 60
    loss = model.evaluate(X, np.zeros(100, dtype=int))[0]
    assert abs(loss - np.log(10)) < 0.5  # starts near chance, not saturated


def test_9_loss_is_a_mean_over_samples():
    """The seed divided the summed loss by the number of classes."""
    rng = np.random.default_rng(4)
    Z, y = rng.normal(size=(8, 10)), rng.integers(0, 10, size=8)
    loss, _ = F.softmax_cross_entropy(Z, y)
    loss_rep, _ = F.softmax_cross_entropy(np.tile(Z, (3, 1)), np.tile(y, 3))
    assert loss == pytest.approx(loss_rep, rel=1e-12)
    per_sample = -np.log(F.softmax(Z)[np.arange(8), y])
    assert loss == pytest.approx(per_sample.sum() / 8, rel=1e-12)
