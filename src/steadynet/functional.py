"""Pure math: activations, their derivatives, softmax and cross-entropy.

No state and no side effects. Every function takes and returns arrays of the array module
its input belongs to (NumPy or CuPy) and keeps the input's dtype.

Each derivative is written in terms of the activation's *output* ``A``, which the forward
pass already holds, and says so in its name and docstring. The seed network applied
``z * (1 - z)`` to the pre-activation ``Z`` instead of to ``A``, which is mistake 5 in the
seed README: here ``sigmoid_grad`` takes ``A`` and nothing else.
"""

from .backend import array_module_of
from .errors import ConfigError

# ---------------------------------------------------------------------------- activations


def sigmoid(Z):
    """Logistic sigmoid ``1 / (1 + exp(-Z))``, stable for every finite ``Z``.

    Computed as ``(1 + tanh(Z / 2)) / 2``, the same function: ``tanh`` saturates at exactly
    +-1 and never overflows, so there is no warning for any ``|Z|`` and the limits are exact
    (``sigmoid(-1e4) == 0``, ``sigmoid(1e4) == 1``), where ``exp(-Z)`` overflows for
    ``Z < -88`` in float32. It also takes four passes over the array instead of six.
    Outputs are exact to about one unit in the last place of 1 (6e-8 in float32), which is
    all a hidden unit needs; a relative precision for outputs far below that is not kept.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_units)
        Pre-activation.

    Returns
    -------
    A : ndarray of the same shape and dtype as ``Z``, values in [0, 1].
    """
    xp = array_module_of(Z)
    A = xp.multiply(Z, Z.dtype.type(0.5))
    xp.tanh(A, out=A)
    A += 1
    A *= Z.dtype.type(0.5)
    return A


def sigmoid_grad(A):
    """Derivative of the sigmoid, ``A * (1 - A)``, from its **output** ``A = sigmoid(Z)``.

    Parameters
    ----------
    A : ndarray of shape (n_samples, n_units)
        Output of :func:`sigmoid`, values in [0, 1]. Passing the pre-activation ``Z`` here is
        the classic mistake (seed mistake 5): the result is then not in [0, 0.25].

    Returns
    -------
    ndarray of the same shape, values in [0, 0.25].
    """
    return A * (1 - A)


def tanh(Z):
    """Hyperbolic tangent; ``Z`` of shape (n_samples, n_units), returns ``A`` in [-1, 1]."""
    return array_module_of(Z).tanh(Z)


def tanh_grad(A):
    """Derivative of tanh, ``1 - A**2``, from its **output** ``A = tanh(Z)``."""
    return 1 - A * A


def relu(Z):
    """Rectified linear unit ``max(Z, 0)``; returns ``A`` of the same shape and dtype."""
    return array_module_of(Z).maximum(Z, 0)


def relu_grad(A):
    """Derivative of ReLU from its **output** ``A``: 1 where ``A > 0``, else 0 (same dtype)."""
    return (A > 0).astype(A.dtype)


LEAKY_SLOPE = 0.01  # slope of leaky ReLU for Z < 0


def leaky_relu(Z):
    """Leaky ReLU: ``Z`` for ``Z > 0``, ``0.01 * Z`` otherwise."""
    xp = array_module_of(Z)
    return xp.where(Z > 0, Z, Z * Z.dtype.type(LEAKY_SLOPE))


def leaky_relu_grad(A):
    """Derivative of leaky ReLU from its **output** ``A`` (``A > 0`` exactly when ``Z > 0``)."""
    xp = array_module_of(A)
    return xp.where(A > 0, A.dtype.type(1), A.dtype.type(LEAKY_SLOPE))


def identity(Z):
    """The identity; used for a linear output before the fused softmax loss."""
    return Z


def identity_grad(A):
    """Derivative of the identity: ones shaped like ``A``."""
    return array_module_of(A).ones_like(A)


# name -> (function of Z, derivative as a function of the output A)
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "identity": (identity, identity_grad),
}


def get_activation(name):
    """Return ``(f, f_grad_from_output)`` for an activation name; unknown names list the options."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}.") from None


# ------------------------------------------------------------------- softmax, cross-entropy


def log_softmax(Z):
    """Log of the softmax over the classes of each row, by log-sum-exp.

    The row maximum is subtracted before ``exp`` (so ``exp`` sees values <= 0 and cannot
    overflow), and the normalisation runs over axis 1, the classes of one sample, never
    over the batch (seed mistake 2).

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_classes)
        Logits.

    Returns
    -------
    ndarray of shape (n_samples, n_classes), every row's ``exp`` summing to 1.
    """
    xp = array_module_of(Z)
    S = Z - row_max(Z)  # (n, k), each row's largest entry is 0
    return S - xp.log(xp.exp(S).sum(axis=1, keepdims=True))


def softmax(Z):
    """Softmax over the classes of each row, shape (n_samples, n_classes); rows sum to 1."""
    xp = array_module_of(Z)
    E = xp.exp(Z - row_max(Z))  # (n, k), largest entry of each row is 1
    E /= E.sum(axis=1, keepdims=True)
    return E


def row_max(Z, row_starts=None):
    """The largest entry of each row of ``Z`` (n, k), as an (n, 1) column.

    Found through ``argmax``, which NumPy computes several times faster than ``max`` over a
    short last axis (docs/performance.md); the value is the same.
    ``row_starts``, ``arange(n) * k`` (where each row begins in ``Z`` flattened), may be passed
    by a caller that has it already.
    """
    xp = array_module_of(Z)
    n, k = Z.shape
    if row_starts is None:
        row_starts = xp.arange(n) * k
    return xp.ascontiguousarray(Z).ravel().take(Z.argmax(axis=1) + row_starts)[:, None]


def one_hot(y, n_classes, dtype="float32"):
    """Integer labels ``y`` of shape (n,) to the one-hot matrix ``Y`` of shape (n, n_classes)."""
    xp = array_module_of(y)
    Y = xp.zeros((y.shape[0], n_classes), dtype=dtype)
    Y[xp.arange(y.shape[0]), y] = 1
    return Y


def softmax_cross_entropy(Z, y, label_smoothing=0.0, sample_weight=None):
    """Mean cross-entropy of softmax(Z) against integer labels, and its gradient at the logits.

    This is the one place in steadynet where the batch mean is taken. Everything upstream
    (the weight gradients of every layer) inherits the ``1 / n`` from ``dZ`` returned here,
    so no layer divides by the batch size again (seed mistake 7).

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_classes)
        Logits: the output layer's pre-activation, before any softmax.
    y : ndarray of shape (n_samples,), integer
        Class index of each sample (not one-hot; seed mistake 1 fed such labels to a formula
        that needed one-hot ``Y``).
    label_smoothing : float, default=0.0
        Mixes the one-hot target with the uniform distribution: target = (1 - s) Y + s / k.
    sample_weight : ndarray of shape (n_samples,), optional
        Per-sample weights; the mean becomes ``sum(w * loss) / sum(w)``.

    Returns
    -------
    loss : float
        Mean over the batch of ``-sum_k target_k log p_k``; always >= 0.
    dZ : ndarray of shape (n_samples, n_classes), same dtype as ``Z``
        Gradient of ``loss`` with respect to ``Z``.
    """
    xp = array_module_of(Z)
    n, k = Z.shape
    y = xp.asarray(y)
    if n and not 0 <= int(y.min()) <= int(y.max()) < k:  # else a label would index another row
        raise ConfigError(
            f"labels must be class indices 0 to {k - 1} for {k} logits per row, got {int(y.min())} to {int(y.max())}."
        )
    row_starts = xp.arange(n) * k  # (n,): where each row begins in a flat (n, k) array
    true = row_starts + y  # (n,): where each sample's true class is
    # log-sum-exp, the row maximum subtracted first so that exp cannot overflow
    S = Z - row_max(Z, row_starts)  # (n, k), log P = S - log(sum exp S)
    E = xp.exp(S)  # (n, k)
    total = E.sum(axis=1, keepdims=True)  # (n, 1)
    log_total = xp.log(total)
    if sample_weight is None:
        w = None
        scale = 1.0 / n
    else:
        w = sample_weight.astype(Z.dtype)
        scale = 1.0 / float(w.sum())
    # per-sample loss: -log p of the true class (seed mistake 3 picked whole rows instead)
    nll = log_total[:, 0] - S.ravel().take(true)  # (n,)
    if label_smoothing:  # the uniform part: -(1/k) sum_k log p_k
        nll = (1 - label_smoothing) * nll + (label_smoothing / k) * (k * log_total[:, 0] - S.sum(axis=1))
    loss = float((nll if w is None else nll * w).sum()) * scale
    # With softmax and cross-entropy together, the gradient at the logits is simply
    # P - Y (the softmax Jacobian cancels against the log): no extra "softmax derivative"
    # factor (seed mistake 4), and it is P - Y, not Y - P (seed mistake 6: that is the
    # negative gradient, and subtracting it climbs the loss).
    dZ = E
    dZ /= total  # P, (n, k)
    if label_smoothing:
        dZ -= label_smoothing / k
        dZ.ravel()[true] -= 1 - label_smoothing
    else:
        dZ.ravel()[true] -= 1
    if w is not None:
        dZ *= w[:, None]
    dZ *= Z.dtype.type(scale)  # the batch mean: the only division by n in steadynet
    return loss, dZ


def distillation_cross_entropy(Z, y, P_teacher, temperature=4.0, weight=0.5, label_smoothing=0.0):
    """Knowledge-distillation loss and its gradient at the student's logits (Hinton et al. 2015).

    The labels' cross-entropy mixed with the divergence of the student's softened
    probabilities from the teacher's::

        loss = (1 - weight) * CE(softmax(Z), y) + weight * T^2 * KL(P_teacher || softmax(Z / T))

    The KL divergence is the cross-entropy against the teacher less the teacher's own
    entropy, a constant: the gradient is the same, and the loss stays 0 for a student that
    matches both targets, so it reads like any other loss.

    The soft term's gradient at ``Z`` is ``T * (softmax(Z / T) - P_teacher) / n``: its
    ``1 / T`` from the chain rule is why the term carries ``T^2``, which keeps its pull the
    same size relative to the labels' whatever the temperature. Like
    :func:`softmax_cross_entropy` (which computes the labels' part), this takes the batch
    mean itself, once per term.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_classes)
        The student's logits.
    y : ndarray of shape (n_samples,), integer
        Class labels.
    P_teacher : ndarray of shape (n_samples, n_classes)
        The teacher's probabilities at the same temperature, ``softmax(Z_teacher / T)``; rows
        sum to 1.
    temperature : float, default=4.0
    weight : float in [0, 1], default=0.5
        Share of the soft term; 0 is plain training on the labels.
    label_smoothing : float, default=0.0
        Applied to the labels' term, as in :func:`softmax_cross_entropy`.

    Returns
    -------
    loss : float
    dZ : ndarray of shape (n_samples, n_classes), ``Z``'s dtype

    References
    ----------
    Hinton, G., Vinyals, O. and Dean, J. (2015). Distilling the knowledge in a neural network.
    arXiv:1503.02531.
    """
    xp = array_module_of(Z)
    n, T = Z.shape[0], float(temperature)
    hard, dZ = softmax_cross_entropy(Z, y, label_smoothing)
    log_Q = log_softmax(Z / Z.dtype.type(T))  # (n, k), the student's softened log-probabilities
    log_P = xp.log(xp.maximum(P_teacher, xp.finfo(Z.dtype).tiny))  # 0 * log 0 counts as 0
    soft = float((P_teacher * (log_P - log_Q)).sum()) * T * T / n
    dZ_soft = xp.exp(log_Q)  # Q, (n, k)
    dZ_soft -= P_teacher
    dZ_soft *= Z.dtype.type(weight * T / n)
    dZ *= Z.dtype.type(1 - weight)
    dZ += dZ_soft
    return (1 - weight) * hard + weight * soft, dZ
