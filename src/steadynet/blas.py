"""``y = a * x + b * y`` in one pass, from the BLAS that NumPy already links.

NumPy has no fused multiply-add: ``y *= b; y += a * x`` is three passes over the arrays and a
temporary. BLAS has it (``axpby``, and ``axpy`` for ``b = 1``), and every NumPy build ships a
BLAS for ``matmul``. This module finds its ``axpby``/``axpy`` through NumPy's own extension
module (so it is the very library ``matmul`` uses, with the same threads) and calls them with
ctypes. Where there is none to find (another BLAS, another platform, CuPy arrays), the same
formula runs as array operations, each product rounded on its own (BLAS may round
``a * x + b * y`` once: the two can differ in the last bit).

Why not a public route: NumPy exposes no BLAS level-1 functions, and ``scipy.linalg.blas``
has ``axpy`` and ``scal`` but no ``axpby``. SciPy is also optional (the ``fast`` extra) and
ships its own copy of OpenBLAS, of another version than NumPy's: the optimisers' rounding, and
so a run's results, would depend on whether SciPy is installed, and without it every update
would fall back to the slower array operations. The one private name used here is the path of
NumPy's extension module, looked up once; if it moves, :func:`kernels` finds nothing and the
array operations run (``tests/test_blas.py`` covers both). Measurements: ``docs/performance.md``.
"""

import ctypes
import importlib

import numpy as np

from .backend import array_module_of

# NumPy's extension module, which links its BLAS: NumPy >= 2, then 1.x
EXTENSION_MODULES = ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath")

_KERNELS = None  # {(name, dtype char): ctypes function} once looked up; {} when none found


def _lookup():
    """The BLAS functions NumPy links, by ``(name, "f"/"d")``; empty when none are found."""
    for module in EXTENSION_MODULES:
        try:
            extension = importlib.import_module(module)
            break
        except ImportError:
            continue
    else:
        return {}
    try:
        library = ctypes.CDLL(extension.__file__)  # already loaded: the same handle, its BLAS visible
    except OSError:
        return {}
    found = {}
    for name in ("axpby", "axpy"):
        for char in "sd":
            # scipy-openblas (NumPy >= 2 wheels), OpenBLAS ILP64 (NumPy 1.x wheels), plain CBLAS
            for symbol, integer in (
                (f"scipy_cblas_{char}{name}64_", ctypes.c_int64),
                (f"cblas_{char}{name}64_", ctypes.c_int64),
                (f"cblas_{char}{name}", ctypes.c_int),
            ):
                function = getattr(library, symbol, None)
                if function is not None:
                    real = ctypes.c_float if char == "s" else ctypes.c_double
                    scalars = [real] if name == "axpy" else [real, real]
                    function.argtypes = (
                        [integer, scalars[0], ctypes.c_void_p, integer] + scalars[1:] + [ctypes.c_void_p, integer]
                    )
                    function.restype = None
                    found[name, "f" if char == "s" else "d"] = function
                    break
    return found


def kernels():
    """The BLAS kernels found (looked up once)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = _lookup()
    return _KERNELS


def axpby(a, x, b, y, scratch=None):
    """``y = a * x + b * y`` in place.

    Parameters
    ----------
    a, b : float
    x, y : ndarray of shape (n,), the same dtype
        ``y`` is overwritten. One BLAS call for contiguous float32/float64 NumPy arrays,
        :func:`axpby_ufuncs` otherwise.
    scratch : ndarray shaped like ``y``, optional
        Room for ``a * x`` if :func:`axpby_ufuncs` runs (it may be ``x`` itself, which is
        then overwritten); without it, a temporary array.
    """
    function = _kernel("axpby" if b != 1 else "axpy", x, y)
    if function is None:
        axpby_ufuncs(a, x, b, y, scratch)
    elif b != 1:
        function(y.size, a, x.ctypes.data, 1, b, y.ctypes.data, 1)
    else:
        function(y.size, a, x.ctypes.data, 1, y.ctypes.data, 1)


def axpby_ufuncs(a, x, b, y, scratch=None):
    """``y = a * x + b * y`` in place with array operations (NumPy or CuPy): ``y *= b``,
    then ``y += a * x``, each product rounded on its own (and skipped where a factor is 1).
    ``scratch`` as for :func:`axpby`."""
    if b != 1:
        y *= b
    if a == 1:
        y += x
    elif scratch is None:
        y += a * x
    else:
        y += array_module_of(x).multiply(x, a, out=scratch)


def _kernel(name, x, y):
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        return None
    if x.dtype != y.dtype or x.shape != y.shape or x.ndim != 1 or not (x.flags.c_contiguous and y.flags.c_contiguous):
        return None
    return kernels().get((name, x.dtype.char))
