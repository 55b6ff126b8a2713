"""Weight initialisation, scaled to each layer's fan-in and fan-out: the schemes, their scale
formulas (:func:`glorot_limit`, :func:`he_std`, and :func:`init_rms` for what each scheme's
weights come out as), and the scheme each activation is designed for.

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

import math

import numpy as np

from .errors import ConfigError


def glorot_limit(fan_in, fan_out):
    """``r = sqrt(6 / (fan_in + fan_out))``: Glorot's uniform weights lie in ``[-r, r]``, which
    gives them the variance ``2 / (fan_in + fan_out)``."""
    return np.sqrt(6.0 / (fan_in + fan_out))


def he_std(fan_in):
    """``sqrt(2 / fan_in)``: the standard deviation of He's normal weights."""
    return np.sqrt(2.0 / fan_in)


def glorot_uniform(rng, fan_in, fan_out):
    """Uniform on ``[-r, r]`` with ``r`` = :func:`glorot_limit` (Glorot & Bengio 2010).

    Returns an ndarray of shape (fan_in, fan_out), float64.
    """
    r = glorot_limit(fan_in, fan_out)
    return rng.uniform(-r, r, size=(fan_in, fan_out))


def he_normal(rng, fan_in, fan_out):
    """Normal with standard deviation :func:`he_std` (He et al. 2015), for (leaky) ReLU.

    Returns an ndarray of shape (fan_in, fan_out), float64.
    """
    return rng.normal(0.0, he_std(fan_in), size=(fan_in, fan_out))


def uniform_01(rng, fan_in, fan_out):
    """The seed's ``np.random.rand``: uniform on [0, 1). Kept only to reproduce the seed's failure."""
    return rng.uniform(0.0, 1.0, size=(fan_in, fan_out))


INITS = {"glorot_uniform": glorot_uniform, "he_normal": he_normal, "uniform_01": uniform_01}

# the root mean square sqrt(E[w^2]) of the weights each scheme draws: uniform on [-r, r] gives
# r / sqrt(3), a zero-mean normal its standard deviation, uniform on [0, 1) sqrt(1 / 3)
RMS = {
    "glorot_uniform": lambda fan_in, fan_out: float(glorot_limit(fan_in, fan_out)) / math.sqrt(3.0),
    "he_normal": lambda fan_in, fan_out: float(he_std(fan_in)),
    "uniform_01": lambda fan_in, fan_out: math.sqrt(1.0 / 3.0),
}


def init_rms(scheme, fan_in, fan_out):
    """The root mean square of the (fan_in, fan_out) weights that ``scheme`` draws."""
    return RMS[scheme](fan_in, fan_out)


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
