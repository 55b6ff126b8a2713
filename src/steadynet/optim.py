"""Optimisers over one flat parameter buffer.

Optimisers never see the network: ``step(theta, grad, lr)`` takes the model's flat parameter
array and its gradient (same shape), and keeps its own state as arrays of that shape. One
step is therefore a handful of vectorised calls whatever the number of layers. The first
``n_weights`` entries of ``theta`` are weights and the rest biases; weight decay applies to
the weights only.

References
----------
Kingma, D. P. and Ba, J. (2015). Adam: a method for stochastic optimization. ICLR.
Loshchilov, I. and Hutter, F. (2019). Decoupled weight decay regularization. ICLR.
Sutskever, I., Martens, J., Dahl, G. and Hinton, G. (2013). On the importance of
initialization and momentum in deep learning. ICML.
"""

import math

import numpy as np

from .backend import array_module_of
from .errors import ConfigError


class Optimizer:
    """Base class. Subclasses implement :meth:`_step` and list their state arrays in ``_state``.

    Parameters
    ----------
    n_weights : int
        Length of the weight prefix of ``theta``; decay applies to ``theta[:n_weights]``.
    weight_decay : float, default=0.0
        L2 penalty ``weight_decay / 2 * ||W||^2`` added to the loss (AdamW: decoupled decay).
    """

    _state = ()

    def __init__(self, n_weights, weight_decay=0.0):
        self.n_weights = int(n_weights)
        self.weight_decay = float(weight_decay)
        self.t = 0  # number of steps taken
        self._buf = None  # scratch array shaped like theta

    def step(self, theta, grad, lr):
        """Update ``theta`` in place from ``grad`` with learning rate ``lr``; ``grad`` is left
        as it was, except that the L2 term is added to its weight part."""
        if self._buf is None:
            self._init_state(theta)
        self.t += 1
        if self.weight_decay and not self.decoupled:
            W, dW = theta[:self.n_weights], grad[:self.n_weights]
            dW += self.weight_decay * W  # gradient of weight_decay / 2 * ||W||^2
        self._step(theta, grad, float(lr))

    decoupled = False

    def _init_state(self, theta):
        xp = array_module_of(theta)
        self._buf = xp.empty_like(theta)
        for name in self._state:
            setattr(self, name, xp.zeros_like(theta))

    def state_dict(self):
        """Step count and state arrays (NumPy) for checkpoints."""
        from .backend import to_numpy

        state = {"t": np.array(self.t)}
        if self._buf is not None:
            state.update({name: to_numpy(getattr(self, name)).copy() for name in self._state})
        return state

    def load_state_dict(self, state, theta):
        """Restore what :meth:`state_dict` returned, for a model whose flat parameters are ``theta``."""
        xp = array_module_of(theta)
        self.t = int(state["t"])
        self._init_state(theta)
        for name in self._state:
            if name in state:
                getattr(self, name)[...] = xp.asarray(state[name])


class SGD(Optimizer):
    """Plain gradient descent: ``theta -= lr * grad``."""

    def _step(self, theta, grad, lr):
        buf = self._buf
        array_module_of(theta).multiply(grad, lr, out=buf)
        theta -= buf


class Momentum(Optimizer):
    """SGD with heavy-ball or Nesterov momentum, in the form PyTorch's ``SGD`` uses::

        v = mu * v + grad
        theta -= lr * v                   # heavy ball
        theta -= lr * (grad + mu * v)     # Nesterov
    """

    _state = ("v",)

    def __init__(self, n_weights, weight_decay=0.0, momentum=0.9, nesterov=False):
        super().__init__(n_weights, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}.")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _step(self, theta, grad, lr):
        v, buf, mu = self.v, self._buf, self.momentum
        v *= mu
        v += grad
        if self.nesterov:
            buf[...] = v
            buf *= mu
            buf += grad
        else:
            buf[...] = v
        buf *= lr
        theta -= buf


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as PyTorch computes it::

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        theta -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    With ``decoupled=True`` this is AdamW (Loshchilov & Hutter 2019): the weights shrink by
    ``lr * weight_decay`` each step instead of the decay entering the gradient.
    """

    _state = ("m", "v")

    def __init__(self, n_weights, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8,
                 decoupled=False):
        super().__init__(n_weights, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.decoupled = bool(decoupled)

    def _step(self, theta, grad, lr):
        xp = array_module_of(theta)
        m, v, buf, b1, b2 = self.m, self.v, self._buf, self.beta1, self.beta2
        if self.decoupled and self.weight_decay:
            theta[:self.n_weights] *= 1.0 - lr * self.weight_decay
        # m = b1 m + (1 - b1) g
        m *= b1
        xp.multiply(grad, 1.0 - b1, out=buf)
        m += buf
        # v = b2 v + (1 - b2) g^2
        v *= b2
        xp.multiply(grad, grad, out=buf)
        buf *= 1.0 - b2
        v += buf
        # theta -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
        bc1, bc2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        xp.sqrt(v, out=buf)
        buf *= 1.0 / math.sqrt(bc2)
        buf += self.eps
        xp.divide(m, buf, out=buf)
        buf *= lr / bc1
        theta -= buf


def make_optimizer(name, n_weights, weight_decay=0.0, momentum=0.9):
    """Build an optimiser by name (a key of ``OPTIMIZERS``)."""
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}.") from None
    return factory(n_weights, weight_decay, momentum)


OPTIMIZERS = {
    "sgd": lambda n, wd, mu: SGD(n, wd),
    "momentum": lambda n, wd, mu: Momentum(n, wd, mu),
    "nesterov": lambda n, wd, mu: Momentum(n, wd, mu, nesterov=True),
    "adam": lambda n, wd, mu: Adam(n, wd),
    "adamw": lambda n, wd, mu: Adam(n, wd, decoupled=True),
}


def clip_grad_norm(grad, max_norm):
    """Scale ``grad`` in place so that its global L2 norm is at most ``max_norm``.

    Returns the norm before clipping.
    """
    norm = math.sqrt(float(grad @ grad))
    if norm > max_norm:
        grad *= max_norm / (norm + 1e-12)
    return norm
