"""Optimisers over one flat parameter buffer: the update rules and the kernels that run them.

Optimisers never see the network: ``step(theta, grad, lr)`` takes the model's flat parameter
array and its gradient (same shape), and keeps its own state as arrays of that shape. One
step is therefore a handful of vectorised calls whatever the number of layers. The first
``n_weights`` entries of ``theta`` are weights and the rest biases; weight decay applies to
the weights only.

Each class states its rule twice, one beside the other:

- ``_plain_step``, the formula: a few lines of NumPy, as a textbook writes it. It is the
  reference (:meth:`Optimizer.plain_step` runs it); ``tests/test_optim.py`` checks that the
  kernels agree with it to rounding, step after step.
- ``_step``, the kernel training runs: the same formula as ``axpby`` calls
  (:mod:`steadynet.blas`) on reused buffers, block by block (``BLOCK``); and ``_fused_step``,
  the compiled one-pass version (:mod:`steadynet.kernels`, ``engine="numba"``).

Why the kernels have the shape they have, with the measurements behind it, is in
``docs/performance.md``. ``OPTIMIZERS`` maps the ``optimizer`` setting's names to the classes.

References
----------
Kingma, D. P. and Ba, J. (2015). Adam: a method for stochastic optimization. ICLR.
Loshchilov, I. and Hutter, F. (2019). Decoupled weight decay regularization. ICLR.
Sutskever, I., Martens, J., Dahl, G. and Hinton, G. (2013). On the importance of
initialization and momentum in deep learning. ICML.
"""

import math

import numpy as np

from . import blas, kernels
from .backend import array_module_of, to_numpy
from .errors import ConfigError

# Elements per block of the update: each of an update's passes (Adam makes seven) then finds
# its block in the CPU cache instead of memory. Blocks run one after the other, on one thread.
BLOCK = 1 << 16

# Arrays shorter than this are updated with NumPy's ufuncs instead of BLAS's axpby, whose
# setup (ctypes, pointers) costs more than it saves on short arrays. The choice is made for
# the whole array, so that updating it block by block rounds as one whole update does.
BLAS_MIN = 1 << 15

# Every FLUSH_EVERY steps, state entries that would turn subnormal within the next FLUSH_EVERY
# steps (below tiny / decay**FLUSH_EVERY) are set to 0: x86 CPUs compute on subnormals ~100x
# slower, and entries whose gradient stopped (a border pixel, a dead unit) decay into them.
# They are far too small to move any weight (below a float32 weight's last bit).
FLUSH_EVERY = 64


class Optimizer:
    """Base class. Subclasses implement the rule twice: ``_plain_step(theta, grad, lr)``, the
    formula, and ``_step(lr, theta, grad, buf, *state)``, the kernel, called on matching blocks
    of the flat arrays (``buf`` is scratch space, ``state`` the arrays named in
    ``state_names``, in that order), which writes ``y = a x + b y`` as
    ``self.axpby(a, x, b, y, buf)`` (see :mod:`steadynet.blas` and ``BLAS_MIN``).

    Parameters
    ----------
    n_weights : int
        Length of the weight prefix of ``theta``; decay applies to ``theta[:n_weights]``.
    weight_decay : float, default=0.0
        L2 penalty ``weight_decay / 2 * ||W||^2`` added to the loss (AdamW: decoupled decay).
    """

    state_names: tuple[str, ...] = ()  # the per-parameter state arrays, in _step's order
    decoupled = False
    fused = True  # may use BLAS's axpby (see BLAS_MIN)
    engine = "numpy"  # "numba": the update is one compiled pass (_fused_step, steadynet.kernels)

    def __init__(self, n_weights, weight_decay=0.0):
        self.n_weights = int(n_weights)
        self.weight_decay = float(weight_decay)
        self.t = 0  # number of steps taken
        self._buf = None  # scratch array shaped like theta

    def step(self, theta, grad, lr):
        """Update ``theta`` in place from ``grad`` with learning rate ``lr``; ``grad`` is left
        as it was, except that the L2 term is added to its weight part."""
        self._count_step(theta)
        if self.engine == "numba" and array_module_of(theta) is np:
            self._fused_step(float(lr), theta, grad)  # one compiled pass, weight decay included
        else:
            self._numpy_step(float(lr), theta, grad)
        if self.t % FLUSH_EVERY == 0:
            self._flush_subnormals()

    def plain_step(self, theta, grad, lr):
        """:meth:`step` as the rule's formula, the reference the kernels are tested against:
        ``theta`` and the state are updated in place, ``grad`` is left as it was."""
        self._count_step(theta)
        self._plain_step(theta, grad, float(lr))

    def _count_step(self, theta):
        if self._buf is None:
            self._init_state(theta)
        self.t += 1

    def _gradient_with_l2(self, theta, grad):
        """A copy of ``grad`` with the gradient of ``weight_decay / 2 * ||W||^2`` added."""
        g = grad.copy()
        g[: self.n_weights] += self.weight_decay * theta[: self.n_weights]
        return g

    def _numpy_step(self, lr, theta, grad):
        """The kernel as NumPy (or CuPy) array operations and BLAS calls."""
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

        Every block uses the same scratch space, the start of ``buf``, which so stays in the
        cache: a block of its own for each would be fetched from memory and written back every
        step, for nothing."""
        theta, grad, buf, *state = arrays
        n = theta.shape[0]
        for s in range(0, n, BLOCK):
            block = slice(s, s + BLOCK)
            self._step(lr, theta[block], grad[block], buf[: min(BLOCK, n - s)], *(a[block] for a in state))

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

    # SGD and momentum keep NumPy's arithmetic, each product rounded before it is added: the
    # presets' documented results reproduce bit for bit only with that rounding.
    fused = False

    def _plain_step(self, theta, grad, lr):
        g = self._gradient_with_l2(theta, grad)
        theta -= lr * g

    def _step(self, lr, theta, grad, buf):
        self.axpby(-lr, grad, 1.0, theta, buf)

    def _fused_step(self, lr, theta, grad):
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

    def _plain_step(self, theta, grad, lr):
        g, mu = self._gradient_with_l2(theta, grad), self.momentum
        self.v[...] = mu * self.v + g
        if self.nesterov:
            theta -= lr * (g + mu * self.v)
        else:
            theta -= lr * self.v

    def _step(self, lr, theta, grad, buf, v):
        mu = self.momentum
        self.axpby(1.0, grad, mu, v)  # v = mu v + g
        if self.nesterov:
            self.axpby(-lr * mu, v, 1.0, theta, buf)
            self.axpby(-lr, grad, 1.0, theta, buf)
        else:
            self.axpby(-lr, v, 1.0, theta, buf)

    def _fused_step(self, lr, theta, grad):
        kernels.momentum_step(theta, grad, self.v, lr, self.momentum, self.nesterov, self.n_weights, self.weight_decay)


class Nesterov(Momentum):
    """:class:`Momentum` with Nesterov's look-ahead: ``theta -= lr * (grad + mu * v)``."""

    def __init__(self, n_weights, weight_decay=0.0, momentum=0.9):
        super().__init__(n_weights, weight_decay, momentum, nesterov=True)


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

    def _plain_step(self, theta, grad, lr):
        b1, b2, t = self.beta1, self.beta2, self.t
        if self.decoupled:
            theta[: self.n_weights] *= 1 - lr * self.weight_decay
            g = grad
        else:
            g = self._gradient_with_l2(theta, grad)
        self.m[...] = b1 * self.m + (1 - b1) * g
        self.v[...] = b2 * self.v + (1 - b2) * g**2
        m_hat = self.m / (1 - b1**t)
        v_hat = self.v / (1 - b2**t)
        theta -= lr * m_hat / (np.sqrt(v_hat) + self.eps)

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


class AdamW(Adam):
    """:class:`Adam` with decoupled weight decay (Loshchilov & Hutter 2019): the weights shrink
    by ``lr * weight_decay`` each step, ``W *= 1 - lr * weight_decay``."""

    def __init__(self, n_weights, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(n_weights, weight_decay, beta1, beta2, eps, decoupled=True)


# the ``optimizer`` setting's names; each class's ``state_names`` says how many arrays it keeps
OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
    "adamw": AdamW,
}


def make_optimizer(name, n_weights, weight_decay=0.0, momentum=0.9, engine="numpy"):
    """Build an optimiser by name (a key of ``OPTIMIZERS``); ``momentum`` is used by the
    momentum rules only; ``engine="numba"`` makes its update one compiled pass
    (:mod:`steadynet.kernels`)."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}.") from None
    optimizer = cls(n_weights, weight_decay, momentum) if issubclass(cls, Momentum) else cls(n_weights, weight_decay)
    optimizer.engine = engine
    return optimizer


def clip_grad_norm(grad, max_norm):
    """Scale ``grad`` in place so that its global L2 norm is at most ``max_norm``.

    Returns the norm before clipping.
    """
    norm = math.sqrt(float(grad @ grad))
    if norm > max_norm:
        grad *= max_norm / (norm + 1e-12)
    return norm
