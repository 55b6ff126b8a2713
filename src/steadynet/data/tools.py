"""What ``steadynet data info``, ``convert`` and ``show`` do, as importable functions."""

import os

import numpy as np

from ..errors import DataFormatError
from ..viz import plot_samples, save_figure
from . import FORMATS, detect_format, load_data, read_arrays, resolve, writer
from .dataset import make_dataset
from .fetch import REGISTRY, array_sha256, file_hash
from .hdf5 import stored_layout
from .idx import find_idx_files

# the suffixes that imply an output format (convert writes every format in FORMATS)
SUFFIX_FORMATS = {".h5": "hdf5", ".hdf5": "hdf5", ".npz": "npz"}


def describe(spec):
    """Describe a data set: format, shapes and dtypes as stored and as loaded, label counts,
    pixel range, and whether it matches a registered data set's known hashes.

    Parameters
    ----------
    spec : str
        A path in any supported format, or a registered name (its cached copy).

    Returns
    -------
    dict (JSON-ready) with keys ``path``, ``format``, ``arrays`` (per key: ``stored_dtype``,
    ``stored_shape``, ``dtype``, ``shape``, and for images ``pixel_min``/``pixel_max`` as stored),
    ``image_shape``, ``n_classes``, ``label_counts`` (per split, a list indexed by class),
    ``notices``, ``checksum`` (see :func:`match_known`) and, for IDX folders, ``files``.

    Raises
    ------
    DataFormatError
        The data fails validation (the same error training would give).
    """
    path = resolve(spec)
    fmt = detect_format(path)
    arrays, names, notices = read_arrays(path, fmt)
    data = make_dataset(*arrays.values(), source=str(path), keys=tuple(names.values()))
    report = {
        "path": str(path),
        "format": fmt,
        "arrays": {},
        "image_shape": list(data.image_shape),
        "n_classes": data.n_classes,
        "label_counts": {},
        "notices": notices + data.notices,
    }
    if fmt == "hdf5":  # the HDF5 reader hands back float pixels k/255 as uint8: ask the file
        stored = stored_layout(path)
    else:
        stored = {k: (a.dtype, a.shape) for k, a in arrays.items() if a is not None}
    for key, raw in arrays.items():
        loaded = getattr(data, key)
        dtype, shape = stored.get(key, (None, None))
        entry = {
            "stored_dtype": None if raw is None else str(dtype),
            "stored_shape": None if raw is None else list(shape),
            "dtype": str(loaded.dtype),
            "shape": list(loaded.shape),
        }
        if key.startswith("x") and raw is not None and raw.size:
            scale = 255.0 if raw.dtype == np.uint8 and np.dtype(dtype).kind == "f" else 1.0
            entry["pixel_min"], entry["pixel_max"] = float(raw.min()) / scale, float(raw.max()) / scale
        report["arrays"][key] = entry
    for split in ("train", "test"):
        y = getattr(data, f"y_{split}")
        report["label_counts"][split] = np.bincount(y, minlength=data.n_classes).tolist()
    report["checksum"] = match_known(data)
    if fmt == "idx-folder":
        report["files"] = match_known_files(path)
    return report


def dataset_hashes(data):
    """SHA-256 of each array as MNIST's files hold it (uint8 pixels and labels), or None where
    the data cannot be stored that way (float pixels off the 0-255 grid, labels above 255)."""
    hashes = {}
    for key in ("x_train", "y_train", "x_test", "y_test"):
        a = getattr(data, key)
        fits = a.dtype == np.uint8 or (key.startswith("y") and a.max(initial=0) < 256)
        hashes[key] = array_sha256(a.astype(np.uint8, copy=False)) if fits else None
    return hashes


def match_known(data):
    """Compare the arrays' SHA-256 with every registered data set that publishes them.

    Returns
    -------
    dict
        ``status``: "match" (all four arrays equal a registered set's), "mismatch" (some do,
        some do not: an altered or partial copy; ``differs`` lists the keys and ``expected``/
        ``found`` their hashes) or "unknown" (no array matches); ``name``: the registered set;
        ``sha256``: the arrays' hashes.
    """
    hashes = dataset_hashes(data)
    best = None
    for name, spec in REGISTRY.items():
        if not spec.array_sha256:
            continue
        same = [k for k, h in spec.array_sha256.items() if hashes[k] == h]
        if same and (best is None or len(same) > len(best[1])):
            best = (name, same)
    if best is None:
        return {"status": "unknown", "name": None, "sha256": hashes}
    name, same = best
    known = REGISTRY[name].array_sha256
    differs = [k for k in known if k not in same]
    result = {"status": "mismatch" if differs else "match", "name": name, "sha256": hashes}
    if differs:
        result.update(differs=differs, expected={k: known[k] for k in differs}, found={k: hashes[k] for k in differs})
    return result


def match_known_files(folder):
    """Compare the MD5 of each IDX file in ``folder`` with the registered sets' published ones.

    Returns a dict: ``status`` ("match", "mismatch" or "unknown" as in :func:`match_known`),
    ``name``, ``md5`` (per key). Re-compressed files differ from the published ones even when
    the arrays are equal (gzip stores a time stamp), which is why arrays are compared too.
    """
    md5 = {k: file_hash(p, "md5") for k, p in find_idx_files(folder).items()}
    for name, spec in REGISTRY.items():
        same = [k for k, h in spec.file_md5.items() if md5.get(k) == h]
        if same:
            return {"status": "match" if len(same) == len(spec.file_md5) else "mismatch", "name": name, "md5": md5}
    return {"status": "unknown", "name": None, "md5": md5}


def convert(src, dst, fmt=None, log=None):
    """Read a data set in any supported format and write it in another.

    Parameters
    ----------
    src : str
        A path or registered name.
    dst : str
        Must not exist yet. ``.h5``/``.hdf5``: the seed's HDF5 layout (float32 pixels in
        [0, 1], (n, 1) labels); ``.npz``: Keras' layout. Folders need ``fmt``.
    fmt : {"hdf5", "npz", "idx-folder", "csv", "images"}, optional
        Default: from ``dst``'s suffix.
    log : callable(str), optional
        Receives the reader's notices.

    Returns
    -------
    dict: ``src``, ``dst``, ``format``, ``n_train``, ``n_test``.
    """
    if fmt is None:
        fmt = SUFFIX_FORMATS.get(os.path.splitext(dst)[1].lower())
        if fmt is None:
            raise DataFormatError(
                f"{dst}: cannot tell the output format from the name (expected "
                f"{sorted(SUFFIX_FORMATS)}); give --format {{{','.join(FORMATS)}}}."
            )
    if fmt not in FORMATS:
        raise DataFormatError(f"--format must be one of {list(FORMATS)}, got {fmt!r}.")
    if os.path.exists(dst):
        raise DataFormatError(f"{dst}: already exists; choose a new path (nothing was overwritten).")
    data = load_data(src, log=log)
    for notice in data.notices:
        (log or (lambda line: None))(notice)
    writer(fmt)(dst, data)
    return {
        "src": str(src),
        "dst": str(dst),
        "format": fmt,
        "n_train": int(len(data.y_train)),
        "n_test": int(len(data.y_test)),
    }


def show(spec, out, n=25, split="train", seed=0):
    """Save a grid of ``n`` randomly chosen images of ``split``, each titled with its label.

    Drawn by :func:`steadynet.viz.plot_samples` (matplotlib's Agg canvas: no window, no pyplot
    state), on a figure sized to the grid.

    Returns
    -------
    dict: ``path``, ``split``, ``indices`` (the images shown), ``labels``.
    """
    data = load_data(spec)
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    if len(data.image_shape) != 2:
        raise DataFormatError(f"{spec}: images of {data.n_features} pixels have no 2-D shape to draw.")
    if len(y) == 0:
        raise DataFormatError(f"{spec}: the {split} split is empty; nothing to show.")
    if n < 1:
        raise DataFormatError(f"--n must be at least 1, got {n}.")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(y), size=min(n, len(y)), replace=False))
    cols = int(np.ceil(np.sqrt(len(index))))
    rows = int(np.ceil(len(index) / cols))
    fig = plot_samples(
        x[index],
        y[index],
        data.image_shape,
        n=len(index),
        title=f"{len(index)} {split} images of {data.source}",
        figsize=(max(1.2 * cols, 3.0), 1.35 * rows + 0.4),
    )
    save_figure(fig, out)
    return {"path": str(out), "split": split, "indices": index.tolist(), "labels": y[index].tolist()}
