"""Photos and scans of digits, turned into MNIST-style inputs and classified.

MNIST's digits were made this way: light ink on a dark background, cropped to the digit,
scaled to fit a 20x20 box keeping the aspect ratio (anti-aliased, hence the grey levels),
then placed in a 28x28 field so that the centre of mass of the ink sits at its centre. A
model trained on MNIST has only ever seen inputs like that, so a photo must be brought to
the same form before the model can read it. :func:`preprocess_digit` does that as a pure
function of a 2-D grey array (NumPy only); :func:`load_image` reads a file with Pillow
(an optional extra: ``pip install steadynet[images]``); :func:`predict_images` does both
and classifies.
"""

import os

import numpy as np

from .errors import ConfigError, DataFormatError, SteadynetError

SIDE = 28  # MNIST's field, (28, 28)
BOX = 20  # the digit is scaled to fit BOX x BOX inside the field
CENTRE = 14.0  # MNIST's mean centre of mass, in pixel indices, on both axes
INK_THRESHOLD = 0.3  # a pixel is ink where the smoothed image is this far from background to peak
MAX_PIXELS = 40_000_000  # refuse larger images (a decompression bomb or a mistake)
MAX_FILE_BYTES = 100_000_000


# ---------------------------------------------------------------------------- pure functions


def preprocess_digit(image):
    """Bring a picture of one digit to MNIST's form.

    Steps: contrast stretched to [0, 1]; inverted if the background (the border) is light, so
    that the ink is light on dark as in MNIST; background subtracted and the stroke's core
    brought to 1; cropped to the ink; scaled to fit 20x20 keeping the aspect ratio; placed in
    28x28 with its centre of mass at (14, 14).

    Parameters
    ----------
    image : array-like of shape (height, width), any real or bool dtype
        One grey image of any size and value range (uint8 0-255, float 0-1, ...), ink and
        background of either polarity.

    Returns
    -------
    x : ndarray of shape (784,), float32, values in [0, 1]
        The 28x28 digit, flattened row by row: the input of an MNIST model.

    Raises
    ------
    DataFormatError
        If ``image`` is not 2-D, is empty, holds non-finite values or is blank.
    """
    G = np.asarray(image)
    if G.ndim != 2 or G.size == 0:
        raise DataFormatError(f"a digit image must be a non-empty 2-D grey array, got shape {G.shape}.")
    if not (np.issubdtype(G.dtype, np.number) or G.dtype == bool):
        raise DataFormatError(f"a digit image must hold numbers, got dtype {G.dtype}.")
    G = G.astype(np.float64)
    if not np.isfinite(G).all():
        raise DataFormatError("a digit image must hold finite values; it holds NaN or infinity.")
    lo, hi = G.min(), G.max()
    if hi - lo <= 1e-12 * max(abs(hi), 1.0):
        raise DataFormatError(f"no digit found: the image is blank (every pixel is {lo:g}).")
    G = (G - lo) / (hi - lo)  # (h, w) in [0, 1]

    # polarity: the border is mostly background; MNIST has light ink on a dark background
    border = np.concatenate([G[0], G[-1], G[:, 0], G[:, -1]])
    if np.median(border) > 0.5:
        G = 1.0 - G
        border = 1.0 - border
    background = np.median(border)

    # ink: where a 3x3 average rises well above the background (single noisy pixels do not)
    S = box_blur(G)
    peak = S.max()
    if peak - background <= 1e-6:
        raise DataFormatError("no digit found: nothing in the image stands out from its border.")
    ink = S > background + INK_THRESHOLD * (peak - background)
    # background (plus its noise) to 0 and the stroke's core to 1, like MNIST's 0 and 255;
    # pixels more than one pixel away from the ink are background whatever their value
    # 3 sigma of the border's noise, from the 90th percentile of its deviations (1.645 sigma
    # for Gaussian noise); a percentile, not the median, because noise clipped at black
    # makes half the deviations 0
    noise = 3 / 1.645 * np.percentile(np.abs(border - background), 90)
    floor, core = background + noise, np.percentile(G[ink], 90)
    V = np.clip((G - floor) / max(core - floor, 1e-6), 0.0, 1.0)
    V *= box_blur(ink.astype(np.float64)) > 0  # the ink, grown by one pixel

    # crop to the ink and scale to fit BOX x BOX, keeping the aspect ratio
    rows, cols = np.nonzero(V.any(axis=1))[0], np.nonzero(V.any(axis=0))[0]
    V = V[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # (h, w)
    h, w = V.shape
    scale = BOX / max(h, w)
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    P = resample_matrix(h, out_h) @ V @ resample_matrix(w, out_w).T  # (out_h, out_w)
    P /= P.max()  # thin strokes average out to grey when shrunk; MNIST's ink reaches 255

    # place it so that the centre of mass lands on MNIST's centre, keeping all of it inside
    mass = P.sum()
    cy = (P.sum(axis=1) @ np.arange(out_h)) / mass
    cx = (P.sum(axis=0) @ np.arange(out_w)) / mass
    top = int(np.clip(round(CENTRE - cy), 0, SIDE - out_h))
    left = int(np.clip(round(CENTRE - cx), 0, SIDE - out_w))
    X = np.zeros((SIDE, SIDE), dtype=np.float32)
    X[top:top + out_h, left:left + out_w] = P
    return X.ravel()


def box_blur(G):
    """Mean over each pixel's 3x3 neighbourhood (edges repeated); same shape as ``G``."""
    h, w = G.shape
    padded = np.pad(G, 1, mode="edge")  # (h + 2, w + 2)
    return sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def resample_matrix(n_in, n_out):
    """Linear resampling of ``n_in`` samples to ``n_out`` as a matrix of shape (n_out, n_in).

    Each output pixel is a triangle-weighted average of the input pixels around its centre.
    When shrinking, the triangle widens to the scale factor, so every input pixel counts
    (anti-aliasing, as MNIST's normalisation did) instead of most being skipped.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale - 0.5  # output centres in input coordinates
    R = np.clip(1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / support, 0.0, None)
    return R / R.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------- files


def load_image(path):
    """Read an image file as one grey array.

    Colour is converted to luminance; EXIF rotation (phone photos) is applied; a transparent
    background is filled with the opposite of the ink's shade (white behind dark strokes).

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, JPEG, BMP, GIF, TIFF, WebP, ... file (anything Pillow reads).

    Returns
    -------
    G : ndarray of shape (height, width), float32, values in [0, 1]

    Raises
    ------
    DataFormatError
        If the file is missing, empty, not an image, damaged, or larger than 40 megapixels
        or 100 MB.
    """
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise SteadynetError("reading images needs Pillow, which is not installed; install it "
                             "with `pip install steadynet[images]`.") from None
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFormatError(f"{path}: no such file" + (" (it is a folder)." if os.path.isdir(path) else "."))
    size = os.path.getsize(path)
    if size == 0:
        raise DataFormatError(f"{path}: the file is empty (0 bytes); expected an image (PNG, JPEG, ...).")
    if size > MAX_FILE_BYTES:
        raise DataFormatError(f"{path}: the file is {size / 1e6:.0f} MB; images of at most "
                              f"{MAX_FILE_BYTES / 1e6:.0f} MB are accepted (resize it first).")
    try:
        with Image.open(path) as img:
            width, height = img.size  # from the header: nothing decoded yet
            if width * height > MAX_PIXELS:
                raise DataFormatError(f"{path}: the image is {width}x{height} pixels; at most "
                                      f"{MAX_PIXELS:,} pixels are accepted (resize it first).")
            img = ImageOps.exif_transpose(img)
            return grey_of(img)
    except UnidentifiedImageError:
        raise DataFormatError(f"{path}: not an image (Pillow cannot read it); expected PNG, JPEG, "
                              f"BMP, GIF, TIFF, WebP, ...") from None
    except Image.DecompressionBombError:
        raise DataFormatError(f"{path}: the image is too large to decode safely; at most "
                              f"{MAX_PIXELS:,} pixels are accepted.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataFormatError(f"{path}: the image is damaged or truncated ({exc}).") from None


def grey_of(img):
    """A Pillow image as a (height, width) float32 array in [0, 1], transparency filled."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grey: keep every level
        G = np.asarray(img, dtype=np.float64)
        lo, hi = G.min(), G.max()
        return ((G - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)
    transparent = "A" in img.getbands() or "transparency" in img.info
    if not transparent:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    LA = np.asarray(img.convert("LA"), dtype=np.float32) / 255.0  # (h, w, 2)
    G, A = LA[..., 0], LA[..., 1]
    # fill what is see-through with the opposite of the visible pixels' mean shade, so that
    # dark strokes on a transparent canvas become dark on white (and light ones, light on black)
    visible = float(A.sum())
    fill = 1.0 if visible == 0 or float((G * A).sum()) / visible < 0.5 else 0.0
    return G * A + fill * (1.0 - A)


# ---------------------------------------------------------------------------- prediction


def predict_images(model, images, top=3):
    """Classify pictures of digits with an MNIST model.

    Parameters
    ----------
    model : MLP, or str / os.PathLike of a model file or run folder
        A model with 784 inputs (28x28 images).
    images : sequence of (path, or array-like of shape (height, width))
        Image files, or grey arrays as :func:`preprocess_digit` takes them.
    top : int, default=3
        How many of the most probable classes to report.

    Returns
    -------
    list of dict, one per image, in order::

        {"image": "digit.png" (or "array 0"), "label": 7,
         "top": [{"label": 7, "probability": 0.98}, {"label": 1, ...}, ...]}

    Raises
    ------
    DataFormatError
        For an image that cannot be read or holds no digit (the message names it).
    ConfigError
        If the model does not take 28x28 inputs.
    """
    from .persistence import load_model

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if model.n_inputs != SIDE * SIDE:
        raise ConfigError(f"the model takes {model.n_inputs} inputs; predicting on images needs a "
                          f"model of 28x28 = 784 inputs, like those trained on MNIST.")
    names, rows = [], []
    for i, item in enumerate(images):
        if isinstance(item, (str, os.PathLike)):
            names.append(os.fspath(item))
            G = load_image(item)
        else:
            names.append(f"array {i}")
            G = item
        try:
            rows.append(preprocess_digit(G))
        except DataFormatError as exc:
            raise DataFormatError(f"{names[-1]}: {exc}") from None
    if not rows:
        return []
    P = model.predict_proba(np.stack(rows))  # (n_images, n_classes)
    k = min(int(top), P.shape[1])
    results = []
    for name, p in zip(names, P):
        best = np.argsort(-p, kind="stable")[:k]
        results.append({"image": name, "label": int(best[0]),
                        "top": [{"label": int(c), "probability": float(p[c])} for c in best]})
    return results
