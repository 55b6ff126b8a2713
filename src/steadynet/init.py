"""Weight initialisation, scaled to each layer's fan-in and fan-out.

The seed drew every weight from ``np.random.rand``: uniform on [0, 1), all positive and far
too large, so with 784 inputs each hidden unit's pre-activation started near +50 and its
sigmoid saturated at once (seed mistake 8). The schemes here keep the variance of the
activations roughly constant from layer to layer instead.

References
----------
Glorot, X. and Bengio, Y. (2010). Understanding the difficulty of training deep feedforward
neural networks. AISTATS.
He, K., Zhang, X., Ren, S. and Sun, J. (2015). Delving deep into rectifiers: surpassing
human-level performance on ImageNet classification. ICCV.
"""

import numpy as np

from .errors import ConfigError


def glorot_uniform(rng, fan_in, fan_out):
    """Uniform on ``[-r, r]`` with ``r = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010).

    Returns an ndarray of shape (fan_in, fan_out), float64.
    """
    r = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=(fan_in, fan_out))


def he_normal(rng, fan_in, fan_out):
    """Normal with standard deviation ``sqrt(2 / fan_in)`` (He et al. 2015), for (leaky) ReLU.

    Returns an ndarray of shape (fan_in, fan_out), float64.
    """
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def uniform_01(rng, fan_in, fan_out):
    """The seed's ``np.random.rand``: uniform on [0, 1). Kept only to reproduce the seed's failure."""
    return rng.uniform(0.0, 1.0, size=(fan_in, fan_out))


INITS = {"glorot_uniform": glorot_uniform, "he_normal": he_normal, "uniform_01": uniform_01}

# the scheme each activation is designed for
INIT_FOR_ACTIVATION = {
    "sigmoid": "glorot_uniform",
    "tanh": "glorot_uniform",
    "identity": "glorot_uniform",
    "relu": "he_normal",
    "leaky_relu": "he_normal",
}


def init_weights(rng, fan_in, fan_out, scheme):
    """Draw a (fan_in, fan_out) float64 weight matrix by ``scheme`` (a key of ``INITS``)."""
    try:
        return INITS[scheme](rng, fan_in, fan_out)
    except KeyError:
        raise ConfigError(f"init must be one of {sorted(INITS)}, got {scheme!r}.") from None
