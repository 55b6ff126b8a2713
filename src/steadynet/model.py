"""The multi-layer perceptron: a stack of Dense/Activation(/Dropout) layers over one flat
parameter buffer.

All weights and biases live in one contiguous array ``theta`` (weights of every layer first,
then every bias), and all their gradients in one array ``grad`` of the same layout. Each
layer's ``W`` and ``b`` are views into them. The optimiser therefore updates every parameter
with a few vectorised calls per step, and weight decay, which applies to weights only, is a
prefix slice ``theta[:n_weights]``.
"""

import numpy as np

from . import kernels
from .backend import get_array_module, to_numpy
from .data.dataset import as_float_batch
from .errors import ConfigError
from .functional import ACTIVATIONS, softmax, softmax_cross_entropy
from .init import INIT_FOR_ACTIVATION, INITS, init_weights
from .layers import Activation, Dense, Dropout

DTYPES = ("float32", "float64")


class MLP:
    """A fully connected network with a softmax output.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer from input to output, e.g. ``(784, 30, 10)`` for the seed network:
        784 inputs, one hidden layer of 30 units, 10 classes.
    activation : str, default="sigmoid"
        Hidden activation, a key of ``steadynet.functional.ACTIVATIONS``. The output layer is
        linear; softmax is fused with the loss.
    init : str or None, default=None
        Weight initialisation, a key of ``steadynet.init.INITS``; None picks the scheme made
        for ``activation`` (Glorot for sigmoid/tanh, He for ReLU). Biases start at zero.
    dropout : float, default=0.0
        Dropout rate after each hidden activation (training only).
    input_dropout : float, default=0.0
        Dropout rate on the inputs (training only).
    dtype : {"float32", "float64"}, default="float32"
    seed : int, default=0
        Seeds the initial weights and the dropout masks.
    device : {"cpu", "gpu"}, default="cpu"
        Array backend: NumPy or CuPy.

    Attributes
    ----------
    theta : ndarray of shape (n_params,)
        Every parameter, flat. ``params`` holds named views into it.
    grad : ndarray of shape (n_params,)
        Gradient of the last :meth:`loss_and_grad`, same layout as ``theta``.
    params : dict of str -> ndarray
        ``{"W1": (784, 30), "W2": (30, 10), "b1": (30,), "b2": (10,)}`` for the seed network.
    n_weights : int
        Length of the prefix of ``theta`` that holds weights (the rest are biases).
    engine : {"numpy", "numba"}
        How :meth:`loss_and_grad` runs: NumPy (the reference, default), or one compiled call
        (:mod:`steadynet.kernels`) where the network has no dropout and the call no label
        smoothing or sample weights. The training loop sets it from ``TrainConfig.engine``.
    """

    def __init__(
        self,
        layer_sizes=(784, 30, 10),
        activation="sigmoid",
        *,
        init=None,
        dropout=0.0,
        input_dropout=0.0,
        dtype="float32",
        seed=0,
        device="cpu",
    ):
        layer_sizes = tuple(int(s) for s in layer_sizes)
        validate_architecture(layer_sizes, activation, init, dropout, input_dropout, dtype)
        self.layer_sizes = layer_sizes
        self.activation = activation
        self.init = init or INIT_FOR_ACTIVATION[activation]
        self.dropout, self.input_dropout = float(dropout), float(input_dropout)
        self.dtype = np.dtype(dtype)
        self.seed = int(seed)
        self.device = device
        self.xp = xp = get_array_module(device)

        # one flat buffer for all parameters and one for their gradients
        shapes = self.param_shapes()
        sizes = [int(np.prod(s)) for s in shapes.values()]
        self.theta = xp.zeros(sum(sizes), dtype=self.dtype)
        self.grad = xp.zeros_like(self.theta)
        self.params, self.grads = {}, {}
        offset = 0
        for (name, shape), size in zip(shapes.items(), sizes):
            self.params[name] = self.theta[offset : offset + size].reshape(shape)
            self.grads[name] = self.grad[offset : offset + size].reshape(shape)
            offset += size
        self.n_weights = sum(size for name, size in zip(shapes, sizes) if name[0] == "W")

        # initial weights: drawn in float64 on the CPU, so a seed gives the same network
        # in float32 and float64, on NumPy and CuPy
        rng = np.random.default_rng(self.seed)
        for i in range(1, len(layer_sizes)):
            fan_in, fan_out = layer_sizes[i - 1], layer_sizes[i]
            self.params[f"W{i}"][...] = xp.asarray(init_weights(rng, fan_in, fan_out, self.init))

        # the layer stack
        drop_rng = xp.random.default_rng(self.seed + 1)
        self.layers = []
        if self.input_dropout:
            self.layers.append(Dropout(self.input_dropout, drop_rng))
        n_dense = len(layer_sizes) - 1
        for i in range(1, n_dense + 1):
            self.layers.append(
                Dense(self.params[f"W{i}"], self.params[f"b{i}"], self.grads[f"W{i}"], self.grads[f"b{i}"])
            )
            if i < n_dense:
                self.layers.append(Activation(activation))
                if self.dropout:
                    self.layers.append(Dropout(self.dropout, drop_rng))
        # layers up to the first Dense see only the data: their input gradient is never needed
        self._first_dense = next(j for j, layer in enumerate(self.layers) if isinstance(layer, Dense))
        # "numba": loss_and_grad runs as one compiled call where it can (steadynet.kernels)
        self.engine = "numpy"
        self._hidden_buffers = {}  # batch size -> the compiled step's hidden activations
        self._kernel_args = self._activations = None  # the layers' arrays as the kernel takes them

    @classmethod
    def from_config(cls, config, n_features, n_classes, **overrides):
        """The network a :class:`~steadynet.config.TrainConfig` describes, for data of
        ``n_features`` inputs and ``n_classes`` classes: layers ``(n_features, *config.hidden,
        n_classes)`` and the config's activation, init, dropout, dtype, seed and device.
        ``overrides`` replace any of these constructor arguments (doctor builds its networks
        without dropout, on the CPU)."""
        args = {
            "init": config.init,
            "dropout": config.dropout,
            "input_dropout": config.input_dropout,
            "dtype": config.dtype,
            "seed": config.seed,
            "device": config.device,
            **overrides,
        }
        return cls((n_features, *config.hidden, n_classes), config.activation, **args)

    # ------------------------------------------------------------------ structure

    def param_shapes(self):
        """Names and shapes of the parameters in their flat order (:func:`param_shapes`)."""
        return param_shapes(self.layer_sizes)

    @property
    def n_inputs(self):
        return self.layer_sizes[0]

    @property
    def n_classes(self):
        return self.layer_sizes[-1]

    @property
    def n_params(self):
        return int(self.theta.size)

    def config(self):
        """The constructor's arguments as a JSON-ready dict: ``MLP(**model.config())`` rebuilds it."""
        return {
            "layer_sizes": list(self.layer_sizes),
            "activation": self.activation,
            "init": self.init,
            "dropout": self.dropout,
            "input_dropout": self.input_dropout,
            "dtype": self.dtype.name,
            "seed": self.seed,
        }

    def __repr__(self):
        sizes = "-".join(map(str, self.layer_sizes))
        return f"MLP({sizes}, activation={self.activation!r}, dtype={self.dtype.name}, params={self.n_params})"

    # ------------------------------------------------------------------ forward / backward

    def forward(self, X, training=False):
        """Logits of a batch.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_inputs), the model's dtype, pixels in [0, 1]
        training : bool, default=False
            Applies dropout when True.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_classes)
            Output pre-activation (logits); softmax is applied by the loss or
            :meth:`predict_proba`.
        """
        for layer in self.layers:
            X = layer.forward(X, training)
        return X

    def backward(self, dZ):
        """Back-propagate ``dZ`` (n_samples, n_classes), the loss gradient at the logits, and
        fill :attr:`grad`."""
        # down to the first Dense layer: what lies before it (input dropout) has no parameters
        for j in range(len(self.layers) - 1, self._first_dense - 1, -1):
            dZ = self.layers[j].backward(dZ, need_dX=j > self._first_dense)

    def loss_and_grad(self, X, y, *, label_smoothing=0.0, sample_weight=None):
        """One forward and backward pass in training mode.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_inputs)
        y : ndarray of shape (n_samples,), integer class indices

        Returns
        -------
        loss : float
            Mean cross-entropy over the batch. The gradient is left in :attr:`grad`
            (and its named views :attr:`grads`).
        Z : ndarray of shape (n_samples, n_classes)
            The logits of the forward pass.
        """
        if (
            self.engine == "numba"
            and not label_smoothing
            and sample_weight is None
            and self.xp is np
            and not (self.dropout or self.input_dropout)
        ):
            return self._compiled_loss_and_grad(X, y)
        Z = self.forward(X, training=True)
        loss, dZ = softmax_cross_entropy(Z, y, label_smoothing, sample_weight)
        self.backward(dZ)
        return loss, Z

    def _compiled_loss_and_grad(self, X, y):
        """:meth:`loss_and_grad` as one compiled call (:func:`steadynet.kernels.loss_and_grad`).
        The hidden activations go to arrays kept per batch size, which the Activation layers
        then cache as ``A``, as on the NumPy path (health monitor, divergence report)."""
        n = X.shape[0]
        hidden = self._hidden_buffers.get(n)
        if hidden is None:
            widths = self.layer_sizes[1:-1] or (0,)  # one unused array without hidden layers
            hidden = self._hidden_buffers[n] = tuple(np.empty((n, w), self.dtype) for w in widths)
        if self._kernel_args is None:
            dense = range(1, len(self.layer_sizes))
            self._kernel_args = tuple(
                tuple(source[f"{name}{i}"] for i in dense)
                for source, name in ((self.params, "W"), (self.params, "b"), (self.grads, "W"), (self.grads, "b"))
            )
            self._activations = [layer for layer in self.layers if isinstance(layer, Activation)]
        for layer, A in zip(self._activations, hidden):
            layer.A = A
        return kernels.loss_and_grad(X, y, *self._kernel_args, hidden, self.activation)

    # ------------------------------------------------------------------ inference

    def predict_proba(self, X, batch_size=8192):
        """Class probabilities, shape (n_samples, n_classes), as a NumPy array.

        ``X`` (n_samples, n_inputs) may be float in [0, 1] or uint8 pixels 0-255 (scaled
        here); it is processed in chunks of ``batch_size`` rows to bound memory.
        """
        X = check_input(X, self.n_inputs)
        out = np.empty((X.shape[0], self.n_classes), dtype=self.dtype)
        for start in range(0, X.shape[0], batch_size):
            Xb = as_float_batch(X[start : start + batch_size], self.dtype, self.xp)
            out[start : start + batch_size] = to_numpy(softmax(self.forward(Xb)))
        return out

    def predict(self, X, batch_size=8192):
        """Predicted class index of each row of ``X``, shape (n_samples,), int64."""
        return self.predict_proba(X, batch_size).argmax(axis=1)

    def evaluate(self, X, y, batch_size=8192):
        """Mean cross-entropy and accuracy of the model on ``(X, y)``, as ``(loss, accuracy)``."""
        X = check_input(X, self.n_inputs)
        y = np.asarray(y)
        total_loss, correct = 0.0, 0
        for start in range(0, X.shape[0], batch_size):
            Xb = as_float_batch(X[start : start + batch_size], self.dtype, self.xp)
            yb = self.xp.asarray(y[start : start + batch_size])
            Z = self.forward(Xb)
            loss, _ = softmax_cross_entropy(Z, yb)
            total_loss += loss * Xb.shape[0]
            correct += int((Z.argmax(axis=1) == yb).sum())
        n = max(X.shape[0], 1)
        return total_loss / n, correct / n

    # ------------------------------------------------------------------ state

    def state_dict(self):
        """The parameters as NumPy arrays, copied: ``{"W1": ..., "b1": ..., ...}``."""
        return {name: to_numpy(p).copy() for name, p in self.params.items()}

    def load_state_dict(self, state):
        """Copy arrays from ``state`` (names and shapes as :meth:`param_shapes`) into the model."""
        expected = self.param_shapes()
        if set(state) != set(expected):
            raise ConfigError(f"parameters must be {sorted(expected)}, got {sorted(state)}.")
        for name, shape in expected.items():
            if tuple(state[name].shape) != shape:
                raise ConfigError(f"parameter {name} must have shape {shape}, got {tuple(state[name].shape)}.")
            self.params[name][...] = self.xp.asarray(state[name], dtype=self.dtype)

    # ------------------------------------------------------------------ input gradient

    def input_gradient(self, X, y, of="loss"):
        """The gradient of the loss, or of one class's logit, with respect to the inputs.

        One forward pass in evaluation mode (no dropout) and the layers' own ``backward``
        taken all the way down to the input, so the inputs' gradient is what training's
        backward would pass below the first layer.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_inputs), the model's dtype, on its device
            Inputs as :meth:`forward` takes them (pixels in [0, 1]).
        y : int or ndarray of shape (n_samples,), integer class indices
            ``of="loss"``: each row's true class. ``of="logit"``: the class whose logit is
            differentiated for each row. An int is the same class for every row.
        of : {"loss", "logit"}, default="loss"
            ``"loss"``: ``L``, the batch's mean cross-entropy (as :meth:`loss_and_grad`, without
            label smoothing or sample weights), so row ``i`` is ``(1 / n) dL_i / dx_i``.
            ``"logit"``: each row's own logit ``z_{i, y_i}``, so row ``i`` is ``dz_{i, y_i} / dx_i``
            (not divided by ``n``). A logit, not a probability: where the model is sure,
            ``p (1 - p)`` is nearly 0 and the probability's gradient vanishes with it.

        Returns
        -------
        dX : ndarray of shape (n_samples, n_inputs), the model's dtype, on its device

        Notes
        -----
        The parameter gradients of the same objective are left in :attr:`grad` as a
        by-product (``Dense.backward`` always writes them), and the layers cache this batch,
        so calls on one model must not overlap with each other or with training.
        """
        if of not in ("loss", "logit"):
            raise ConfigError(f'input_gradient: of must be "loss" or "logit", got {of!r}.')
        Z = self.forward(X)  # (n, n_classes); each layer keeps what its backward needs
        n, k = Z.shape
        y = self.xp.broadcast_to(self.xp.asarray(y), (n,))  # (n,)
        if n and not 0 <= int(y.min()) <= int(y.max()) < k:
            raise ConfigError(f"input_gradient: classes must be 0 to {k - 1}, got {int(y.min())} to {int(y.max())}.")
        if of == "loss":
            _, dZ = softmax_cross_entropy(Z, y)  # (n, n_classes), carries the 1 / n
        else:
            dZ = self.xp.zeros_like(Z)
            dZ[self.xp.arange(n), y] = 1.0  # d z_{i, y_i} / d Z: one-hot at each row's class
        for layer in reversed(self.layers):
            dZ = layer.backward(dZ, need_dX=True)
        return dZ


def validate_architecture(layer_sizes, activation, init, dropout, input_dropout, dtype):
    """Raise :class:`ConfigError` for an architecture that cannot be built."""
    if len(layer_sizes) < 2:
        raise ConfigError(f"layer_sizes needs at least inputs and classes, got {list(layer_sizes)}.")
    if any(s < 1 for s in layer_sizes):
        raise ConfigError(f"every layer size must be >= 1, got {list(layer_sizes)}.")
    if layer_sizes[-1] < 2:
        raise ConfigError(f"the output layer needs >= 2 classes, got {layer_sizes[-1]}.")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
    if init is not None and init not in INITS:
        raise ConfigError(f"init must be one of {sorted(INITS)}, got {init!r}.")
    for name, rate in (("dropout", dropout), ("input_dropout", input_dropout)):
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {rate}.")
    if str(dtype) not in DTYPES:
        raise ConfigError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}.")


def param_shapes(layer_sizes):
    """Names and shapes of the parameters of an MLP of ``layer_sizes`` ``(n_0, n_1, ..., n_L)``
    in their flat order, all weights then all biases: ``{"W1": (n_0, n_1), ..., "WL": (n_L-1,
    n_L), "b1": (n_1,), ..., "bL": (n_L,)}``."""
    pairs = list(zip(layer_sizes[:-1], layer_sizes[1:]))
    shapes = {f"W{i}": (a, b) for i, (a, b) in enumerate(pairs, 1)}
    shapes.update({f"b{i}": (b,) for i, (_, b) in enumerate(pairs, 1)})
    return shapes


def count_params(layer_sizes):
    """Number of parameters of an MLP of ``layer_sizes``: ``n_in * n_out + n_out`` per layer.
    Computed from the sizes alone (Python integers), so a network too large to build can be
    measured and refused."""
    return sum(a * b + b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))


def check_input(X, n_inputs):
    """``X`` as a 2-D array of ``n_inputs`` columns; 28x28 images are flattened."""
    X = np.asarray(X) if not hasattr(X, "__cuda_array_interface__") else X
    if X.ndim == 3:
        X = X.reshape(X.shape[0], -1)
    if X.ndim != 2 or X.shape[1] != n_inputs:
        raise ConfigError(f"input must have shape (n_samples, {n_inputs}), got {tuple(X.shape)}.")
    return X
