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

from . import blas
from .backend import array_module_of
from .errors import ConfigError

# Elements per block of the update. An update makes several passes over its arrays (Adam
# seven); block by block, each pass finds the block in the CPU cache instead of memory.
# The blocks run one after the other: BLAS threads still spinning after the step's matrix
# products made a second thread of ours slower, not faster (the 13-pass Adam this replaced,
# 636K parameters right after a GEMM, 2 cores: 2.6 ms per step on two threads, 1.9 on one).
BLOCK = 1 << 16

# Arrays shorter than this are updated with NumPy's ufuncs instead of BLAS's axpby: a BLAS
# call costs ~5 us more to set up (ctypes, pointers), which pays only on longer arrays.
# Measured, one float32 axpby (2 cores): 12.0 against 13.2 us at 24K values, 17.8 against
# 25.5 us at 50K. The choice is made for the whole array, so that updating it block by block
# rounds exactly as one update of the whole array does.
BLAS_MIN = 1 << 15

# State entries whose gradient stops (a pixel that is 0 in every later batch, a dead ReLU
# unit) shrink by their decay every step until they become subnormal: floats below ~1e-38
# in float32, on which x86 CPUs take ~100 cycles per operation instead of one. On MNIST,
# 1.5% of Adam's first moments were subnormal after 3 epochs of 784-800-10, and they doubled
# the cost of every step. So every FLUSH_EVERY steps, entries too small to stay normal for
# the next FLUSH_EVERY steps (below tiny / decay**FLUSH_EVERY: 1e-35 for a decay of 0.9) are
# set to exactly 0. They are far too small to move any weight: the update they make is
# below a float32 weight's last bit.
FLUSH_EVERY = 64


class Optimizer:
    """Base class. Subclasses implement ``_step(lr, theta, grad, buf, *state)``, called on
    matching blocks of the flat arrays (``buf`` is scratch space, ``state`` the arrays named in
    ``state_names``, in that order), and write ``y = a x + b y`` as ``self.axpby(a, x, b, y, buf)``
    (see :mod:`steadynet.blas` and ``BLAS_MIN``).

    Parameters
    ----------
    n_weights : int
        Length of the weight prefix of ``theta``; decay applies to ``theta[:n_weights]``.
    weight_decay : float, default=0.0
        L2 penalty ``weight_decay / 2 * ||W||^2`` added to the loss (AdamW: decoupled decay).
    """

    state_names: tuple[str, ...] = ()  # the per-parameter state arrays, in _step's order

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
        if self.engine == "numba" and array_module_of(theta) is np:
            self._fused_step(float(lr), theta, grad)  # one compiled pass, weight decay included
        else:
            self._numpy_step(float(lr), theta, grad)
        if self.t % FLUSH_EVERY == 0:
            self._flush_subnormals()

    def _numpy_step(self, lr, theta, grad):
        """The reference: the update as NumPy (or CuPy) array operations."""
        if self.weight_decay and self.decoupled:
            theta[: self.n_weights] *= 1.0 - lr * self.weight_decay  # AdamW: shrink the weights
        elif self.weight_decay:
            # dW += weight_decay * W, the gradient of weight_decay / 2 * ||W||^2
            self.axpby(
                self.weight_decay, theta[: self.n_weights], 1.0, grad[: self.n_weights], self._buf[: self.n_weights]
            )
        arrays = [theta, grad, self._buf] + [getattr(self, name) for name in self.state_names]
        if array_module_of(theta) is not np or theta.shape[0] <= 2 * BLOCK:  # a GPU: one launch
            self._step(float(lr), *arrays)
        else:
            self._blocked_step(float(lr), arrays)

    def _blocked_step(self, lr, arrays):
        """``_step`` on consecutive blocks of ``BLOCK`` elements.

        Every block uses the same scratch space, the start of ``buf``, which so stays in
        the cache: a block of its own for each would be fetched from memory and written back
        every step, for nothing. (Adam, measured inside training, the two interleaved step by
        step: 784-800-10 1.80-1.98 instead of 1.96-2.17 ms, 784-512-512-512-10 3.07 instead
        of 3.39 ms per step.)"""
        theta, grad, buf, *state = arrays
        n = theta.shape[0]
        for s in range(0, n, BLOCK):
            block = slice(s, s + BLOCK)
            self._step(lr, theta[block], grad[block], buf[: min(BLOCK, n - s)], *(a[block] for a in state))

    decoupled = False
    fused = True  # may use BLAS's axpby (see BLAS_MIN)
    engine = "numpy"  # "numba": the update is one compiled pass (_fused_step, steadynet.kernels)

    def _decays(self):
        """``{state name: factor it decays by each step without gradient}``."""
        return {}

    def _flush_subnormals(self):
        """Zero the state entries that would turn subnormal within ``FLUSH_EVERY`` steps."""
        if array_module_of(self._buf) is not np:  # GPUs handle subnormals at full speed
            return
        for name, decay in self._decays().items():
            a = getattr(self, name)
            tiny = np.finfo(a.dtype).tiny / max(decay, 0.5) ** FLUSH_EVERY
            np.abs(a, out=self._buf)
            np.copyto(a, 0, where=self._buf < tiny)

    def _init_state(self, theta):
        xp = array_module_of(theta)
        self.axpby = blas.axpby if self.fused and theta.shape[0] >= BLAS_MIN else blas.axpby_ufuncs
        self._buf = xp.empty_like(theta)
        for name in self.state_names:
            setattr(self, name, xp.zeros_like(theta))

    def state_dict(self):
        """Step count and state arrays (NumPy) for checkpoints."""
        from .backend import to_numpy

        state = {"t": np.array(self.t)}
        if self._buf is not None:
            state.update({name: to_numpy(getattr(self, name)).copy() for name in self.state_names})
        return state

    def load_state_dict(self, state, theta):
        """Restore what :meth:`state_dict` returned, for a model whose flat parameters are ``theta``."""
        xp = array_module_of(theta)
        self.t = int(state["t"])
        self._init_state(theta)
        for name in self.state_names:
            if name in state:
                getattr(self, name)[...] = xp.asarray(state[name])


class SGD(Optimizer):
    """Plain gradient descent: ``theta -= lr * grad``."""

    # SGD and momentum keep NumPy's arithmetic, each product rounded before it is added:
    # every preset trains with momentum, and their documented results reproduce bit for bit
    # only with the rounding they were measured with. (axpby would round once, and make
    # momentum's update on 407K parameters 0.71 instead of 0.93 ms per step; worth taking
    # together with a rerun of the presets.)
    fused = False

    def _step(self, lr, theta, grad, buf):
        self.axpby(-lr, grad, 1.0, theta, buf)

    def _fused_step(self, lr, theta, grad):
        from . import kernels

        kernels.sgd_step(theta, grad, lr, self.n_weights, self.weight_decay)


class Momentum(Optimizer):
    """SGD with heavy-ball or Nesterov momentum, in the form PyTorch's ``SGD`` uses::

    v = mu * v + grad
    theta -= lr * v                   # heavy ball
    theta -= lr * (grad + mu * v)     # Nesterov
    """

    state_names = ("v",)
    fused = False  # as SGD

    def __init__(self, n_weights, weight_decay=0.0, momentum=0.9, nesterov=False):
        super().__init__(n_weights, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {momentum}.")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _decays(self):
        return {"v": self.momentum}

    def _step(self, lr, theta, grad, buf, v):
        mu = self.momentum
        self.axpby(1.0, grad, mu, v)  # v = mu v + g
        if self.nesterov:
            self.axpby(-lr * mu, v, 1.0, theta, buf)
            self.axpby(-lr, grad, 1.0, theta, buf)
        else:
            self.axpby(-lr, v, 1.0, theta, buf)

    def _fused_step(self, lr, theta, grad):
        from . import kernels

        kernels.momentum_step(theta, grad, self.v, lr, self.momentum, self.nesterov, self.n_weights, self.weight_decay)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as PyTorch computes it::

        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        theta -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    With ``decoupled=True`` this is AdamW (Loshchilov & Hutter 2019): the weights shrink by
    ``lr * weight_decay`` each step instead of the decay entering the gradient.
    """

    state_names = ("m", "v")

    def __init__(self, n_weights, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8, decoupled=False):
        super().__init__(n_weights, weight_decay)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.decoupled = bool(decoupled)

    def _decays(self):
        return {"m": self.beta1, "v": self.beta2}

    def _step(self, lr, theta, grad, buf, m, v):
        xp, b1, b2 = array_module_of(theta), self.beta1, self.beta2
        self.axpby(1.0 - b1, grad, b1, m, buf)  # m = b1 m + (1 - b1) g
        xp.square(grad, out=buf)
        self.axpby(1.0 - b2, buf, b2, v, buf)  # v = b2 v + (1 - b2) g^2
        # theta -= lr / bc1 * m / (sqrt(v / bc2) + eps), with sqrt(bc2) taken out of the
        # denominator: theta -= lr sqrt(bc2) / bc1 * m / (sqrt(v) + eps sqrt(bc2))
        bc1, root_bc2 = 1.0 - b1**self.t, math.sqrt(1.0 - b2**self.t)
        xp.sqrt(v, out=buf)
        buf += self.eps * root_bc2
        xp.divide(m, buf, out=buf)
        self.axpby(-lr * root_bc2 / bc1, buf, 1.0, theta, buf)

    def _fused_step(self, lr, theta, grad):
        from . import kernels

        kernels.adam_step(
            theta,
            grad,
            self.m,
            self.v,
            lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.t,
            self.n_weights,
            self.weight_decay,
            self.decoupled,
        )


def make_optimizer(name, n_weights, weight_decay=0.0, momentum=0.9, engine="numpy"):
    """Build an optimiser by name (a key of ``OPTIMIZERS``); ``engine="numba"`` makes its
    update one compiled pass (:mod:`steadynet.kernels`)."""
    try:
        factory = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}.") from None
    optimizer = factory(n_weights, weight_decay, momentum)
    optimizer.engine = engine
    return optimizer


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
