"""Data augmentation on the fly: seeded, vectorised over the whole epoch."""

import numpy as np


def random_shifts(X, image_shape, max_shift, rng, index=None, out=None):
    """Shift each image by a random whole number of pixels, filling with zeros.

    Each image gets its own offsets ``(dy, dx)``, drawn uniformly from
    ``[-max_shift, max_shift]``. The work is grouped by offset: one slice copy per distinct
    offset (at most ``(2 * max_shift + 1)**2`` of them) moves every image with that offset,
    so an epoch of 60,000 MNIST images costs a few tens of milliseconds, in the images' own
    dtype (uint8 stays uint8). Gathering by ``index`` in the same pass makes a shuffled and
    shifted epoch cost one copy of the data, not two.

    Parameters
    ----------
    X : ndarray of shape (n, h * w)
    image_shape : (h, w)
    max_shift : int
    rng : numpy.random.Generator
    index : ndarray of shape (m,), int, optional
        Which images to take, in order (e.g. a permutation); default all, in order.
    out : ndarray of shape (m, h * w) and ``X``'s dtype, optional
        Receives the result (must not overlap ``X``).

    Returns
    -------
    ndarray of shape (m, h * w): ``out[j]`` is image ``index[j]`` moved down by ``dy[j]``
    rows and right by ``dx[j]`` columns.
    """
    h, w = image_shape
    index = np.arange(X.shape[0]) if index is None else index
    m, side = index.shape[0], 2 * max_shift + 1
    out = np.empty((m, X.shape[1]), dtype=X.dtype) if out is None else out
    out.fill(0)
    offsets = rng.integers(-max_shift, max_shift + 1, size=(m, 2))  # (m, 2): dy, dx
    codes = (offsets[:, 0] + max_shift) * side + (offsets[:, 1] + max_shift)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(side * side + 1))
    src = X.reshape(X.shape[0], h, w)
    dst = out.reshape(m, h, w)
    for code in range(side * side):
        j = order[bounds[code]:bounds[code + 1]]  # positions in the output with this offset
        if j.size == 0:
            continue
        dy, dx = code // side - max_shift, code % side - max_shift
        # the part of each source image that stays inside the frame, and where it lands
        dst[j, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            src[index[j], max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out
