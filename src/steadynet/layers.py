"""Small stateful layers. Each keeps the forward and backward of one operation side by side.

Protocol: ``forward(X, training)`` returns the layer's output and caches what ``backward``
needs; ``backward(dOut)`` returns the gradient with respect to the layer's input and writes
the gradients of its parameters into ``grads`` (arrays owned by the model's flat gradient
buffer, so the optimiser sees one array).
"""

from .backend import array_module_of
from .functional import get_activation


class Dense:
    """Affine layer ``Z = X @ W + b``.

    Parameters
    ----------
    W : ndarray of shape (n_in, n_out)
    b : ndarray of shape (n_out,)
    dW, db : ndarrays shaped like ``W`` and ``b``
        Where ``backward`` writes the gradients (views into the model's flat gradient buffer).
    """

    def __init__(self, W, b, dW, db):
        self.W, self.b, self.dW, self.db = W, b, dW, db
        self.X = None

    def forward(self, X, training=False):
        """``X`` (n, n_in) -> ``Z`` (n, n_out)."""
        self.X = X
        Z = X @ self.W
        Z += self.b
        return Z

    def backward(self, dZ, need_dX=True):
        """``dZ`` (n, n_out) -> ``dX`` (n, n_in); fills ``dW`` (n_in, n_out) and ``db`` (n_out,).

        ``dZ`` already carries the ``1 / n`` of the batch mean (see
        :func:`steadynet.functional.softmax_cross_entropy`), so these are sums over the batch,
        not means: dividing here again would be the same mistake as not dividing at all.
        """
        array_module_of(dZ).matmul(self.X.T, dZ, out=self.dW)  # (n_in, n) @ (n, n_out)
        dZ.sum(axis=0, out=self.db)
        if not need_dX:  # the first layer's input is the data: its gradient is never used
            return None
        return dZ @ self.W.T  # (n, n_out) @ (n_out, n_in)

    def __repr__(self):
        return f"Dense({self.W.shape[0]}, {self.W.shape[1]})"


class Activation:
    """Element-wise activation ``A = f(Z)``; backward uses ``f'`` written in terms of ``A``."""

    def __init__(self, name):
        self.name = name
        self.f, self.f_grad = get_activation(name)
        self.A = None

    def forward(self, Z, training=False):
        self.A = self.f(Z)
        return self.A

    def backward(self, dA, need_dX=True):
        dZ = self.f_grad(self.A)  # f'(Z), computed from the cached output A
        dZ *= dA
        return dZ

    def __repr__(self):
        return f"Activation({self.name!r})"


class Dropout:
    """Inverted dropout: during training, zero each unit with probability ``rate`` and scale
    the survivors by ``1 / (1 - rate)``, so that evaluation needs no rescaling.

    Parameters
    ----------
    rate : float in [0, 1)
    rng : numpy.random.Generator or cupy.random.Generator
        Source of the masks; seeded by the model, so runs are reproducible.
    """

    def __init__(self, rate, rng):
        self.rate, self.rng = rate, rng
        self.M = None

    def forward(self, X, training=False):
        if not training or self.rate == 0:
            self.M = None
            return X
        keep = 1.0 - self.rate
        self.M = (self.rng.random(X.shape, dtype=X.dtype) < keep).astype(X.dtype)
        self.M *= X.dtype.type(1.0 / keep)  # (n, d) mask, already scaled
        return X * self.M

    def backward(self, dOut, need_dX=True):
        return dOut if self.M is None else dOut * self.M

    def __repr__(self):
        return f"Dropout({self.rate})"
