"""Compiled kernels for the training step (numba): the optional ``steadynet[fast]`` path.

On small networks the step's time goes to NumPy's cost per call, not to arithmetic: the
784-30-10 step is some forty NumPy calls on arrays of a few thousand values, each with a
fixed cost of microseconds. Here the whole forward pass, the fused softmax cross-entropy and
the backward pass are one compiled call (its matrix products still go to BLAS, through
SciPy's), and each optimiser's update is one pass over the flat parameters instead of up to
seven. The formulas are those of :mod:`steadynet.functional`, :mod:`steadynet.layers` and
:mod:`steadynet.optim`, which stay the reference: ``tests/test_kernels.py`` checks that the
two agree to rounding for every activation and optimiser. They are not bit-identical: here a
product like ``lr * g`` is formed in float64 before it is rounded to the parameters' dtype,
and the BLAS may differ.

The kernels run on one thread; the BLAS inside them follows :mod:`steadynet.threads`.

numba was chosen because it compiles this kind of plain loop over NumPy arrays to machine
code with no build step for the user (a wheel on PyPI for every platform NumPy has), keeps
the kernels as readable Python beside the formulas they implement, and calls BLAS for
``np.dot``. Without numba, nothing here is imported and the NumPy path runs.
"""

import math

import numpy as np

from .data.dataset import as_float_batch
from .errors import ConfigError
from .functional import LEAKY_SLOPE, softmax_cross_entropy

ENGINES = ("auto", "numpy", "numba")
INSTALL_HINT = 'pip install "steadynet[fast]" (numba and SciPy)'

# activation codes passed to the compiled step, by name
ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "leaky_relu": 3, "identity": 4}

# tanh in float32 as x P(x^2) / Q(x^2) on [-9, 9] (beyond, tanh rounds to +-1 in float32):
# numba calls the C library's tanhf one value at a time, where NumPy's tanh is vectorised
# (docs/performance.md); these few multiplies and one division vectorise. The coefficients were
# fitted here (weighted least squares on 20,001 points of [0, 9], reweighted by 1 / Q ten
# times over, Loeb's method); evaluated in float32 the result is within 3.4e-7 of tanh (6
# units in the last place of 1; NumPy's float32 tanh: 6e-8). float64 keeps the library's tanh.
TANH_CLIP = np.float32(9.0)
TANH_P = np.array([9.99999923e-01, 1.33847699e-01, 3.50027121e-03, 2.06950499e-05, 1.34898458e-08], np.float32)
TANH_Q = np.array([1.0, 4.67180729e-01, 2.58941974e-02, 3.29368303e-04, 7.82852044e-07], np.float32)


def available():
    """Whether numba is installed, and SciPy, whose BLAS its ``np.dot`` calls. Looked up, not
    imported: configs are validated by commands that never train (numba costs ~1 s and ~100 MB)."""
    from importlib.util import find_spec

    return find_spec("numba") is not None and find_spec("scipy") is not None


def unsupported(config):
    """Settings of ``config`` (a :class:`TrainConfig`) that the compiled step does not cover,
    as field names; empty when it covers them all."""
    return [
        name
        for name, used in (
            ("device", config.device != "cpu"),
            ("dropout", config.dropout),
            ("input_dropout", config.input_dropout),
            ("label_smoothing", config.label_smoothing),
            ("teacher", config.teacher),
        )
        if used
    ]


def resolve_engine(config):
    """The engine a run uses: ``"numba"`` or ``"numpy"``.

    ``config.engine`` ``"auto"`` picks numba where it is installed and covers the run's
    settings, else NumPy; ``"numba"`` insists (:class:`ConfigError` with the fix where it
    cannot); ``"numpy"`` is the reference path.
    """
    if config.engine == "numpy":
        return "numpy"
    missing = unsupported(config)
    if config.engine == "numba":
        if not available():
            raise ConfigError(
                "{engine} numba needs numba, which is not installed: {hint}; or use {engine} numpy.",
                field="engine",
                hint=INSTALL_HINT,
            )
        if missing:
            named = ["{device} gpu" if name == "device" else "{%s}" % name for name in missing]
            raise ConfigError(
                "{engine} numba does not cover " + ", ".join(named) + "; use {engine} auto "
                "(NumPy for such runs) or drop " + named[0] + ".",
                field="engine",
            )
        return "numba"
    return "numba" if not missing and available() else "numpy"


# ----------------------------------------------------------------------------- the step

_COMPILED: dict = {}


def _compiled():
    """The compiled functions (:mod:`steadynet._numba`), imported on first use."""
    if not _COMPILED:
        import scipy.linalg.cython_blas  # noqa: F401  the BLAS numba's np.dot calls, loaded now so that

        # a thread limit set before the first step (steadynet.threads) reaches it too
        from . import _numba

        _COMPILED.update(
            {name: getattr(_numba, name) for name in ("loss_and_grad", "gather_scaled", "sgd", "momentum", "adam")}
        )
    return _COMPILED


def load():
    """Import the kernels and the BLAS they call (before BLAS threads are limited)."""
    _compiled()


def loss_and_grad(X, y, Ws, bs, dWs, dbs, As, activation):
    """Forward pass, mean softmax cross-entropy and backward pass of an MLP in one call.

    Parameters
    ----------
    X : ndarray of shape (n, n_in), float32 or float64, C-contiguous
    y : ndarray of shape (n,), integer class indices
    Ws, bs : tuples of the layers' weights (n_in_i, n_out_i) and biases (n_out_i,)
    dWs, dbs : tuples of arrays shaped like ``Ws`` and ``bs``
        Overwritten with the gradient of the mean loss (views into the model's flat ``grad``).
    As : tuple of ndarrays of shape (n, n_out_i), one per hidden layer
        Overwritten with the hidden activations (what ``Activation.A`` caches on the NumPy
        path); one unused array, any shape, for a network without hidden layers.
    activation : str, a key of ``ACTIVATION_CODES``

    Returns
    -------
    loss : float
    Z : ndarray of shape (n, n_classes), the logits.
    """
    X, y = np.ascontiguousarray(X), np.asarray(y, dtype=np.int64)
    c = X.dtype.type
    loss, Z, bad = _compiled()["loss_and_grad"](
        X,
        y,
        Ws,
        bs,
        dWs,
        dbs,
        As,
        ACTIVATION_CODES[activation],
        c(LEAKY_SLOPE),
        c(1.0 / max(X.shape[0], 1)),
        X.dtype == np.float32,
    )
    if bad:  # a label out of range: the reference says which, in its words
        softmax_cross_entropy(Z, y)
    return loss, Z


def float_batch(X, picked, dtype):
    """``as_float_batch(X[picked], dtype)`` (uint8 pixels to floats in [0, 1]) in one pass:
    the rows gathered, converted and scaled at once, with the same two roundings.

    Parameters
    ----------
    X : ndarray of shape (n, n_features)
    picked : slice or ndarray of shape (m,) of row indices
    dtype : numpy.dtype, float32 or float64
    """
    if X.dtype != np.uint8 or X.ndim != 2 or not X.flags.c_contiguous:
        return as_float_batch(X[picked], dtype)
    if isinstance(picked, slice):
        rows = np.arange(*picked.indices(X.shape[0]), dtype=np.int64)
    else:
        rows = np.asarray(picked, dtype=np.int64)
    out = np.empty((rows.shape[0], X.shape[1]), dtype)
    _compiled()["gather_scaled"](X, rows, out, dtype.type(1.0 / 255.0))
    return out


def sgd_step(theta, grad, lr, n_weights, weight_decay):
    """``theta -= lr * grad`` in one pass, with the L2 term added to the weights' gradient."""
    c = theta.dtype.type  # every scalar in the parameters' dtype, so float32 stays float32
    _compiled()["sgd"](theta, grad, c(lr), n_weights if weight_decay else 0, c(weight_decay))


def momentum_step(theta, grad, v, lr, mu, nesterov, n_weights, weight_decay):
    """Heavy-ball or Nesterov momentum in one pass (the formula of :class:`steadynet.optim.Momentum`)."""
    c = theta.dtype.type
    _compiled()["momentum"](
        theta, grad, v, c(lr), c(mu), bool(nesterov), n_weights if weight_decay else 0, c(weight_decay)
    )


def adam_step(theta, grad, m, v, lr, beta1, beta2, eps, t, n_weights, weight_decay, decoupled):
    """Adam or AdamW in one pass (the formula of :class:`steadynet.optim.Adam`)."""
    c = theta.dtype.type
    root_bc2 = math.sqrt(1.0 - beta2**t)
    step = lr * root_bc2 / (1.0 - beta1**t)
    n_l2, n_shrink = (0, n_weights) if decoupled else (n_weights, 0)
    if not weight_decay:
        n_l2 = n_shrink = 0
    _compiled()["adam"](
        theta,
        grad,
        m,
        v,
        c(step),
        c(beta1),
        c(1.0 - beta1),
        c(beta2),
        c(1.0 - beta2),
        c(eps * root_bc2),
        n_l2,
        c(weight_decay),
        n_shrink,
        c(1.0 - lr * weight_decay),
    )
