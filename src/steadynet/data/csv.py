"""CSV files of one image per row: the label, then the pixels (a header row is optional).

A CSV data set is either

- a folder holding a training file and, optionally, a test file: the ``.csv`` (or ``.csv.gz``)
  file whose name contains ``train`` and the one whose name contains ``test`` (e.g.
  ``mnist_train.csv`` and ``mnist_test.csv``, or Kaggle's ``fashion-mnist_train.csv`` and
  ``fashion-mnist_test.csv``); or
- a single CSV file, read as the training split with an empty test split.
"""

import io
import os
import warnings

import numpy as np

from ..errors import DataFormatError
from .limits import gunzip_bounded, regular_file

CSV_SUFFIXES = (".csv", ".csv.gz")


def parse_csv(raw, name="<csv>"):
    """Decode CSV bytes (label, pixel, pixel, ...; gzip undone) into ``(x, y)``.

    The first line is a header when none of its fields is a number (``label,pixel1,...``), or
    when only its first is not and the others number the columns (``label,0,1,...`` or
    ``label,1,2,...``). A first line that is otherwise partly numbers is a row of data, so a
    stray non-number in it is reported (never silently dropped as a "header").

    Returns
    -------
    x : ndarray of shape (n, n_pixels), uint8 if every pixel is a whole number in 0-255
        (and some exceed 1), else float32
    y : ndarray of shape (n,), float32 (whole numbers, checked by :func:`standardise_labels`)
    """
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip_bounded(raw, name)  # a bomb is refused at the limit of steadynet.data.limits
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as spreadsheet programs write
        raw = raw[3:]
    has_header = is_header(raw.split(b"\n", 1)[0])
    try:
        with warnings.catch_warnings():  # "input contained no data": reported below, as an error
            warnings.simplefilter("ignore", UserWarning)
            # float32: exact for labels and 0-255 pixels, and half the memory of float64
            table = np.loadtxt(io.BytesIO(raw), delimiter=",", skiprows=int(has_header), dtype=np.float32, ndmin=2)
    except ValueError:
        raise DataFormatError(describe_bad_row(raw, name, has_header)) from None
    if table.shape[0] == 0 or table.shape[1] < 2:
        raise DataFormatError(
            f"{name}: expected rows of a label and at least one pixel, found "
            f"{table.shape[0]} rows of {table.shape[1]} values."
        )
    y = table[:, 0]
    x = table[:, 1:]
    if np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 255 and x.max() > 1 and np.array_equal(x, np.round(x)):
        x = x.astype(np.uint8)  # the usual CSV: grey levels 0-255, a quarter of the memory
    return x, y


def is_header(line):
    """Whether the first line of a CSV file is a header (see :func:`parse_csv`)."""
    fields = line.rstrip(b"\r").split(b",")
    numbers = [is_number(v) for v in fields]
    if not any(numbers):
        return True
    if numbers[0] or not all(numbers[1:]):
        return False
    columns = [float(v) for v in fields[1:]]
    return columns in (list(range(len(columns))), list(range(1, len(columns) + 1)))


def is_number(field):
    try:
        float(field)
    except ValueError:
        return False
    return True


def describe_bad_row(raw, name, has_header):
    """One line naming the first row whose field count or content is wrong (only called
    after NumPy has refused the file, so the scan costs nothing on good files)."""
    width = None
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if (has_header and number == 1) or not line.strip():
            continue
        fields = line.split(",")
        if width is None:
            width = len(fields)
        if len(fields) != width:
            return (
                f"{name}: line {number} has {len(fields)} values, expected {width} like the first "
                f"row (a label, then the pixels); rows must all be the same length."
            )
        for column, field in enumerate(fields, 1):
            if not is_number(field):
                return f"{name}: line {number}, column {column}: expected a number, found {field.strip()!r}."
    return f"{name}: expected rows of comma-separated numbers (a label, then the pixels)."


def read_csv(path):
    """Read a CSV file into ``(x, y)``; see :func:`parse_csv`."""
    regular_file(path, "CSV file")  # never a FIFO or a device
    with open(path, "rb") as f:
        return parse_csv(f.read(), str(path))


def find_csv_files(folder):
    """The training and test CSV files of ``folder`` (the test file may be None)."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(CSV_SUFFIXES))
    train = [n for n in names if "train" in n.lower()]
    test = [n for n in names if "test" in n.lower()]
    if len(train) != 1 or len(test) > 1:
        raise DataFormatError(
            f"{folder}: expected one CSV file with 'train' in its name and at most one with 'test', found {names}."
        )
    return os.path.join(folder, train[0]), (os.path.join(folder, test[0]) if test else None)


def read_csv_arrays(path):
    """The arrays of a CSV data set (a folder or a single file), where each came from, and
    notices (none).

    Returns
    -------
    arrays : dict of str to ndarray or None
        ``x_train``, ``y_train``, ``x_test``, ``y_test``; the test pair is None when there is
        no test file.
    names : dict of str to str
        ``"<file> pixel columns"`` and ``"<file> label column"``, for error messages.
    """
    train, test = find_csv_files(path) if os.path.isdir(path) else (path, None)
    arrays, names = {}, {}
    for split, file in (("train", train), ("test", test)):
        x, y = read_csv(file) if file else (None, None)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        base = os.path.basename(file) if file else f"(no {split} file)"
        names[f"x_{split}"], names[f"y_{split}"] = f"{base} pixel columns", f"{base} label column"
    return arrays, names, []


def write_csv(path, x, y):
    """Write ``label,pixel1,...`` rows with a header; uint8 pixels as integers."""
    fmt = ["%d"] + ["%d" if x.dtype == np.uint8 else "%.9g"] * x.shape[1]
    header = ",".join(["label"] + [f"pixel{j}" for j in range(1, x.shape[1] + 1)])
    table = np.column_stack([y.astype(np.float64), x.astype(np.float64)])
    np.savetxt(path, table, fmt=fmt, delimiter=",", header=header, comments="")


def write_csv_folder(folder, data):
    """Write ``data`` as ``train.csv`` and (if it has a test split) ``test.csv`` in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    write_csv(os.path.join(folder, "train.csv"), data.x_train, data.y_train)
    if len(data.y_test):
        write_csv(os.path.join(folder, "test.csv"), data.x_test, data.y_test)
