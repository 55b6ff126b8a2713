"""The in-memory data set every reader returns, its validation, and its pixels' scale: uint8
0-255 as stored, floats in [0, 1] as a model reads them (:func:`as_float_batch`)."""

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataFormatError

MAX_CLASSES = 10_000  # a larger label is surely a misread column, not a class
BRIGHT_MEAN = 0.6  # images brighter than this on average are probably dark ink on light paper


@dataclass
class Dataset:
    """A labelled image data set split into train and test.

    Attributes
    ----------
    x_train : ndarray of shape (n_train, n_features), uint8 (pixels 0-255) or float32 in [0, 1]
        Images, flattened. uint8 is kept as uint8 (4x smaller than float32) and scaled to
        [0, 1] one batch at a time; float data is float32 in [0, 1].
    y_train : ndarray of shape (n_train,), int64
        Class index of each image.
    x_test, y_test : the same for the test split (may have 0 rows).
    image_shape : tuple of int
        Shape of one image, e.g. (28, 28); ``prod(image_shape) == n_features``.
    source : str
        Where the data came from (a path or a registered name), for messages.
    notices : list of str
        Things the reader did that the user should hear about (e.g. rescaling 0-255 floats).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple = (28, 28)
    source: str = ""
    notices: list = field(default_factory=list)

    def validated(self, standardised=False):
        """This data set checked as a file's arrays are (:func:`make_dataset`): image shape,
        pixel scale (0-255 floats are rescaled, with a notice), label form (one-hot is read
        as class indices, with a notice) and range (labels counted from 1 are refused).

        :func:`steadynet.train` calls it on a ``Dataset`` built in Python, so arrays made by
        hand meet the same one-line errors and notices as files do.
        """
        where = self.source or "Dataset"
        data = make_dataset(
            self.x_train, self.y_train, self.x_test, self.y_test, source=where, standardised=standardised
        )
        if len(self.image_shape) and int(np.prod(self.image_shape)) == data.n_features:
            data.image_shape = tuple(self.image_shape)
        data.notices[:0] = [n for n in self.notices if n not in data.notices]
        return data

    @property
    def n_features(self):
        return int(self.x_train.shape[1])

    @property
    def n_classes(self):
        """Number of classes: one more than the largest label seen, and at least 2."""
        top = max(int(self.y_train.max(initial=0)), int(self.y_test.max(initial=0)))
        return max(top + 1, 2)


def standardise_images(x, where, notices, allow_empty=False, standardised=False):
    """Validate one image array and bring it to (n, n_features) uint8 or float32 in [0, 1].

    uint8 pixels are returned as they are, without a copy: they stay uint8 (a quarter of the
    memory of float32) until the training loop scales each batch to [0, 1]. Anything else is
    converted exactly once, to uint8 when that is lossless, else to float32.

    Parameters
    ----------
    x : array-like of shape (n, n_features), (n, h, w) or (n, h, w, 1)
    where : str
        Names the file and key for error messages, e.g. "data.h5: x_train".
    notices : list of str
        Receives a line when the pixel scale is changed or ambiguous.
    allow_empty : bool, default=False
        Accept zero images (an absent test split).
    standardised : bool, default=False
        The inputs are standardised on purpose (e.g. mean 0, std 1 per feature): finite values
        outside [0, 255] are kept as float32, with a notice, instead of refused.

    Returns
    -------
    x : ndarray of shape (n, n_features), uint8 or float32
    image_shape : tuple
    """
    x = as_array(x, where)
    if x.ndim == 4 and x.shape[3] == 1:  # one grey channel, as TensorFlow stores images
        x = x[..., 0]
    if x.ndim == 3:
        image_shape = tuple(x.shape[1:])
        x = x.reshape(x.shape[0], int(np.prod(image_shape)))  # (n, h * w); -1 fails when n == 0
    elif x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        image_shape = (side, side) if side * side == x.shape[1] else (x.shape[1],)
    else:
        raise DataFormatError(f"{where}: expected images of shape (n, features) or (n, h, w), found shape {x.shape}.")
    if x.shape[1] == 0 or (x.shape[0] == 0 and not allow_empty):
        raise DataFormatError(f"{where}: expected at least one image with pixels, found shape {x.shape}.")
    if x.dtype == np.uint8 or x.shape[0] == 0:
        return x, image_shape
    if x.dtype.kind not in "fiub":
        raise DataFormatError(f"{where}: expected numeric pixels, found dtype {x.dtype}.")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataFormatError(
                f"{where}: expected finite pixels, found {x[i, j]} at image {i}, "
                f"pixel {j} ({int(bad.sum())} non-finite values in all)."
            )
    lo, hi = float(x.min()), float(x.max())
    if standardised and (lo < 0 or hi > 1):
        notices.append(
            f"{where}: standardised inputs from {lo:.3g} to {hi:.3g} (mean {float(x.mean()):.3g}, "
            f"std {float(x.std()):.3g}) kept as they are, as asked."
        )
        return np.ascontiguousarray(x.astype(np.float32, copy=False)), image_shape
    if lo < 0 or hi > 255:
        raise DataFormatError(
            f"{where}: expected pixels in [0, 1] or 0-255, found values from {lo:g} to {hi:g}; "
            f"if the inputs are standardised on purpose (e.g. mean 0, std 1), pass "
            f"--standardised-inputs (Python: standardised_inputs=True)."
        )
    if hi > 1.0:
        # 0-255 pixels: lossless to uint8 when they are whole numbers
        if x.dtype.kind in "iub" or np.array_equal(x, np.round(x)):
            notices.append(f"{where}: pixels range 0-255; kept as uint8 and scaled to [0, 1] for training.")
            return x.astype(np.uint8), image_shape
        notices.append(f"{where}: pixels range 0-{hi:g}; divided by 255 to bring them into [0, 1].")
        return (x / 255.0).astype(np.float32), image_shape
    if x.dtype.kind in "iub":  # integer pixels that are all 0 or 1
        notices.append(
            f"{where}: integer pixels are all 0 or 1; read as black and white "
            f"(if they are 0-255 grey levels, the images are nearly black)."
        )
        return x.astype(np.float32), image_shape
    return compact_unit_floats(x), image_shape


def as_array(a, where):
    """``a`` as an ndarray; ragged nested lists are refused with a one-line error."""
    try:
        a = np.asarray(a)
    except ValueError as exc:  # NumPy refuses inhomogeneous shapes
        raise DataFormatError(f"{where}: expected a rectangular array, found ragged rows ({exc}).") from None
    if a.dtype == object:
        raise DataFormatError(
            f"{where}: expected a rectangular numeric array, found ragged or non-numeric items (dtype object)."
        )
    return a


def as_float_batch(Xb, dtype, xp=np):
    """A batch as floats for a model: uint8 pixels 0-255 are scaled to [0, 1], other data is
    converted as it is.

    Parameters
    ----------
    Xb : ndarray of shape (n, n_features), uint8 or float
    dtype : numpy.dtype, float32 or float64
        The model's dtype.
    xp : module, default=numpy
        The model's array module (NumPy, or CuPy for a GPU): the batch lands on its device.
    """
    if Xb.dtype == np.uint8:
        out = xp.asarray(Xb).astype(dtype)
        out *= dtype.type(1.0 / 255.0)
        return out
    return xp.asarray(Xb, dtype=dtype)


def compact_unit_floats(x, chunk=8192):
    """Float pixels in [0, 1] as uint8 when every value is ``k / 255`` to float32 precision (as
    MNIST stored as float32 is): the same numbers in a quarter of the memory. Otherwise
    float32."""
    out = unit_floats_as_uint8(x, chunk)
    return out if out is not None else np.ascontiguousarray(x.astype(np.float32, copy=False))


def unit_floats_as_uint8(x, chunk=2048):
    """``round(255 x)`` as uint8 if every value of ``x`` is finite, in [0, 1] and ``k / 255`` to
    float32 precision; else None.

    ``x`` may be any array-like that slices along its first axis (an ndarray, an open h5py
    dataset): it is read ``chunk`` rows at a time, so a float32 file becomes a uint8 array
    without the float32 copy ever being whole in memory.
    """
    out = np.empty(x.shape, dtype=np.uint8)
    for s in range(0, x.shape[0], chunk):
        block = np.asarray(x[s : s + chunk], dtype=np.float32)
        if not (np.isfinite(block).all() and block.min(initial=0) >= 0 and block.max(initial=0) <= 1):
            return None
        q = np.rint(block * np.float32(255))
        back = q / np.float32(255)
        if np.abs(back - block).max(initial=0) > 6e-8:  # not k / 255 (6e-8 ~ half a float32 ulp at 1)
            return None
        out[s : s + chunk] = q
    return out


def standardise_labels(y, n, where, notices=None):
    """Validate labels and return them as an int64 vector of length ``n``.

    Accepts shape (n,), (n, 1) or one-hot (n, k) (read as class indices, with a line in
    ``notices``); values must be whole numbers from 0 to ``MAX_CLASSES - 1`` (a float column
    of whole numbers, as CSV gives, is accepted).
    """
    y = as_array(y, where)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
            raise DataFormatError(
                f"{where}: a 2-D label array with {y.shape[1]} columns must be one-hot "
                f"(one 1 per row, zeros elsewhere); it is not. Give class indices of "
                f"shape (n,) instead."
            )
        if notices is not None and y.shape[0]:
            notices.append(
                f"{where}: one-hot labels of shape {y.shape} read as class indices (the argmax of each row)."
            )
        y = y.argmax(axis=1)
    elif y.ndim == 2:
        y = y[:, 0]
    elif y.ndim != 1:
        raise DataFormatError(f"{where}: expected labels of shape (n,), (n, 1) or one-hot (n, k), found {y.shape}.")
    if y.shape[0] != n:
        raise DataFormatError(f"{where}: expected {n} labels (one per image), found {y.shape[0]}.")
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            i = int(np.argmin(whole))
            raise DataFormatError(f"{where}: expected integer class labels, found {y[i]} at row {i}.")
    elif y.dtype.kind not in "iub":
        raise DataFormatError(f"{where}: expected integer class labels, found dtype {y.dtype}.")
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        i = int(np.argmin(y)) if y.min() < 0 else int(np.argmax(y))
        raise DataFormatError(f"{where}: expected class labels from 0 to {MAX_CLASSES - 1}, found {y[i]:g} at row {i}.")
    return y.astype(np.int64)


def make_dataset(
    x_train,
    y_train,
    x_test=None,
    y_test=None,
    source="",
    keys=("x_train", "y_train", "x_test", "y_test"),
    standardised=False,
):
    """Validate four raw arrays and build a :class:`Dataset` (errors name ``source`` and the key).

    ``x_test`` and ``y_test`` may be None (or hold zero images): the test split is then empty
    and the trainer reports no test accuracy.
    """
    notices = []
    kx, ky, kxt, kyt = (f"{source}: {k}" for k in keys)
    x_train, shape = standardise_images(x_train, kx, notices, standardised=standardised)
    y_train = standardise_labels(y_train, x_train.shape[0], ky, notices)
    if x_test is None:
        notices.append(f"{source}: no test split; test accuracy will not be reported.")
        x_test, y_test = x_train[:0], y_train[:0]
    x_test, shape_test = standardise_images(x_test, kxt, notices, allow_empty=True, standardised=standardised)
    if x_test.shape[1] != x_train.shape[1]:
        raise DataFormatError(
            f"{kxt}: expected {x_train.shape[1]} pixels per image like x_train, found {x_test.shape[1]}."
        )
    if x_test.shape[0] == 0:  # an empty split takes the training dtype, so nothing tells them apart
        x_test = x_train[:0]
    y_test = standardise_labels(y_test, x_test.shape[0], kyt, notices)
    if not standardised:
        polarity_notice(x_train, kx, notices)
    unseen = np.setdiff1d(y_test, y_train)
    if unseen.size:
        notices.append(
            f"{kyt}: classes {unseen.tolist()} occur in the test split but never in "
            f"training; the model cannot learn them."
        )
    return Dataset(x_train, y_train, x_test, y_test, shape, source, notices)


def check_labels_count_from_zero(data):
    """Refuse labels that count from 1 (1 to k, 0 never seen) before a network is built for
    them: it would have k + 1 outputs for k classes, one never used. (Readers accept such
    labels, so that files round-trip whatever they hold; training refuses them.)"""
    where = f"{data.source or 'Dataset'}: y_train"
    labels = np.concatenate([data.y_train, data.y_test])
    if labels.size == 0 or labels.min() == 0:
        return
    present = np.unique(labels)
    if present[0] == 1 and present.size == present[-1] and present.size >= 2:
        raise DataFormatError(
            f"{where}: labels run from 1 to {present[-1]} and 0 never occurs, so a network "
            f"with {present[-1] + 1} outputs would be built with one never used; class labels "
            f"count from 0: subtract 1 from them (y - 1)."
        )


def polarity_notice(x, where, notices, sample=10_000):
    """A notice when the images are mostly bright: dark digits on a light ground, the reverse
    of MNIST's light ink on black, which a model trained on one does not read in the other."""
    if x.shape[0] == 0:
        return
    block = np.asarray(x[:sample], dtype=np.float32)
    mean = float(block.mean()) / (255.0 if x.dtype == np.uint8 else 1.0)
    if mean > BRIGHT_MEAN:
        notices.append(
            f"{where}: the images are mostly bright (mean pixel {mean:.2f} of 1): dark ink on a light "
            f"ground, the reverse of MNIST; to use a model trained on MNIST, invert them (1 - x) "
            f"first (training on them as they are is fine: see --centre-inputs)."
        )


def check_compatible(dataset, model, model_path):
    """Raise :class:`DataFormatError` unless ``dataset``'s images and labels fit ``model``.

    Call it wherever a saved model meets data (evaluate, predict, fine-tune): a model trained
    on 28x28 images cannot read 32x32 ones, and it cannot predict classes it has no output for.
    """
    shape = "x".join(map(str, dataset.image_shape))
    if dataset.n_features != model.n_inputs:
        raise DataFormatError(
            f"{dataset.source}: images are {shape} ({dataset.n_features} pixels), "
            f"but the model {model_path} expects {model.n_inputs} pixels per image."
        )
    top = dataset.n_classes - 1
    if top >= model.n_classes:
        raise DataFormatError(
            f"{dataset.source}: labels go up to {top}, but the model {model_path} "
            f"has {model.n_classes} outputs (classes 0 to {model.n_classes - 1})."
        )
