"""IDX files, the format MNIST was published in (LeCun et al.), gzipped or not.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
one big-endian uint32 per dimension; the body is the array in C order.

A data set is a folder holding the four files (``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
``t10k-labels-idx1-ubyte[.gz]``; ``.idx`` in place of ``-idx`` is accepted too).
"""

import gzip
import io
import os
import zlib

import numpy as np

from ..errors import DataFormatError
from .dataset import make_dataset
from .limits import MAX_EXPANSION, check_expansion, regular_file

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_CODES = {np.dtype(t).newbyteorder(">").str: code for code, t in IDX_TYPES.items()}

# the four files of an IDX data set, by split
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx_stream(f, name, stored=None):
    """Decode one IDX array from a binary stream (already un-gzipped).

    The array is allocated from the header and the body is read straight into it, so a 47 MB
    image file costs 47 MB, not twice that; uint8 data needs no conversion at all. Before
    that, what the header promises is checked: against the bytes left in a plain stream, and
    for a gzip stream against ``stored`` (its compressed size) by the limits of
    :mod:`steadynet.data.limits`; the stream is never read past the promise.
    """
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataFormatError(
            f"{name}: not an IDX file (expected two zero bytes, a type code and a rank, found {head!r})."
        )
    code, ndim = head[2], head[3]
    if code not in IDX_TYPES:
        raise DataFormatError(
            f"{name}: unknown IDX type code 0x{code:02x} (expected one of {[hex(c) for c in IDX_TYPES]})."
        )
    if not 1 <= ndim <= 4:
        raise DataFormatError(f"{name}: IDX rank must be 1 to 4, found {ndim}.")
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataFormatError(f"{name}: truncated IDX header ({4 + len(dims)} bytes).")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    dtype = np.dtype(IDX_TYPES[code])
    promised = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    # a damaged header (or a decompression bomb) can promise terabytes: check before allocating
    available = remaining_bytes(f)
    if available is None:
        check_expansion(name, promised, stored if stored is not None else MAX_IDX_BYTES // MAX_EXPANSION)
    if promised > (available if available is not None else MAX_IDX_BYTES):
        raise DataFormatError(
            f"{name}: IDX header promises shape {shape} ({promised} bytes of data), "
            f"found {'at most ' + str(MAX_IDX_BYTES) if available is None else available} bytes."
        )
    a = np.empty(shape, dtype=dtype)
    view, got = memoryview(a.reshape(-1).view(np.uint8)), 0  # the bytes of a, written in place
    while got < a.nbytes:  # a stream may return fewer bytes than asked for
        k = f.readinto(view[got:])
        if not k:
            break
        got += k
    if got != a.nbytes or f.read(1):
        found = got if got != a.nbytes else f"more than {a.nbytes}"
        raise DataFormatError(
            f"{name}: IDX header promises shape {shape} ({a.nbytes} bytes of data), found {found} bytes."
        )
    return a.astype(dtype.newbyteorder("="), copy=False)  # big-endian types to native


MAX_IDX_BYTES = 1 << 33  # 8 GiB: far beyond any MNIST-like set


def remaining_bytes(f):
    """Bytes left in a plain file or BytesIO from its position; None for a gzip stream."""
    if isinstance(f, gzip.GzipFile):
        return None
    here = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(here)
    return end - here


def open_idx(path_or_bytes):
    """A binary stream of the IDX bytes, gzip undone when the data starts with its magic."""
    f = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else open(path_or_bytes, "rb")
    if f.read(2) == b"\x1f\x8b":
        f.seek(0)
        return gzip.GzipFile(fileobj=f)
    f.seek(0)
    return f


def read_idx(path, name=None):
    """Read one IDX file (``.gz`` or plain, a path or its bytes) into an ndarray."""
    name = name or str(path)
    stored = len(path) if isinstance(path, (bytes, bytearray)) else regular_file(path, "IDX file")
    try:
        with open_idx(path) as f:
            return read_idx_stream(f, name, stored)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataFormatError(f"{name}: gzip data is corrupt or truncated ({exc}).") from None


def find_idx_files(folder):
    """Paths of the four IDX files in ``folder`` (gzipped or not, ``-`` or ``.`` before ``idx``)."""
    names = os.listdir(folder)
    found = {}
    for key, stem in IDX_FILES.items():
        variants = {stem, stem.replace("-idx", ".idx")}
        match = [n for n in names if n in variants or (n.endswith(".gz") and n[:-3] in variants)]
        if not match:
            raise DataFormatError(
                f"{folder}: expected IDX file {stem}[.gz] for {key}, not found (found {sorted(names)[:8]})."
            )
        found[key] = os.path.join(folder, sorted(match)[0])
    return found


def is_idx_folder(folder):
    """True when ``folder`` holds at least one of the four IDX files."""
    stems = {v for stem in IDX_FILES.values() for v in (stem, stem.replace("-idx", ".idx"))}
    return any(n in stems or (n.endswith(".gz") and n[:-3] in stems) for n in os.listdir(folder))


def read_idx_arrays(folder):
    """The four arrays of an IDX folder, as stored, the file each came from, and notices (none).

    Returns
    -------
    arrays : dict of str to ndarray
        ``x_train`` (n, h, w), ``y_train`` (n,), ``x_test``, ``y_test``; uint8 for MNIST.
    names : dict of str to str
        The file name of each array, for error messages.
    """
    paths = find_idx_files(folder)
    for path in paths.values():  # all four checked before any is read
        regular_file(path, "IDX file")
    return ({k: read_idx(paths[k]) for k in IDX_FILES}, {k: os.path.basename(paths[k]) for k in IDX_FILES}, [])


def read_idx_folder(folder):
    """Read the four IDX files of a folder into a :class:`Dataset`."""
    arrays, names, _ = read_idx_arrays(folder)
    return make_dataset(*arrays.values(), source=str(folder), keys=tuple(names.values()))


def write_idx(path, a):
    """Write one array as an IDX file, gzipped when ``path`` ends in ``.gz``."""
    a = np.ascontiguousarray(a)
    big = a.dtype.newbyteorder(">") if a.dtype.itemsize > 1 else a.dtype
    if big.str not in IDX_CODES:
        raise DataFormatError(
            f"{path}: IDX cannot hold dtype {a.dtype} (it holds uint8, int8, int16, int32, float32, float64)."
        )
    header = bytes([0, 0, IDX_CODES[big.str], a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    # level 6 (not gzip's default 9): a third of the time for files about 1% larger
    f = gzip.open(path, "wb", compresslevel=6) if str(path).endswith(".gz") else open(path, "wb")
    with f:
        f.write(header)
        f.write(a.astype(big, copy=False).tobytes())


def write_idx_folder(folder, data, gz=True):
    """Write ``data`` (a :class:`Dataset`) as the four IDX files of MNIST's layout.

    Images are written (n, h, w) in their dtype (uint8, or float32 for data not on the 0-255
    grid); labels as uint8 when they fit, else int32.
    """
    os.makedirs(folder, exist_ok=True)
    for key, stem in IDX_FILES.items():
        a = getattr(data, key)
        if key.startswith("x"):
            a = a.reshape((-1,) + tuple(data.image_shape))
        else:
            a = a.astype(np.uint8 if a.max(initial=0) < 256 else np.int32)
        write_idx(os.path.join(folder, stem + (".gz" if gz else "")), a)
