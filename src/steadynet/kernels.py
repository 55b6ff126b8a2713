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

from .errors import ConfigError

ENGINES = ("auto", "numpy", "numba")
INSTALL_HINT = 'pip install "steadynet[fast]" (numba)'

# activation codes passed to the compiled step, by name
ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "leaky_relu": 3, "identity": 4}


def available():
    """Whether numba can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def unsupported(config):
    """Settings of ``config`` (a :class:`TrainConfig`) that the compiled step does not cover,
    as option names; empty when it covers them all."""
    return [option for option, used in (
        ("--device gpu", config.device != "cpu"),
        ("--dropout", config.dropout),
        ("--input-dropout", config.input_dropout),
        ("--label-smoothing", config.label_smoothing),
        ("--teacher", config.teacher),
    ) if used]


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
            raise ConfigError(f"--engine numba needs numba, which is not installed: {INSTALL_HINT}; "
                              f"or use --engine numpy.")
        if missing:
            raise ConfigError(f"--engine numba does not cover {', '.join(missing)}; use --engine auto "
                              f"(NumPy for such runs) or drop {missing[0]}.")
        return "numba"
    return "numba" if not missing and available() else "numpy"


# ----------------------------------------------------------------------------- the step

_COMPILED = {}


def _compiled():
    """The compiled functions, built on first use (numba imported only then)."""
    if not _COMPILED:
        _COMPILED.update(_build())
    return _COMPILED


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
    from .functional import LEAKY_SLOPE, softmax_cross_entropy

    X, y = np.ascontiguousarray(X), np.asarray(y, dtype=np.int64)
    loss, Z, bad = _compiled()["loss_and_grad"](X, y, Ws, bs, dWs, dbs, As, ACTIVATION_CODES[activation],
                                                 LEAKY_SLOPE, X.dtype.type(1.0 / max(X.shape[0], 1)))
    if bad:  # a label out of range: the reference says which, in its words
        softmax_cross_entropy(Z, y)
    return loss, Z


def sgd_step(theta, grad, lr, n_weights, weight_decay):
    """``theta -= lr * grad`` in one pass, with the L2 term added to the weights' gradient."""
    c = theta.dtype.type  # every scalar in the parameters' dtype, so float32 stays float32
    _compiled()["sgd"](theta, grad, c(lr), n_weights if weight_decay else 0, c(weight_decay))


def momentum_step(theta, grad, v, lr, mu, nesterov, n_weights, weight_decay):
    """Heavy-ball or Nesterov momentum in one pass (the formula of :class:`steadynet.optim.Momentum`)."""
    c = theta.dtype.type
    _compiled()["momentum"](theta, grad, v, c(lr), c(mu), bool(nesterov), n_weights if weight_decay else 0,
                            c(weight_decay))


def adam_step(theta, grad, m, v, lr, beta1, beta2, eps, t, n_weights, weight_decay, decoupled):
    """Adam or AdamW in one pass (the formula of :class:`steadynet.optim.Adam`)."""
    c = theta.dtype.type
    root_bc2 = math.sqrt(1.0 - beta2 ** t)
    step = lr * root_bc2 / (1.0 - beta1 ** t)
    n_l2, n_shrink = (0, n_weights) if decoupled else (n_weights, 0)
    if not weight_decay:
        n_l2 = n_shrink = 0
    _compiled()["adam"](theta, grad, m, v, c(step), c(beta1), c(1.0 - beta1), c(beta2), c(1.0 - beta2),
                        c(eps * root_bc2), n_l2, c(weight_decay), n_shrink, c(1.0 - lr * weight_decay))


def _build():
    from numba import njit

    # error_model="numpy": a float division by zero gives inf or nan as in NumPy, instead of a
    # test for ZeroDivisionError in every iteration (which would also keep loops from vectorising)
    jit = njit(cache=True, nogil=True, error_model="numpy")

    @jit
    def activate(z, code, slope):  # A = f(Z), as in steadynet.functional
        if code == 0:
            return 0.5 * (1.0 + math.tanh(0.5 * z))  # sigmoid as (1 + tanh(Z / 2)) / 2
        if code == 1:
            return math.tanh(z)
        if code == 2:
            return z if z > 0 else 0.0 * z
        if code == 3:
            return z if z > 0 else slope * z
        return z

    @jit
    def activation_grad(a, code, slope):  # f' from the output A
        if code == 0:
            return a * (1 - a)
        if code == 1:
            return 1 - a * a
        if code == 2:
            return 1.0 if a > 0 else 0.0
        if code == 3:
            return 1.0 if a > 0 else slope
        return 1.0

    @jit
    def loss_and_grad(X, y, Ws, bs, dWs, dbs, As, code, slope, scale):
        n, L = X.shape[0], len(Ws)
        # forward: Z = A @ W + b, then A = f(Z) into As[i], except at the logits
        logits = np.empty((n, Ws[L - 1].shape[1]), X.dtype)
        for i in range(L):
            W, b = Ws[i], bs[i]
            A = X if i == 0 else As[i - 1]
            Z = logits if i == L - 1 else As[i]
            np.dot(A, W, Z)  # (n, n_in) @ (n_in, n_out)
            for r in range(n):
                for c in range(W.shape[1]):
                    Z[r, c] = Z[r, c] + b[c] if i == L - 1 else activate(Z[r, c] + b[c], code, slope)
        # softmax cross-entropy: loss = mean(log sum exp Z - Z[y]), dZ = (P - Y) / n
        Z = logits
        k = Z.shape[1]
        dZ = np.empty_like(Z)
        total_loss, bad = 0.0, False
        for r in range(n):
            if y[r] < 0 or y[r] >= k:
                bad = True
                continue
            top = Z[r, 0]
            for c in range(1, k):
                top = max(top, Z[r, c])
            total = 0.0
            for c in range(k):
                e = math.exp(Z[r, c] - top)
                dZ[r, c] = e
                total += e
            total_loss += math.log(total) - (Z[r, y[r]] - top)
            for c in range(k):
                dZ[r, c] = dZ[r, c] / total * scale
            dZ[r, y[r]] -= scale
        if bad:
            return math.nan, Z, True
        # backward: dW = A.T @ dZ, db = sum of dZ's rows, dZ of the layer below = (dZ @ W.T) f'(A)
        for i in range(L - 1, -1, -1):
            A = X if i == 0 else As[i - 1]
            np.dot(A.T, dZ, dWs[i])  # (n_in, n) @ (n, n_out)
            db = dbs[i]
            db[:] = 0
            for r in range(n):
                for c in range(dZ.shape[1]):
                    db[c] += dZ[r, c]
            if i:  # the first layer's input is the data: its gradient is never used
                dA = np.dot(dZ, Ws[i].T)  # (n, n_out) @ (n_out, n_in)
                for r in range(n):
                    for c in range(dA.shape[1]):
                        dA[r, c] = activation_grad(A[r, c], code, slope) * dA[r, c]
                dZ = dA
        return total_loss * scale, Z, False

    # The updates: scalars come in the parameters' dtype and each loop is branch-free, so that
    # the compiler vectorises it (a float64 scalar, or a test inside the loop, would stop that).

    @jit
    def sgd(theta, grad, lr, n_l2, wd):
        for i in range(n_l2):
            grad[i] += wd * theta[i]  # dW += wd W, the gradient of wd / 2 ||W||^2
        for i in range(theta.shape[0]):
            theta[i] -= lr * grad[i]

    @jit
    def momentum(theta, grad, v, lr, mu, nesterov, n_l2, wd):
        for i in range(n_l2):
            grad[i] += wd * theta[i]
        if nesterov:
            for i in range(theta.shape[0]):
                v[i] = mu * v[i] + grad[i]  # v = mu v + g
                theta[i] -= lr * (grad[i] + mu * v[i])
        else:
            for i in range(theta.shape[0]):
                v[i] = mu * v[i] + grad[i]
                theta[i] -= lr * v[i]

    @jit
    def adam(theta, grad, m, v, step, b1, c1, b2, c2, eps_hat, n_l2, wd, n_shrink, shrink):
        for i in range(n_l2):
            grad[i] += wd * theta[i]
        for i in range(n_shrink):
            theta[i] *= shrink  # AdamW: W *= 1 - lr wd
        for i in range(theta.shape[0]):
            g = grad[i]
            m[i] = b1 * m[i] + c1 * g  # m = b1 m + (1 - b1) g
            v[i] = b2 * v[i] + c2 * (g * g)  # v = b2 v + (1 - b2) g^2
            # theta -= lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps sqrt(bc2)), as in optim.Adam
            theta[i] -= step * m[i] / (np.sqrt(v[i]) + eps_hat)

    return {"loss_and_grad": loss_and_grad, "sgd": sgd, "momentum": momentum, "adam": adam}
