"""steadynet.diagnose on users' own networks as they wrote them: the seed's program with its
nine mistakes in one call, each mistake and combinations of them, every layout, and the
correct programs that must raise no false alarm."""

import sys
from pathlib import Path

import numpy as np
import pytest

from steadynet.diagnostics import check_gradients, diagnose
from steadynet.errors import ConfigError

sys.path.insert(0, str(Path(__file__).parent / "programs"))
from user_nets import UserNet  # noqa: E402

LAYOUTS = [("rows", "in_out"), ("rows", "out_in"), ("columns", "out_in"), ("columns", "in_out")]


def run(net, **kw):
    return diagnose(
        net.params, net.X, net.y, forward=net.forward, backward=net.backward, loss=net.loss, lr=kw.pop("lr", 0.5), **kw
    )


def kinds(result):
    return {f.kind for f in result.mistakes}


# ------------------------------------------------------------------------ the seed


@pytest.fixture(scope="module")
def seed_data():
    rng = np.random.default_rng(0)
    # stands in for MNIST: 0/1-ish strokes on a dark background, float32 in [0, 1]
    X = (rng.uniform(0, 1, (600, 784)) * (rng.uniform(0, 1, (600, 784)) > 0.8)).astype(np.float32)
    y = rng.integers(0, 10, 600)
    return X, np.array([y]).T.astype(np.int32)  # the seed's label column (n, 1)


@pytest.fixture(scope="module")
def seed_file(seed_data, tmp_path_factory):
    """The seed's HDF5 layout (x_train, y_train, x_test, y_test), holding seed_data."""
    import h5py

    path = tmp_path_factory.mktemp("seed") / "MNISTdata.hdf5"
    X, y = seed_data
    with h5py.File(path, "w") as f:
        f["x_train"], f["y_train"], f["x_test"], f["y_test"] = X, y, X[:100], y[:100]
    return str(path)


def test_seed_program_in_one_call_names_the_nine_mistakes(seed_file, monkeypatch, capsys):
    import runpy

    # examples/diagnose_seed.py: the seed's program as posted, and the five lines of glue
    monkeypatch.setattr(sys, "argv", ["diagnose_seed.py", seed_file])
    program = runpy.run_path(str(Path(__file__).parent.parent / "examples" / "diagnose_seed.py"))
    result, params = program["result"], program["params"]
    named = {f.seed_mistake for f in result.mistakes if f.seed_mistake}
    assert named >= {1, 2, 3, 4, 5, 6, 7, 8, 9}
    assert result.verdict.startswith("Not the sigmoid: your backprop has 5 mistakes")
    # in fix order: forward before loss before backprop before initialisation before the step
    stages = [f.stage for f in result.mistakes]
    assert stages == sorted(stages, key=["data", "forward", "loss", "backprop", "init", "step"].index)
    assert stages[-1] == "step" and "multiplies the largest |W1|" in result.mistakes[-1].title
    report = capsys.readouterr().out
    assert report.strip() == result.report().strip()
    assert "seed mistake 5" in report and "Z1" in report and "fix:" in report
    np.random.seed(0)  # the program's own np.random.rand weights, untouched by the diagnosis
    assert np.array_equal(params["W1"], np.random.rand(784, 30)) and np.array_equal(
        params["W2"], np.random.rand(30, 10)
    )
    d = result.to_dict()
    assert d["ok"] is False and len(d["findings"]) >= 10 and d["layout"] == {"samples": "rows", "weights": "in_out"}


def test_seed_program_fixed_is_right(seed_data):
    x_train, y_train = seed_data
    rng = np.random.default_rng(1)
    params = {
        "W1": rng.normal(0, 0.05, (784, 30)),
        "b1": np.zeros((1, 30)),
        "W2": rng.normal(0, 0.3, (30, 10)),
        "b2": np.zeros((1, 10)),
    }
    y = y_train[:, 0]

    def forward(p, X, y):
        A1 = 1 / (1 + np.exp(-(X @ p["W1"] + p["b1"])))
        Z2 = A1 @ p["W2"] + p["b2"]
        E = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True), A1

    def backward(p, X, y):
        P, A1 = forward(p, X, y)
        dZ2 = (P - np.eye(10)[y]) / X.shape[0]
        dZ1 = dZ2 @ p["W2"].T * A1 * (1 - A1)
        return {"dW1": X.T @ dZ1, "db1": dZ1.sum(0), "dW2": A1.T @ dZ2, "db2": dZ2.sum(0)}

    result = diagnose(
        params,
        x_train,
        y,
        lr=0.5,
        forward=lambda p, X, y: forward(p, X, y)[0],
        backward=backward,
        loss=lambda p, X, y: -np.log(forward(p, X, y)[0][np.arange(len(y)), y]).mean(),
    )
    assert result.ok, result.report()
    assert result.verdict.startswith("Your network is right")
    assert any("dW1 -> W1" in n for n in result.notes)


# ------------------------------------------------------------------------ correct code, no false alarm


@pytest.mark.parametrize("samples,weights", LAYOUTS)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_correct_networks_in_every_layout_pass(samples, weights, activation):
    net = UserNet(activation=activation, samples=samples, weights=weights)
    result = run(net)
    assert result.ok, result.report()
    assert result.layout == {"samples": samples, "weights": weights}
    assert activation in result.network


def test_float32_code_is_no_false_alarm():
    net = UserNet(dtype=np.float32)
    result = run(net)
    assert result.ok, result.report()
    assert any("float32" in n for n in result.notes)


def test_float32_loss_returning_a_python_float_is_no_false_alarm():
    net = UserNet()
    result = check_gradients(
        lambda p: float(net.loss({k: v.astype(np.float32) for k, v in p.items()}, net.X, net.y)),
        net.backward(net.params, net.X, net.y),
        net.params,
        batch_size=16,
    )
    assert result.passed, result.report()
    assert any("float32" in n for n in result.notes)


def test_dropout_mask_from_np_random_is_held_fixed():
    net = UserNet(dropout=0.3)
    np.random.seed(3)
    result = run(net)
    assert result.ok, result.report()


def test_random_loss_from_another_generator_is_named_not_failed():
    net = UserNet()
    rng = np.random.default_rng(0)
    noisy = lambda p, X, y: net.loss(p, X, y) + 1e-3 * rng.standard_normal()  # noqa: E731
    result = check_gradients(lambda p: noisy(p, net.X, net.y), net.backward(net.params, net.X, net.y), net.params)
    assert any("the loss is random" in n for n in result.notes)


def test_rand_init_correct_backprop_is_not_blamed():
    net = UserNet(sizes=(50, 20, 4), init="rand")
    net.X = net.X * 20  # saturate every hidden unit, as the seed's init does
    result = run(net)
    assert kinds(result) & {"uniform_01", "saturated", "unscaled_inputs"}
    assert not [f for f in result.mistakes if f.stage == "backprop"], result.report()
    assert all(t.status != "fail" for t in result.gradcheck.tensors.values()), result.gradcheck.report()


def test_exactly_zero_true_gradient_passes():
    net = UserNet(activation="relu")
    net.params["W2"][3, :] = 0.0  # hidden unit 3 feeds nothing: its weights' true gradient is exactly 0
    net.params["b1"][3] = -50.0  # and it is dead: 0 in W1's column 3 too
    G = net.backward(net.params, net.X, net.y)
    G["W1"][:, 3] = 1e-19  # rounding noise where the true value is 0
    result = check_gradients(lambda p: net.loss(p, net.X, net.y), G, net.params)
    assert result.passed, result.report()


def test_relu_kink_inside_the_difference_step_warns_not_fails():
    net = UserNet(activation="relu", sizes=(6, 5, 3))
    # put hidden unit 0 of sample 0 exactly at its kink
    Z = net.X @ net.params["W1"] + net.params["b1"]
    net.params["b1"][0] -= Z[0, 0]
    result = check_gradients(lambda p: net.loss(p, net.X, net.y), lambda p: net.backward(p, net.X, net.y), net.params)
    assert result.passed, result.report()


def test_one_element_tensor_claims_no_kind():
    net = UserNet(sizes=(3, 1, 2))
    G = net.backward(net.params, net.X, net.y)
    G["b1"] = G["b1"] * 3
    result = check_gradients(lambda p: net.loss(p, net.X, net.y), G, net.params)
    t = result.tensors["b1"]
    assert t.status == "fail" and t.kind == "wrong" and "one-element" in t.detail


# ------------------------------------------------------------------------ mistakes, alone and together

SINGLE = {
    "integer_labels": "integer_labels",
    "sign": "sign",
    "batch_sum": "batch_sum",
    "extra_softmax_derivative": "extra_output_derivative",
    "derivative_of_Z1": "derivative_of_Z",
    "missing_derivative1": "missing_derivative",
    "loss_classes": "loss_classes",
    "softmax_axis": "softmax_batch_axis",
}


@pytest.mark.parametrize("samples,weights", LAYOUTS)
@pytest.mark.parametrize("mistake", sorted(SINGLE))
def test_each_mistake_is_named_in_every_layout(mistake, samples, weights):
    net = UserNet(mistakes={mistake}, samples=samples, weights=weights)
    result = run(net, lr=0.01)
    assert SINGLE[mistake] in kinds(result), result.report()
    extra = kinds(result) - {SINGLE[mistake], "step_too_large"}
    assert not extra, result.report()


@pytest.mark.parametrize(
    "combo",
    [
        {"sign", "batch_sum", "derivative_of_Z1"},
        {"integer_labels", "extra_softmax_derivative"},
        {"sign", "missing_derivative1", "loss_classes"},
        {"softmax_axis", "sign", "batch_sum", "derivative_of_Z1"},
    ],
)
def test_combinations_are_all_named(combo):
    net = UserNet(mistakes=combo)
    result = run(net, lr=0.01)
    assert {SINGLE[m] for m in combo} <= kinds(result), result.report()


def test_l2_penalty_in_loss_and_gradient_is_right_and_its_absence_is_named():
    net = UserNet(l2=0.05)
    result = run(net)
    assert result.ok, result.report()
    assert "l2_penalty" in {f.kind for f in result.findings}
    missing = run(UserNet(l2=0.05, mistakes={"missing_weight_decay"}))
    assert "missing_weight_decay" in kinds(missing), missing.report()


def test_weight_decay_in_the_gradient_without_a_loss_is_no_false_alarm():
    net = UserNet(l2=0.05)
    result = diagnose(net.params, net.X, net.y, forward=net.forward, backward=net.backward)
    assert result.ok, result.report()
    assert result.gradcheck.passed, result.gradcheck.report()


def test_another_activations_derivative_is_named():
    net = UserNet(activation="relu", mistakes={"sigmoid_derivative1"})
    result = run(net)
    found = [f for f in result.mistakes if f.kind == "derivative_of_other_activation"]
    assert found and "sigmoid" in found[0].title, result.report()


def test_deeper_net_names_the_layer():
    net = UserNet(sizes=(10, 8, 6, 3), activation="tanh", mistakes={"derivative_of_Z1"})
    result = run(net)
    found = [f for f in result.mistakes if f.kind == "derivative_of_Z"]
    assert len(found) == 1 and found[0].title.startswith("layer 1") and found[0].tensors == ["W1", "b1"]


def test_missing_sigmoid_derivative_at_a_sigmoid_output():
    net = UserNet(output="sigmoid", mistakes={"missing_output_derivative"})
    result = run(net)
    assert "missing_output_derivative" in kinds(result), result.report()
    # check_gradients alone says where, instead of "scale" on one tensor and "wrong" on the rest
    G = net.backward(net.params, net.X, net.y)
    where = check_gradients(lambda p: net.loss(p, net.X, net.y), G, net.params).where
    assert "derivative is missing" in where


def test_a_formula_no_known_mistake_explains_is_still_found():
    net = UserNet()
    bw = net.backward

    def backward(p, X, y):
        G = bw(p, X, y)
        G["W1"] = G["W1"] + 0.3 * np.sin(np.arange(G["W1"].size)).reshape(G["W1"].shape)
        return G

    result = diagnose(net.params, net.X, net.y, forward=net.forward, backward=backward)
    assert "unexplained" in kinds(result) and not result.ok


# ------------------------------------------------------------------------ containers and names


def test_params_as_a_list_and_gradients_as_a_list():
    net = UserNet()
    order = ["W1", "b1", "W2", "b2"]
    plist = [net.params[k] for k in order]
    as_dict = lambda p: dict(zip(order, p))  # noqa: E731
    result = check_gradients(
        lambda p: net.loss(as_dict(p), net.X, net.y),
        lambda p: [net.backward(as_dict(p), net.X, net.y)[k] for k in order],
        plist,
    )
    assert result.passed and set(result.tensors) == set(order)


@pytest.mark.parametrize("group", [tuple, list])
def test_params_as_one_pair_per_layer_and_gradients_grouped_alike(group):
    """[(W1, b1), (W2, b2)]: read as W1, b1, W2, b2; the user's functions get their own kind
    of container back, and a mistake in them is named as for a dict."""
    net = UserNet(mistakes={"sign"})
    as_dict = lambda p: {"W1": p[0][0], "b1": p[0][1], "W2": p[1][0], "b2": p[1][1]}  # noqa: E731
    seen = []

    def backward(p, X, y):
        seen.append(type(p[0]))
        G = net.backward(as_dict(p), X, y)
        return [group((G["W1"], G["b1"])), group((G["W2"], G["b2"]))]

    params = [group((net.params["W1"], net.params["b1"])), group((net.params["W2"], net.params["b2"]))]
    result = diagnose(
        params,
        net.X,
        net.y,
        forward=lambda p, X, y: net.forward(as_dict(p), X, y),
        backward=backward,
        loss=lambda p, X, y: net.loss(as_dict(p), X, y),
        lr=0.5,
    )
    assert "sign" in kinds(result), result.report()
    assert set(seen) == {group}
    assert params[0][0] is net.params["W1"]  # the user's arrays are not replaced


def test_gradients_grouped_unlike_the_parameters_are_one_config_error():
    net = UserNet()
    as_dict = lambda p: {"W1": p[0][0], "b1": p[0][1], "W2": p[1][0], "b2": p[1][1]}  # noqa: E731
    params = [(net.params["W1"], net.params["b1"]), (net.params["W2"], net.params["b2"])]
    with pytest.raises(ConfigError, match=r"grads: groups of \[3, 1\]"):
        check_gradients(
            lambda p: net.loss(as_dict(p), net.X, net.y),
            lambda p: [(p[0][0], p[0][1], p[1][0]), (p[1][1],)],
            params,
        )


def test_flat_vector_with_a_mistake_in_a_small_part_is_found_for_every_seed():
    net = UserNet(sizes=(30, 20, 4))
    order = ["W1", "b1", "W2", "b2"]
    shapes = [net.params[k].shape for k in order]
    theta = np.concatenate([net.params[k].ravel() for k in order])

    def unflat(t):
        out, i = {}, 0
        for k, s in zip(order, shapes):
            out[k] = t[i : i + int(np.prod(s))].reshape(s)
            i += int(np.prod(s))
        return out

    g = np.concatenate([net.backward(net.params, net.X, net.y)[k].ravel() for k in order])
    g[100:106] *= 2.0  # six of 600 W1 entries wrong
    caught = 0
    for seed in range(12):
        result = check_gradients(
            lambda t: net.loss(unflat(t), net.X, net.y), g, theta, shapes=shapes, max_per_tensor=50, seed=seed
        )
        caught += result.tensors["W1"].status == "fail"
    assert caught == 12


def test_layer_objects_with_their_own_gradients():
    class Dense:
        def __init__(self, W, b):
            self.W, self.b = W, b

    net = UserNet()
    layers = [Dense(net.params["W1"], net.params["b1"]), Dense(net.params["W2"], net.params["b2"])]
    as_dict = lambda ls: {"W1": ls[0].W, "b1": ls[0].b, "W2": ls[1].W, "b2": ls[1].b}  # noqa: E731
    G = net.backward(net.params, net.X, net.y)
    layers[0].dW, layers[0].db, layers[1].dW, layers[1].db = G["W1"], G["b1"], G["W2"], -G["b2"]
    result = check_gradients(lambda ls: net.loss(as_dict(ls), net.X, net.y), None, layers)
    assert result.failed == ["b2"] and result.kinds()["b2"] == "sign"
    assert layers[0].W is net.params["W1"]  # the user's own arrays are put back


def test_where_hint_follows_the_layout():
    net = UserNet(samples="columns", weights="out_in", mistakes={"derivative_of_Z1"})
    result = run(net)
    assert "W2.T @ dZ2" in result.gradcheck.where


def test_unusable_input_is_one_config_error():
    net = UserNet()
    with pytest.raises(ConfigError, match="none of its gradients"):
        diagnose(net.params, net.X, net.y, forward=net.forward, backward=lambda p, X, y: {"foo": 1, "bar": 2})
    with pytest.raises(ConfigError, match="forward"):
        diagnose(net.params, net.X, net.y, forward=None)
    with pytest.raises(ConfigError, match="raised ValueError"):
        diagnose(net.params, net.X, net.y, forward=lambda p, X, y: p["W1"] @ p["W1"])
    with pytest.raises(ConfigError, match="mix"):
        check_gradients(lambda p: 0.0, {}, [np.zeros(3), "x"])


# ------------------------------------------------------------------------ a sweep of generated programs

SWEEP_KINDS = {
    **SINGLE,
    "sigmoid_derivative1": "derivative_of_other_activation",
    "missing_weight_decay": "missing_weight_decay",
    "transposed1": "gradient_transposed",
    "no_bias1": "gradient_missing",
}


def test_sweep_of_generated_programs_names_every_mistake_and_raises_no_false_alarm():
    import random

    rng = random.Random(1)
    missed, false_alarms, extra, n_correct, n_broken = [], [], [], 0, 0
    for trial in range(60):
        act = rng.choice(["sigmoid", "tanh", "relu"])
        samples, weights = rng.choice(LAYOUTS)
        sizes = rng.choice([(12, 7, 4), (9, 6, 5, 3), (20, 10, 6)])
        dtype = rng.choice([np.float64, np.float32])
        l2 = rng.choice([0.0, 0.0, 0.03])
        pool = [
            m
            for m in SWEEP_KINDS
            if not (m == "sigmoid_derivative1" and act == "sigmoid")
            and not (m == "derivative_of_Z1" and act == "relu")
            and not (m == "missing_weight_decay" and not l2)
            and not (m == "transposed1" and l2)
        ]
        combo = set(rng.sample(pool, rng.choice([0, 0, 1, 1, 2, 3])))
        if len(combo & {"missing_derivative1", "derivative_of_Z1", "sigmoid_derivative1"}) > 1:
            continue  # one derivative per layer
        net = UserNet(
            sizes=sizes,
            activation=act,
            samples=samples,
            weights=weights,
            mistakes=combo,
            dtype=dtype,
            l2=l2,
            seed=trial,
        )
        got = kinds(run(net, lr=0.01)) - {"step_too_large"}
        want = {SWEEP_KINDS[m] for m in combo}
        if not combo:
            n_correct += 1
            if got:
                false_alarms.append((trial, got))
        else:
            n_broken += 1
            if not want <= got:
                missed.append((trial, combo, got))
            if got - want:
                extra.append((trial, combo, got))
    assert n_correct >= 15 and n_broken >= 30
    assert not false_alarms and not missed and not extra, (false_alarms, missed, extra)


@pytest.mark.mnist
def test_the_seed_example_on_real_mnist_names_the_nine_mistakes(mnist):
    import subprocess

    path = Path(__file__).parent.parent / "examples" / "diagnose_seed.py"
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=600, check=True).stdout
    text = " ".join(out.split())
    assert text.startswith("Not the sigmoid: your backprop has 5 mistakes")
    for k in range(1, 10):
        assert f"[seed mistake {k}]" in text
    assert "multiplies the largest |W1| by 7.00e+08" in text  # the seed README: about 7.6e8 after one step


def test_forward_returning_logits_or_a_cache_and_a_per_sample_loss():
    net = UserNet()

    def forward(p, X, y):  # logits and a cache, as many people write it
        Zs, As, P = net._values(p, X)
        return Zs[-1], {"A": As}

    def per_sample_loss(p, X, y):  # -log P per sample, not yet averaged
        P = net.forward(p, X)
        return -np.log(P[np.arange(len(y)), y]) / len(y)

    result = diagnose(net.params, net.X, net.y, forward=forward, backward=net.backward, loss=per_sample_loss)
    assert result.ok, result.report()
    assert any("logits" in n for n in result.notes) and any("their sum" in n for n in result.notes)


def test_softmax_with_squared_error_and_its_true_gradient_is_no_false_alarm():
    net = UserNet(sizes=(6, 5, 3))
    k = 3

    def loss(p, X, y):
        return 0.5 * ((net.forward(p, X) - np.eye(k)[y]) ** 2).sum() / len(y)

    def backward(p, X, y):  # through the softmax's Jacobian, written out
        Zs, As, P = net._values(p, X)
        dP = (P - np.eye(k)[y]) / len(y)
        dZ2 = P * (dP - (dP * P).sum(axis=1, keepdims=True))
        dZ1 = dZ2 @ p["W2"].T * As[1] * (1 - As[1])
        return {"W1": As[0].T @ dZ1, "b1": dZ1.sum(0), "W2": As[1].T @ dZ2, "b2": dZ2.sum(0)}

    result = diagnose(net.params, net.X, net.y, forward=net.forward, backward=backward, loss=loss)
    assert result.ok, result.report()


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(y=np.arange(5)), "labels for the 16 samples"),
        (dict(backward=lambda p, X, y: None), "backward: returned what cannot be read"),
        (dict(loss=lambda p, X, y: "x"), "loss: expected a number"),
        (dict(forward=lambda p, X, y: np.zeros((16, 4, 1))), "forward: expected probabilities"),
        (dict(y=np.full(16, 0.5)), "integer class labels"),
        (dict(loss=lambda p, X, y: 1 / 0), "raised ZeroDivisionError"),
    ],
)
def test_bad_arguments_get_one_line(change, message):
    net = UserNet()
    args = dict(X=net.X, y=net.y, forward=net.forward, backward=net.backward, loss=net.loss)
    args.update(change)
    with pytest.raises(ConfigError, match=message) as caught:
        diagnose(net.params, args.pop("X"), args.pop("y"), **args)
    assert "\n" not in str(caught.value)
