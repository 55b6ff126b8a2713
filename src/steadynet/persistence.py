"""Model and checkpoint files: arrays and JSON only, never pickle.

File format (version 1)
-----------------------
A NumPy ``.npz`` archive. Every member is a plain numeric array, loaded with
``allow_pickle=False``:

- the parameters ``W1``, ``b1``, ``W2``, ``b2``, ... (checkpoints add the optimiser's state as
  ``optim.<name>``);
- ``__meta__``: UTF-8 JSON as a uint8 array, holding ``format`` ("steadynet-model" or
  "steadynet-checkpoint"), ``version`` (1), ``model`` (the ``MLP`` constructor arguments),
  ``sha256`` (over every other member's name, dtype, shape and bytes, in name order, then over
  the rest of ``__meta__`` as sorted compact JSON) and, for checkpoints, the epoch, the
  random-number generator states and the metrics so far.

Files are written atomically: to a temporary file beside the target, flushed and fsynced,
then renamed over it. A crash or a full disk mid-write leaves the previous file intact.

Reading trusts nothing in the file. The archive is read member by member, and each member
must be an uncompressed ``.npy`` array of a numeric dtype (bool, int, uint, float) whose header
promises exactly the bytes that follow it; only then is it decoded, with
``allow_pickle=False``. So a pickle is never unpickled, a forged header cannot make the reader
allocate more memory than the file holds, and a truncated or bit-flipped file fails the
checksum. Every refusal is a :class:`ModelFileError` naming the file and what was wrong. The
full description is in ``docs/reliability.md``.
"""

import hashlib
import io
import json
import os
import struct
import zipfile

import numpy as np

from .errors import ModelFileError, SteadynetError


class FileWriteError(SteadynetError):
    """A file could not be written (full disk, no permission); the previous version is intact."""


FORMAT_VERSION = 1
MODEL_FORMAT = "steadynet-model"
CHECKPOINT_FORMAT = "steadynet-checkpoint"
MODEL_FILE = "model.npz"  # the model inside a run folder


def file_sha256(arrays, meta):
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order, then over
    ``meta`` (without its own ``sha256``) as sorted compact JSON."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    h.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return h.hexdigest()


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file, fsync it and rename it to ``path``.

    On any failure (a full disk raises ``OSError(ENOSPC)``) the temporary file is removed,
    ``path`` keeps its previous content, and :class:`FileWriteError` says so.
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
        raise FileWriteError(f"could not write {path}: {exc.strerror or exc}; any previous "
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
    remove_leftovers(path)


def remove_leftovers(path):
    """Remove the temporary files of ``path`` that writers killed mid-write left behind
    (``NAME.tmp-PID`` whose process is gone). POSIX only: elsewhere they stay, harmless."""
    if os.name != "posix":
        return
    folder, name = os.path.split(os.path.abspath(path))
    prefix = name + ".tmp-"
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        pid = entry[len(prefix):]
        if entry.startswith(prefix) and pid.isdigit() and not process_exists(int(pid)):
            try:
                os.remove(os.path.join(folder, entry))
            except OSError:
                pass


def process_exists(pid):
    """Whether a process ``pid`` is running (POSIX: signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but belongs to someone else
        return True
    return True


def save_arrays(path, arrays, meta):
    """Write ``arrays`` (name -> ndarray) and the JSON-ready dict ``meta`` as a steadynet file."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    meta = dict(meta, version=FORMAT_VERSION)
    meta["sha256"] = file_sha256(arrays, meta)
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, __meta__=blob, **arrays))


NUMERIC_KINDS = "biuf"  # bool, int, uint, float: the only dtypes a steadynet file may hold


def read_members(path):
    """The members of an ``.npz`` archive as a dict name -> ndarray, refusing anything that is
    not a plain numeric ``.npy`` array (see the module docstring). Raises :class:`ModelFileError`."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            where = f"{path}: member {info.filename!r}"
            if not info.filename.endswith(".npy"):
                raise ModelFileError(f"{where} is not a .npy array; steadynet files hold arrays only.")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise ModelFileError(f"{where} is compressed or encrypted; steadynet files store "
                                     f"their arrays uncompressed.")
            raw = archive.read(info)  # at most the bytes the file holds; the zip CRC is checked
            f = io.BytesIO(raw)
            version = np.lib.format.read_magic(f)
            header = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if header is None:
                raise ModelFileError(f"{where}: unsupported .npy version {version}.")
            shape, _, dtype = header(f)
            if dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
                raise ModelFileError(f"{where} has dtype {dtype}; only numeric arrays are loaded "
                                     f"(pickled objects never are).")
            promised = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if promised != len(raw) - f.tell():
                raise ModelFileError(f"{where}: its header promises shape {shape} ({promised} bytes), "
                                     f"but {len(raw) - f.tell()} bytes follow.")
            f.seek(0)
            arrays[info.filename[:-len(".npy")]] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


def load_arrays(path, expected_format):
    """Read a steadynet file; verify its format, version and checksum. Returns ``(arrays, meta)``."""
    path = os.fspath(path)
    try:
        arrays = read_members(path)
        blob = arrays.pop("__meta__", None)
        if blob is None:
            raise ModelFileError(f"{path}: not a steadynet file (no __meta__ member; found {sorted(arrays)[:6]}).")
        if blob.dtype != np.uint8 or blob.ndim != 1:
            raise ModelFileError(f"{path}: __meta__ must be a 1-D uint8 array of JSON, found "
                                 f"{blob.dtype} of shape {blob.shape}.")
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except ModelFileError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, struct.error, ValueError,
            NotImplementedError, RecursionError) as exc:
        # ValueError covers a malformed .npy header and bad UTF-8/JSON; RecursionError, JSON
        # nested absurdly deep; NotImplementedError, an unknown zip feature
        raise ModelFileError(f"{path}: not a readable steadynet file ({type(exc).__name__}: {exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{path}: expected a {expected_format} file, found format {found!r}.")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: format version {meta.get('version')!r} is not supported "
                             f"(this steadynet reads version {FORMAT_VERSION}).")
    computed = file_sha256(arrays, meta)
    if meta.get("sha256") != computed:
        raise ModelFileError(f"{path}: checksum mismatch: the file is corrupted or was altered "
                             f"(stored {meta.get('sha256')}, computed {computed}).")
    return arrays, meta


def save_model(path, model, **extra):
    """Save ``model``'s parameters and architecture (plus JSON-ready ``extra`` metadata)."""
    save_arrays(path, model.state_dict(), {"format": MODEL_FORMAT, "model": model.config(), **extra})


def model_from(arrays, meta, path, device="cpu"):
    """Build an :class:`MLP` from loaded arrays and metadata, checking every shape.

    The architecture in ``meta`` is checked against the arrays before the model is built, so a
    forged description cannot make this allocate more than the file itself holds.
    """
    from .errors import ConfigError
    from .model import MLP

    params = {k: v for k, v in arrays.items() if not k.startswith(("optim.", "best."))}
    try:
        sizes = [int(s) for s in meta["model"]["layer_sizes"]]
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        n_stored = sum(a.size for a in params.values())
        if n_params != n_stored:
            raise ConfigError(f"layer sizes {sizes} need {n_params} parameters, the file holds {n_stored}")
        model = MLP(**meta["model"], device=device)
        model.load_state_dict(params)
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: the stored model does not fit its own description ({exc}).") from None
    bad = [name for name, a in params.items() if not np.isfinite(a).all()]
    if bad:
        raise ModelFileError(f"{path}: parameters {bad} hold NaN or infinity; refusing a broken model.")
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


def run_data_spec(path):
    """The data set a run folder was trained on (from its ``config.json``), or None."""
    config_path = os.path.join(os.fspath(path), "config.json")
    if not os.path.isfile(config_path):
        return None
    try:
        with open(config_path) as f:
            return json.load(f)["config"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
