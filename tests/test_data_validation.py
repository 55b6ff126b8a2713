"""The bad-data matrix: each bad input gives a one-line DataFormatError naming the file and
key/column with expected vs found, and the CLI exits non-zero without a traceback."""

import gzip
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from steadynet import MLP
from steadynet.cli.app import main
from steadynet.data import check_compatible, load_data
from steadynet.data.idx import write_idx
from steadynet.errors import DataFormatError

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (6, 16)).astype(np.uint8)
Y = np.array([0, 1, 2, 0, 1, 2])


def h5(path, **arrays):
    full = {"x_train": X, "y_train": Y, "x_test": X[:3], "y_test": Y[:3]} | arrays
    with h5py.File(path, "w") as f:
        for k, v in full.items():
            if v is not None:
                f[k] = v
    return path


def npz(path, **arrays):
    full = {"x_train": X, "y_train": Y, "x_test": X[:3], "y_test": Y[:3]} | arrays
    np.savez(path, **{k: v for k, v in full.items() if v is not None})
    return path


def text(path, content):
    path.write_text(content)
    return path


def idx_folder(root, drop=None, corrupt=None):
    names = {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    os.makedirs(root)
    full = {
        "x_train": X.reshape(6, 4, 4),
        "y_train": Y.astype(np.uint8),
        "x_test": X[:3].reshape(3, 4, 4),
        "y_test": Y[:3].astype(np.uint8),
    }
    for k, name in names.items():
        if k != drop:
            write_idx(root / name, full[k])
    if corrupt == "truncated":
        raw = gzip.decompress((root / names["x_train"]).read_bytes())
        (root / names["x_train"]).write_bytes(gzip.compress(raw[:-5]))
    elif corrupt == "gzip":
        raw = (root / names["x_train"]).read_bytes()
        (root / names["x_train"]).write_bytes(raw[: len(raw) // 2])
    return root


def images(root, sizes=((4, 4), (4, 4)), folder="1", garbage=False):
    from PIL import Image

    for i, size in enumerate(sizes):
        os.makedirs(root / "train" / folder, exist_ok=True)
        Image.fromarray(np.zeros(size, dtype=np.uint8)).save(root / "train" / folder / f"{i}.png")
    if garbage:
        (root / "train" / folder / "9.png").write_bytes(b"not a png at all")
    return root


# case name -> (make(tmp_path) -> path, pattern the message must match)
CASES = {
    "hdf5 missing key": (
        lambda t: h5(t / "a.h5", y_test=None),
        r"a\.h5: expected HDF5 datasets .* missing \['y_test'\]",
    ),
    "npz missing key": (lambda t: npz(t / "a.npz", x_train=None), r"a\.npz: expected arrays .* missing \['x_train'\]"),
    "idx missing file": (
        lambda t: idx_folder(t / "idx", drop="y_test"),
        r"expected IDX file t10k-labels-idx1-ubyte\[\.gz\] for y_test",
    ),
    "csv folder without train": (lambda t: text(t / "test.csv", "1,2\n").parent, r"expected one CSV file with 'train'"),
    "x and y lengths differ": (
        lambda t: h5(t / "a.h5", y_train=Y[:5]),
        r"a\.h5: y_train: expected 6 labels \(one per image\), found 5",
    ),
    "test pixels differ": (
        lambda t: npz(t / "a.npz", x_test=X[:3, :9]),
        r"a\.npz: x_test: expected 16 pixels per image like x_train, found 9",
    ),
    "ragged csv": (lambda t: text(t / "a.csv", "1,2,3\n0,4,5\n2,6\n"), r"a\.csv: line 3 has 2 values, expected 3"),
    "non-numeric csv": (
        lambda t: text(t / "a.csv", "label,p1,p2\n1,2,3\n0,4,abc\n"),
        r"a\.csv: line 3, column 3: expected a number, found 'abc'",
    ),
    "empty csv": (
        lambda t: text(t / "a.csv", "label,p1,p2\n"),
        r"a\.csv: expected rows of a label and at least one pixel, found 0 rows",
    ),
    "empty images": (
        lambda t: npz(t / "a.npz", x_train=np.zeros((0, 4, 4), np.uint8), y_train=np.zeros(0)),
        r"x_train: expected at least one image",
    ),
    "ragged image folder": (
        lambda t: images(t / "img", sizes=((4, 4), (5, 4))),
        r"1\.png: expected a 4x4 image like .*0\.png, found 4x5",
    ),
    "nan pixel": (
        lambda t: h5(t / "a.h5", x_train=np.where(np.arange(16) == 3, np.nan, 0.5)[None].repeat(6, 0)),
        r"a\.h5: x_train: expected finite pixels, found nan at image 0, pixel 3",
    ),
    "inf pixel": (
        lambda t: npz(t / "a.npz", x_test=np.full((3, 16), np.inf)),
        r"a\.npz: x_test: expected finite pixels, found inf",
    ),
    "nan pixel in csv": (
        lambda t: text(t / "a.csv", "1,0.5,nan\n0,0.1,0.2\n"),
        r"a\.csv pixel columns: expected finite pixels, found nan",
    ),
    "pixels out of range": (
        lambda t: npz(t / "a.npz", x_train=X.astype(np.int32) * 2),
        r"x_train: expected pixels in \[0, 1\] or 0-255, found values from 0 to 5\d\d",
    ),
    "negative label": (
        lambda t: h5(t / "a.h5", y_train=Y - 1),
        r"a\.h5: y_train: expected class labels from 0 to 9999, found -1 at row 0",
    ),
    "label too large": (
        lambda t: npz(t / "a.npz", y_test=np.array([0, 1, 10000])),
        r"y_test: expected class labels from 0 to 9999, found 10000 at row 2",
    ),
    "non-integer label": (
        lambda t: h5(t / "a.h5", y_train=Y + 0.5),
        r"a\.h5: y_train: expected integer class labels, found 0\.5 at row 0",
    ),
    "non-integer csv label": (
        lambda t: text(t / "a.csv", "1,0,9\n2.5,4,5\n"),
        r"a\.csv label column: expected integer class labels, found 2\.5 at row 1",
    ),
    "string labels": (
        lambda t: npz(t / "a.npz", y_train=np.array(list("abcabc"))),
        r"y_train: expected integer class labels, found dtype <U1",
    ),
    "bad one-hot": (
        lambda t: h5(t / "a.h5", y_test=np.ones((3, 4))),
        r"a\.h5: y_test: a 2-D label array with 4 columns must be one-hot",
    ),
    "object arrays": (lambda t: npz_object(t), r"a\.npz: holds object arrays, which are refused"),
    "class folder not a label": (
        lambda t: images(t / "img", folder="cat"),
        r"img/train/cat: expected class folders named by their integer label",
    ),
    "not an image": (lambda t: images(t / "img", garbage=True), r"9\.png: not a readable image"),
    "idx truncated": (
        lambda t: idx_folder(t / "idx", corrupt="truncated"),
        r"train-images-idx3-ubyte\.gz: IDX header promises shape \(6, 4, 4\) \(96 bytes of data\), found 91 bytes",
    ),
    "idx corrupt gzip": (
        lambda t: idx_folder(t / "idx", corrupt="gzip"),
        r"train-images-idx3-ubyte\.gz: gzip data is corrupt or truncated",
    ),
    "single idx file": (
        lambda t: idx_folder(t / "idx") / "train-labels-idx1-ubyte.gz",
        r"a single IDX file holds one array",
    ),
    "unknown format": (lambda t: text(t / "a.bin", "hello"), r"a\.bin: unrecognised data format"),
    "empty folder": (lambda t: t, r"a data folder must hold the four IDX files"),
    "missing path": (lambda t: t / "nope.h5", r"nope\.h5: no such file or folder"),
}


def npz_object(t):
    np.savez(t / "a.npz", x_train=np.array([X[0], "x"], dtype=object), y_train=Y, x_test=X, y_test=Y)
    return t / "a.npz"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_one_clear_line(case, tmp_path, capsys):
    make, pattern = CASES[case]
    path = make(tmp_path)
    with pytest.raises(DataFormatError, match=pattern) as info:
        load_data(path)
    assert "\n" not in str(info.value)
    assert main(["data", "info", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("steadynet data: error: ") and "Traceback" not in err


def test_cli_process_exits_nonzero_without_traceback(tmp_path):
    path = text(tmp_path / "bad.csv", "1,2,3\n0,4\n")
    for argv in (["data", "info", str(path)], ["train", "--data", str(path), "--epochs", "1"]):
        proc = subprocess.run([sys.executable, "-m", "steadynet", *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr and "bad.csv: line 2 has 2 values, expected 3" in proc.stderr


# ---------------------------------------------------------------- pixel scale


@pytest.mark.parametrize(
    "x, dtype, notice",
    [
        (X, np.uint8, None),  # the usual: kept as it is
        (X.astype(np.float32) / np.float32(255), np.uint8, None),  # the seed's floats, compacted
        (RNG.random((6, 16)).astype(np.float32), np.float32, None),  # any floats in [0, 1]
        (X.astype(np.float64), np.uint8, "pixels range 0-255; kept as uint8"),
        (X.astype(np.float32) * 0.5 + 0.25, np.float32, "divided by 255"),
        ((X > 128).astype(np.int64), np.float32, "all 0 or 1"),
    ],
)
def test_pixel_scale_detected(tmp_path, x, dtype, notice):
    data = load_data(npz(tmp_path / "a.npz", x_train=x))
    assert data.x_train.dtype == dtype
    scaled = data.x_train / 255.0 if dtype == np.uint8 else data.x_train
    assert 0 <= scaled.min() and scaled.max() <= 1
    train_notices = [n for n in data.notices if "x_train" in n]
    assert (notice is None and not train_notices) or (notice and notice in " ".join(train_notices))
    if x.max() > 1:  # 0-255 data ends up as the same pixels whatever the scale it came in
        np.testing.assert_allclose(scaled, np.asarray(x, np.float64) / 255, atol=1e-6)


# ---------------------------------------------------------------- model meets data


def test_check_compatible(tmp_path):
    data = load_data(npz(tmp_path / "a.npz", x_train=X[:, :9], x_test=X[:3, :9]))
    check_compatible(data, MLP((9, 4, 3)), "m.npz")
    with pytest.raises(DataFormatError, match=r"a\.npz: images are 3x3 \(9 pixels\), but the model m\.npz expects 16"):
        check_compatible(data, MLP((16, 4, 3)), "m.npz")
    with pytest.raises(DataFormatError, match=r"labels go up to 2, but the model m\.npz has 2 outputs"):
        check_compatible(data, MLP((9, 4, 2)), "m.npz")
