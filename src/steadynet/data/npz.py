"""Keras' ``mnist.npz`` layout: ``x_train`` (n, 28, 28) uint8, ``y_train`` (n,), ``x_test``, ``y_test``.

The archive is read member by member without ``np.load``: the members' extents are checked
against the file and each other first (overlapping members are refused), then each array's
``.npy`` header is read and checked (numeric dtype, and exactly as many bytes as the member
holds) before its array is allocated, and a deflated member may expand only as far as
:mod:`steadynet.data.limits` allows. Nothing is ever unpickled.
"""

import os
import zipfile
import zlib

import numpy as np

from ..errors import DataFormatError
from ..persistence import zip_member_extents
from .dataset import make_dataset
from .limits import check_expansion, regular_file

KEYS = ("x_train", "y_train", "x_test", "y_test")
READABLE_KINDS = "biufSU"  # numbers, and fixed-width text (refused later, by what it holds)


def read_npy_member(archive, info, where):
    """One ``.npy`` member of an open zip archive as an ndarray, checked before allocating."""
    with archive.open(info) as f:  # decompresses at most info.file_size bytes, then checks the CRC
        version = np.lib.format.read_magic(f)
        header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if header is None:
            raise DataFormatError(f"{where}: unsupported .npy version {version}.")
        shape, fortran, dtype = header(f)
        if dtype.hasobject:
            raise DataFormatError(
                f"{archive.filename}: holds object arrays, which are refused ({info.filename}; "
                f"they would need pickle, which is never used)."
            )
        if dtype.kind not in READABLE_KINDS:
            raise DataFormatError(f"{where}: holds dtype {dtype}; expected numbers.")
        promised = int(np.prod(shape, dtype=object)) * dtype.itemsize
        body = info.file_size - f.tell()  # the bytes the member holds after its header
        if promised != body:
            raise DataFormatError(
                f"{where}: its header promises shape {shape} ({promised:,} bytes), but the "
                f"member holds {body:,} bytes after the header."
            )
        flat = np.empty(int(np.prod(shape, dtype=object)), dtype=dtype)  # (n_values,)
        view, got = memoryview(flat.view(np.uint8)), 0
        while got < promised:
            k = f.readinto(view[got:])
            if not k:
                break
            got += k
        if got != promised:
            raise DataFormatError(f"{where}: truncated: {got:,} of {promised:,} bytes.")
        f.read(1)  # reaching the end makes zipfile check the member's CRC
    a = flat.reshape(shape, order="F" if fortran else "C")
    return a.astype(dtype.newbyteorder("="), copy=False)


def read_npz_arrays(path):
    """The four arrays of an NPZ data set, as stored, never unpickling anything.

    Returns ``(arrays, names, notices)`` as :func:`steadynet.data.read_arrays` does."""
    path = os.fspath(path)
    regular_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            extents = zip_member_extents(path, archive, DataFormatError)  # before any member is read
            members = {info.filename[: -len(".npy")]: info for _, _, info in extents if info.filename.endswith(".npy")}
            missing = [k for k in KEYS if k not in members]
            if missing:
                raise DataFormatError(
                    f"{path}: expected arrays {list(KEYS)}, missing {missing} (found {sorted(members)})."
                )
            arrays = {}
            for k in KEYS:
                info, where = members[k], f"{path}: {k}"
                if info.flag_bits & 0x1:
                    raise DataFormatError(f"{where} is encrypted; expected plain or deflated arrays.")
                if info.compress_type != zipfile.ZIP_STORED:
                    check_expansion(where, info.file_size, info.compress_size)
                elif info.file_size != info.compress_size:
                    raise DataFormatError(
                        f"{where} is stored, but claims {info.file_size:,} bytes in "
                        f"{info.compress_size:,}; the archive is damaged."
                    )
                arrays[k] = read_npy_member(archive, info, where)
    except DataFormatError:
        raise
    except (
        ValueError,
        OSError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        zlib.error,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        # ValueError: a malformed .npy header; BadZipFile: a bad CRC; NotImplementedError and
        # RuntimeError: an unknown compression method or an encrypted member
        raise DataFormatError(f"{path}: not a readable NPZ file ({type(exc).__name__}: {exc}).") from None
    return arrays, {k: k for k in KEYS}, []


def read_npz(path):
    """Read an NPZ data set. Returns a :class:`Dataset`."""
    arrays, _, _ = read_npz_arrays(path)
    return make_dataset(*arrays.values(), source=str(path))


def write_npz(path, data):
    """Write ``data`` in the Keras layout (images (n, h, w), uint8 where the data is uint8).

    The file appears whole or not at all (written aside, then renamed)."""
    shape = tuple(data.image_shape)
    tmp = f"{path}.part"
    try:
        with open(tmp, "wb") as f:  # a file object: NumPy then adds no ".npz" to the name
            np.savez_compressed(
                f,
                x_train=data.x_train.reshape((-1,) + shape),
                y_train=data.y_train,
                x_test=data.x_test.reshape((-1,) + shape),
                y_test=data.y_test,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
