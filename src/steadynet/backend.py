"""The array backend: NumPy on the CPU, CuPy on a GPU, chosen at run time.

All numerical code takes its array module from here (``xp``), so one implementation serves
both. NumPy is the default and the only required dependency; CuPy is an optional extra
(``pip install steadynet[gpu]``).
"""

import numpy as np

from .errors import ConfigError

DEVICES = ("cpu", "gpu")


def get_array_module(device="cpu"):
    """Return the array module for ``device``: ``numpy`` for "cpu", ``cupy`` for "gpu"."""
    if device == "cpu":
        return np
    if device == "gpu":
        try:
            import cupy
        except ImportError:
            raise ConfigError(
                "{device} gpu needs CuPy, which is not installed; install it with "
                "`pip install cupy-cuda12x` (matching your CUDA), or use {device} cpu.",
                field="device",
            ) from None
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver, no device
            raise ConfigError(
                "{device} gpu: CuPy finds no usable GPU ({reason}); use {device} cpu.", field="device", reason=exc
            ) from None
        return cupy
    raise ConfigError(f"device must be one of {list(DEVICES)}, got {device!r}.")


def to_numpy(A):
    """Return ``A`` as a NumPy array (a no-op for NumPy input, a device-to-host copy for CuPy)."""
    if isinstance(A, np.ndarray):
        return A
    get = getattr(A, "get", None)
    return get() if get is not None else np.asarray(A)


def array_module_of(A):
    """The array module (numpy or cupy) that owns ``A``."""
    return np if isinstance(A, np.ndarray) else __import__("cupy")
