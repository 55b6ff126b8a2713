"""Reading, fetching and batching MNIST-like data.

:func:`load_data` is the one entry point: it takes a registered name (``"mnist"``) or a path
and returns a validated :class:`Dataset`.
"""

import os

from ..errors import DataFormatError
from .dataset import Dataset, make_dataset
from .fetch import REGISTRY, cached_path, fetch

__all__ = ["Dataset", "load_data", "detect_format", "make_dataset", "fetch", "REGISTRY"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def detect_format(path):
    """The format of the file or folder at ``path``: "hdf5", "npz", "idx", "idx-folder" or "csv"."""
    if os.path.isdir(path):
        return "idx-folder"
    with open(path, "rb") as f:
        head = f.read(8)
    if head == HDF5_SIGNATURE:
        return "hdf5"
    if head[:2] == b"PK":
        return "npz"
    if head[:2] == b"\x1f\x8b" or head[:2] == b"\x00\x00":
        return "idx"
    if path.lower().endswith(".csv"):
        return "csv"
    raise DataFormatError(f"{path}: unrecognised data format (expected HDF5, NPZ, an IDX folder "
                          f"or CSV; the file starts with {head!r}).")


def load_data(spec, progress=None, log=None):
    """Load a data set by registered name or path.

    Parameters
    ----------
    spec : str
        A registered name (see ``REGISTRY``; fetched once into the cache) or the path of a
        data file or folder in a supported format.

    Returns
    -------
    Dataset
    """
    from .hdf5 import read_hdf5

    spec = os.fspath(spec)
    if not os.path.exists(spec):
        if spec in REGISTRY:
            path = cached_path(spec)
            if not os.path.exists(path):
                fetch(spec, progress=progress, log=log)
            data = read_hdf5(path)
            data.source = spec
            return data
        if os.sep in spec or "." in spec:
            raise DataFormatError(f"--data {spec}: no such file or folder.")
        raise DataFormatError(f"--data {spec!r}: not a file, folder or registered data set "
                              f"(registered: {sorted(REGISTRY)}).")
    fmt = detect_format(spec)
    if fmt == "hdf5":
        return read_hdf5(spec)
    if fmt == "idx-folder":
        from .idx import read_idx_folder

        return read_idx_folder(spec)
    if fmt == "npz":
        from .npz import read_npz

        return read_npz(spec)
    raise DataFormatError(f"{spec}: a single {fmt} file holds one array; point --data at the folder "
                          f"holding the train and test files.")
