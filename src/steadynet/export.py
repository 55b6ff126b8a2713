"""Export a trained :class:`steadynet.MLP` to ONNX, to run it with any ONNX runtime.

The graph's contract
--------------------
- input ``X``: float32 of shape (batch, n_inputs), flattened images with pixels in [0, 1]
  (what ``MLP.forward`` takes). ``input_scale=1/255`` adds a ``Mul`` node so that the
  graph takes pixels 0-255 instead, as steadynet does for uint8 data.
- output ``probabilities``: float32 of shape (batch, n_classes), rows summing to 1;
- output ``label``: int64 of shape (batch,), the most probable class index.

The graph is ``MatMul``/``Add`` per layer with the hidden activation between them, then
``Softmax`` and ``ArgMax``, computed in the model's dtype (a float64 model casts the input to
double and the probabilities back to float32). It uses opset 17 and IR version 8, which every
ONNX runtime of the last years reads. onnx is an optional extra: ``pip install steadynet[onnx]``.
"""

import os

import numpy as np

from .errors import ConfigError, SteadynetError
from .functional import LEAKY_SLOPE
from .persistence import atomic_write, load_model

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17

# steadynet activation -> (ONNX op, its attributes); identity needs no node
ONNX_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "relu": ("Relu", {}),
    "leaky_relu": ("LeakyRelu", {"alpha": LEAKY_SLOPE}),
    "identity": (None, {}),
}


def to_onnx(model, input_scale=1.0):
    """Build the ONNX graph of ``model`` (see the module docstring for its inputs and outputs).

    Parameters
    ----------
    model : MLP
    input_scale : float, default=1.0
        Multiplies the input first; ``1 / 255`` makes the graph take 0-255 pixels.

    Returns
    -------
    onnx.ModelProto, checked with ``onnx.checker``.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise SteadynetError(
            "ONNX export needs the onnx package, which is not installed; install it with `pip install steadynet[onnx]`."
        ) from None
    if not float(input_scale) > 0:
        raise ConfigError(f"input_scale must be > 0, got {input_scale}.")
    elem = TensorProto.DOUBLE if model.dtype == np.float64 else TensorProto.FLOAT
    state = model.state_dict()
    nodes, weights = [], []
    h = "X"
    if elem == TensorProto.DOUBLE:
        nodes.append(helper.make_node("Cast", [h], ["X_double"], to=TensorProto.DOUBLE))
        h = "X_double"
    if input_scale != 1.0:
        weights.append(numpy_helper.from_array(np.array(input_scale, dtype=model.dtype), "input_scale"))
        nodes.append(helper.make_node("Mul", [h, "input_scale"], ["X_scaled"]))
        h = "X_scaled"
    n_dense = len(model.layer_sizes) - 1
    op, attrs = ONNX_ACTIVATIONS[model.activation]
    for i in range(1, n_dense + 1):
        weights += [numpy_helper.from_array(state[f"W{i}"], f"W{i}"), numpy_helper.from_array(state[f"b{i}"], f"b{i}")]
        # Z = A @ W + b: (batch, n_in) @ (n_in, n_out) + (n_out,)
        nodes += [
            helper.make_node("MatMul", [h, f"W{i}"], [f"XW{i}"]),
            helper.make_node("Add", [f"XW{i}", f"b{i}"], [f"Z{i}"]),
        ]
        h = f"Z{i}"
        if i < n_dense and op is not None:
            nodes.append(helper.make_node(op, [h], [f"A{i}"], **attrs))
            h = f"A{i}"
    # softmax over the classes of each row (axis 1), then the most probable class
    probs = "probabilities" if elem == TensorProto.FLOAT else "probabilities_double"
    nodes.append(helper.make_node("Softmax", [h], [probs], axis=1))
    if elem == TensorProto.DOUBLE:
        nodes.append(helper.make_node("Cast", [probs], ["probabilities"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("ArgMax", [h], ["label"], axis=1, keepdims=0))

    graph = helper.make_graph(
        nodes,
        "steadynet_mlp",
        inputs=[helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", model.n_inputs])],
        outputs=[
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", model.n_classes]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=weights,
    )
    proto = helper.make_model(
        graph,
        producer_name="steadynet",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=f"steadynet {model!r}; input X: float32 (batch, {model.n_inputs}), "
        f"pixels in [0, {1 / input_scale:g}]",
    )
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path, input_scale=1.0):
    """Write ``model`` (an :class:`MLP`, a model file or a run folder) to ``path`` as ONNX.

    Returns a dict describing what was written: ``path``, ``bytes``, ``inputs``, ``classes``,
    ``opset``, ``input_scale``.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    proto = to_onnx(model, input_scale)
    blob = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(blob))
    return {
        "path": os.fspath(path),
        "bytes": len(blob),
        "inputs": model.n_inputs,
        "classes": model.n_classes,
        "opset": OPSET,
        "input_scale": float(input_scale),
    }
