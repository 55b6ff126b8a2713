"""CSV files of one image per row: the label, then the pixels (a header row is optional)."""

import io

import numpy as np

from ..errors import DataFormatError


def parse_csv(raw, name="<csv>"):
    """Decode CSV bytes (label, pixel, pixel, ...) into ``(x, y)``.

    Returns
    -------
    x : ndarray of shape (n, n_pixels), uint8 if every pixel is a whole number in 0-255,
        else float32
    y : ndarray of shape (n,), int64
    """
    first_line = raw.split(b"\n", 1)[0]
    has_header = any(ch.isalpha() for ch in first_line.decode("utf-8", "replace"))
    try:
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", skiprows=int(has_header),
                           dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataFormatError(f"{name}: expected rows of numbers (label, then pixels), {exc}.") from None
    if table.shape[0] == 0 or table.shape[1] < 2:
        raise DataFormatError(f"{name}: expected rows of a label and at least one pixel, found shape {table.shape}.")
    y = table[:, 0]
    x = table[:, 1:]
    if np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 255 and np.array_equal(x, np.round(x)) and x.max() > 1:
        x = x.astype(np.uint8)
    else:
        x = x.astype(np.float32)
    return x, y


def read_csv(path):
    """Read a CSV file into ``(x, y)``; see :func:`parse_csv`."""
    with open(path, "rb") as f:
        return parse_csv(f.read(), str(path))
