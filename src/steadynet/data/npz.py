"""Keras' ``mnist.npz`` layout: ``x_train`` (n, 28, 28) uint8, ``y_train`` (n,), ``x_test``, ``y_test``."""

import zipfile

import numpy as np

from ..errors import DataFormatError
from .dataset import make_dataset

KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(path):
    """Read an NPZ data set (never unpickling anything). Returns a :class:`Dataset`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DataFormatError(f"{path}: expected arrays {list(KEYS)}, missing {missing} "
                                      f"(found {sorted(z.files)}).")
            arrays = [z[k] for k in KEYS]
    except DataFormatError:
        raise
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataFormatError(f"{path}: holds object arrays, which are refused (they would need "
                              f"pickle): {exc}.") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFormatError(f"{path}: not a readable NPZ file ({exc}).") from None
    return make_dataset(*arrays, source=str(path))


def write_npz(path, data):
    """Write ``data`` in the Keras layout (images (n, h, w), uint8 where the data is uint8)."""
    shape = tuple(data.image_shape)
    np.savez_compressed(path, x_train=data.x_train.reshape((-1,) + shape), y_train=data.y_train,
                        x_test=data.x_test.reshape((-1,) + shape), y_test=data.y_test)
