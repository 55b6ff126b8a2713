"""Reading, fetching and checking MNIST-like data.

:func:`load_data` is the one entry point: it takes a registered name (``"mnist"``,
``"fashion-mnist"``) or a path, detects the format and returns a validated :class:`Dataset`.

Formats (see ``docs/data.md``):

==============  ==========================================================================
``hdf5``        the seed's file: ``x_train``, ``y_train``, ``x_test``, ``y_test``
``npz``         Keras' ``mnist.npz``: the same four arrays
``idx-folder``  a folder of the four IDX files (``train-images-idx3-ubyte[.gz]`` ...)
``csv``         a folder with ``*train*.csv`` and ``*test*.csv``, or one CSV file (no test)
``images``      ``root/train/<label>/*.png`` and ``root/test/<label>/*.png``, or ``root/<label>/*.png``
==============  ==========================================================================
"""

import os
from importlib import import_module

from ..errors import DataFormatError
from .csv import CSV_SUFFIXES
from .dataset import Dataset, check_compatible, make_dataset
from .fetch import REGISTRY, cached_path, fetch
from .idx import is_idx_folder
from .images import is_image_folder
from .limits import regular_file

__all__ = [
    "Dataset",
    "load_data",
    "read_arrays",
    "detect_format",
    "make_dataset",
    "check_compatible",
    "fetch",
    "REGISTRY",
    "FORMATS",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# format name -> (module of steadynet.data, its reader, its writer): the one dispatch table,
# used by read_arrays and data.tools.convert. Modules are imported on first use, so that each
# format's dependencies (h5py, Pillow) load only when that format is read or written.
FORMAT_FUNCTIONS = {
    "hdf5": ("hdf5", "read_hdf5_arrays", "write_hdf5"),
    "npz": ("npz", "read_npz_arrays", "write_npz"),
    "idx-folder": ("idx", "read_idx_arrays", "write_idx_folder"),
    "csv": ("csv", "read_csv_arrays", "write_csv_folder"),
    "images": ("images", "read_image_arrays", "write_image_folder"),
}
FORMATS = tuple(FORMAT_FUNCTIONS)


def reader(fmt):
    """``read(path) -> (arrays, names, notices)`` for format ``fmt`` (see :func:`read_arrays`)."""
    module, read, _ = FORMAT_FUNCTIONS[fmt]
    return getattr(import_module(f"{__name__}.{module}"), read)


def writer(fmt):
    """``write(path, data)`` for format ``fmt``: ``data`` (a :class:`Dataset`) written at ``path``."""
    module, _, write = FORMAT_FUNCTIONS[fmt]
    return getattr(import_module(f"{__name__}.{module}"), write)


def detect_format(path):
    """The format of the file or folder at ``path``: one of :data:`FORMATS`.

    Files are told apart by their first bytes (HDF5 and ZIP signatures), CSV by its suffix;
    folders by what they hold (IDX files, CSV files, or class/split sub-folders).
    """
    if os.path.isdir(path):
        if is_idx_folder(path):
            return "idx-folder"
        if any(n.lower().endswith(CSV_SUFFIXES) for n in os.listdir(path)):
            return "csv"
        if is_image_folder(path):
            return "images"
        raise DataFormatError(
            f"{path}: a data folder must hold the four IDX files, a *train*.csv "
            f"file, or image sub-folders train/<label>/ or <label>/; found "
            f"{sorted(os.listdir(path))[:8]}."
        )

    regular_file(path)  # a FIFO would block the open below, a device never end
    with open(path, "rb") as f:
        head = f.read(8)
    if head == HDF5_SIGNATURE:
        return "hdf5"
    if head[:2] == b"PK":
        return "npz"
    if path.lower().endswith(CSV_SUFFIXES):
        return "csv"
    if head[:2] == b"\x1f\x8b" or head[:2] == b"\x00\x00":
        raise DataFormatError(
            "{path}: a single IDX file holds one array; point {data} at the folder holding the four IDX files.",
            field="data",
            path=path,
        )
    raise DataFormatError(
        f"{path}: unrecognised data format (expected HDF5, NPZ, CSV, an IDX "
        f"folder or an image folder; the file starts with {head!r})."
    )


def read_arrays(path, fmt=None):
    """The raw arrays of a data set as stored, before validation.

    Returns
    -------
    arrays : dict of str to ndarray or None
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` (the test pair None when absent).
    names : dict of str to str
        Where each array came from (a key, file or column), for messages.
    notices : list of str
        What the reader changed (e.g. colour images made grey).
    """
    return reader(fmt or detect_format(path))(path)


def resolve(spec, progress=None, log=None):
    """The path of a data set given by path or registered name (fetching it once if needed)."""
    spec = os.fspath(spec)
    if os.path.exists(spec):
        return spec
    if spec in REGISTRY:
        path = cached_path(spec)
        if not os.path.exists(path):
            fetch(spec, progress=progress, log=log)
        return path
    if os.sep in spec or "." in spec:
        raise DataFormatError("{data} {spec}: no such file or folder.", field="data", spec=spec)
    raise DataFormatError(
        "{data} {spec!r}: not a file, folder or registered data set (registered: {registered}).",
        field="data",
        spec=spec,
        registered=sorted(REGISTRY),
    )


def load_data(spec, progress=None, log=None, standardised=False):
    """Load a data set by registered name or path, validated.

    Parameters
    ----------
    spec : str or os.PathLike
        A registered name (see ``REGISTRY``; fetched once into the cache) or the path of a
        data file or folder in one of :data:`FORMATS`.
    progress : callable or bool, optional
        Download progress, as for :func:`fetch`.
    log : callable(str), optional
        Receives one line per download source tried.
    standardised : bool, default=False
        Accept inputs standardised on purpose (values outside [0, 255]) as float32.

    Returns
    -------
    Dataset
        Pixels uint8 (when the data is on the 0-255 grid) or float32 in [0, 1]; the readers'
        notices come first in ``notices``.

    Raises
    ------
    DataFormatError
        Naming the file and key/column, what was expected and what was found.
    """
    path = resolve(spec, progress, log)
    arrays, names, notices = read_arrays(path)
    data = make_dataset(*arrays.values(), source=str(path), keys=tuple(names.values()), standardised=standardised)
    data.notices[:0] = notices
    if os.fspath(spec) in REGISTRY and not os.path.exists(os.fspath(spec)):
        data.source = os.fspath(spec)
    return data
