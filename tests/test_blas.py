"""``axpby`` from NumPy's BLAS, against the same arithmetic in NumPy."""

import numpy as np
import pytest

from steadynet import blas


def expected(a, x, b, y):
    return (a * x.astype(np.float64) + b * y.astype(np.float64)).astype(y.dtype)


def test_numpys_own_blas_is_found_on_openblas_builds():
    name = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    if "openblas" not in name:
        pytest.skip(f"NumPy here is built with {name}")
    assert {("axpby", "f"), ("axpby", "d"), ("axpy", "f"), ("axpy", "d")} <= set(blas.kernels())


@pytest.mark.parametrize("with_blas", [True, False], ids=["blas", "numpy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 1, 7, 1000, 70001])
@pytest.mark.parametrize("a, b", [(0.1, 0.9), (-2.5, 1.0), (3.0, 0.0)])
def test_axpby(a, b, n, dtype, with_blas, monkeypatch):
    if not with_blas:
        monkeypatch.setattr(blas, "_KERNELS", {})
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=n).astype(dtype), rng.normal(size=n).astype(dtype)
    want = expected(a, x, b, y)
    blas.axpby(a, x, b, y)
    assert y.dtype == dtype
    tol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


def test_views_that_blas_cannot_take_get_the_numpy_arithmetic():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 6)).astype(np.float32)
    x, y = base[:, 1], base[:, 2]  # strided columns
    want = expected(0.5, x, 0.25, y)
    blas.axpby(0.5, x, 0.25, y)
    np.testing.assert_allclose(base[:, 2], want, rtol=1e-6)
    np.testing.assert_array_equal(base[:, 1], x)  # x untouched

    y64, x32 = rng.normal(size=5), rng.normal(size=5).astype(np.float32)  # mixed dtypes
    want = expected(2.0, x32, 0.5, y64)
    blas.axpby(2.0, x32, 0.5, y64)
    np.testing.assert_allclose(y64, want, rtol=1e-12)


def test_the_result_of_a_block_does_not_depend_on_where_the_block_starts():
    """The optimisers update long arrays in blocks: a BLAS kernel whose vector loop and tail
    loop rounded differently would make the result depend on the block boundaries."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=1000).astype(np.float32), rng.normal(size=1000).astype(np.float32)
    whole = y.copy()
    blas.axpby(0.1, x, 0.9, whole)
    for cut in (1, 3, 17, 500, 999):
        pieces = y.copy()
        blas.axpby(0.1, x[:cut], 0.9, pieces[:cut])
        blas.axpby(0.1, x[cut:], 0.9, pieces[cut:])
        np.testing.assert_array_equal(pieces, whole)


@pytest.mark.parametrize("with_blas", [True, False], ids=["blas", "numpy"])
@pytest.mark.parametrize("scratch_is_x", [False, True])
def test_scratch_space_gives_the_same_result(scratch_is_x, with_blas, monkeypatch):
    if not with_blas:
        monkeypatch.setattr(blas, "_KERNELS", {})
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=50).astype(np.float32), rng.normal(size=50).astype(np.float32)
    plain = y.copy()
    blas.axpby(-0.3, x, 0.7, plain)
    scratch = x.copy() if scratch_is_x else np.full_like(y, np.nan)
    blas.axpby(-0.3, scratch if scratch_is_x else x, 0.7, y, scratch)
    np.testing.assert_array_equal(y, plain)


def test_without_a_loadable_blas_the_arithmetic_falls_back_to_numpy(monkeypatch):
    def refuse(path):
        raise OSError(f"cannot load {path}")

    monkeypatch.setattr(blas.ctypes, "CDLL", refuse)
    monkeypatch.setattr(blas, "_KERNELS", None)  # look up again, with nothing to find
    assert blas.kernels() == {}
    x, y = np.arange(4, dtype=np.float32), np.ones(4, dtype=np.float32)
    blas.axpby(2.0, x, 0.5, y)
    np.testing.assert_array_equal(y, [0.5, 2.5, 4.5, 6.5])


def test_without_numpys_extension_module_the_arithmetic_falls_back_to_numpy(monkeypatch):
    """The path to NumPy's BLAS goes through a private NumPy module: should it move, the
    lookup finds nothing and the array operations run."""
    import sys

    for module in blas.EXTENSION_MODULES:
        monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    monkeypatch.setattr(blas, "_KERNELS", None)
    assert blas.kernels() == {}
    x, y = np.arange(4, dtype=np.float64), np.ones(4)
    blas.axpby(2.0, x, 0.5, y)
    np.testing.assert_array_equal(y, [0.5, 2.5, 4.5, 6.5])
