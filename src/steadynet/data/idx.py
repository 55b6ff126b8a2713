"""IDX files, the format MNIST was published in (LeCun et al.), gzipped or not.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
one big-endian uint32 per dimension; the body is the array in C order.
"""

import gzip
import os

import numpy as np

from ..errors import DataFormatError

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

# the four files of an IDX data set, by split
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def parse_idx(raw, name="<bytes>"):
    """Decode the bytes of one IDX file (gzip is detected and undone) into an ndarray."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataFormatError(f"{name}: gzip data is corrupt or truncated ({exc}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataFormatError(f"{name}: not an IDX file (expected two zero bytes, a type code and "
                              f"a rank, found {raw[:4]!r}).")
    code, ndim = raw[2], raw[3]
    if code not in IDX_TYPES:
        raise DataFormatError(f"{name}: unknown IDX type code 0x{code:02x} (expected one of "
                              f"{[hex(c) for c in IDX_TYPES]}).")
    if not 1 <= ndim <= 4:
        raise DataFormatError(f"{name}: IDX rank must be 1 to 4, found {ndim}.")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{name}: truncated IDX header ({len(raw)} bytes).")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFormatError(f"{name}: IDX header promises shape {shape} ({expected} bytes of data), "
                              f"found {len(raw) - header} bytes.")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read one IDX file (``.gz`` or plain) into an ndarray."""
    with open(path, "rb") as f:
        return parse_idx(f.read(), str(path))


def find_idx_files(folder):
    """Paths of the four IDX files in ``folder`` (gzipped or not, ``-`` or ``.`` before ``idx``)."""
    names = os.listdir(folder)
    found = {}
    for key, stem in IDX_FILES.items():
        variants = {stem, stem.replace("-idx", ".idx")}
        match = [n for n in names if n in variants or (n.endswith(".gz") and n[:-3] in variants)]
        if not match:
            raise DataFormatError(f"{folder}: expected IDX file {stem}[.gz] for {key}, not found "
                                  f"(found {sorted(names)[:8]}).")
        found[key] = os.path.join(folder, sorted(match)[0])
    return found


def read_idx_folder(folder):
    """Read the four IDX files of a folder into a :class:`Dataset`."""
    from .dataset import make_dataset

    paths = find_idx_files(folder)
    arrays = [read_idx(paths[k]) for k in IDX_FILES]
    return make_dataset(*arrays, source=str(folder),
                        keys=tuple(os.path.basename(paths[k]) for k in IDX_FILES))
