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

from .backend import to_numpy
from .data.limits import regular_file
from .errors import ConfigError, DataFormatError, ModelFileError, SteadynetError
from .persistence import load_model
from .runs import recorded_tta
from .tta import tta_proba, use_tta

SIDE = 28  # MNIST's field, (28, 28)
BOX = 20  # the digit is scaled to fit BOX x BOX inside the field
CENTRE = 14.0  # MNIST's mean centre of mass, in pixel indices, on both axes
MIN_SEPARATION = 0.7  # Otsu's between-class share of the variance: noise 0.63-0.69, digits 0.74+
INK_THRESHOLD = 0.3  # a pixel is ink where the smoothed image is this far from background to peak
WORK_MIN, WORK_MAX = 28, 512  # the longer side is brought into this range first
MAX_PIXELS = 40_000_000  # refuse larger images (a decompression bomb or a mistake)
MAX_FILE_BYTES = 100_000_000


# ---------------------------------------------------------------------------- pure functions


def preprocess_digit(image):
    """Bring a picture of one digit to MNIST's form.

    Steps: contrast stretched to [0, 1]; brought to a working resolution (small scans
    interpolated up, huge photos averaged down); inverted if the background (the border) is
    light, so that the ink is light on dark as in MNIST; background and its noise subtracted
    and the stroke's core brought to 1; cropped to the ink; scaled to fit 20x20 keeping the
    aspect ratio; placed in 28x28 with its centre of mass at (14, 14).

    Parameters
    ----------
    image : array-like of shape (height, width), any real or bool dtype
        One grey image of any size and value range (uint8 0-255, 16-bit, float 0-1, ...),
        ink and background of either polarity, from 2 grey levels up.

    Returns
    -------
    x : ndarray of shape (784,), float32, values in [0, 1]
        The 28x28 digit, flattened row by row: the input of an MNIST model.

    Raises
    ------
    DataFormatError
        If ``image`` is not 2-D, is empty, holds non-finite values, or holds no digit: it is
        blank, or nothing in it stands out from the background's own variation (noise,
        texture, a gradient).
    """
    G = np.asarray(image)
    if G.ndim != 2 or G.size == 0:
        raise DataFormatError(f"a digit image must be a non-empty 2-D grey array, got shape {G.shape}.")
    if not (np.issubdtype(G.dtype, np.number) or G.dtype == bool):
        raise DataFormatError(f"a digit image must hold numbers, got dtype {G.dtype}.")
    if np.iscomplexobj(G):
        raise DataFormatError(f"a digit image must hold real numbers, got dtype {G.dtype}.")
    G = np.array(G, dtype=np.float64)  # one copy, normalised in place below
    if not np.isfinite(G).all():
        raise DataFormatError("a digit image must hold finite values; it holds NaN or infinity.")
    lo, hi = G.min(), G.max()
    # divided by the largest magnitude first, so that hi - lo cannot overflow (e.g. +-1.7e308)
    magnitude = max(abs(lo), abs(hi))
    if magnitude == 0 or hi / magnitude - lo / magnitude <= 1e-12:
        raise DataFormatError(f"no digit found: the image is blank (every pixel is {lo:g}).")
    G /= magnitude
    G -= lo / magnitude
    G /= hi / magnitude - lo / magnitude
    np.clip(G, 0.0, 1.0, out=G)  # (h, w) in [0, 1]
    G = working_resolution(G)  # (h', w'), each side WORK_MIN..WORK_MAX where it can be

    # two classes of grey level, split where they are best separated (Otsu's method) on the
    # 3x3 average (single noisy pixels do not count): a digit splits cleanly into ink and
    # background; noise and gradients do not
    S = box_blur(G)
    split, separation = otsu_split(S)
    if separation < MIN_SEPARATION:
        raise DataFormatError(
            f"no digit found: the image looks like noise or texture (its grey levels do "
            f"not split into ink and background: separation {separation:.2f}, a digit "
            f"has {MIN_SEPARATION} or more); expected one digit on a plain background."
        )
    # polarity: MNIST has light ink on a dark background. The background is what most of the
    # border is; where the border is as much ink as not (a digit cropped tight), what most of
    # the image is
    light = S > split
    on_border = np.concatenate([light[0], light[-1], light[:, 0], light[:, -1]]).mean()
    if on_border > 0.65 or (on_border >= 0.35 and light.mean() > 0.5):
        G, S, light = 1.0 - G, 1.0 - S, ~light
    background = np.median(G[~light])  # the dark class, whatever the border holds

    # ink: where the 3x3 average rises well above the background
    peak = S.max()
    if peak - background <= 1e-6:
        raise DataFormatError("no digit found: nothing in the image stands out from its background.")
    ink = S > background + INK_THRESHOLD * (peak - background)
    core = np.percentile(G[ink], 90)
    # the background's noise, 3 sigma: ink is lighter than the background, so the pixels darker
    # than it vary by noise alone, and the 90th percentile of how far below it they lie is
    # 1.645 sigma for Gaussian noise; where the background is the darkest level (clean, or
    # noise clipped at black), from the pixels well away from the ink instead, a percentile,
    # not the median, because noise clipped at black makes half the deviations 0. A scan's
    # faint grey edges count there too, so the floor is kept half-way to the ink at most
    below = background - G[G < background]  # (n_below,)
    if below.size < 0.1 * G.size:
        away = ~grow(ink, 2)
        below = np.abs(G[away] - background) if away.any() else np.zeros(1)
    noise = min(3 / 1.645 * np.percentile(below, 90), 0.5 * (core - background))
    # background (plus its noise) to 0 and the stroke's core to 1, like MNIST's 0 and 255;
    # pixels more than one pixel away from the ink are background whatever their value
    floor = background + noise
    V = np.clip((G - floor) / max(core - floor, 1e-6), 0.0, 1.0)
    V *= grow(ink, 1)  # the ink, grown by one pixel
    if not V.any():  # unreachable while core > floor, kept so that a crop is never empty
        raise DataFormatError("no digit found: no pixel rises above the background's noise.")

    # crop to the ink and scale to fit BOX x BOX, keeping the aspect ratio
    rows, cols = np.nonzero(V.any(axis=1))[0], np.nonzero(V.any(axis=0))[0]
    V = V[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w)
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
    X[top : top + out_h, left : left + out_w] = P
    return X.ravel()


def working_resolution(G):
    """``G`` resampled so that its longer side is at least :data:`WORK_MIN` and at most
    :data:`WORK_MAX` pixels, keeping the aspect ratio (linear interpolation up, anti-aliased
    averaging down).

    The steps after it work on 3x3 neighbourhoods and grow the ink by a pixel: on an 8x8
    scan that is a third of the digit, on a 6000x4000 photo nothing but cost.
    """
    h, w = G.shape
    longest = max(h, w)
    if longest < WORK_MIN:
        factor = int(np.ceil(WORK_MIN / longest))
    elif longest > WORK_MAX:
        factor = WORK_MAX / longest
    else:
        return G
    out_h, out_w = max(1, round(h * factor)), max(1, round(w * factor))
    return resample_matrix(h, out_h) @ G @ resample_matrix(w, out_w).T  # (out_h, out_w)


def grow(mask, pixels):
    """``mask`` grown by ``pixels`` in every direction (a (2p+1)x(2p+1) square), as bool."""
    h, w = mask.shape
    padded = np.pad(mask, pixels)  # (h + 2p, w + 2p), False outside
    out = np.zeros_like(mask)
    for i in range(2 * pixels + 1):
        for j in range(2 * pixels + 1):
            out |= padded[i : i + h, j : j + w]
    return out


def otsu_split(S, bins=256):
    """Otsu's threshold of values in [0, 1] and how well it separates them.

    Returns
    -------
    split : float
        The threshold that maximises the variance between the two classes it makes.
    separation : float
        That between-class variance as a share of the total, in [0, 1]: 1 for two pure
        levels, 0.75 for uniform noise, 0.64 for Gaussian noise, 0.74-0.93 for digits
        (measured on MNIST digits, photos and low-resolution scans of them).
    """
    counts, edges = np.histogram(S, bins=bins, range=(0.0, 1.0))
    p = counts / counts.sum()  # (bins,)
    centres = (edges[:-1] + edges[1:]) / 2
    w = np.cumsum(p)  # share of the lower class at each threshold
    mu = np.cumsum(p * centres)  # its (unnormalised) mean
    between = (mu[-1] * w - mu) ** 2 / np.maximum(w * (1 - w), 1e-12)  # (bins,)
    best = int(np.argmax(between))
    total = float(np.var(S))
    return float(edges[best + 1]), (float(between[best]) / total if total > 0 else 0.0)


def box_blur(G):
    """Mean over each pixel's 3x3 neighbourhood (edges repeated); same shape as ``G``."""
    h, w = G.shape
    padded = np.pad(G, 1, mode="edge")  # (h + 2, w + 2)
    return sum(padded[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0


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
        If the file is missing, not a regular file (a folder, FIFO or device), empty, not an
        image, damaged, or larger than 40 megapixels or 100 MB.
    """
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise SteadynetError(
            "reading images needs Pillow, which is not installed; install it with `pip install steadynet[images]`."
        ) from None

    path = os.fspath(path)
    size = regular_file(path, "image file")  # a FIFO is never opened, a device never read
    if size == 0:
        raise DataFormatError(f"{path}: the file is empty (0 bytes); expected an image (PNG, JPEG, ...).")
    if size > MAX_FILE_BYTES:
        raise DataFormatError(
            f"{path}: the file is {size / 1e6:.0f} MB; images of at most "
            f"{MAX_FILE_BYTES / 1e6:.0f} MB are accepted (resize it first)."
        )
    try:
        with Image.open(path) as img:
            width, height = img.size  # from the header: nothing decoded yet
            if width * height > MAX_PIXELS:
                raise DataFormatError(
                    f"{path}: the image is {width}x{height} pixels; at most "
                    f"{MAX_PIXELS:,} pixels are accepted (resize it first)."
                )
            img = ImageOps.exif_transpose(img)
            return grey_of(img)
    except UnidentifiedImageError:
        raise DataFormatError(
            f"{path}: not an image (Pillow cannot read it); expected PNG, JPEG, BMP, GIF, TIFF, WebP, ..."
        ) from None
    except Image.DecompressionBombError:
        raise DataFormatError(
            f"{path}: the image is too large to decode safely; at most {MAX_PIXELS:,} pixels are accepted."
        ) from None
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


def predict_images(model, images, top=3, errors="raise", tta="auto"):
    """Classify pictures of digits with an MNIST model.

    Parameters
    ----------
    model : MLP, or str / os.PathLike of a model file or run folder
        A model with 784 inputs (28x28 images).
    images : sequence of (path, or array-like of shape (height, width))
        Image files, or grey arrays as :func:`preprocess_digit` takes them.
    top : int, default=3
        How many of the most probable classes to report.
    errors : {"raise", "report"}, default="raise"
        What an image that cannot be read or holds no digit does: raise at once, or take
        its place in the results as ``{"image": ..., "error": "one line"}`` so that the
        other images are still classified.
    tta : {"auto", "on", "off"}, default="auto"
        Average the probabilities over each digit and its one-pixel shifts
        (:mod:`steadynet.tta`): ``auto`` as the run decided for its ``model.npz``, off for a
        model given as an object or a file without a recorded choice.

    Returns
    -------
    list of dict, one per image, in order::

        {"image": "digit.png" (or "array 0"), "label": 7,
         "top": [{"label": 7, "probability": 0.98}, {"label": 1, ...}, ...], "tta": False}

    Raises
    ------
    DataFormatError
        For an image that cannot be read or holds no digit (the message names it), unless
        ``errors="report"``.
    ConfigError
        If the model does not take 28x28 inputs, or ``errors`` is unknown.
    ModelFileError
        If the model's outputs are not finite (weights so large that they overflow).
    """
    if errors not in ("raise", "report"):
        raise ConfigError(f"errors must be 'raise' or 'report', got {errors!r}.")
    where = os.fspath(model) if isinstance(model, (str, os.PathLike)) else "the model"
    recorded = None
    if isinstance(model, (str, os.PathLike)):
        recorded = recorded_tta(model)
        model = load_model(model)
    if model.n_inputs != SIDE * SIDE:
        raise ConfigError(
            f"the model takes {model.n_inputs} inputs; predicting on images needs a "
            f"model of 28x28 = 784 inputs, like those trained on MNIST."
        )
    averaged, _ = use_tta(tta, recorded, (SIDE, SIDE), where)
    names, rows, failed = [], [], {}
    for i, item in enumerate(images):
        name = os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"array {i}"
        names.append(name)
        try:
            G = load_image(item) if isinstance(item, (str, os.PathLike)) else item
            rows.append(preprocess_digit(G))
        except DataFormatError as exc:
            message = str(exc) if str(exc).startswith(name) else f"{name}: {exc}"
            if errors == "raise":
                raise DataFormatError(message) from None
            failed[i] = message
    if not rows:
        P = np.zeros((0, model.n_classes))
    elif averaged:
        P = tta_proba(model, np.stack(rows), (SIDE, SIDE))  # (n_read, n_classes)
    else:
        P = model.predict_proba(np.stack(rows))
    if not np.isfinite(P).all():
        raise ModelFileError(
            f"{where}: the model produces non-finite outputs (NaN or infinity) on these "
            f"images; its weights are too large to compute with (largest |w| "
            f"{float(np.abs(to_numpy(model.theta)).max()):.3g})."
        )
    k = min(int(top), P.shape[1])
    results, read = [], iter(P)
    for i, name in enumerate(names):
        if i in failed:
            results.append({"image": name, "error": failed[i]})
            continue
        p = next(read)
        best = np.argsort(-p, kind="stable")[:k]
        ranked = [{"label": int(c), "probability": float(p[c])} for c in best]
        results.append({"image": name, "label": int(best[0]), "top": ranked, "tta": averaged})
    return results
