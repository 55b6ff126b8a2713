"""Pure math: stability, exact limits, properties, and float64 central-difference gradients."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradcheck_util import central_difference
from steadynet import functional as F

DTYPES = [np.float32, np.float64]

# (n, k) float64 logits, moderate to huge magnitudes
logits_BK = arrays(
    np.float64, st.tuples(st.integers(1, 6), st.integers(2, 12)), elements=st.floats(-1e4, 1e4, allow_nan=False)
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_no_warning_and_exact_limits(dtype):
    Z = np.array([-1e4, -1000, -100, -30, 0, 30, 100, 1000, 1e4], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow warning fails the test
        A = F.sigmoid(Z)
    assert A.dtype == dtype
    assert A[0] == 0.0 and A[-1] == 1.0 and A[4] == 0.5
    assert np.all(np.diff(A) >= 0)  # monotone
    assert np.all((A >= 0) & (A <= 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_matches_definition(dtype):
    Z = np.linspace(-20, 20, 101).astype(dtype)
    np.testing.assert_allclose(
        F.sigmoid(Z), 1 / (1 + np.exp(-Z.astype(np.float64))), rtol=0, atol=2e-7 if dtype == np.float32 else 1e-15
    )


@given(logits_BK)
def test_softmax_rows_sum_to_one_and_shift_invariant(Z):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = F.softmax(Z)
        P_shifted = F.softmax(Z + 123.0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(P >= 0)
    np.testing.assert_allclose(P, P_shifted, atol=1e-12)


@given(logits_BK, st.data())
def test_loss_is_nonnegative_and_finite(Z, data):
    y = np.array(data.draw(st.lists(st.integers(0, Z.shape[1] - 1), min_size=Z.shape[0], max_size=Z.shape[0])))
    loss, dZ = F.softmax_cross_entropy(Z, y)
    assert np.isfinite(loss) and loss >= 0
    assert np.all(np.isfinite(dZ))
    # each row of n * dZ is P - Y: sums to zero, entries in [-1, 1]
    np.testing.assert_allclose((dZ * Z.shape[0]).sum(axis=1), 0.0, atol=1e-9)
    assert np.all(np.abs(dZ * Z.shape[0]) <= 1 + 1e-12)


def test_log_softmax_matches_log_of_softmax():
    Z = np.random.default_rng(0).normal(size=(5, 7)) * 3
    np.testing.assert_allclose(F.log_softmax(Z), np.log(F.softmax(Z)), atol=1e-12)


def rel_error(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-12)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
def test_activation_derivative_from_output(name):
    f, f_grad = F.get_activation(name)
    Z = np.random.default_rng(1).normal(size=(4, 5)) * 2
    Z[np.abs(Z) < 1e-3] = 0.5  # keep ReLU's kink away from the difference
    R = np.random.default_rng(2).normal(size=Z.shape)  # a random upstream gradient
    numeric = central_difference(lambda Zc: float((f(Zc) * R).sum()), Z.copy())
    analytic = f_grad(f(Z)) * R
    assert rel_error(numeric, analytic) < 1e-6


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_gradient(smoothing):
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(6, 4)) * 2
    y = rng.integers(0, 4, size=6)
    _, dZ = F.softmax_cross_entropy(Z, y, label_smoothing=smoothing)
    numeric = central_difference(lambda Zc: F.softmax_cross_entropy(Zc, y, smoothing)[0], Z.copy())
    assert rel_error(numeric, dZ) < 1e-6


def test_sample_weight_is_a_weighted_mean():
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(5, 3))
    y = rng.integers(0, 3, size=5)
    w = np.array([1.0, 2.0, 0.0, 1.0, 3.0])
    loss_w, dZ_w = F.softmax_cross_entropy(Z, y, sample_weight=w)
    # weight 2 equals repeating the sample twice; weight 0 equals dropping it
    rep = np.repeat(np.arange(5), w.astype(int))
    loss_r, _ = F.softmax_cross_entropy(Z[rep], y[rep])
    assert loss_w == pytest.approx(loss_r, rel=1e-12)
    numeric = central_difference(lambda Zc: F.softmax_cross_entropy(Zc, y, sample_weight=w)[0], Z.copy())
    assert rel_error(numeric, dZ_w) < 1e-6


def test_unknown_activation_lists_options():
    with pytest.raises(ValueError, match=r"activation must be one of \['identity', 'leaky_relu'"):
        F.get_activation("swish")


@given(logits_BK)
def test_row_max_is_the_max_of_each_row(Z):
    np.testing.assert_array_equal(F.row_max(Z), Z.max(axis=1, keepdims=True))
    np.testing.assert_array_equal(F.row_max(Z.T.copy().T), Z.max(axis=1, keepdims=True))  # any layout


@pytest.mark.parametrize("bad", [5, -1])
def test_out_of_range_labels_are_refused(bad):
    """Labels index a flat array of the logits: one out of range would silently read another
    row's logit, so it is refused with the range it should have."""
    Z = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"class indices 0 to 4 .* got"):
        F.softmax_cross_entropy(Z, np.array([0, 1, bad, 2]))
