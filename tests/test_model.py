"""The MLP: gradients of whole networks, dtypes, shapes, state, and a hand-worked example."""

import numpy as np
import pytest

from gradcheck_util import central_difference, numeric_grad, relative_error
from steadynet import MLP, ConfigError
from steadynet.functional import sigmoid, softmax_cross_entropy


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_two_hidden_layer_gradient(activation):
    """Every parameter of a 6-5-4-3 network against float64 central differences."""
    rng = np.random.default_rng(0)
    model = MLP((6, 5, 4, 3), activation, dtype="float64", seed=1)
    model.theta[model.n_weights :] = rng.normal(0, 0.1, model.n_params - model.n_weights)  # non-zero biases
    X = rng.uniform(0, 1, size=(7, 6))
    y = rng.integers(0, 3, size=7)
    model.loss_and_grad(X, y)
    analytic = model.grad.copy()
    assert relative_error(numeric_grad(model, X, y), analytic) < 1e-6


def test_gradient_with_dropout_uses_the_same_mask():
    """With a fixed dropout mask (same generator state), backprop matches differences."""
    rng = np.random.default_rng(0)
    model = MLP((5, 6, 3), "tanh", dropout=0.3, input_dropout=0.2, dtype="float64", seed=2)
    X, y = rng.uniform(0, 1, size=(4, 5)), rng.integers(0, 3, size=4)
    drop_rng = model.layers[0].rng
    state = drop_rng.bit_generator.state

    def loss_with_fixed_mask(m, X, y):
        drop_rng.bit_generator.state = state
        return m.loss_and_grad(X, y)

    loss_with_fixed_mask(model, X, y)
    analytic = model.grad.copy()
    G = np.zeros_like(model.theta)
    for i in range(model.n_params):
        old = model.theta[i]
        model.theta[i] = old + 1e-6
        up = loss_with_fixed_mask(model, X, y)[0]
        model.theta[i] = old - 1e-6
        down = loss_with_fixed_mask(model, X, y)[0]
        model.theta[i] = old
        G[i] = (up - down) / 2e-6
    assert relative_error(G, analytic) < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_everywhere(dtype):
    model = MLP((8, 4, 3), dtype=np.dtype(dtype).name)
    X = np.random.default_rng(0).uniform(size=(5, 8)).astype(dtype)
    loss, Z = model.loss_and_grad(X, np.array([0, 1, 2, 0, 1]))
    assert Z.dtype == dtype and model.theta.dtype == dtype and model.grad.dtype == dtype
    assert all(p.dtype == dtype for p in model.params.values())
    assert model.predict_proba(X).dtype == dtype


def test_params_are_views_of_the_flat_buffer():
    model = MLP((784, 30, 10))
    assert {k: v.shape for k, v in model.params.items()} == {"W1": (784, 30), "W2": (30, 10), "b1": (30,), "b2": (10,)}
    assert model.n_params == 784 * 30 + 30 * 10 + 30 + 10
    model.params["W2"][0, 0] = 7.0
    assert model.theta[784 * 30] == 7.0  # W2 follows W1 in the flat buffer
    assert model.n_weights == 784 * 30 + 30 * 10  # weights first, then biases
    assert np.all(model.theta[model.n_weights :] == 0)  # biases start at zero


def test_hand_worked_2_2_2_network():
    """A 2-2-2 sigmoid network with every intermediate value written out."""
    model = MLP((2, 2, 2), "sigmoid", dtype="float64")
    model.load_state_dict(
        {
            "W1": np.array([[0.1, 0.2], [0.3, 0.4]]),
            "b1": np.array([0.0, 0.1]),
            "W2": np.array([[0.5, -0.5], [1.0, 0.0]]),
            "b2": np.array([0.0, 0.2]),
        }
    )
    X, y = np.array([[1.0, 2.0]]), np.array([1])
    # Z1 = X W1 + b1 = [1*0.1 + 2*0.3, 1*0.2 + 2*0.4 + 0.1] = [0.7, 1.1]
    A1 = sigmoid(np.array([0.7, 1.1]))  # [0.66819, 0.75026]
    # Z2 = A1 W2 + b2 = [0.5 a + 1.0 b, -0.5 a + 0.2]
    Z2 = np.array([0.5 * A1[0] + A1[1], -0.5 * A1[0] + 0.2])
    P = np.exp(Z2) / np.exp(Z2).sum()
    loss, Z = model.loss_and_grad(X, y)
    np.testing.assert_allclose(Z[0], Z2, rtol=1e-12)
    assert loss == pytest.approx(-np.log(P[1]), rel=1e-12)
    dZ2 = P - np.array([0.0, 1.0])  # softmax + cross-entropy: P - Y
    np.testing.assert_allclose(model.grads["W2"], np.outer(A1, dZ2), rtol=1e-12)
    dZ1 = (model.params["W2"] @ dZ2) * A1 * (1 - A1)  # sigmoid' from the activation A1
    np.testing.assert_allclose(model.grads["W1"], np.outer(X[0], dZ1), rtol=1e-12)
    np.testing.assert_allclose(model.grads["b1"], dZ1, rtol=1e-12)


def test_predict_and_uint8_inputs_agree():
    model = MLP((16, 8, 3), seed=3)
    X8 = np.random.default_rng(0).integers(0, 256, size=(50, 16), dtype=np.uint8)
    np.testing.assert_allclose(model.predict_proba(X8), model.predict_proba(X8 / np.float32(255)), rtol=1e-6)
    assert model.predict(X8).shape == (50,)
    np.testing.assert_allclose(model.predict_proba(X8).sum(axis=1), 1.0, rtol=1e-5)


def test_predict_proba_chunks_match_one_batch():
    model = MLP((16, 8, 3), seed=3)
    X = np.random.default_rng(1).uniform(size=(100, 16)).astype(np.float32)
    # the same numbers to float32 rounding: BLAS may block a 7-row product differently from a
    # 100-row one, so bit equality depends on the library build
    np.testing.assert_allclose(model.predict_proba(X, batch_size=7), model.predict_proba(X), rtol=1e-6, atol=1e-7)


def test_same_seed_same_weights_across_dtypes():
    a, b = MLP((10, 5, 3), seed=4), MLP((10, 5, 3), seed=4, dtype="float64")
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-7)
    assert not np.array_equal(a.theta, MLP((10, 5, 3), seed=5).theta)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layer_sizes": (5,)}, "at least inputs and classes"),
        ({"layer_sizes": (5, 0, 3)}, "must be >= 1"),
        ({"activation": "swish"}, "activation must be one of"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"dtype": "float16"}, "dtype must be one of"),
    ],
)
def test_bad_architecture_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MLP(**{"layer_sizes": (4, 3, 2), **kwargs})


def test_wrong_input_width_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"input must have shape \(n_samples, 784\), got \(2, 100\)"):
        MLP().predict(np.zeros((2, 100)))


@pytest.mark.parametrize("of", ["loss", "logit"])
def test_input_gradient_matches_central_differences(of):
    # the dropout layers are in the stack but off: the gradient is that of evaluation mode
    model = MLP((12, 7, 5, 4), activation="tanh", dropout=0.3, input_dropout=0.2, dtype="float64", seed=2)
    rng = np.random.default_rng(0)
    X, y = rng.uniform(size=(6, 12)), rng.integers(0, 4, 6)

    def objective(X):
        Z = model.forward(X)  # (6, 4)
        if of == "loss":
            return softmax_cross_entropy(Z, y)[0]  # the batch's mean cross-entropy
        return Z[np.arange(6), y].sum()  # rows are independent: row i's gradient is d z_{i, y_i} / d x_i

    dX = model.input_gradient(X, y, of=of)
    assert dX.shape == X.shape and dX.dtype == np.float64
    assert relative_error(dX, central_difference(objective, X.copy())) < 1e-7


def test_input_gradient_of_one_class_for_every_row_and_refusals():
    model = MLP((12, 7, 4), dtype="float64", seed=1)
    X = np.random.default_rng(0).uniform(size=(3, 12))
    np.testing.assert_array_equal(
        model.input_gradient(X, 2, of="logit"), model.input_gradient(X, np.full(3, 2), of="logit")
    )
    with pytest.raises(ConfigError, match='of must be "loss" or "logit", got \'probability\''):
        model.input_gradient(X, 2, of="probability")
    with pytest.raises(ConfigError, match="classes must be 0 to 3, got 0 to 4"):
        model.input_gradient(X, np.array([0, 4, 1]), of="logit")


def test_parameters_are_counted_from_the_layer_sizes_alone():
    from steadynet.model import count_params, param_shapes

    net = MLP((7, 5, 3, 2), "relu")
    assert count_params((7, 5, 3, 2)) == net.n_params == 7 * 5 + 5 + 5 * 3 + 3 + 3 * 2 + 2
    assert param_shapes((7, 5, 3, 2)) == net.param_shapes() == {k: v.shape for k, v in net.params.items()}
    assert list(param_shapes((7, 5, 3, 2))) == ["W1", "W2", "W3", "b1", "b2", "b3"]  # the flat order
    assert count_params((10**6,) * 4) == 3 * (10**12 + 10**6)  # no network is built


@pytest.mark.parametrize("scheme", ["glorot_uniform", "he_normal", "uniform_01"])
def test_init_rms_is_the_scale_the_scheme_draws(scheme):
    from steadynet.init import init_rms, init_weights

    W = init_weights(np.random.default_rng(0), 400, 300, scheme)
    assert np.sqrt(np.mean(W**2)) == pytest.approx(init_rms(scheme, 400, 300), rel=0.01)
