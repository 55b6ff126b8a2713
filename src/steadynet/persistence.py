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

Where a run keeps its model and checkpoint files, and which of them stands for the run's
model, is :mod:`steadynet.runs`'s to say; :func:`load_model` asks it when given a run folder.
"""

import hashlib
import io
import json
import os
import struct
import zipfile

import numpy as np

from .data.limits import regular_file
from .errors import ConfigError, ModelFileError, SteadynetError
from .model import MLP, count_params, param_shapes


class FileWriteError(SteadynetError):
    """A file could not be written (full disk, no permission); the previous version is intact."""


FORMAT_VERSION = 1
MODEL_FORMAT = "steadynet-model"
CHECKPOINT_FORMAT = "steadynet-checkpoint"


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
        raise FileWriteError(
            f"could not write {path}: {exc.strerror or exc}; any previous version of it is left intact."
        ) from None
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
        pid = entry[len(prefix) :]
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


ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length (30 bytes)


def zip_member_extents(path, archive, error=ModelFileError):
    """Where each member of an open zip archive lies: ``[(start, end, info), ...]`` by offset,
    checked against the file and each other before any member is read.

    Python's ``zipfile`` (3.11) trusts the central directory: members that overlap (each
    one's data holding the next, so that a 2 MB file reads as gigabytes), that run past the
    central directory, or that repeat a name, all read without complaint. Here every member,
    from its local header to the end of its stored data, must lie inside the file before the
    central directory, no two may overlap, and names are unique.

    Raises
    ------
    ModelFileError, or ``error``
        Naming the file and the member.
    """
    size = os.fstat(archive.fp.fileno()).st_size if hasattr(archive.fp, "fileno") else None
    directory = getattr(archive, "start_dir", size)  # where the central directory begins
    limit = min(v for v in (size, directory) if v is not None)
    extents, seen = [], set()
    for info in archive.infolist():
        where = f"{path}: member {info.filename!r}"
        if info.filename in seen:
            raise error(f"{where} occurs twice; each array must be named once.")
        seen.add(info.filename)
        archive.fp.seek(info.header_offset)
        local = archive.fp.read(ZIP_LOCAL_HEADER.size)
        if len(local) < ZIP_LOCAL_HEADER.size or local[:4] != b"PK\x03\x04":
            raise error(f"{where}: no local header at offset {info.header_offset}; the archive is damaged.")
        _, name_len, extra_len = ZIP_LOCAL_HEADER.unpack(local)
        start = info.header_offset
        end = start + ZIP_LOCAL_HEADER.size + name_len + extra_len + info.compress_size
        if end > limit:
            raise error(
                f"{where} runs to byte {end}, past the end of its data ({limit}); the archive is damaged or forged."
            )
        extents.append((start, end, info))
    extents.sort(key=lambda e: e[0])
    for (_, end, first), (start, _, second) in zip(extents, extents[1:]):
        if start < end:
            raise error(
                f"{path}: members {first.filename!r} and {second.filename!r} overlap (bytes "
                f"{start}-{end}); the archive is forged to read more than it holds."
            )
    return extents


def read_members(path):
    """The members of an ``.npz`` archive as a dict name -> ndarray, refusing anything that is
    not a plain numeric ``.npy`` array (see the module docstring). Raises :class:`ModelFileError`."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        extents = zip_member_extents(path, archive)  # before any member is read
        for _, _, info in extents:
            where = f"{path}: member {info.filename!r}"
            if not info.filename.endswith(".npy"):
                raise ModelFileError(f"{where} is not a .npy array; steadynet files hold arrays only.")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise ModelFileError(
                    f"{where} is compressed or encrypted; steadynet files store their arrays uncompressed."
                )
            if info.file_size != info.compress_size:
                raise ModelFileError(
                    f"{where} is stored, but claims {info.file_size} bytes in "
                    f"{info.compress_size}; the archive is damaged or forged."
                )
            raw = archive.read(info)  # at most the bytes the file holds; the zip CRC is checked
            f = io.BytesIO(raw)
            version = np.lib.format.read_magic(f)
            header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(
                version
            )
            if header is None:
                raise ModelFileError(f"{where}: unsupported .npy version {version}.")
            shape, _, dtype = header(f)
            if dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
                raise ModelFileError(
                    f"{where} has dtype {dtype}; only numeric arrays are loaded (pickled objects never are)."
                )
            promised = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if promised != len(raw) - f.tell():
                raise ModelFileError(
                    f"{where}: its header promises shape {shape} ({promised} bytes), "
                    f"but {len(raw) - f.tell()} bytes follow."
                )
            f.seek(0)
            arrays[info.filename[: -len(".npy")]] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


def load_arrays(path, expected_format):
    """Read a steadynet file; verify its format, version and checksum. Returns ``(arrays, meta)``.

    ``expected_format`` is a format (``MODEL_FORMAT``, ``CHECKPOINT_FORMAT``) or a tuple of the
    formats accepted.
    """
    path = os.fspath(path)
    regular_file(path, "model or checkpoint file (.npz)", ModelFileError)  # never a FIFO or /dev/zero
    try:
        arrays = read_members(path)
        blob = arrays.pop("__meta__", None)
        if blob is None:
            raise ModelFileError(f"{path}: not a steadynet file (no __meta__ member; found {sorted(arrays)[:6]}).")
        if blob.dtype != np.uint8 or blob.ndim != 1:
            raise ModelFileError(
                f"{path}: __meta__ must be a 1-D uint8 array of JSON, found {blob.dtype} of shape {blob.shape}."
            )
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except ModelFileError:
        raise
    except (
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        struct.error,
        ValueError,
        NotImplementedError,
        RecursionError,
    ) as exc:
        # ValueError covers a malformed .npy header and bad UTF-8/JSON; RecursionError, JSON
        # nested absurdly deep; NotImplementedError, an unknown zip feature
        raise ModelFileError(f"{path}: not a readable steadynet file ({type(exc).__name__}: {exc}).") from None
    accepted = (expected_format,) if isinstance(expected_format, str) else tuple(expected_format)
    if not isinstance(meta, dict) or meta.get("format") not in accepted:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{path}: expected a {' or '.join(accepted)} file, found format {found!r}.")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {meta.get('version')!r} is not supported "
            f"(this steadynet reads version {FORMAT_VERSION})."
        )
    computed = file_sha256(arrays, meta)
    if meta.get("sha256") != computed:
        raise ModelFileError(
            f"{path}: checksum mismatch: the file is corrupted or was altered "
            f"(stored {meta.get('sha256')}, computed {computed})."
        )
    return arrays, meta


def save_model(path, model, **extra):
    """Save ``model``'s parameters and architecture (plus JSON-ready ``extra`` metadata)."""
    save_arrays(path, model.state_dict(), {"format": MODEL_FORMAT, "model": model.config(), **extra})


def check_params_fit(params, sizes, path):
    """Raise :class:`ModelFileError` unless ``params`` are exactly the arrays of an MLP of
    ``sizes``: ``W1`` (sizes[0], sizes[1]), ``b1`` (sizes[1],), ... and nothing else.

    Checked array by array before anything is built, so a description that promises more
    than the file holds (or holds the same count in other shapes) allocates nothing.
    """
    expected, n_params = param_shapes(sizes), count_params(sizes)
    n_stored = sum(a.size for a in params.values())
    problem = None
    if n_params != n_stored:
        problem = f"layer sizes {list(sizes)} need {n_params} parameters, the file holds {n_stored}"
    elif set(params) != set(expected):
        problem = f"parameters must be {sorted(expected)}, got {sorted(params)}"
    else:
        wrong = [name for name, shape in expected.items() if tuple(params[name].shape) != shape]
        if wrong:
            problem = f"parameter {wrong[0]} must have shape {expected[wrong[0]]}, got {tuple(params[wrong[0]].shape)}"
    if problem:
        raise ModelFileError(f"{path}: the stored model does not fit its own description ({problem}).")


def stored_layer_sizes(meta, path):
    """``meta["model"]["layer_sizes"]`` as a tuple of positive ints, or :class:`ModelFileError`."""
    try:
        sizes = tuple(meta["model"]["layer_sizes"])
        if len(sizes) < 2 or not all(type(s) is int and s >= 1 for s in sizes):
            raise TypeError(f"layer_sizes must be 2 or more integers >= 1, found {list(sizes)[:8]}")
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: the stored model has no valid description ({exc}).") from None
    return sizes


def model_from(arrays, meta, path, device="cpu"):
    """Build an :class:`MLP` from loaded arrays and metadata, checking every shape.

    The architecture in ``meta`` is checked against the arrays, one by one, before the model
    is built, so a forged description cannot make this allocate more than the file holds.
    """
    params = {k: v for k, v in arrays.items() if not k.startswith(("optim.", "best."))}
    check_params_fit(params, stored_layer_sizes(meta, path), path)
    try:
        model = MLP(**meta["model"], device=device)
        model.load_state_dict(params)
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: the stored model does not fit its own description ({exc}).") from None
    bad = [name for name, a in params.items() if not np.isfinite(a).all()]
    if bad:
        raise ModelFileError(f"{path}: parameters {bad} hold NaN or infinity; refusing a broken model.")
    return model


def check_checkpoint_config(arrays, meta, path, hidden):
    """Check, before a network is built for ``--resume``, that a checkpoint's training config
    describes the network its arrays hold.

    The trainer builds the network from the config's ``hidden`` widths (with the data's input
    and class counts), so a forged config (``hidden=[100000]`` with the checksum recomputed)
    would otherwise allocate gigabytes before :func:`model_from` compares the arrays.

    Parameters
    ----------
    arrays, meta : as :func:`load_arrays` returns them for a checkpoint
    path : str
        The checkpoint, for messages.
    hidden : sequence of int
        The hidden widths in the checkpoint's config (``TrainConfig.hidden``).

    Raises
    ------
    ModelFileError
        If the arrays do not form the network ``meta["model"]`` describes, or its hidden
        widths differ from ``hidden``.
    """
    sizes = stored_layer_sizes(meta, path)
    params = {k: v for k, v in arrays.items() if not k.startswith(("optim.", "best."))}
    check_params_fit(params, sizes, path)
    hidden = tuple(hidden) if isinstance(hidden, (list, tuple)) else (hidden,)
    if hidden != sizes[1:-1]:
        raise ModelFileError(
            f"{path}: the checkpoint's config asks for hidden layers {list(hidden)[:8]}, but its "
            f"arrays hold a {'-'.join(map(str, sizes))} network; the file is forged or damaged."
        )
    n_params = count_params(sizes)
    for name, a in arrays.items():
        if name.startswith(("optim.", "best.")) and a.size not in (1, n_params):
            raise ModelFileError(
                f"{path}: {name} holds {a.size} values; the optimiser's state of a "
                f"{n_params}-parameter network holds 1 or {n_params}."
            )


def resolve_model_path(path):
    """The model file ``path`` names: ``path`` itself, or a run folder's final model
    (:meth:`steadynet.runs.RunFolder.model_file` with ``prefer="final"``)."""
    from .runs import RunFolder  # runs reads and writes through this module

    return RunFolder(path).model_file(prefer="final")[0]


def load_model(path, device="cpu"):
    """Load a model from a ``.npz`` model file or a run folder. Returns an :class:`MLP`."""
    path = resolve_model_path(path)
    arrays, meta = load_arrays(path, MODEL_FORMAT)
    return model_from(arrays, meta, path, device)


def run_data_spec(path):
    """The data set a run folder was trained on (from its ``config.json``), or None."""
    from .runs import RunFolder  # runs reads and writes through this module

    return RunFolder(path).data_spec()
