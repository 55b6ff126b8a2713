"""How many threads the BLAS gets during training: chosen from the shapes of one step.

A BLAS thread pays only when a matrix product is large enough to split. On the products of
small networks (the seed's 784-30-10 at batch 64: 1.5M multiply-adds in its largest) a second
OpenBLAS thread gains little on a quiet machine and costs several times over on a busy one:
its workers spin waiting for work, and when another process holds a core, every product
waits for the descheduled worker (measurements: ``docs/performance.md``, "BLAS threads").

So the policy, :func:`choose_threads`, gives one thread per ``MACS_PER_THREAD``
multiply-adds of the step's largest product, at least one and at most the cores this process
may run on. The limit holds only while the loop takes its steps (:func:`blas_threads`):
validation, prediction and the caller's own NumPy keep the library's default.

threadpoolctl sets the limit: it knows every BLAS and OpenMP runtime loaded in the process
(NumPy's OpenBLAS, SciPy's, the one numba's kernels call through SciPy) and restores them on
exit. It is a required dependency because the default run needs it; where it is missing
anyway, the limit is skipped and the run's ``config.json`` says so.
"""

import os
from contextlib import nullcontext

from .errors import ConfigError

# Multiply-adds of one product per BLAS thread: below about 8M a second thread gains little
# when quiet and loses much when busy (docs/performance.md, "BLAS threads").
MACS_PER_THREAD = 1 << 23

AUTO = "auto"


def threads_setting(text):
    """A ``--threads`` value from the command line: an integer, or the text as given (``auto``,
    or something :meth:`TrainConfig.validate` then refuses with a message)."""
    text = text.strip()
    return int(text) if text.isdigit() else text


def available_cores():
    """Cores this process may run on (its CPU affinity where the OS says, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def step_products(layer_sizes, batch_size):
    """The matrix products of one training step, as ``(m, k, n)`` shapes (``m x k`` times
    ``k x n``): each layer's forward product, its weight gradient, and its input gradient
    (all layers but the first)."""
    products = []
    for i, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        products.append((batch_size, fan_in, fan_out))  # Z = X @ W
        products.append((fan_in, batch_size, fan_out))  # dW = X.T @ dZ
        if i:
            products.append((batch_size, fan_out, fan_in))  # dX = dZ @ W.T
    return products


def choose_threads(layer_sizes, batch_size, requested=AUTO, cores=None):
    """BLAS threads for training a network of ``layer_sizes`` on batches of ``batch_size``.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, inputs first, e.g. ``(784, 30, 10)``.
    batch_size : int
        Rows of each batch (the training set's size for full-batch training).
    requested : int or "auto", default="auto"
        An integer is used as given (the ``--threads`` override); ``"auto"`` applies the
        policy: one thread per ``MACS_PER_THREAD`` multiply-adds of the largest product.
    cores : int, optional
        Upper bound for ``"auto"``; default :func:`available_cores`.

    Returns
    -------
    int, at least 1.
    """
    if requested != AUTO:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ConfigError(
                "{threads} must be 'auto' or an integer >= 1, got {value!r}.", field="threads", value=requested
            )
        return requested
    largest = max(m * k * n for m, k, n in step_products(layer_sizes, batch_size))
    return max(1, min(cores or available_cores(), largest // MACS_PER_THREAD))


def blas_threads(n):
    """A context manager that limits every loaded BLAS to ``n`` threads and restores the
    previous limits on exit; does nothing (``nullcontext``) without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")  # applied now, restored on exit


def describe(n):
    """What ``config.json`` records: the threads used, and each BLAS they were applied to."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {
            "used": None,
            "note": "threadpoolctl is not installed: BLAS threads left at the library's "
            "default (pip install threadpoolctl)",
        }
    libraries = sorted(
        {f"{i['internal_api']} {i.get('version')}" for i in threadpool_info() if i["user_api"] == "blas"}
    )
    return {"used": int(n), "blas": libraries}
