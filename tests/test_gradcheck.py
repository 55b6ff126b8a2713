"""check_gradients on hand-written NumPy backprops, right and deliberately broken, and on
steadynet's own models."""

import numpy as np
import pytest

from steadynet import MLP
from steadynet.diagnostics import check_gradients, check_model_gradients
from steadynet.errors import ConfigError

MISTAKES = ("sign", "batch_sum", "preactivation", "transposed", "no_bias", "zero_bias", "softmax_axis")


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def softmax(Z, axis=1):
    E = np.exp(Z - Z.max(axis=axis, keepdims=True))
    return E / E.sum(axis=axis, keepdims=True)


def make_net(sizes=(6, 5, 3), n=8, dtype=np.float64, seed=0):
    """A small sigmoid-softmax net as a user would write it: params dict, data, labels."""
    rng = np.random.default_rng(seed)
    P = {
        "W1": rng.normal(0, 0.5, sizes[:2]),
        "b1": rng.normal(0, 0.1, sizes[1]),
        "W2": rng.normal(0, 0.5, sizes[1:]),
        "b2": rng.normal(0, 0.1, sizes[2]),
    }
    X = rng.uniform(0, 1, (n, sizes[0]))
    y = rng.integers(0, sizes[2], n)
    return {k: v.astype(dtype) for k, v in P.items()}, X.astype(dtype), y


def loss(P, X, y):
    """Mean cross-entropy of the correct forward pass."""
    A1 = sigmoid(X @ P["W1"] + P["b1"])
    Pr = softmax(A1 @ P["W2"] + P["b2"])  # (n, k)
    return -np.log(Pr[np.arange(len(y)), y]).mean()


def backprop(P, X, y, mistake=None):
    """The gradients of :func:`loss`, with one deliberate ``mistake`` (None: correct)."""
    n = X.shape[0]
    Z1 = X @ P["W1"] + P["b1"]
    A1 = sigmoid(Z1)
    Z2 = A1 @ P["W2"] + P["b2"]
    Pr = softmax(Z2, axis=0 if mistake == "softmax_axis" else 1)
    Y = np.eye(Z2.shape[1], dtype=X.dtype)[y]
    dZ2 = Y - Pr if mistake == "sign" else Pr - Y
    if mistake != "batch_sum":
        dZ2 = dZ2 / n
    G = {"W2": A1.T @ dZ2, "b2": dZ2.sum(axis=0)}
    dA1 = dZ2 @ P["W2"].T
    dZ1 = dA1 * (Z1 * (1 - Z1) if mistake == "preactivation" else A1 * (1 - A1))
    G["W1"] = dZ1.T @ X if mistake == "transposed" else X.T @ dZ1
    G["b1"] = np.zeros_like(P["b1"]) if mistake == "zero_bias" else dZ1.sum(axis=0)
    if mistake == "no_bias":
        del G["b1"]
    return G


def run_check(mistake, dtype=np.float64, sizes=(6, 5, 3), n=8):
    P, X, y = make_net(sizes, n, dtype)
    return check_gradients(lambda Q: loss(Q, X, y), backprop(P, X, y, mistake), P, batch_size=n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_correct_backprop_passes(dtype):
    result = run_check(None, dtype)
    assert result.passed and result.failed == [] and result.where == ""
    assert all(t.status == "pass" for t in result.tensors.values())
    assert "PASSED" in result.report()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flipped_sign_is_named_in_every_tensor(dtype):
    result = run_check("sign", dtype)
    assert result.kinds() == {"W1": "sign", "b1": "sign", "W2": "sign", "b2": "sign"}
    assert all(t.cosine < -0.99 for t in result.tensors.values())
    assert "P - Y" in result.where


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_summed_over_batch_is_named_with_the_batch_size(dtype):
    result = run_check("batch_sum", dtype, n=8)
    assert result.kinds() == {"W1": "batch_sum", "b1": "batch_sum", "W2": "batch_sum", "b2": "batch_sum"}
    assert result.tensors["W1"].factor == pytest.approx(8, rel=1e-3)
    assert "batch size 8" in result.tensors["W2"].detail


def test_derivative_of_preactivation_fails_only_the_layer_below():
    result = run_check("preactivation")
    assert result.failed == ["W1", "b1"]
    assert result.kinds() == {"W1": "wrong", "b1": "wrong"}
    assert "between layer 2 and layer 1" in result.where and "pre-activation Z" in result.where


def test_transposed_weight_gradient_non_square():
    result = run_check("transposed")
    assert result.kinds() == {"W1": "transposed"}
    assert result.tensors["W2"].status == "pass"


def test_transposed_weight_gradient_square():
    P, X, y = make_net((6, 4, 4), 8)
    G = backprop(P, X, y)
    G["W2"] = G["W2"].T.copy()
    result = check_gradients(lambda Q: loss(Q, X, y), G, P)
    assert result.kinds() == {"W2": "transposed"}


@pytest.mark.parametrize("mistake", ["no_bias", "zero_bias"])
def test_missing_bias_gradient(mistake):
    result = run_check(mistake)
    assert result.kinds() == {"b1": "missing"}
    assert "b1 fails" in result.where and "own formula" in result.where


def test_softmax_over_batch_axis_fails_everything_at_the_output():
    result = run_check("softmax_axis")
    assert sorted(result.failed) == ["W1", "W2", "b1", "b2"]
    assert set(result.kinds().values()) <= {"wrong", "partial"}
    assert "axis 1" in result.where


def test_extra_term_in_some_columns_is_partial():
    P, X, y = make_net((6, 5, 3), 8)
    G = backprop(P, X, y)
    G["W1"][:, [1, 3]] += 0.5  # an extra term in the gradients of hidden units 1 and 3
    result = check_gradients(lambda Q: loss(Q, X, y), G, P)
    t = result.tensors["W1"]
    assert t.kind == "partial" and t.cols == [1, 3]
    assert "columns 1, 3 disagree" in t.detail


def test_constant_factor_not_the_batch_size_is_scale():
    P, X, y = make_net()
    G = {k: 3.0 * g for k, g in backprop(P, X, y).items()}
    result = check_gradients(lambda Q: loss(Q, X, y), G, P, batch_size=8)
    assert set(result.kinds().values()) == {"scale"}
    assert result.tensors["b2"].factor == pytest.approx(3.0, rel=1e-4)


def test_grads_as_function_and_sampling_of_large_tensors():
    P, X, y = make_net((40, 30, 3), 4)
    result = check_gradients(lambda Q: loss(Q, X, y), lambda Q: backprop(Q, X, y), P, max_per_tensor=50)
    assert result.passed
    assert result.tensors["W1"].n_checked == 50 and result.tensors["W1"].n_elements == 1200
    assert result.tensors["b1"].n_checked == 30


def test_params_are_left_unchanged():
    P, X, y = make_net()
    before = {k: v.copy() for k, v in P.items()}
    check_gradients(lambda Q: loss(Q, X, y), backprop(P, X, y, "sign"), P)
    assert all(np.array_equal(P[k], before[k]) for k in P)


def test_float32_loss_is_noted():
    P, X, y = make_net()
    result = check_gradients(lambda Q: np.float32(loss(Q, X, y)), backprop(P, X, y), P)
    assert any("float32" in note for note in result.notes)


def test_to_dict_is_structured():
    d = run_check("sign").to_dict()
    assert d["passed"] is False and d["tensors"]["W1"]["kind"] == "sign"
    assert set(d) == {"passed", "failed", "where", "notes", "tensors"}


def test_bad_params_raise_config_error():
    with pytest.raises(ConfigError, match="non-empty dict"):
        check_gradients(lambda Q: 0.0, {}, {})
    with pytest.raises(ConfigError, match=r"params\['W'\] must be a float array"):
        check_gradients(lambda Q: 0.0, {}, {"W": np.arange(3)})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_steadynet_models_pass(dtype, activation, blobs):
    model = MLP((16, 7, 5, 3), activation, dtype=dtype, dropout=0.2, seed=1)
    result = check_model_gradients(model, blobs.x_train[:10], blobs.y_train[:10], max_per_tensor=40)
    assert result.passed, result.report()
    assert set(result.tensors) == {"W1", "W2", "W3", "b1", "b2", "b3"}


def test_saturated_layer_is_noted(blobs):
    # the seed's uniform [0, 1) weights on 0-255 inputs: every hidden sigmoid is stuck at 1
    model = MLP((16, 7, 3), "sigmoid", init="uniform_01", dtype="float64")
    result = check_model_gradients(model, blobs.x_train[:10] * 255, blobs.y_train[:10])
    assert any(note.startswith("W1, b1: the loss does not change") for note in result.notes)


def test_seed_example_names_each_mistake(capsys):
    import pathlib
    import runpy

    path = pathlib.Path(__file__).parent.parent / "examples" / "seed_broken_backprop.py"
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    sections = [" ".join(part.split()) for part in out.split("\n== ")]  # the report wraps its lines
    assert "PASSED" in sections[0]
    assert "softmax normalises over axis 1" in sections[1]
    assert "pre-activation Z" in sections[2] and "W2 PASS" in sections[2]
    assert sections[3].count("wrong sign: the gradient points uphill") == 4
    assert sections[4].count("factor 32 = batch size 32") == 4
