"""Hostile and odd input: each attack is built in the test (tiny on disk) and must end in one line
naming the file or field, a non-zero exit or a 4xx JSON answer, and bounded peak memory
(measured in the attacked process: see hostile_files.run_measured)."""

import gzip
import io
import json
import os
import socket
import struct
import time
import zlib

import numpy as np
import pytest

import steadynet
from hostile_files import (
    central_entry,
    end_record,
    local_header,
    npy_bytes,
    npy_header,
    overlapping_npz,
    python_code,
    run_measured,
    steadynet_cli,
    zip_of,
)
from steadynet.config import TrainConfig
from steadynet.data import load_data
from steadynet.data.csv import parse_csv
from steadynet.data.limits import EXPANSION_FLOOR, MAX_EXPANSION, allowed_expansion
from steadynet.errors import ConfigError, DataFormatError, ModelFileError
from steadynet.persistence import CHECKPOINT_FORMAT, save_arrays
from steadynet.pictures import preprocess_digit

PEAK_MB = 400  # every attack below must stay under this; before the fixes they reached 1.3-4.3 GB


def one_line_error(stderr, *fragments):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("steadynet "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.npz"
    steadynet.save(path, steadynet.MLP((784, 8, 10), "relu", seed=0))
    return path


def gzip_of_zeros(prefix, n_bytes):
    """gzip of ``prefix`` then ``n_bytes`` zeros, streamed (a bomb of ~1000x)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as g:
        g.write(prefix)
        block = bytes(1 << 20)
        for _ in range(n_bytes >> 20):
            g.write(block)
    return buf.getvalue()


# ---------------------------------------------------------------------------- 1. digits


@pytest.mark.parametrize("shape", [(28, 28), (3, 200), (300, 200), (16, 16), (8, 8), (2, 2), (1, 1)])
def test_noise_is_no_digit_and_never_a_crash(shape):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        for G in (rng.integers(0, 256, shape), rng.normal(0, 1, shape), rng.random(shape) > 0.5):
            try:
                x = preprocess_digit(G)
            except DataFormatError as exc:
                assert str(exc).startswith("no digit found"), exc
            else:
                # interpolated up from a few pixels, noise can look like a blob: a valid input,
                # never a crash; from 600 pixels up it is refused by name
                assert shape[0] * shape[1] < 600 and x.shape == (784,) and 0 <= x.min() <= x.max() <= 1


@pytest.mark.parametrize(
    "G",
    [
        np.array([[-1.7e308, 1.7e308], [0, 0]]),
        np.array([[np.finfo(np.float64).max, -np.finfo(np.float64).max]] * 3),
        np.array([[np.iinfo(np.int64).min, np.iinfo(np.int64).max], [0, 1]]),
        np.array([[5e-324, 0.0], [0.0, 0.0]]),
        (np.indices((40, 40)).sum(axis=0) % 2).astype(bool),  # a checkerboard
        np.indices((50, 30))[1].astype(np.float64),  # a gradient
        np.kron(np.random.default_rng(0).integers(0, 2, (6, 6)), np.ones((9, 9))),  # blocks
    ],
)
def test_extreme_values_and_patterns_give_a_digit_or_one_clean_error(G):
    try:
        x = preprocess_digit(G)
    except DataFormatError as exc:
        assert "\n" not in str(exc)
    else:
        assert x.shape == (784,) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


def digit_seven(side, width):
    """A "7" drawn with Pillow on a ``side`` x ``side`` canvas, light ink on black, 8-bit."""
    from PIL import Image, ImageDraw

    im = Image.new("L", (side, side), 0)
    d = ImageDraw.Draw(im)
    s = side / 28
    d.line([(6 * s, 6 * s), (21 * s, 6 * s), (11 * s, 23 * s)], fill=255, width=max(1, round(width * s)))
    return np.asarray(im)


@pytest.mark.parametrize("side", [8, 12, 16, 28, 64, 256, 1200])
@pytest.mark.parametrize("levels", [2, 4, 17, 256, 65536])
def test_strokes_at_any_resolution_and_bit_depth_give_the_same_digit(side, levels):
    pytest.importorskip("PIL")
    reference = preprocess_digit(digit_seven(280, 3))
    A = digit_seven(side, 3) / 255.0
    G = np.round(A * (levels - 1))  # (side, side) on `levels` grey levels
    G = (levels - 1) - G  # dark ink on light paper
    x = preprocess_digit(G.astype(np.uint16 if levels > 256 else np.uint8))
    cosine = float(x @ reference / np.linalg.norm(x) / np.linalg.norm(reference))
    assert cosine > (0.75 if side <= 12 else 0.8 if side <= 16 else 0.85), cosine


def test_faint_ink_and_a_digit_cropped_tight_are_read(tmp_path):
    reference = preprocess_digit(digit_seven(280, 3))
    faint = 200 - 12 * (digit_seven(112, 3) / 255.0) + np.random.default_rng(0).normal(0, 1.0, (112, 112))
    tight = digit_seven(112, 3)[20:96, 20:88]  # the ink touches the border
    for G in (faint, 255 - tight):
        x = preprocess_digit(G)
        assert float(x @ reference / np.linalg.norm(x) / np.linalg.norm(reference)) > 0.8


def test_api_predict_answers_noise_and_extremes_with_422_json(model_file, tmp_path):
    pytest.importorskip("starlette")
    client = test_client(model_file, tmp_path)
    noise = np.random.default_rng(0).integers(0, 256, (28, 28)).tolist()
    for image in (noise, [[-1.7e308, 1.7e308], [0, 0]], [[10**400, 0], [0, 0]]):
        r = client.post("/api/predict", json={"image": image})
        assert r.status_code == 422, r.text
        assert "image" in r.json()["error"]
    r = client.post(
        "/api/predict", content=b'{"input": [' + b"1" * 400 + b"]}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "too large for a float" in r.json()["error"]


# ---------------------------------------------------------------------------- 2. zip layouts


def test_overlapping_members_are_refused_before_reading_any(tmp_path, model_file):
    path = tmp_path / "overlap.npz"
    path.write_bytes(overlapping_npz(n_members=600, payload_bytes=1 << 20))  # read naively: 600 MB+
    assert path.stat().st_size < 1.2e6
    rc, out, err, peak = run_measured(
        python_code(
            f"import steadynet\ntry:\n    steadynet.load({str(path)!r})\nexcept steadynet.SteadynetError as e:\n"
            f"    print(type(e).__name__, e)\n"
        )
    )
    assert rc == 0 and out.startswith("ModelFileError") and "overlap" in out, (out, err)
    assert peak < PEAK_MB, peak
    for argv in (["predict", path, "x.png"], ["evaluate", path], ["export", path, tmp_path / "m.onnx"]):
        rc, out, err, peak = run_measured(steadynet_cli(*argv))
        assert rc == 1 and peak < PEAK_MB, (argv, err, peak)
        one_line_error(err, str(path), "overlap")


def test_member_past_the_end_or_named_twice_is_refused(tmp_path):
    a = npy_bytes(np.zeros(3))
    raw = zip_of([("W1.npy", a)])
    # the central directory claims a longer member than the file holds
    cut = raw.replace(struct.pack("<II", len(a), len(a)), struct.pack("<II", len(a) + 999, len(a) + 999))
    (tmp_path / "long.npz").write_bytes(cut)
    with pytest.raises(ModelFileError, match="past the end"):
        steadynet.load(tmp_path / "long.npz")
    (tmp_path / "twice.npz").write_bytes(zip_of([("W1.npy", a), ("W1.npy", a)]))
    with pytest.raises(ModelFileError, match="occurs twice"):
        steadynet.load(tmp_path / "twice.npz")


def test_overlapping_data_npz_is_refused(tmp_path):
    path = tmp_path / "overlap.npz"
    path.write_bytes(overlapping_npz(n_members=4, payload_bytes=1000))
    with pytest.raises(DataFormatError, match="overlap"):
        load_data(path)


# ---------------------------------------------------------------------------- 3. resume


def forged_checkpoint_run(tmp_path, hidden=(100_000,)):
    """A run folder whose last.npz holds a 784-4-10 network and a config asking for ``hidden``
    (the checksum recomputed, as a forger would)."""
    model = steadynet.MLP((784, 4, 10), "relu", seed=0)
    arrays = dict(model.state_dict(), **{"optim.t": np.array(0)})
    config = TrainConfig(hidden=hidden, activation="relu", epochs=2, data=str(tmp_path / "data.npz"))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model": model.config(),
        "config": config.to_dict(),
        "state": {},
        "history": [],
        "best": {"epoch": None, "val_accuracy": -1.0},
    }
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_arrays(run / "checkpoints" / "last.npz", arrays, meta)
    return run


def test_resume_checks_the_checkpoint_before_building_a_network(tmp_path):
    run = forged_checkpoint_run(tmp_path)
    assert (run / "checkpoints" / "last.npz").stat().st_size < 100_000
    rc, out, err, peak = run_measured(steadynet_cli("train", "--resume", run))
    assert rc == 1 and peak < PEAK_MB, (err, peak)
    one_line_error(err, "last.npz", "hidden layers [100000]", "784-4-10")


def test_forged_array_shapes_are_refused_before_building(tmp_path):
    model = steadynet.MLP((16, 4, 3), seed=0)
    arrays = model.state_dict()
    arrays["W1"] = np.zeros((8, 8))  # as many numbers as (16, 4), in another shape
    save_arrays(tmp_path / "m.npz", arrays, {"format": "steadynet-model", "model": model.config()})
    with pytest.raises(ModelFileError, match=r"parameter W1 must have shape \(16, 4\)"):
        steadynet.load(tmp_path / "m.npz")


# ---------------------------------------------------------------------------- 4. readers and bombs


def data_npz(members):
    """A zip of the four data arrays, each (name, bytes, deflated?)."""
    body, directory = b"", b""
    for name, data, deflate in members:
        stored = zlib.compress(data, 9)[2:-4] if deflate else data  # raw deflate, as zip holds it
        method = 8 if deflate else 0
        directory += central_entry(name, len(body), data, method=method, stored=len(stored))
        body += local_header(name, data, method=method, compressed=stored) + stored
    return body + directory + end_record(len(members), len(directory), len(body))


def small_arrays():
    return {
        "x_train": np.zeros((6, 28, 28), np.uint8),
        "y_train": np.arange(6) % 2,
        "x_test": np.zeros((2, 28, 28), np.uint8),
        "y_test": np.arange(2),
    }


def test_npz_header_promising_terabytes_is_one_line(tmp_path):
    a = small_arrays()
    huge = npy_header(np.uint8, (10**9, 784, 1000)) + bytes(100)  # 713 TiB promised
    members = [(k + ".npy", npy_bytes(v), False) for k, v in a.items() if k != "x_train"]
    for deflate in (False, True):
        path = tmp_path / f"huge{deflate}.npz"
        path.write_bytes(data_npz([("x_train.npy", huge, deflate)] + members))
        with pytest.raises(DataFormatError, match=r"x_train: its header promises shape \(1000000000, 784, 1000\)"):
            load_data(path)


def test_npz_member_shorter_than_its_header_says_so(tmp_path):
    a = small_arrays()
    short = npy_bytes(a["x_train"])[:-100]
    members = [("x_train.npy", short, False)]
    members += [(k + ".npy", npy_bytes(v), False) for k, v in a.items() if k != "x_train"]
    (tmp_path / "short.npz").write_bytes(data_npz(members))
    with pytest.raises(
        DataFormatError,
        match=r"x_train: its header promises shape \(6, 28, 28\) \(4,704 bytes\), "
        r"but the member holds 4,604 bytes",
    ):
        load_data(tmp_path / "short.npz")


@pytest.mark.parametrize("kind", ["npz", "idx", "csv"])
def test_compressed_bombs_are_refused_early_with_bounded_memory(tmp_path, kind):
    n = 400_000  # 400,000 blank images: 314 MB of pixels (1.3 GB as CSV text) from well under 1 MB
    if kind == "npz":
        x = npy_header(np.uint8, (n, 28, 28))
        a = small_arrays()
        rest = [(k + ".npy", npy_bytes(v), False) for k, v in a.items() if k != "x_train"]
        # x_train: its header then the zeros, deflated as one stream (zeros compress ~1000x)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        stored = c.compress(x)
        block = bytes(1 << 20)
        crc = zlib.crc32(x)
        parts = [stored]
        for _ in range(n * 784 >> 20):
            parts.append(c.compress(block))
            crc = zlib.crc32(block, crc)
        tail = bytes(n * 784 - (n * 784 >> 20 << 20))
        parts += [c.compress(tail), c.flush()]
        crc = zlib.crc32(tail, crc)
        stored = b"".join(parts)
        size = len(x) + n * 784
        lh = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(stored), size, 11, 0)
        lh += b"x_train.npy"
        ce = (
            struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                b"PK\x01\x02",
                20,
                20,
                0,
                8,
                0,
                0x21,
                crc,
                len(stored),
                size,
                11,
                0,
                0,
                0,
                0,
                0,
                0,
            )
            + b"x_train.npy"
        )
        body, directory = lh + stored, ce
        for name, data, _ in rest:
            directory += central_entry(name, len(body), data)
            body += local_header(name, data) + data
        raw = body + directory + end_record(4, len(directory), len(body))
        path = tmp_path / "bomb.npz"
        path.write_bytes(raw)
        fragment = "x_train: claims"
    elif kind == "idx":
        path = tmp_path / "idx"
        path.mkdir()
        head = bytes([0, 0, 8, 3]) + struct.pack(">III", n, 28, 28)
        (path / "train-images-idx3-ubyte.gz").write_bytes(gzip_of_zeros(head, n * 784))
        labels = bytes([0, 0, 8, 1]) + struct.pack(">I", n) + bytes(n)
        (path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
        test_images = bytes([0, 0, 8, 3]) + struct.pack(">III", 1, 28, 28) + bytes(784)
        for stem, data in (
            ("t10k-images-idx3-ubyte", test_images),
            ("t10k-labels-idx1-ubyte", bytes([0, 0, 8, 1]) + struct.pack(">I", 1) + bytes(1)),
        ):
            (path / stem).write_bytes(data)
        fragment = "train-images-idx3-ubyte.gz: claims"
    else:
        path = tmp_path / "bomb.csv.gz"
        row = b"0" + b",0" * 784 + b"\n"
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as g:
            block = row * 1000
            for _ in range(n // 1000):
                g.write(block)
        path.write_bytes(buf.getvalue())
        fragment = "bomb.csv.gz: expands past"
    assert sum(f.stat().st_size for f in ([path] if path.is_file() else path.iterdir())) < 2_000_000
    rc, out, err, peak = run_measured(steadynet_cli("data", "info", path))
    assert rc == 1 and peak < PEAK_MB, (err, peak)
    one_line_error(err, fragment)


def test_expansion_limit_is_what_the_docs_say():
    assert allowed_expansion(1000) == EXPANSION_FLOOR == 64 << 20
    assert allowed_expansion(10 << 20) == MAX_EXPANSION * (10 << 20) == 100 * (10 << 20)


@pytest.mark.parametrize("rows", [10**9, 10**6])
def test_hdf5_dataset_declared_huge_and_never_written_is_refused(tmp_path, rows):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x_train", shape=(rows, 784), dtype="f4", chunks=(1000, 784))
        f.create_dataset("y_train", data=np.zeros(rows if rows < 10**7 else 1, "i8")[:1])
        f.create_dataset("x_test", data=np.zeros((1, 784), "f4"))
        f.create_dataset("y_test", data=np.zeros(1, "i8"))
    assert path.stat().st_size < 1_000_000
    rc, out, err, peak = run_measured(steadynet_cli("data", "info", path))
    assert rc == 1 and peak < PEAK_MB, (err, peak)
    one_line_error(err, "empty.h5: x_train: claims", "does not hold")


def png_header_only(width, height):
    """A PNG whose header declares ``width`` x ``height`` grey pixels (with a tiny IDAT)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 100))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def image_folder(root, files):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def png_of(a, mode=None):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format="PNG") if mode else Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_image_folder_with_a_huge_png_or_an_odd_class_folder_is_one_line(tmp_path):
    pytest.importorskip("PIL")
    ok = png_of(np.zeros((28, 28), np.uint8))
    root = image_folder(tmp_path / "huge", {"train/0/a.png": ok, "train/1/b.png": png_header_only(30000, 30000)})
    with pytest.raises(DataFormatError, match=r"b\.png: the image is too large \(Image size \(900000000 pixels\)"):
        load_data(root)
    big = {f"train/{i % 2}/{i}.png": png_header_only(4000, 4000) for i in range(5)}
    root = image_folder(tmp_path / "first", big)
    with pytest.raises(DataFormatError, match="5 images of 4000x4000: claims 80,000,000 bytes of data from"):
        load_data(root)  # 80 MB of pixels from a few hundred bytes of files
    root = image_folder(tmp_path / "sup", {"train/0/a.png": ok, "train/²/b.png": ok})
    with pytest.raises(DataFormatError, match="expected class folders named by their integer label"):
        load_data(root)
    root = image_folder(tmp_path / "sup2", {"0/a.png": ok, "²/b.png": ok})
    with pytest.raises(DataFormatError):
        load_data(root)


# ---------------------------------------------------------------------------- 8. devices, FIFOs


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_and_fifos_are_refused_without_reading_or_blocking(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    link = tmp_path / "zero.npz"
    link.symlink_to("/dev/zero")
    for argv, what in (
        (["evaluate", "/dev/zero"], "a device"),
        (["evaluate", link], "a device"),
        (["evaluate", fifo], "a FIFO"),
        (["data", "info", fifo], "a FIFO"),
        (["data", "info", "/dev/zero"], "a device"),
        (["train", "--data", fifo, "--epochs", "1", "--out", tmp_path / "r"], "a FIFO"),
    ):
        start = time.monotonic()
        rc, out, err, peak = run_measured(steadynet_cli(*argv), timeout=60)
        assert rc == 1 and peak < PEAK_MB, (argv, err, peak)
        one_line_error(err, what)
        assert time.monotonic() - start < 60  # (a hang would have hit the timeout above)
    from steadynet.pictures import load_image

    for path, what in ((fifo, "a FIFO"), ("/dev/zero", "a device"), (tmp_path, "a folder")):
        with pytest.raises(DataFormatError, match=f"expected a regular image file, found {what}"):
            load_image(path)
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (folder / stem).write_bytes(b"")
    os.mkfifo(folder / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte: expected a regular IDX file, found a FIFO"):
        load_data(folder)


# ---------------------------------------------------------------------------- 9. silent changes


def test_csv_first_row_with_a_stray_non_number_is_reported_not_dropped():
    with pytest.raises(DataFormatError, match="line 1, column 3: expected a number, found 'x'"):
        parse_csv(b"1,0,x,4\n2,5,6,7\n", "a.csv")
    with pytest.raises(DataFormatError, match="line 1, column 1: expected a number, found '\\?'"):
        parse_csv(b"?,0,3,4\n2,5,6,7\n", "a.csv")
    headers = (b"label,pixel1,pixel2,pixel3\n", b"label,0,1,2\n", b"label,1,2,3\n", b"\xef\xbb\xbflabel,a,b,c\r\n")
    for header in headers:
        x, y = parse_csv(header + b"1,0,3,4\n2,5,6,7\n", "a.csv")
        assert x.shape == (2, 3) and y.tolist() == [1, 2]
    x, y = parse_csv(b"1,0,3,4\n2,5,6,7\n", "a.csv")  # no header: both rows kept
    assert y.tolist() == [1, 2]


def test_image_folder_reads_transparent_and_16_bit_pngs_right(tmp_path):
    pytest.importorskip("PIL")
    ink = np.zeros((28, 28), np.uint8)
    ink[6:22, 12:16] = 255
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = ink  # black strokes whose coverage is their alpha, on a transparent canvas
    grey16 = ink.astype(np.uint16) * 257  # 16-bit: 0 and 65535
    grey16[0, 0] = 257 * 100  # one mid level: must become 100, not 255
    root = image_folder(tmp_path / "imgs", {"train/0/a.png": png_of(rgba, "RGBA"), "train/1/b.png": png_of(grey16)})
    data = load_data(root)
    a, b = data.x_train.reshape(-1, 28, 28)
    assert (a == 255 - ink).all()  # dark strokes on white, as predict reads them
    assert b[0, 0] == 100 and (b[6:22, 12:16] == 255).all() and b[1, 1] == 0
    assert any("converted to 8-bit grey" in n for n in data.notices)


# ---------------------------------------------------------------------------- 6, 7. the server


def test_client(model_path, tmp_path, data=None):
    from starlette.testclient import TestClient

    from steadynet.web.app import create_app
    from steadynet.web.state import Inspector

    inspector = Inspector(model_path, data=data or make_test_set(tmp_path))
    return TestClient(create_app(inspector, allowed_hosts=("testserver",)))


def make_test_set(tmp_path):
    from steadynet.data import Dataset

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (20, 784)).astype(np.uint8)
    return Dataset(X, np.arange(20) % 10, X, np.arange(20) % 10, (28, 28), "tiny")


test_client.__test__ = False  # a helper, not a test


def test_huge_finite_weights_give_409_json_naming_the_model(tmp_path):
    pytest.importorskip("starlette")
    model = steadynet.MLP((784, 8, 10), "relu", seed=0)
    model.theta[...] = 1e30  # finite, but every output overflows
    steadynet.save(tmp_path / "huge.npz", model)
    client = test_client(tmp_path / "huge.npz", tmp_path)
    image = np.zeros((28, 28))
    image[5:20, 12:15] = 1
    for r in (client.post("/api/predict", json={"image": image.tolist()}), client.get("/api/mistakes")):
        assert r.status_code == 409, r.text
        assert "non-finite outputs" in r.json()["error"] and "huge.npz" in r.json()["error"]


def test_odd_metrics_json_and_a_wrong_host_get_json(tmp_path, model_file):
    pytest.importorskip("starlette")
    run = tmp_path / "run"
    run.mkdir()
    steadynet.save(run / "model.npz", steadynet.MLP((784, 8, 10), "relu", seed=0))
    client = test_client(run, tmp_path)
    for content in ("[]", '{"config": 3}', '"text"', "[" * 100000, '{"epochs": [{"loss": NaN}], "config": {}}'):
        (run / "metrics.json").write_text(content)
        r = client.get("/api/run")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
        assert r.json()["status"] in ("unreadable", None)
    r = client.get("/api/model", headers={"host": "attacker.example"})
    assert r.status_code == 400 and "Host" in r.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.2", "::1", "127.0.0.1"])
def test_every_loopback_address_has_a_host_check_that_accepts_its_own_url(tmp_path, model_file, host):
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    from steadynet.errors import ConfigError as CE
    from steadynet.web.server import make_server

    try:
        server = make_server(model_file, data=make_test_set(tmp_path), host=host)
    except CE as exc:
        pytest.skip(f"cannot bind {host} here: {exc}")
    with server:
        with httpx.Client(timeout=10) as client:
            assert client.get(server.url + "api/model").status_code == 200
            r = client.get(server.url + "api/model", headers={"host": "rebound.example"})
            assert r.status_code == 400 and r.headers["content-type"] == "application/json"
            shown = server.url.split("//")[1].rstrip("/")
            r = client.get(server.url + "api/model", headers={"host": shown.replace(host, "evil." + host)})
            assert r.status_code == 400


def test_slow_and_idle_connections_are_closed(tmp_path, model_file, monkeypatch):
    pytest.importorskip("uvicorn")
    import steadynet.web.server as web

    monkeypatch.setattr(web, "REQUEST_TIMEOUT", 0.5)
    server = web.make_server(model_file, data=make_test_set(tmp_path))
    with server:

        def closed_within(send, seconds=5.0):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.settimeout(seconds)
            start = time.monotonic()
            try:
                if send:
                    s.sendall(send)
                data = s.recv(65536)
                while data:  # the server may answer first; then it must still close
                    data = s.recv(65536)
            except socket.timeout:
                return False
            finally:
                s.close()
            return time.monotonic() - start < seconds

        assert closed_within(b"")  # connects and says nothing
        assert closed_within(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # headers never end
        assert closed_within(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"image"'
        )  # the body never ends
        # a normal request on the same server is still answered
        import httpx

        assert httpx.get(server.url + "api/model", timeout=10).status_code == 200


# ---------------------------------------------------------------------------- 10. smaller


def test_data_show_n_and_absurd_integers_are_refused_before_any_work(tmp_path, capsys):
    from steadynet.cli.app import main

    assert main(["data", "show", str(tmp_path / "none.h5"), "--out", str(tmp_path / "g.png"), "--n", "3000"]) == 1
    assert "--n must be 1 to 400" in capsys.readouterr().err
    for field in ("epochs", "batch_size", "val_size", "patience", "checkpoint_every_steps"):
        with pytest.raises(ConfigError, match=f"^{field} must be at most"):
            TrainConfig(**{field: 10**23}).validate()
    assert main(["train", "--epochs", str(10**23), "--out", str(tmp_path / "run")]) == 1
    assert "--epochs must be at most 1,000,000" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_connections_beyond_the_limit_get_503_json(tmp_path, model_file, monkeypatch):
    pytest.importorskip("uvicorn")
    import steadynet.web.server as web

    monkeypatch.setattr(web, "MAX_CONNECTIONS", 3)
    server = web.make_server(model_file, data=make_test_set(tmp_path))
    with server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", server.port))
        extra.settimeout(5)
        answer = b""
        while chunk := extra.recv(65536):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"application/json" in head
        assert "limit" in json.loads(body)["error"]
        for s in held + [extra]:
            s.close()


def test_download_larger_than_the_limit_is_refused(monkeypatch):
    import http.server
    import importlib
    import threading

    from steadynet.errors import DownloadError

    fetching = importlib.import_module("steadynet.data.fetch")  # the module (steadynet.data.fetch is also a function)

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # no Content-Length: the limit is counted while reading
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(bytes(1 << 16))
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(fetching, "MAX_DOWNLOAD_BYTES", 1 << 20)
    try:
        with pytest.raises(DownloadError, match="sent more than 1,048,576 bytes"):
            fetching.download(f"http://127.0.0.1:{server.server_address[1]}/f.gz", timeout=10)
    finally:
        server.shutdown()


def test_predict_with_a_model_whose_outputs_overflow_is_one_line(tmp_path, capsys):
    pytest.importorskip("PIL")
    from steadynet.cli.app import main

    model = steadynet.MLP((784, 8, 10), "relu", seed=0)
    model.theta[...] = 1e30
    steadynet.save(tmp_path / "huge.npz", model)
    image = np.full((40, 40), 255, np.uint8)
    image[8:32, 18:22] = 0
    (tmp_path / "one.png").write_bytes(png_of(image))
    with np.errstate(all="ignore"):
        assert main(["predict", str(tmp_path / "huge.npz"), str(tmp_path / "one.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "huge.npz: the model produces non-finite outputs" in err
