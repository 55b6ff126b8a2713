"""Fuzzing the readers and the command line: whatever the bytes or the arguments, the outcome
is a result or a clean :class:`SteadynetError`, never a crash, a hang or a traceback."""

import contextlib
import gzip
import io
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import make_blobs
from steadynet import MLP, save, train
from steadynet.data import load_data
from steadynet.data.hdf5 import write_hdf5
from steadynet.data.idx import IDX_FILES
from steadynet.data.npz import write_npz
from steadynet.errors import ModelFileError, SteadynetError
from steadynet.persistence import CHECKPOINT_FORMAT, MODEL_FORMAT, load_arrays, load_model

FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ------------------------------------------------------------------ mutations of valid bytes


@st.composite
def mutations(draw, raw):
    """``raw`` changed the ways files get damaged: bit flips, truncation, overwritten or
    inserted runs of random bytes, or nothing of it kept at all."""
    kind = draw(st.sampled_from(["flip", "truncate", "overwrite", "insert", "random"]))
    b = bytearray(raw)
    if kind == "flip":
        for pos in draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=8)):
            b[pos] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        b = b[: draw(st.integers(0, len(b) - 1))]
    elif kind == "overwrite":
        pos = draw(st.integers(0, len(b) - 1))
        chunk = draw(st.binary(min_size=1, max_size=64))
        b[pos : pos + len(chunk)] = chunk
    elif kind == "insert":
        pos = draw(st.integers(0, len(b)))
        b[pos:pos] = draw(st.binary(min_size=1, max_size=64))
    else:
        b = bytearray(
            draw(st.sampled_from([b"", b"PK\x03\x04", b"\x89HDF\r\n\x1a\n", b"\x00\x00\x08\x03"]))
            + draw(st.binary(max_size=512))
        )
    return bytes(b)


def original(tmp_path_factory, name, write):
    path = tmp_path_factory.mktemp("orig") / name
    write(path)
    return path.read_bytes()


# ------------------------------------------------------------------ model and checkpoint files


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = MLP((9, 4, 3), "relu", dropout=0.1, seed=1)
    raw = original(tmp_path_factory, "m.npz", lambda p: save(p, model, epoch=3))
    return model, raw


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run stopped mid-epoch 2, its data and the weights the uninterrupted run ends with."""
    data = make_blobs(n_train=120, n_test=20, n_features=9)
    config = dict(
        epochs=2,
        hidden=(4,),
        batch_size=20,
        val_size=20,
        augment_shift=0,
        optimizer="adam",
        dropout=0.1,
        checkpoint_every_steps=3,
    )
    ref = train(data=data, **config).model.theta

    def crash(info):
        if info.step == 8:
            raise KeyboardInterrupt

    out = tmp_path_factory.mktemp("run") / "run"
    with pytest.raises(KeyboardInterrupt):
        train(data=data, out=str(out), on_step=crash, **config)
    return out, data, ref


@FUZZ
@given(data=st.data())
def test_damaged_model_file_loads_unchanged_or_is_refused(data, model_file, tmp_path):
    model, raw = model_file
    path = tmp_path / "m.npz"
    path.write_bytes(data.draw(mutations(raw)))
    try:
        loaded = load_model(path)
    except ModelFileError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    # a change the format does not depend on (e.g. in zip bookkeeping): the same model
    assert np.array_equal(loaded.theta, model.theta) and loaded.config() == model.config()


@FUZZ
@given(data=st.data())
def test_damaged_checkpoint_resumes_exactly_or_is_refused(data, run_folder, tmp_path):
    out, dataset, ref = run_folder
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(out, run)
    last = run / "checkpoints" / "last.npz"
    last.write_bytes(data.draw(mutations(last.read_bytes())))
    try:
        result = train(None, str(run), data=dataset, resume=True)
    except SteadynetError as exc:
        assert "\n" not in str(exc)
        with pytest.raises(SteadynetError):  # the refusal came from the damaged checkpoint
            load_arrays(last, CHECKPOINT_FORMAT)
        return
    assert np.array_equal(result.model.theta, ref)


@FUZZ
@given(raw=st.binary(max_size=2048))
def test_random_bytes_are_never_a_model(raw, tmp_path):
    path = tmp_path / "r.npz"
    path.write_bytes(raw)
    for read in (lambda: load_model(path), lambda: load_arrays(path, MODEL_FORMAT)):
        with pytest.raises(ModelFileError):
            read()


@st.composite
def npz_archives(draw):
    """Well-formed zip archives of hostile members: odd names, dtypes, shapes and meta."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for _ in range(draw(st.integers(0, 4))):
            name = draw(st.sampled_from(["W1.npy", "b1.npy", "__meta__.npy", "optim.t.npy", "x.txt", "../W2.npy"]))
            dtype = draw(st.sampled_from(["<f4", ">f8", "u1", "i8", "O", "U3", "c8", "V4", "|b1"]))
            shape = draw(st.lists(st.integers(0, 4), max_size=3)).__repr__().replace("[", "(").replace("]", ",)")
            header = f"{{'descr': '{dtype}', 'fortran_order': {draw(st.booleans())}, 'shape': {shape}, }}"
            header = draw(st.sampled_from([header, header.replace("'descr'", "'desc'"), "not a dict"]))
            header += " " * (63 - (10 + len(header)) % 64) + "\n"
            body = draw(st.binary(max_size=64))
            blob = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + body
            z.writestr(name, draw(st.sampled_from([blob, b'{"format": "steadynet-model"}', body])))
    return buf.getvalue()


@FUZZ
@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile warns while building such archives
@given(raw=npz_archives())
def test_hostile_archives_are_refused(raw, tmp_path):
    path = tmp_path / "h.npz"
    path.write_bytes(raw)
    with pytest.raises(ModelFileError):
        load_model(path)


# ------------------------------------------------------------------ data files (steadynet.data.load_data)


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    small = make_blobs(n_train=20, n_test=10, n_features=16)
    files = {
        "npz": original(tmp_path_factory, "d.npz", lambda p: write_npz(p, small)),
        "h5": original(tmp_path_factory, "d.h5", lambda p: write_hdf5(p, small)),
    }
    for key, stem in IDX_FILES.items():
        x = getattr(small, key)
        x = x.reshape(-1, 4, 4) if key.startswith("x") else x
        x = np.round(x * 255).astype(np.uint8) if x.dtype.kind == "f" else x.astype(np.uint8)
        header = bytes([0, 0, 0x08, x.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in x.shape)
        files[stem] = header + x.tobytes()
    files["csv"] = b"label,p1,p2,p3,p4\n" + b"\n".join(b"%d,0,12,255,3" % k for k in range(10))
    return files


def check_load(path):
    try:
        data = load_data(str(path))
    except SteadynetError as exc:
        assert "\n" not in str(exc)
        return
    assert data.x_train.shape[0] == data.y_train.shape[0] and data.x_train.ndim == 2


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(["npz", "h5", "csv"]))
def test_damaged_data_file_loads_or_is_refused(data, fmt, data_files, tmp_path):
    path = tmp_path / f"d.{fmt}"
    path.write_bytes(data.draw(mutations(data_files[fmt])))
    check_load(path)


@FUZZ
@given(data=st.data(), victim=st.sampled_from(list(IDX_FILES.values())), gz=st.booleans())
def test_damaged_idx_folder_loads_or_is_refused(data, victim, gz, data_files, tmp_path):
    folder = tmp_path / "idx"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for stem in IDX_FILES.values():
        raw = data_files[stem]
        if stem == victim:
            raw = data.draw(mutations(gzip.compress(raw, mtime=0) if gz else raw))
        (folder / (stem + (".gz" if gz and stem == victim else ""))).write_bytes(raw)
    check_load(folder)


# ------------------------------------------------------------------ the command line


TRAIN_VALUES = {
    "--hidden": ["4", "0", "-3", "3,x", "", "1000001", "1000000,1000000,1000000", "4," * 70],
    "--activation": ["relu", "swish", "", "identity"],
    "--epochs": ["1", "0", "-1", "x", "1e9"],
    "--batch-size": ["8", "full", "0", "-5", "100000", "1.5"],
    "--optimizer": ["adam", "nesterov", "rmsprop"],
    "--lr": ["0.1", "0", "-1", "nan", "inf", "1e400", "x"],
    "--momentum": ["0.9", "1", "-0.1", "nan"],
    "--dropout": ["0.5", "1", "nan"],
    "--augment-shift": ["1", "4", "9", "-1"],
    "--val-size": ["10", "0", "-1", "100000"],
    "--seed": ["0", "-1", str(2**70), "x"],
    "--checkpoint-every-steps": ["2", "0", "-1"],
    "--dtype": ["float64", "float16"],
    "--device": ["cpu", "tpu"],
    "--schedule": ["step", "linear"],
    "--warmup-epochs": ["0.5", "5", "nan"],
    "--patience": ["1", "0"],
    "--clip-norm": ["1", "0", "-inf"],
    "--weight-decay": ["1e-4", "-1", "nan"],
    "--decay-epochs": ["1", "0", "-2"],
    "--decay-factor": ["0.5", "0", "2", "nan"],
    "--on-diverge": ["stop", "recover", "explode"],
    "--init": ["he_normal", "zeros", ""],
    "--preset": ["seed", "fast", "best", "huge"],
    # augmentation, regularisation and distillation
    "--augment-rotate": ["10", "-5", "nan", "400"],
    "--augment-scale": ["0.1", "1", "-0.1", "inf"],
    "--augment-shear": ["10", "90", "nan"],
    "--elastic-alpha": ["34", "0", "-1", "nan"],
    "--elastic-sigma": ["5", "0", "-1"],
    "--max-norm": ["3", "0", "-1", "nan"],
    "--ema-decay": ["0.99", "1", "-0.5", "nan"],
    "--input-dropout": ["0.2", "1", "-0.1"],
    "--label-smoothing": ["0.1", "1", "-0.1", "nan"],
    "--teacher": ["done", "done/model.npz", "junk.npz", "missing.npz", "tiny.npz", ""],
    "--distill-temperature": ["2", "0", "-1", "nan"],
    "--distill-weight": ["0.5", "1", "1.5", "nan"],
}


@pytest.fixture
def cli_world(tmp_path, monkeypatch):
    """A working folder with a tiny data set, a finished run, a model and some junk; no real
    MNIST cache (so no argument can start a download or a long training)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEADYNET_HOME", str(tmp_path / "home"))
    write_npz(tmp_path / "tiny.npz", make_blobs(n_train=60, n_test=10, n_features=16))
    train(
        data=make_blobs(n_train=60, n_test=10, n_features=16),
        out=str(tmp_path / "done"),
        epochs=1,
        hidden=(3,),
        val_size=10,
        batch_size=10,
    )
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 junk")
    return tmp_path


PATHS = ["tiny.npz", "done", "junk.npz", "missing.npz", "done/model.npz", "done/checkpoints/last.npz", "", "."]


@st.composite
def argvs(draw):
    command = draw(st.sampled_from(["train", "evaluate", "data", "bogus", "--version", "--help", "-x"]))
    argv = [command]
    if command == "train":
        for flag in draw(st.lists(st.sampled_from(list(TRAIN_VALUES)), max_size=6, unique=True)):
            argv += [flag, draw(st.sampled_from(TRAIN_VALUES[flag]))]
        if draw(st.booleans()):
            argv += ["--resume", draw(st.sampled_from(PATHS))]
        # never the default data (MNIST) and never more than two epochs of it
        argv += [
            "--data",
            draw(st.sampled_from(PATHS[:4])),
            "--out",
            draw(st.sampled_from(["new", "done", "tiny.npz"])),
        ]
        if "--epochs" not in argv:
            argv += ["--epochs", draw(st.sampled_from(["1", "2"]))]
        argv += draw(st.sampled_from([[], ["--quiet"], ["--json"]]))
    elif command == "evaluate":
        argv += [draw(st.sampled_from(PATHS)), "--data", draw(st.sampled_from(PATHS[:4]))]
        argv += draw(st.sampled_from([[], ["--json"]]))
    elif command == "data":
        argv += draw(st.sampled_from([[], ["fetch"], ["fetch", "no-such-set"], ["list"], ["fetch", "--json"]]))
    # and a stray token or two
    argv += draw(st.lists(st.sampled_from(["--", "-", "--epochs", "--bogus", "\x00", "é", "--help"]), max_size=2))
    return argv


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argvs())
def test_cli_always_exits_with_a_status_and_no_traceback(argv, cli_world):
    from steadynet.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, --version and usage errors
            code = exc.code
    assert isinstance(code, int) and code in (0, 1, 2, 130), (argv, code)
    assert "Traceback" not in err.getvalue()
    if code == 1:  # a user mistake: one line naming the command
        lines = err.getvalue().strip().splitlines()
        assert lines[-1].startswith(f"steadynet {argv[0]}: error: "), (argv, lines)
    shutil.rmtree(cli_world / "new", ignore_errors=True)


@settings(max_examples=100, deadline=None)
@given(argv=st.lists(st.text(max_size=12), max_size=6))
def test_cli_random_text_arguments_never_crash(argv):
    """Free text: anything that is not a known command fails in the parser, before any work."""
    from steadynet.cli.app import main

    assume(argv[:1] not in (["train"], ["evaluate"], ["data"]))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    assert code in (0, 2) and "Traceback" not in err.getvalue()


# ------------------------------------------------------------------ zip member layouts


@st.composite
def zip_layouts(draw):
    """Zip archives whose *layout* is hostile, not only their values: members whose central
    directory entries point inside other members, past the end or at no header, claim other
    sizes, repeat a name, or nest (each member's data holding the next member whole).

    Returns ``(raw, names)``: the archive's bytes and the member names it was built from."""
    from hostile_files import LOCAL, central_entry, end_record, local_header, npy_bytes

    names = draw(
        st.lists(
            st.sampled_from(
                [
                    "W1.npy",
                    "b1.npy",
                    "W2.npy",
                    "b2.npy",
                    "__meta__.npy",
                    "x_train.npy",
                    "y_train.npy",
                    "x_test.npy",
                    "y_test.npy",
                ]
            ),
            min_size=1,
            max_size=6,
        )
    )
    datas = [
        npy_bytes(np.zeros(draw(st.integers(0, 64)), dtype=draw(st.sampled_from(["u1", "<f4", "<i8"])))) for _ in names
    ]
    body, offsets = b"", []
    nest = draw(st.booleans())
    if nest:  # each member's data is the next member, header and all (a naive reader loops)
        tail = b""
        for name, data in reversed(list(zip(names, datas))):
            data = data + tail
            tail = local_header(name, data) + data
        body, datas = tail, []
        for name in names:
            start = body.index(b"PK\x03\x04", offsets[-1] + 1 if offsets else 0)
            offsets.append(start)
            n = LOCAL.unpack(body[start : start + LOCAL.size])[7]
            datas.append(body[start + LOCAL.size + len(name) : start + LOCAL.size + len(name) + n])
    else:
        for name, data in zip(names, datas):
            offsets.append(len(body))
            body += local_header(name, data) + data
    directory = b""
    for name, data, offset in zip(names, datas, offsets):
        shift = draw(st.sampled_from([0, 0, 0, -1, 1, 30, -len(body), len(body), 2**31]))
        size = len(data) + draw(st.sampled_from([0, 0, 0, 1, -1, 100, 2**30]))
        directory += central_entry(
            name,
            max(0, min(offset + shift, 2**32 - 1)),
            data,
            stored=max(0, min(size, 2**32 - 1)),
            size=max(0, min(size, 2**32 - 1)),
        )
    return body + directory + end_record(len(names), len(directory), len(body)), names


@FUZZ
@pytest.mark.filterwarnings("ignore:Duplicate name")
@given(layout=zip_layouts())
def test_zip_layouts_never_read_more_than_the_file_holds(layout, tmp_path):
    from steadynet.persistence import read_members

    raw, _ = layout
    path = tmp_path / "z.npz"
    path.write_bytes(raw)
    try:
        arrays = read_members(str(path))
    except ModelFileError as exc:
        assert "\n" not in str(exc)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        pass  # what load_arrays turns into one ModelFileError line (checked below)
    else:  # what it did read lies inside the file, each byte once
        assert sum(a.nbytes for a in arrays.values()) <= len(raw)
    with pytest.raises(ModelFileError):
        load_model(path)  # never a model: no valid __meta__
    check_load(path)  # as a data set: loads (never more than it holds) or one line


# ------------------------------------------------------------------ the image decoder


@st.composite
def image_files(draw):
    """Image files Pillow writes (any mode, size, bit depth, transparency, format), then
    perhaps damaged: bytes flipped, cut short, or the header's size overwritten."""
    from PIL import Image

    h, w = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    mode = draw(st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "1", "I;16", "I", "F"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["noise", "stroke", "blank"]))
    A = rng.random((h, w)) if kind == "noise" else np.zeros((h, w))
    if kind == "stroke":
        A[h // 4 : max(h // 4 + 1, 3 * h // 4), w // 2 : w // 2 + max(1, w // 8)] = 1.0
    if mode in ("I;16", "I"):
        im = Image.fromarray(np.round(A * 65535).astype(np.uint16 if mode == "I;16" else np.int32))
    elif mode == "F":
        im = Image.fromarray(A.astype(np.float32))
    else:
        im = Image.fromarray(np.round(A * 255).astype(np.uint8)).convert(mode)
    fmt = draw(st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "JPEG"]))
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):  # a mode the format cannot hold
        im.convert("L").save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    damage = draw(st.sampled_from(["none", "none", "flip", "cut", "size"]))
    if damage == "flip" and raw:
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif damage == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "size" and raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 24:
        raw[16:24] = draw(st.binary(min_size=8, max_size=8))  # IHDR width and height
    return bytes(raw)


@FUZZ
@given(raw=image_files())
def test_image_decoder_reads_any_file_or_refuses_it_in_one_line(raw, tmp_path):
    pytest.importorskip("PIL")
    from steadynet.errors import DataFormatError
    from steadynet.pictures import load_image, preprocess_digit

    path = tmp_path / "d.png"
    path.write_bytes(raw)
    try:
        G = load_image(path)
        x = preprocess_digit(G)
    except DataFormatError as exc:
        assert "\n" not in str(exc)
        return
    assert G.ndim == 2 and G.dtype == np.float32 and np.isfinite(G).all() and 0 <= G.min() and G.max() <= 1
    assert x.shape == (784,) and x.dtype == np.float32 and 0 <= x.min() and x.max() == 1


@FUZZ
@given(raw=image_files(), second=image_files())
def test_image_folders_of_any_files_load_or_are_refused_in_one_line(raw, second, tmp_path):
    pytest.importorskip("PIL")
    root = tmp_path / "imgs"
    shutil.rmtree(root, ignore_errors=True)
    for label, data in (("0", raw), ("1", second)):
        (root / "train" / label).mkdir(parents=True)
        (root / "train" / label / "a.png").write_bytes(data)
    check_load(root)
