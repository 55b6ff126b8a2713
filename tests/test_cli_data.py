"""``steadynet data info | convert | show`` (``fetch`` is in test_fetch.py)."""

import json

import numpy as np
import pytest

from steadynet.cli.app import main
from steadynet.data import Dataset, load_data
from steadynet.data.idx import write_idx_folder
from steadynet.data.npz import write_npz

RNG = np.random.default_rng(3)


@pytest.fixture
def small(tmp_path):
    data = Dataset(
        RNG.integers(0, 256, (9, 16), dtype=np.uint8),
        np.array([0, 1, 2, 2, 1, 0, 2, 2, 1]),
        RNG.integers(0, 256, (3, 16), dtype=np.uint8),
        np.array([2, 0, 1]),
        (4, 4),
        "small",
    )
    write_npz(tmp_path / "small.npz", data)
    return data, tmp_path / "small.npz"


def test_info_reports_format_shapes_labels_and_range(small, capsys):
    data, path = small
    assert main(["data", "info", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "npz" and report["image_shape"] == [4, 4] and report["n_classes"] == 3
    assert report["arrays"]["x_train"]["stored_shape"] == [9, 4, 4]
    assert report["arrays"]["x_train"]["stored_dtype"] == "uint8" and report["arrays"]["x_train"]["shape"] == [9, 16]
    assert report["arrays"]["x_test"]["pixel_max"] == float(data.x_test.max())
    assert report["label_counts"] == {"train": [2, 3, 4], "test": [1, 1, 1]}
    assert report["checksum"]["status"] == "unknown"
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "npz, images 4x4, 3 classes" in out and "train labels: 0:2 1:3 2:4" in out


def test_convert_to_every_format_and_back(small, tmp_path, capsys):
    data, path = small
    for dst, extra in (
        ("a.h5", []),
        ("a.npz", []),
        ("idx", ["--format", "idx-folder"]),
        ("csv", ["--format", "csv"]),
        ("img", ["--format", "images"]),
    ):
        assert main(["data", "convert", str(path), str(tmp_path / dst), *extra]) == 0
        back = load_data(tmp_path / dst)
        np.testing.assert_array_equal(back.x_train, data.x_train)
        np.testing.assert_array_equal(back.y_test, data.y_test)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "dst, extra, message",
    [
        ("small.npz", [], "already exists; choose a new path"),
        ("out.txt", [], "cannot tell the output format from the name"),
    ],
)
def test_convert_refusals(small, tmp_path, capsys, dst, extra, message):
    _, path = small
    before = path.read_bytes()
    assert main(["data", "convert", str(path), str(tmp_path / dst), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert path.read_bytes() == before


def test_show_writes_a_labelled_grid(small, tmp_path, capsys):
    data, path = small
    out = tmp_path / "grid.png"
    assert main(["data", "show", str(path), "--out", str(out), "--n", "4", "--split", "test", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(shown["indices"]) == 3  # only 3 test images exist
    assert shown["labels"] == data.y_test[shown["indices"]].tolist()
    from PIL import Image

    with Image.open(out) as im:
        assert im.width > 50 and im.height > 50


@pytest.mark.mnist
def test_info_on_fetched_mnist_matches_and_altered_copy_does_not(mnist, tmp_path, capsys):
    assert main(["data", "info", "mnist"]) == 0
    assert "matches the known mnist" in capsys.readouterr().out
    x = mnist.x_train.copy()
    x[123, 400] ^= 1  # one pixel of one image
    write_idx_folder(
        tmp_path / "idx", Dataset(x, mnist.y_train, mnist.x_test, mnist.y_test, (28, 28), "altered"), gz=False
    )
    assert main(["data", "info", str(tmp_path / "idx"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checksum"]["status"] == "mismatch" and report["checksum"]["differs"] == ["x_train"]
    assert report["checksum"]["expected"]["x_train"].startswith("741c9888")
    assert report["files"]["status"] == "unknown"  # uncompressed files are not the published ones
    assert main(["data", "info", str(tmp_path / "idx")]) == 0
    assert "MISMATCH with the known mnist: x_train" in capsys.readouterr().out
