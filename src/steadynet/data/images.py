"""Folders of image files, one sub-folder per class, named by its integer label.

Two layouts are read::

    root/train/<label>/*.png  and  root/test/<label>/*.png   (the test folder is optional)
    root/<label>/*.png                                       (a training split only)

Images may be PNG, JPEG or BMP; colour images are converted to 8-bit grey, 16-bit grey is
scaled to 8 bits, and a transparent background is filled as :func:`steadynet.pictures.load_image`
fills it (behind dark strokes white, behind light ones black), each with a notice. Class
folders are named by ASCII digits only. Each image may have at most :data:`MAX_IMAGE_PIXELS`
pixels, and all of them together may claim no more than :mod:`steadynet.data.limits` allows
for the bytes of their files (checked from the headers before anything is decoded).
They are ordered by file name, numbers in names compared as numbers, then by label: files
named by their index (``00042.png``) keep the order they were written in, whatever their class.

Decoding uses Pillow, an optional dependency imported only here (``pip install pillow``; it
comes with matplotlib).
"""

import os
import re

import numpy as np

from ..errors import DataFormatError
from ..pictures import grey_of
from .limits import check_expansion, regular_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MAX_IMAGE_PIXELS = 4096 * 4096  # per image of a data set; far beyond any MNIST-like image
LABEL = re.compile(r"[0-9]+")  # "²" and "٣" are digits to str.isdigit, not labels


def is_label(name):
    """Whether a folder name is an integer label: ASCII digits only."""
    return LABEL.fullmatch(name) is not None


def natural_key(name):
    """Sort key comparing runs of digits as numbers: ``img2.png`` before ``img10.png``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def class_folders(folder):
    """The sub-folders of ``folder`` that are not hidden."""
    return sorted(n for n in os.listdir(folder) if not n.startswith(".") and os.path.isdir(os.path.join(folder, n)))


def is_image_folder(root):
    """True when ``root`` has a ``train`` sub-folder or sub-folders named by integer labels."""
    subs = class_folders(root)
    return "train" in subs or (bool(subs) and all(is_label(s) for s in subs))


def list_images(folder):
    """``(path, label)`` of every image in ``folder/<label>/``, in the documented order."""
    items = []
    for sub in class_folders(folder):
        if not is_label(sub):
            raise DataFormatError(
                f"{os.path.join(folder, sub)}: expected class folders named by their "
                f"integer label (0, 1, ...), found {sub!r}."
            )
        for name in os.listdir(os.path.join(folder, sub)):
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                items.append((natural_key(name), int(sub), os.path.join(folder, sub, name)))
    if not items:
        raise DataFormatError(
            f"{folder}: expected class folders <label>/ holding {'/'.join(IMAGE_SUFFIXES)} images, found none."
        )
    items.sort(key=lambda item: item[:2])
    return [(path, label) for _, label, path in items]


def read_images(items, notices):
    """Decode images to one uint8 array.

    Returns
    -------
    x : ndarray of shape (n, h, w), uint8
        Written in place image by image: no list of arrays, no second copy.
    y : ndarray of shape (n,), int64
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataFormatError("reading image folders needs Pillow: pip install pillow") from None

    stored = sum(regular_file(path, "image file") for path, _ in items)  # bytes on disk, all files
    x, converted = None, set()
    for i, (path, _) in enumerate(items):
        try:
            with Image.open(path) as im:
                width, height = im.size  # from the header: nothing decoded yet
                if width * height > MAX_IMAGE_PIXELS:
                    raise DataFormatError(
                        f"{path}: the image is {width}x{height} pixels; images of a data set "
                        f"may have at most {MAX_IMAGE_PIXELS:,}."
                    )
                if x is None:  # the first image fixes the size
                    check_expansion(
                        f"{os.path.dirname(os.path.dirname(path))}: {len(items)} images of {width}x{height}",
                        len(items) * width * height,
                        stored,
                    )
                    x = np.empty((len(items), height, width), dtype=np.uint8)
                if im.size != (x.shape[2], x.shape[1]):
                    raise DataFormatError(
                        f"{path}: expected a {x.shape[2]}x{x.shape[1]} image like "
                        f"{items[0][0]}, found {im.width}x{im.height}."
                    )
                if im.mode != "L":
                    converted.add(im.mode)
                x[i] = grey_uint8(im, path)
        except Image.DecompressionBombError as exc:  # Pillow refuses to open it at all
            raise DataFormatError(
                f"{path}: the image is too large ({exc}); images of a data set may have "
                f"at most {MAX_IMAGE_PIXELS:,} pixels."
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            if isinstance(exc, DataFormatError):
                raise
            raise DataFormatError(f"{path}: not a readable image ({exc}).") from None
    if converted:
        notices.append(
            f"{os.path.dirname(os.path.dirname(items[0][0]))}: images in mode "
            f"{sorted(converted)} were converted to 8-bit grey (16-bit levels scaled, "
            f"transparency filled)."
        )
    return x, np.array([label for _, label in items], dtype=np.int64)


def grey_uint8(im, path):
    """One Pillow image as (h, w) uint8 grey: 8-bit grey as it is, 16-bit grey scaled by 255/65535
    (not clipped), transparency filled as :func:`steadynet.pictures.grey_of` does, colour as luminance."""
    if im.mode == "L":
        return np.asarray(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L"):
        a = np.asarray(im, dtype=np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise DataFormatError(
                f"{path}: expected 8- or 16-bit grey levels, found values from {a.min()} to {a.max()}."
            )
        return np.round(a * (255 / 65535)).astype(np.uint8)
    if im.mode == "F":
        raise DataFormatError(f"{path}: a floating-point image (mode F); expected 8- or 16-bit grey or colour.")
    if "A" in im.getbands() or "transparency" in im.info:
        return np.round(grey_of(im) * 255).astype(np.uint8)
    return np.asarray(im.convert("L"))


def read_image_arrays(root):
    """The arrays of an image-folder data set, where each came from, and notices.

    The test pair is None when there is no test folder.
    """
    if "train" in class_folders(root):
        splits = {"train": os.path.join(root, "train"), "test": os.path.join(root, "test")}
        if not os.path.isdir(splits["test"]):
            splits["test"] = None
    else:
        splits = {"train": root, "test": None}
    arrays, names, notices = {}, {}, []
    for split, folder in splits.items():
        x, y = read_images(list_images(folder), notices) if folder else (None, None)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        where = split if folder else f"(no {split} folder)"
        names[f"x_{split}"], names[f"y_{split}"] = f"{where} images", f"{where} class folders"
    return arrays, names, notices


def write_image_folder(root, data):
    """Write ``data`` as ``root/train/<label>/<index>.png`` (and ``root/test/...``).

    Files are named by their index, zero-padded, so reading the folder back gives the same
    order. PNG holds 8-bit grey, so the data must be uint8 (pixels 0-255).
    """
    from PIL import Image

    if data.x_train.dtype != np.uint8 or len(data.image_shape) != 2:
        raise DataFormatError(
            f"{root}: an image folder holds 8-bit 2-D images; this data is "
            f"{data.x_train.dtype} of shape {tuple(data.image_shape)}."
        )
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        width = len(str(max(len(y) - 1, 0)))
        for i in range(len(y)):
            folder = os.path.join(root, split, str(int(y[i])))
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(x[i].reshape(data.image_shape)).save(os.path.join(folder, f"{i:0{width}d}.png"))
