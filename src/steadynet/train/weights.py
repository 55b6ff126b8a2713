"""What the loop does to the weights besides the optimiser's step: a max-norm constraint and
an exponential moving average for evaluation.

References
----------
Srivastava, N., Hinton, G., Krizhevsky, A., Sutskever, I. and Salakhutdinov, R. (2014).
Dropout: a simple way to prevent neural networks from overfitting. JMLR 15.
Polyak, B. T. and Juditsky, A. B. (1992). Acceleration of stochastic approximation by
averaging. SIAM J. Control Optim. 30(4).
"""

from contextlib import contextmanager

from ..backend import array_module_of


def max_norm_(weights, max_norm):
    """Rescale, in place, every column of each ``W`` whose L2 norm exceeds ``max_norm``.

    Column ``j`` of ``W`` (n_in, n_out) holds the incoming weights of unit ``j``; capping its
    norm (Srivastava et al. 2014, section 5.1) bounds each unit's pre-activation whatever the
    learning rate, which lets dropout nets train with large steps.

    Parameters
    ----------
    weights : list of ndarray of shape (n_in, n_out)
        Views into the model's flat parameter buffer (``model.params["W1"]``, ...).
    max_norm : float
    """
    for W in weights:
        xp = array_module_of(W)
        norms = xp.sqrt(xp.einsum("ij,ij->j", W, W))  # (n_out,)
        W *= xp.minimum(1, max_norm / (norms + W.dtype.type(1e-12)))  # columns under the cap: x1


def hidden_weights(model):
    """The weight matrices feeding hidden units (all but the output layer's)."""
    return [model.params[f"W{i}"] for i in range(1, len(model.layer_sizes) - 1)]


class WeightAverage:
    """Exponential moving average of the flat parameters, ``theta_avg``.

    After each step, ``theta_avg += (1 - d) * (theta - theta_avg)`` with
    ``d = min(decay, (1 + t) / (10 + t))`` at step ``t``: the average forgets its start
    (the random initial weights) quickly, then settles to a window of about
    ``1 / (1 - decay)`` steps. ``d`` depends only on the step number, so a resumed run that
    restores ``theta_avg`` from its checkpoint continues exactly.

    Parameters
    ----------
    theta : ndarray of shape (n_params,)
        The model's flat parameters; the average starts as a copy.
    decay : float in (0, 1)
    """

    def __init__(self, theta, decay):
        self.decay = float(decay)
        self.theta = theta.copy()
        self._buf = array_module_of(theta).empty_like(theta)

    def update(self, theta, step):
        """Fold in ``theta`` after optimiser step number ``step`` (0-based)."""
        d = min(self.decay, (1 + step) / (10 + step))
        buf = self._buf
        array_module_of(theta).subtract(theta, self.theta, out=buf)
        buf *= 1 - d
        self.theta += buf

    @contextmanager
    def applied(self, model):
        """Within the block, ``model`` holds the averaged weights; its own come back after."""
        own = model.theta.copy()
        model.theta[...] = self.theta
        try:
            yield model
        finally:
            model.theta[...] = own
