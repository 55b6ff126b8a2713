"""Data augmentation on the fly: seeded, vectorised over the whole epoch.

Two families: whole-pixel shifts (:func:`random_shifts`, a slice copy per offset, nearly
free), and warps that resample the image (:func:`random_warps`: rotation, scale, shear,
sub-pixel translation and elastic distortion, by bilinear interpolation). All of them take
every random number from the ``rng`` they are given, so a seed fixes the result.

What moves into the frame from outside is the images' ground (:func:`ground`): black for
MNIST's digits, white for dark ink on a light ground, so a shifted or warped image never
gains a border its kind of image does not have.
"""

import math

import numpy as np


def ground(X, image_shape, n=10_000):
    """The images' ground: the median of the pixels on the frame of the first ``n`` images.

    Parameters
    ----------
    X : ndarray of shape (m, h * w), uint8 or float
    image_shape : (h, w)

    Returns
    -------
    scalar of ``X``'s dtype: 0 for MNIST (every digit sits on black), 255 for its inverse.
    """
    h, w = image_shape
    images = X[:n].reshape(-1, h, w)
    frame = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    value = np.median(frame) if frame.size else 0
    return np.asarray(np.rint(value) if np.issubdtype(X.dtype, np.integer) else value).astype(X.dtype)[()]


def random_shifts(X, image_shape, max_shift, rng, index=None, out=None, return_offsets=False, fill=0):
    """Shift each image by a random whole number of pixels, filling with ``fill`` (the ground).

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
    return_offsets : bool, default=False
        Also return the offsets drawn.
    fill : scalar, default=0
        The value of the pixels that move in from outside the frame (:func:`ground`).

    Returns
    -------
    ndarray of shape (m, h * w): ``out[j]`` is image ``index[j]`` moved down by ``dy[j]``
    rows and right by ``dx[j]`` columns (as :func:`shift_images`). With ``return_offsets``, also
    the offsets ``(dy, dx)``, int array of shape (m, 2).
    """
    h, w = image_shape
    index = np.arange(X.shape[0]) if index is None else index
    m, side = index.shape[0], 2 * max_shift + 1
    out = np.empty((m, X.shape[1]), dtype=X.dtype) if out is None else out
    out.fill(fill)
    offsets = rng.integers(-max_shift, max_shift + 1, size=(m, 2))  # (m, 2): dy, dx
    codes = (offsets[:, 0] + max_shift) * side + (offsets[:, 1] + max_shift)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(side * side + 1))
    src = X.reshape(X.shape[0], h, w)
    dst = out.reshape(m, h, w)
    for code in range(side * side):
        j = order[bounds[code] : bounds[code + 1]]  # positions in the output with this offset
        if j.size == 0:
            continue
        dy, dx = code // side - max_shift, code % side - max_shift
        # the part of each source image that stays inside the frame, and where it lands
        dst[j, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = src[
            index[j], max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
        ]
    return (out, offsets) if return_offsets else out


def shift_images(X, image_shape, dy, dx, fill=0):
    """Every image of ``X`` (n, h * w) moved down ``dy`` rows and right ``dx`` columns, filled
    with ``fill``: the same offset for all, as :func:`random_shifts` moves each image."""
    h, w = image_shape
    out = np.full_like(X, fill)
    out.reshape(-1, h, w)[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = X.reshape(-1, h, w)[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def shift_images_edge(X, image_shape, dy, dx):
    """Every image of ``X`` (n, h * w) moved down ``dy`` rows and right ``dx`` columns, the
    vacated rows and columns repeating the edge's pixels (as ``np.pad(mode="edge")``) instead
    of zeros: an image on a light ground keeps its ground. Same dtype as ``X`` (uint8 stays
    uint8); used at test time (:mod:`steadynet.tta`), where a black border would be a new input."""
    h, w = image_shape
    rows = np.clip(np.arange(h) - dy, 0, h - 1)  # (h,): the source row of each output row
    cols = np.clip(np.arange(w) - dx, 0, w - 1)  # (w,)
    # one axis at a time: each take is a C-ordered copy (a 2-D fancy index would give a
    # transposed layout that a matrix product reads slowly)
    S = np.take(X.reshape(-1, h, w), rows, axis=1)  # (n, h, w)
    return np.take(S, cols, axis=2).reshape(X.shape[0], h * w)


# ------------------------------------------------------------------- affine and elastic warps


def gaussian_matrix(size, sigma, dtype=np.float32):
    """The 1-D Gaussian smoothing of a length-``size`` signal, as a ``(size, size)`` matrix.

    ``G @ f`` convolves ``f`` with a Gaussian of standard deviation ``sigma`` pixels, the
    signal taken as zero outside ``[0, size)``. The kernel is normalised over its whole
    support (not per row), so values near the border shrink as they would with zero padding.
    Applied along both axes, ``G @ F @ G.T`` is the separable 2-D Gaussian filter.
    """
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]  # (size, size): i - k
    taps = np.arange(-math.ceil(4 * sigma), math.ceil(4 * sigma) + 1)
    norm = np.exp(-(taps**2) / (2 * sigma**2)).sum()  # kernel truncated at 4 sigma, summing to 1
    G = np.exp(-(offsets**2) / (2 * sigma**2)) / norm
    G[np.abs(offsets) > taps[-1]] = 0
    return G.astype(dtype)


def elastic_fields(rng, n, image_shape, alpha, sigma):
    """``n`` random smooth displacement fields (Simard et al. 2003), shape (n, 2, h, w), float32.

    Each component is uniform noise in [-1, 1] per pixel, smoothed by a Gaussian of ``sigma``
    pixels and scaled by ``alpha`` pixels. The smoothing is separable: one matrix product per
    axis over the whole stack, ``G_h @ U @ G_w.T``, so ``n`` fields cost two small GEMMs.

    References
    ----------
    Simard, P. Y., Steinkraus, D. and Platt, J. C. (2003). Best practices for convolutional
    neural networks applied to visual document analysis. ICDAR.
    """
    h, w = image_shape
    U = rng.uniform(-1.0, 1.0, size=(n * 2, h, w)).astype(np.float32)  # (2n, h, w)
    U = U @ gaussian_matrix(w, sigma).T  # smooth along rows: (2n, h, w) @ (w, w)
    U = gaussian_matrix(h, sigma) @ U  # then along columns: (h, h) @ (2n, h, w)
    U *= alpha
    return U.reshape(n, 2, h, w)  # float32


def random_affine_matrices(rng, n, rotate=0.0, scale=0.0, shear=0.0, shift=0.0):
    """``n`` random affine maps of the plane, as ``(n, 2, 3)`` float64 matrices ``[M | t]``.

    Each image gets a rotation uniform in ``[-rotate, rotate]`` degrees, a scale uniform in
    ``[1 - scale, 1 + scale]``, a shear (rows slide along columns) uniform in
    ``[-shear, shear]`` degrees and a translation uniform in ``[-shift, shift]`` pixels per
    axis. A map sends an output pixel
    ``p`` (row, col, measured from the image centre) to the source point ``M @ p + t``
    (inverse warping: every output pixel reads one place of the input).
    """
    angle = np.deg2rad(rng.uniform(-rotate, rotate, size=n))
    zoom = rng.uniform(1.0 - scale, 1.0 + scale, size=n)
    skew = np.tan(np.deg2rad(rng.uniform(-shear, shear, size=n)))
    t = rng.uniform(-shift, shift, size=(n, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    # source = R(angle) @ Shear(skew) @ p / zoom: reading from a point closer to the centre
    # magnifies the digit, so the image is scaled by ``zoom``
    A = np.empty((n, 2, 3))
    A[:, 0, 0], A[:, 0, 1] = cos / zoom, (cos * skew - sin) / zoom
    A[:, 1, 0], A[:, 1, 1] = sin / zoom, (sin * skew + cos) / zoom
    A[:, :, 2] = t
    return A


def warp(X, image_shape, A, D=None, out=None, fill=0):
    """Resample each image at the source points of an affine map plus a displacement field.

    Bilinear interpolation, computed in float32; points outside the image read ``fill``. Output pixel ``(r, c)`` of
    image ``i`` takes the input at ``A[i, :, :2] @ (r - r0, c - c0) + (r0, c0) + A[i, :, 2]
    + D[i, :, r, c]``, with ``(r0, c0)`` the image centre.

    Parameters
    ----------
    X : ndarray of shape (n, h * w), uint8 or float
    image_shape : (h, w)
    A : ndarray of shape (n, 2, 3)
        Affine maps (see :func:`random_affine_matrices`); the identity ``[[1, 0, 0], [0, 1, 0]]``
        leaves an image unchanged.
    D : ndarray of shape (n, 2, h, w), optional
        Displacements in pixels (row, col), e.g. :func:`elastic_fields`.
    out : ndarray of shape (n, h * w), optional
        Receives the result in its own dtype (an integer dtype is rounded to nearest).
    fill : scalar, default=0
        What points outside the image read (:func:`ground`).

    Returns
    -------
    ndarray of shape (n, h * w), ``X``'s dtype unless ``out`` says otherwise.
    """
    h, w = image_shape
    n = X.shape[0]
    out = np.empty(X.shape, dtype=X.dtype) if out is None else out
    # the images with a border of 2 ground pixels (and one more row and column for the
    # neighbours): every clipped source point then reads the ground outside the image, no masks
    H, W = h + 4, w + 4
    pixels = np.uint8 if X.dtype == np.uint8 else np.float32
    P = np.full((n, H + 1, W + 1), fill, dtype=pixels)
    P[:, 2 : h + 2, 2 : w + 2] = X.reshape(n, h, w)
    # each pixel with its right, lower and lower-right neighbours, packed into one element
    # (4 uint8 in a uint32, 4 float32 in a complex128): one gather fetches all four, several
    # times faster than four gathers
    quad = np.stack([P[:, :-1, :-1], P[:, :-1, 1:], P[:, 1:, :-1], P[:, 1:, 1:]], axis=-1)  # (n, H, W, 4)
    packed = quad.view(np.uint32 if pixels == np.uint8 else np.complex128).reshape(-1)
    # the source point of every output pixel (rows, columns), one GEMM: (2n, 2) @ (2, h * w)
    r0, c0 = (h - 1) / 2, (w - 1) / 2
    grid = np.stack(np.meshgrid(np.arange(h) - r0, np.arange(w) - c0, indexing="ij")).reshape(2, h * w)
    S = (A[:, :, :2].reshape(2 * n, 2).astype(np.float32) @ grid.astype(np.float32)).reshape(n, 2, h * w)
    S += (A[:, :, 2] + (r0, c0)).astype(np.float32)[:, :, None]
    if D is not None:
        S += D.reshape(n, 2, h * w)
    R, C = S[:, 0], S[:, 1]  # (n, h * w) each
    np.clip(R, -1.5, h + 0.5, out=R)  # beyond these, all four neighbours are border ground
    np.clip(C, -1.5, w + 0.5, out=C)
    R0, C0 = np.floor(R), np.floor(C)
    R -= R0  # fractional parts: the bilinear weights
    C -= C0
    # flat index of each source point's top-left neighbour in the padded stack, computed in
    # floats: float32 is exact for whole numbers below 2**24 (a chunk of 15,000 MNIST images)
    if n * H * W >= 2**24:
        R0 = R0.astype(np.float64)
    R0 += 2
    R0 *= W
    R0 += C0
    R0 += (np.arange(n, dtype=np.float32) * (H * W) + 2)[:, None]
    gathered = np.take(packed, R0.astype(np.intp))  # (n, h * w) packed quads
    a, b, c, d = gathered.view(pixels).reshape(-1, 4).T.astype(np.float32, order="C").reshape(4, n, h * w)
    b -= a  # interpolate along the row ...
    b *= C
    a += b
    d -= c
    d *= C
    c += d
    c -= a  # ... then between the rows
    c *= R
    upper = a
    upper += c
    result = upper.reshape(n, h * w)
    if np.issubdtype(out.dtype, np.integer):
        result += 0.5  # round to nearest on the cast (values are >= 0)
    out[...] = result
    return out


def random_warps(
    X,
    image_shape,
    rng,
    *,
    rotate=0.0,
    scale=0.0,
    shear=0.0,
    shift=0.0,
    elastic_alpha=0.0,
    elastic_sigma=4.0,
    index=None,
    out=None,
    chunk=4096,
    n_fields=1024,
    fill=0,
):
    """Random affine (rotation, scale, shear, translation) and elastic warps of many images.

    Every random number is drawn before any image is touched, in a fixed order, so the
    result depends only on ``rng``'s state, never on ``chunk``. The images are then warped
    ``chunk`` at a time (:func:`warp`), which keeps the intermediate arrays in cache.

    Elastic distortion draws ``min(n_fields, m)`` fields per call and gives each image one of
    them, with its own random sign per component (the negated field is an equally likely
    draw): smoothing a field per image would cost more than the rest of the warp.

    Parameters
    ----------
    X : ndarray of shape (n, h * w), uint8 or float
    image_shape : (h, w)
    rng : numpy.random.Generator
    rotate, shear : float
        Largest rotation and shear, in degrees.
    scale : float
        Largest relative change of size (0.1: from 0.9 to 1.1 times).
    shift : float
        Largest translation, in pixels, per axis.
    elastic_alpha, elastic_sigma : float
        Strength (pixels) and smoothness (pixels) of the elastic field; alpha 0: none.
    index : ndarray of shape (m,), int, optional
        Which images to take, in order (e.g. the epoch's permutation); default all.
    out : ndarray of shape (m, h * w), optional
        Receives the result (``X``'s dtype by default).
    fill : scalar, default=0
        What moves in from outside the frame (:func:`ground`).

    Returns
    -------
    ndarray of shape (m, h * w).
    """
    index = np.arange(X.shape[0]) if index is None else index
    m = index.shape[0]
    out = np.empty((m, X.shape[1]), dtype=X.dtype) if out is None else out
    A = random_affine_matrices(rng, m, rotate, scale, shear, shift)  # (m, 2, 3)
    fields = pick = signs = None
    if elastic_alpha:
        fields = elastic_fields(rng, min(n_fields, m), image_shape, elastic_alpha, elastic_sigma)
        pick = rng.integers(0, fields.shape[0], size=m)
        signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(m, 2, 1, 1))
    for start in range(0, m, chunk):
        part = slice(start, start + chunk)
        D = None if fields is None else fields[pick[part]] * signs[part]
        warp(X[index[part]], image_shape, A[part], D, out=out[part], fill=fill)
    return out
