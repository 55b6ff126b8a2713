"""Input centring: the first layer trained as if every input feature had mean zero.

Images on a light ground (dark strokes on white, every pixel near 1) share one large common
component: each first-layer unit's gradient ``dW = X.T @ dZ`` then pushes all of its weights
the same way, the step moves every unit together, and a ReLU network at the usual learning
rate kills its units in the first epoch. Measured on MNIST with inverted pixels (784-100-10
ReLU, 3 epochs, the default Nesterov schedule, seeds 0 and 1): 35.2% and 11.4% test accuracy
as they are, 97.9% and 97.5% centred (docs/accuracy.md).

Centring is a change of coordinates of the first layer, not of the model: with ``mu`` the
training images' mean per feature,

    Z = X @ W + b = (X - mu) @ W + c,      c = b + mu @ W,

so the optimiser updates ``(W, c)``, whose gradients are those of a network fed centred
inputs (``dW - outer(mu, db)`` and ``db``), and ``b = c - mu @ W`` is written back after
each step. The run starts where that network starts, ``c`` at its initial value (zero):
:func:`centred_start_` sets ``b = -mu @ W``, so the first logits are as close together as
on dark digits (inverted MNIST, 784-100-10 ReLU: initial loss 2.86 from ``b = 0`` against
ln 10 = 2.30; 5 epochs, seeds 0-2, test 97.69-97.81% against 97.39-97.57%). The model, its
files and everything that reads them see a plain MLP on the raw pixels; only the path the
weights take changes.
"""

import numpy as np

CHUNK = 8192  # rows per pass over the training images (bounded memory for the statistics)


def input_statistics(X, sample_weight=None):
    """The training inputs as the network sees them (uint8 pixels scaled to [0, 1]).

    Parameters
    ----------
    X : ndarray of shape (n, d), uint8 pixels or floats
    sample_weight : ndarray of shape (n,) or None
        Weights of the rows (the scikit-learn estimator's): a row of weight 2 counts as
        two. None, or weights that sum to 0, weigh every row alike.

    Returns
    -------
    mu : ndarray of shape (d,), float64, the mean of each feature
    mean, std : float, over every value of ``X``
    """
    scale = 1.0 / 255.0 if X.dtype == np.uint8 else 1.0
    w = None if sample_weight is None or not np.sum(sample_weight) > 0 else np.asarray(sample_weight, np.float64)
    total = np.zeros(X.shape[1])
    squares = 0.0
    for start in range(0, X.shape[0], CHUNK):
        chunk = X[start : start + CHUNK].astype(np.float64) * scale
        if w is None:
            total += chunk.sum(axis=0)
            squares += float(np.einsum("ij,ij->", chunk, chunk))
        else:
            wc = w[start : start + CHUNK]
            total += wc @ chunk
            squares += float(np.einsum("i,ij,ij->", wc, chunk, chunk))
    n = max(X.shape[0], 1) if w is None else float(w.sum())
    mu = total / n
    mean = float(mu.mean())
    variance = max(squares / (n * max(X.shape[1], 1)) - mean * mean, 0.0)
    return mu, mean, float(np.sqrt(variance))


def centring(setting, X, sample_weight=None):
    """Whether a run centres its inputs, and the evidence, as ``config.json`` records it.

    ``setting`` is ``TrainConfig.centre_inputs``: ``"on"``, ``"off"``, or ``"auto"``, which
    centres when the inputs' mean is larger than their spread (``mean > std`` over every
    value: the common component carries more of the inputs' energy than their variation, as on
    a light ground). MNIST's digits (mean 0.13, std 0.31) are left as they are.

    Returns
    -------
    mu : ndarray of shape (d,) or None
        The per-feature mean to centre on, or None for no centring.
    record : dict
        ``{"setting", "mean", "std", "centred"}``.
    """
    if setting == "off":
        return None, {"setting": setting, "centred": False}
    mu, mean, std = input_statistics(X, sample_weight)
    centred = setting == "on" or mean > std
    record = {"setting": setting, "mean": round(mean, 4), "std": round(std, 4), "centred": centred}
    return (mu if centred else None), record


def centred_start_(model, mu):
    """Shift the first layer's bias so that ``model`` computes, on raw inputs ``X``, what it
    would on ``X - mu`` with its initial bias: ``b1 -= mu @ W1`` (in place).

    Parameters
    ----------
    model : MLP
    mu : ndarray of shape (n_inputs,)
    """
    W, b = model.params["W1"], model.params["b1"]
    b -= model.xp.asarray(mu, dtype=model.dtype) @ W


class CentredFirstLayer:
    """An optimiser that updates the model's first layer in centred coordinates (see the module).

    Wraps any :class:`steadynet.optim.Optimizer`: its state (momentum, Adam's moments) lives
    in the centred coordinates, so checkpoints and resume work unchanged as long as the same
    ``mu`` is used, which it is: ``mu`` is a function of the training split.

    Parameters
    ----------
    optimizer : Optimizer
    model : MLP
        Whose ``W1``, ``b1`` and their gradients are views into the flat arrays the
        optimiser's ``step`` is given.
    mu : ndarray of shape (n_inputs,)
    """

    def __init__(self, optimizer, model, mu):
        self.inner = optimizer
        self.W, self.b = model.params["W1"], model.params["b1"]
        self.dW, self.db = model.grads["W1"], model.grads["b1"]
        self.mu = model.xp.asarray(mu, dtype=model.dtype)

    def step(self, theta, grad, lr):
        """One step of the wrapped optimiser on ``(W, c)``; ``grad`` is left as the centred gradient."""
        self.b += self.mu @ self.W  # c = b + mu W
        self.dW -= self.mu[:, None] * self.db  # the centred network's dW: dW - outer(mu, db)
        self.inner.step(theta, grad, lr)
        self.b -= self.mu @ self.W  # back to the raw pixels' bias

    # what the training loop and the checkpoints ask of an optimiser
    @property
    def engine(self):
        return self.inner.engine

    @engine.setter
    def engine(self, value):
        self.inner.engine = value

    def __getattr__(self, name):  # state_names, state_dict, load_state_dict, t, ...
        if name == "inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
