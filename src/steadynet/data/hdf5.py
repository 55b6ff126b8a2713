"""The seed's HDF5 layout: datasets ``x_train`` (n, 784) float32 in [0, 1], ``y_train`` (n, 1)
integer labels, ``x_test`` and ``y_test`` likewise.

The reader also takes images as (n, 28, 28), pixels 0-255 and labels (n,) or one-hot.
"""

import os

import numpy as np

from ..errors import DataFormatError
from .dataset import make_dataset, unit_floats_as_uint8
from .limits import check_expansion, regular_file

KEYS = ("x_train", "y_train", "x_test", "y_test")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def read_hdf5_arrays(path):
    """The four arrays of an HDF5 data set, each read once.

    Float images that are exactly ``k / 255`` (the seed's layout, and steadynet's cache) are
    read in chunks straight into uint8: MNIST then needs 47 MB instead of 188 MB and a
    float32 copy of it is never whole in memory. Anything else is read as stored.

    Returns ``(arrays, names, notices)`` as :func:`steadynet.data.read_arrays` does."""
    import h5py

    regular_file(path, "HDF5 file")  # never a FIFO or a device
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in KEYS if k not in f]
            if missing:
                raise DataFormatError(
                    f"{path}: expected HDF5 datasets {list(KEYS)}, missing {missing} (found {sorted(f.keys())})."
                )
            arrays = {}
            for k in KEYS:
                if not isinstance(f[k], h5py.Dataset):
                    raise DataFormatError(f"{path}: {k} must be a dataset, found a {type(f[k]).__name__}.")
                d = f[k]
                check_dataset(d, f"{path}: {k}")
                compact = unit_floats_as_uint8(d) if k[0] == "x" and d.dtype.kind == "f" and d.ndim >= 2 else None
                arrays[k] = compact if compact is not None else d[()]
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"{path}: not a readable HDF5 file ({exc}).") from None
    return arrays, {k: k for k in KEYS}, []


def check_dataset(d, where):
    """Refuse, before reading it, a dataset that is not plain numbers held in this file, or that
    claims more data than its storage can expand to (chunks never written read as zeros: a
    633 KB file can declare a million images).

    Parameters
    ----------
    d : h5py.Dataset
    where : str
        Names the file and dataset.
    """
    if d.dtype.kind not in "biuf" or d.dtype.fields is not None:
        raise DataFormatError(f"{where}: expected numbers, found HDF5 type {d.dtype}.")
    if d.external or d.is_virtual:
        kind = "virtual" if d.is_virtual else "external"
        raise DataFormatError(
            f"{where}: its data lives outside this file ({kind} storage); expected a self-contained HDF5 file."
        )
    claimed = int(np.prod(d.shape, dtype=object)) * d.dtype.itemsize
    stored = d.id.get_storage_size()  # bytes allocated in the file (compressed chunks: their size)
    if claimed > stored:  # compressed, or chunks never written: a limit on what it may claim
        check_expansion(where, claimed, stored)


def stored_layout(path):
    """``{key: (dtype, shape)}`` of the four datasets as the file stores them (the reader may
    hand back float pixels k/255 as uint8)."""
    import h5py

    with h5py.File(path, "r") as f:
        return {k: (f[k].dtype, f[k].shape) for k in KEYS if k in f}


def read_hdf5(path):
    """Read a data set in the seed's HDF5 layout. Returns a :class:`Dataset`."""
    arrays, _, _ = read_hdf5_arrays(path)
    return make_dataset(*arrays.values(), source=str(path))


def write_hdf5(path, data):
    """Write ``data`` (a :class:`Dataset`) in the seed's layout: float32 pixels in [0, 1] and
    (n, 1) int64 labels. The file appears whole or not at all (written aside, then renamed)."""
    import h5py

    tmp = f"{path}.part"
    try:
        with h5py.File(tmp, "w") as f:
            for split in ("train", "test"):
                x = getattr(data, f"x_{split}")
                y = getattr(data, f"y_{split}")
                x = x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x.astype(np.float32)
                f.create_dataset(f"x_{split}", data=x)
                f.create_dataset(f"y_{split}", data=y.reshape(-1, 1).astype(np.int64))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
