"""Keras' ``mnist.npz`` layout: ``x_train`` (n, 28, 28) uint8, ``y_train`` (n,), ``x_test``, ``y_test``."""

import os
import zipfile
import zlib

import numpy as np

from ..errors import DataFormatError
from .dataset import make_dataset

KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz_arrays(path):
    """The four arrays of an NPZ data set, as stored, never unpickling anything.

    Returns ``(arrays, names, notices)`` as :func:`steadynet.data.read_arrays` does."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DataFormatError(f"{path}: expected arrays {list(KEYS)}, missing {missing} "
                                      f"(found {sorted(z.files)}).")
            arrays = {k: z[k] for k in KEYS}
    except DataFormatError:
        raise
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataFormatError(f"{path}: holds object arrays, which are refused (they would need "
                              f"pickle): {exc}.") from None
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise DataFormatError(f"{path}: not a readable NPZ file ({exc}).") from None
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
            np.savez_compressed(f, x_train=data.x_train.reshape((-1,) + shape), y_train=data.y_train,
                                x_test=data.x_test.reshape((-1,) + shape), y_test=data.y_test)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
