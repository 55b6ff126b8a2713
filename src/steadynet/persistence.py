"""Model and checkpoint files: arrays and JSON only, never pickle.

File format (version 1)
-----------------------
A NumPy ``.npz`` archive. Every member is a plain numeric array, loaded with
``allow_pickle=False``:

- the parameters ``W1``, ``b1``, ``W2``, ``b2``, ... (checkpoints add the optimiser's state as
  ``optim.<name>``);
- ``__meta__``: UTF-8 JSON as a uint8 array, holding ``format`` ("steadynet-model" or
  "steadynet-checkpoint"), ``version`` (1), ``model`` (the ``MLP`` constructor arguments),
  ``sha256`` (over every other member's name, dtype, shape and bytes, in name order) and, for
  checkpoints, the epoch, the random-number generator states and the metrics so far.

Files are written atomically: to a temporary file beside the target, flushed and fsynced,
then renamed over it. A crash or a full disk mid-write leaves the previous file intact.
"""

import hashlib
import json
import os
import zipfile

import numpy as np

from .errors import ModelFileError, SteadynetError

FORMAT_VERSION = 1
MODEL_FORMAT = "steadynet-model"
CHECKPOINT_FORMAT = "steadynet-checkpoint"
MODEL_FILE = "model.npz"  # the model inside a run folder


def arrays_sha256(arrays):
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file, fsync it and rename it to ``path``.

    On any failure (a full disk raises ``OSError(ENOSPC)``) the temporary file is removed,
    ``path`` keeps its previous content, and :class:`SteadynetError` says so.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise SteadynetError(f"could not write {path}: {exc.strerror or exc}; any previous "
                             f"version of it is left intact.") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def save_arrays(path, arrays, meta):
    """Write ``arrays`` (name -> ndarray) and the JSON-ready dict ``meta`` as a steadynet file."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    meta = dict(meta, version=FORMAT_VERSION, sha256=arrays_sha256(arrays))
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, __meta__=blob, **arrays))


def load_arrays(path, expected_format):
    """Read a steadynet file; verify its format, version and checksum. Returns ``(arrays, meta)``."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if "__meta__" not in names:
                raise ModelFileError(f"{path}: not a steadynet file (no __meta__ member; found {names[:6]}).")
            meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
            arrays = {name: z[name] for name in names if name != "__meta__"}
    except ModelFileError:
        raise
    except ValueError as exc:  # includes "Object arrays cannot be loaded when allow_pickle=False"
        raise ModelFileError(f"{path}: refused: {exc} (steadynet files hold numeric arrays only; "
                             f"pickled objects are never loaded).") from None
    except (OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not a readable steadynet file ({type(exc).__name__}: {exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{path}: expected a {expected_format} file, found format {found!r}.")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: format version {meta.get('version')!r} is not supported "
                             f"(this steadynet reads version {FORMAT_VERSION}).")
    if meta.get("sha256") != arrays_sha256(arrays):
        raise ModelFileError(f"{path}: checksum mismatch: the file is corrupted or was altered "
                             f"(stored {meta.get('sha256')}, computed {arrays_sha256(arrays)}).")
    return arrays, meta


def save_model(path, model, **extra):
    """Save ``model``'s parameters and architecture (plus JSON-ready ``extra`` metadata)."""
    save_arrays(path, model.state_dict(), {"format": MODEL_FORMAT, "model": model.config(), **extra})


def model_from(arrays, meta, path, device="cpu"):
    """Build an :class:`MLP` from loaded arrays and metadata, checking every shape."""
    from .errors import ConfigError
    from .model import MLP

    try:
        model = MLP(**meta["model"], device=device)
        model.load_state_dict({k: v for k, v in arrays.items() if not k.startswith("optim.")})
    except (ConfigError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: the stored model does not fit its own description ({exc}).") from None
    return model


def resolve_model_path(path):
    """A run folder stands for the model inside it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, MODEL_FILE)
        if not os.path.exists(candidate):
            raise ModelFileError(f"{path}: a run folder must hold {MODEL_FILE}; it does not "
                                 f"(did the run finish? checkpoints are in {path}/checkpoints).")
        return candidate
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such model file or run folder.")
    return path


def load_model(path, device="cpu"):
    """Load a model from a ``.npz`` model file or a run folder. Returns an :class:`MLP`."""
    path = resolve_model_path(path)
    arrays, meta = load_arrays(path, MODEL_FORMAT)
    return model_from(arrays, meta, path, device)
