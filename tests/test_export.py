"""ONNX export: the graph runs in onnxruntime and agrees with steadynet."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import steadynet  # noqa: E402
from steadynet.cli.app import main  # noqa: E402
from steadynet.data.dataset import as_float_batch  # noqa: E402
from steadynet.export import export_onnx, to_onnx  # noqa: E402
from steadynet.optim import make_optimizer  # noqa: E402


def run_onnx(proto_or_path, X):
    source = proto_or_path if isinstance(proto_or_path, str) else proto_or_path.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(["probabilities", "label"], {"X": X.astype(np.float32)})


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_activation_and_dtype_matches(activation, dtype, blobs):
    model = steadynet.MLP((16, 9, 7, 3), activation, dtype=dtype, seed=1)
    model.theta[...] = np.random.default_rng(0).normal(0, 1, model.n_params)  # far from init
    P, label = run_onnx(to_onnx(model), blobs.x_test)
    expected = model.predict_proba(blobs.x_test)
    assert P.dtype == np.float32 and P.shape == expected.shape and label.dtype == np.int64
    np.testing.assert_allclose(P, expected, atol=1e-6)
    np.testing.assert_array_equal(label, expected.argmax(axis=1))


def test_pixels_255_graph_takes_raw_pixels(blobs):
    model = steadynet.MLP((16, 8, 3), "relu", seed=0)
    raw = np.round(blobs.x_test * 255)
    P, _ = run_onnx(to_onnx(model, input_scale=1 / 255), raw)
    np.testing.assert_allclose(P, model.predict_proba(raw.astype(np.uint8)), atol=1e-6)


def test_cli_export_of_a_model_file(blobs, tmp_path, capsys):
    model = steadynet.MLP((16, 8, 3), "sigmoid", seed=0)
    steadynet.save(tmp_path / "m.npz", model)
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx"), "--json"]) == 0
    assert '"classes": 3' in capsys.readouterr().out
    P, _ = run_onnx(str(tmp_path / "m.onnx"), blobs.x_test)
    np.testing.assert_allclose(P, model.predict_proba(blobs.x_test), atol=1e-6)


def test_cli_export_of_a_missing_model_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.npz"), str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.npz: no such model file" in err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.mnist
def test_onnx_agrees_on_every_mnist_test_image(mnist, tmp_path):
    # a briefly trained 784-64-10 network: one epoch of Adam (learning rate 0.01) on 10,000 training images
    model = steadynet.MLP((784, 64, 10), "sigmoid", seed=0)
    optimizer = make_optimizer("adam", model.n_weights)
    for start in range(0, 10_000, 100):
        model.loss_and_grad(
            as_float_batch(mnist.x_train[start : start + 100], model.dtype), mnist.y_train[start : start + 100]
        )
        optimizer.step(model.theta, model.grad, 1e-2)
    X = mnist.x_test.astype(np.float32) / 255  # the graph's input contract: [0, 1]
    expected = model.predict_proba(mnist.x_test)
    assert (expected.argmax(axis=1) == mnist.y_test).mean() > 0.85  # it did learn
    export_onnx(model, tmp_path / "mnist.onnx")
    P, label = run_onnx(str(tmp_path / "mnist.onnx"), X)
    assert np.abs(P - expected).max() < 1e-5
    np.testing.assert_array_equal(label, expected.argmax(axis=1))
