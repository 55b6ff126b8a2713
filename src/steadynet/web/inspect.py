"""What the page shows about one input: pure functions of a model and arrays.

:func:`inspect_input` gives the class probabilities, the hidden activations and the input
gradient (the saliency map) of one image, from one forward pass and the model's own
backward (:meth:`steadynet.model.MLP.input_gradient`). The test set's most confident
mistakes are :func:`steadynet.metrics.confident_mistakes` of the model's probabilities.
Nothing here knows about HTTP or the served state (:mod:`steadynet.web.state`).
"""

import numpy as np

from ..backend import to_numpy
from ..data.dataset import as_float_batch
from ..functional import softmax
from ..layers import Activation


def inspect_input(model, x):
    """Everything the page shows about one input: its probabilities, activations and saliency.

    The saliency is the gradient of the top class's logit ``z_k``, not of its probability:
    when the model is sure, ``p_k (1 - p_k)`` is nearly 0 and the probability's gradient
    vanishes with it, while the logit's still says which pixels raise or lower the class's
    score.

    The layers cache their inputs during ``forward`` and the backward writes into the
    model's gradient buffer, so calls on one model must not overlap
    (:class:`~steadynet.web.state.Inspector` holds a lock); the buffer is otherwise unused
    by a model that is only served.

    Parameters
    ----------
    model : MLP
    x : ndarray of shape (n_inputs,), float, values in [0, 1]

    Returns
    -------
    P : ndarray of shape (n_classes,), the model's dtype
        Class probabilities.
    hidden : list of ndarray of shape (n_units,)
        Each hidden layer's activations ``A``, input side first.
    G : ndarray of shape (n_inputs,)
        ``d z_k / d x`` for the most probable class ``k = argmax P``.
    """
    X = as_float_batch(np.asarray(x)[None, :], model.dtype, model.xp)  # (1, n_inputs)
    Z = model.forward(X)  # (1, n_classes)
    P = to_numpy(softmax(Z))[0]
    hidden = [to_numpy(layer.A)[0].copy() for layer in model.layers if isinstance(layer, Activation)]
    G = model.input_gradient(X, int(P.argmax()), of="logit")  # (1, n_inputs); runs its own forward
    return P, hidden, to_numpy(G)[0]
