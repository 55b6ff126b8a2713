"""Every reader round-trips, formats are detected, and training is the same whatever the format."""

import os
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import steadynet
from steadynet.data import Dataset, detect_format, load_data
from steadynet.data.csv import write_csv_folder
from steadynet.data.hdf5 import write_hdf5
from steadynet.data.idx import read_idx, write_idx, write_idx_folder
from steadynet.data.images import write_image_folder
from steadynet.data.npz import write_npz

WRITERS = {
    "hdf5": lambda root, d: write_hdf5(os.path.join(root, "d.hdf5"), d) or os.path.join(root, "d.hdf5"),
    "npz": lambda root, d: write_npz(os.path.join(root, "d.npz"), d) or os.path.join(root, "d.npz"),
    "idx-folder": lambda root, d: write_idx_folder(os.path.join(root, "idx"), d) or os.path.join(root, "idx"),
    "csv": lambda root, d: write_csv_folder(os.path.join(root, "csv"), d) or os.path.join(root, "csv"),
    "images": lambda root, d: write_image_folder(os.path.join(root, "img"), d) or os.path.join(root, "img"),
}


@st.composite
def datasets(draw, dtype=np.uint8, square=True):
    """A small Dataset: (n, h*w) pixels of ``dtype`` (float32 in [0, 1]) and int64 labels."""
    h = draw(st.integers(1, 5))
    w = h if square else draw(st.integers(1, 5))
    n_train, n_test = draw(st.integers(1, 6)), draw(st.integers(0, 4))
    k = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)

    def pixels(n):
        if dtype == np.uint8:
            return rng.integers(0, 256, size=(n, h * w), dtype=np.uint8)
        return rng.random((n, h * w), dtype=np.float32)

    return Dataset(
        pixels(n_train), rng.integers(0, k, n_train), pixels(n_test), rng.integers(0, k, n_test), (h, w), "drawn"
    )


def as_unit(x):
    return x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x


def assert_same(a, b, exact=True):
    for key in ("x_train", "x_test"):
        if exact:
            assert getattr(b, key).dtype == getattr(a, key).dtype
            np.testing.assert_array_equal(getattr(b, key), getattr(a, key))
        else:  # float pixels on the k/255 grid come back as uint8: the same values
            np.testing.assert_allclose(as_unit(getattr(b, key)), as_unit(getattr(a, key)), atol=1e-7, rtol=0)
    for key in ("y_train", "y_test"):
        assert getattr(b, key).dtype == np.int64
        np.testing.assert_array_equal(getattr(b, key), getattr(a, key))


@pytest.mark.parametrize("fmt", list(WRITERS))
@given(data=datasets())
def test_uint8_round_trip(fmt, data):
    with tempfile.TemporaryDirectory() as root:
        path = WRITERS[fmt](root, data)
        assert detect_format(path) == fmt
        back = load_data(path)
    assert_same(data, back)
    assert tuple(back.image_shape) == tuple(data.image_shape)


@pytest.mark.parametrize("fmt", ["hdf5", "npz", "idx-folder", "csv"])
@given(data=datasets(dtype=np.float32))
def test_float_round_trip(fmt, data):
    with tempfile.TemporaryDirectory() as root:
        back = load_data(WRITERS[fmt](root, data))
    assert_same(data, back, exact=False)


@pytest.mark.parametrize("fmt", ["npz", "idx-folder", "images"])
@given(data=datasets(square=False))
def test_image_shape_survives(fmt, data):
    """Formats that store (n, h, w) keep non-square shapes."""
    with tempfile.TemporaryDirectory() as root:
        back = load_data(WRITERS[fmt](root, data))
    assert tuple(back.image_shape) == tuple(data.image_shape)
    assert_same(data, back)


@given(
    a=st.sampled_from(["u1", "i1", ">i2", ">i4", ">f4", ">f8", "<i4", "<f8"]).flatmap(
        lambda dt: st.tuples(st.just(dt), st.lists(st.integers(0, 4), min_size=1, max_size=4))
    )
)
def test_idx_dtypes_and_ranks(a):
    dtype, shape = a
    rng = np.random.default_rng(0)
    x = (rng.random(shape) * 100).astype(dtype)
    with tempfile.TemporaryDirectory() as root:
        for name in ("a.idx", "a.idx.gz"):
            write_idx(os.path.join(root, name), x)
            back = read_idx(os.path.join(root, name))
            assert back.shape == x.shape and back.dtype.kind == x.dtype.kind
            assert back.dtype.isnative
            np.testing.assert_array_equal(back, x)


def test_idx_uint8_read_is_writable_and_single_copy(tmp_path):
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "a-idx3-ubyte", x)
    back = read_idx(tmp_path / "a-idx3-ubyte")
    assert back.flags.writeable and back.flags.owndata and back.dtype == np.uint8


def test_seed_hdf5_layout_variants(tmp_path):
    """The seed's file: (n, 784) float32 in [0, 1] and (n, 1) labels; also 28x28 images, (n,)
    labels and one-hot labels, all read to the same data."""
    import h5py

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    y = np.array([0, 3, 9, 3, 1])
    variants = {
        "flat01": (x.reshape(5, -1).astype(np.float32) / np.float32(255), y.reshape(-1, 1)),
        "images255": (x, y),
        "onehot": (x.reshape(5, -1), np.eye(10)[y]),
    }
    for name, (xs, ys) in variants.items():
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            for split in ("train", "test"):
                f[f"x_{split}"], f[f"y_{split}"] = xs, ys
        d = load_data(tmp_path / f"{name}.h5")
        np.testing.assert_array_equal(d.x_train, x.reshape(5, -1))
        np.testing.assert_array_equal(d.y_test, y)
        assert d.image_shape == (28, 28)


def test_keras_npz_layout(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=x,
        y_train=np.arange(4, dtype=np.uint8),
        x_test=x[:2],
        y_test=np.array([1, 2], dtype=np.uint8),
    )
    d = load_data(tmp_path / "mnist.npz")
    assert d.x_train.dtype == np.uint8 and d.x_train.shape == (4, 784) and d.notices == []
    np.testing.assert_array_equal(d.y_train, [0, 1, 2, 3])


def test_csv_header_optional_single_file_and_gzip(tmp_path):
    rows = "5,0,255,3,4\n0,9,8,7,6\n"
    (tmp_path / "plain.csv").write_text(rows)
    (tmp_path / "header.csv").write_text("label,p1,p2,p3,p4\n" + rows)
    import gzip

    (tmp_path / "z.csv.gz").write_bytes(gzip.compress(rows.encode()))
    for name in ("plain.csv", "header.csv", "z.csv.gz"):
        d = load_data(tmp_path / name)
        np.testing.assert_array_equal(d.y_train, [5, 0])
        np.testing.assert_array_equal(d.x_train, [[0, 255, 3, 4], [9, 8, 7, 6]])
        assert d.x_train.dtype == np.uint8 and len(d.y_test) == 0
        assert any("no test split" in n for n in d.notices)


def test_csv_folder_picks_train_and_test_by_name(tmp_path):
    (tmp_path / "mnist_train.csv").write_text("1,0,0,0,9\n2,0,0,9,0\n")
    (tmp_path / "mnist_test.csv").write_text("3,9,0,0,0\n")
    d = load_data(tmp_path)
    assert detect_format(str(tmp_path)) == "csv"
    np.testing.assert_array_equal(d.y_train, [1, 2])
    np.testing.assert_array_equal(d.y_test, [3])


def test_image_folder_without_split_is_training_data(tmp_path):
    from PIL import Image

    for label, value in ((0, 10), (1, 200), (1, 30)):
        os.makedirs(tmp_path / str(label), exist_ok=True)
        Image.fromarray(np.full((3, 3), value, dtype=np.uint8)).save(tmp_path / str(label) / f"{value}.png")
    Image.fromarray(np.full((3, 3, 3), 77, dtype=np.uint8)).save(tmp_path / "0" / "rgb.png")
    d = load_data(tmp_path)
    # ordered by file name, numbers as numbers: 10 (0), 30 (1), 200 (1), rgb (0)
    np.testing.assert_array_equal(d.y_train, [0, 1, 1, 0])
    np.testing.assert_array_equal(d.x_train[:, 0], [10, 30, 200, 77])
    assert len(d.y_test) == 0 and any("converted to 8-bit grey" in n for n in d.notices)


def learnable(n_train=160, n_test=60, side=6, k=3, seed=0):
    """A tiny MNIST-like set: uint8 images, one bright band per class, plus noise."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = rng.integers(0, k, n)
        x = rng.integers(0, 60, (n, side, side))
        for c in range(k):
            x[y == c, 2 * c : 2 * c + 2, :] += 180
        return np.clip(x, 0, 255).astype(np.uint8).reshape(n, -1), y

    (xtr, ytr), (xte, yte) = draw(n_train), draw(n_test)
    return Dataset(xtr, ytr, xte, yte, (side, side), "learnable")


def test_training_is_identical_in_every_format(tmp_path):
    """The same data written as IDX, NPZ, CSV, image folder and HDF5 trains to the same numbers."""
    from steadynet.cli.app import main

    data = learnable()
    settings = dict(hidden=(8,), epochs=2, val_size=20, augment_shift=0, batch_size=16, seed=3)
    reference = steadynet.train(data=data, **settings)
    assert reference["test_accuracy"] > 0.5  # it learned something, so equality means something
    for fmt, write in WRITERS.items():
        path = write(str(tmp_path), data)
        run = steadynet.train(steadynet.TrainConfig(data=path), **settings)
        assert run["test_accuracy"] == reference["test_accuracy"], fmt
        assert [e["train_loss"] for e in run["epochs"]] == [e["train_loss"] for e in reference["epochs"]], fmt
    # and through the command line, from the image folder
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--data",
            str(tmp_path / "img"),
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--val-size",
            "20",
            "--augment-shift",
            "0",
            "--batch-size",
            "16",
            "--seed",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    import json

    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == reference["test_accuracy"]


def test_one_table_names_every_formats_reader_and_writer():
    """read_arrays and data.tools.convert dispatch through the same table: every format has
    both, and a format read can be written."""
    from steadynet.data import FORMATS, reader, writer

    for fmt in FORMATS:
        assert callable(reader(fmt)) and callable(writer(fmt))
    assert reader("csv").__module__ == writer("csv").__module__ == "steadynet.data.csv"
