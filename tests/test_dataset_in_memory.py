"""A Dataset built in Python meets the checks a file's arrays meet: scale, label range and
form, shapes; the same one-line errors and notices."""

import numpy as np
import pytest

from conftest import make_blobs
from steadynet import TrainConfig, train
from steadynet.data import Dataset, make_dataset
from steadynet.errors import DataFormatError

FAST = TrainConfig(epochs=1, hidden=(4,), batch_size=50, val_size=100, augment_shift=0, learning_rate=0.2)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs()


def test_0_255_floats_built_in_python_are_rescaled_with_a_notice(blobs):
    raw = Dataset(
        np.round(blobs.x_train * 255).astype(np.float64),
        blobs.y_train,
        np.round(blobs.x_test * 255).astype(np.float64),
        blobs.y_test,
        blobs.image_shape,
        "mine",
    )
    lines = []
    result = train(FAST.replace(epochs=3), data=raw, log=lines.append)
    assert any("mine: x_train: pixels range 0-255; kept as uint8 and scaled to [0, 1]" in line for line in lines)
    assert result["test_accuracy"] > 0.9  # trained on [0, 1] pixels, not on raw 0-255 values
    as_given = train(FAST.replace(epochs=3), data=make_blobs())  # the same blobs, given in [0, 1]
    assert result["test_accuracy"] == as_given["test_accuracy"]


def test_labels_counted_from_one_are_refused_not_an_extra_class(blobs, tmp_path):
    shifted = Dataset(blobs.x_train, blobs.y_train + 1, blobs.x_test, blobs.y_test + 1, blobs.image_shape, "mine")
    with pytest.raises(
        DataFormatError,
        match=r"mine: y_train: labels run from 1 to 3 and 0 never occurs, so a "
        r"network with 4 outputs would be built .* subtract 1",
    ):
        train(FAST, data=shifted)
    path = tmp_path / "from1.npz"  # files too
    np.savez(path, x_train=blobs.x_train, y_train=blobs.y_train + 1, x_test=blobs.x_test, y_test=blobs.y_test + 1)
    with pytest.raises(DataFormatError, match="from1.npz: y_train: labels run from 1 to 3"):
        train(FAST, data=str(path))


def test_one_hot_labels_in_memory_are_read_knowingly(blobs):
    one_hot = np.eye(3, dtype=np.float32)
    data = Dataset(
        blobs.x_train, one_hot[blobs.y_train], blobs.x_test, one_hot[blobs.y_test], blobs.image_shape, "mine"
    )
    lines = []
    result = train(FAST, data=data, log=lines.append)
    assert any("mine: y_train: one-hot labels of shape (600, 3) read as class indices" in line for line in lines)
    assert result.model.n_classes == 3
    broken = Dataset(blobs.x_train, one_hot[blobs.y_train] * 0.5, blobs.x_test, blobs.y_test, blobs.image_shape, "mine")
    with pytest.raises(DataFormatError, match=r"mine: y_train: a 2-D label array with 3 columns must be one-hot"):
        train(FAST, data=broken)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: dict(d, x_train=d["x_train"] - 0.5), r"mine: x_train: expected pixels in \[0, 1\] or 0-255"),
        (
            lambda d: dict(d, y_train=d["y_train"][:-1]),
            r"mine: y_train: expected 600 labels \(one per image\), found 599",
        ),
        (lambda d: dict(d, x_test=d["x_test"][:, :9]), r"mine: x_test: expected 16 pixels per image like x_train"),
        (lambda d: dict(d, x_train=np.where(d["x_train"] > 0.5, np.nan, d["x_train"])), "expected finite pixels"),
    ],
)
def test_bad_arrays_in_memory_get_the_files_one_line_errors(blobs, change, message):
    arrays = change(dict(x_train=blobs.x_train, y_train=blobs.y_train, x_test=blobs.x_test, y_test=blobs.y_test))
    with pytest.raises(DataFormatError, match=message):
        train(FAST, data=Dataset(**arrays, image_shape=blobs.image_shape, source="mine"))


def test_bright_images_get_a_polarity_notice(blobs):
    data = make_dataset(1 - 0.3 * blobs.x_train, blobs.y_train, source="inverted.npz")
    assert any("mostly bright" in n and "invert them" in n for n in data.notices)
    assert not any("mostly bright" in n for n in make_dataset(blobs.x_train * 0.5, blobs.y_train).notices)


def test_standardised_inputs_are_refused_with_the_flag_named_then_accepted_with_it(blobs, tmp_path):
    X = (blobs.x_train - blobs.x_train.mean(0)) / blobs.x_train.std(0)  # mean 0, std 1 per feature
    Xt = (blobs.x_test - blobs.x_train.mean(0)) / blobs.x_train.std(0)
    path = tmp_path / "standardised.npz"
    np.savez(path, x_train=X, y_train=blobs.y_train, x_test=Xt, y_test=blobs.y_test)
    with pytest.raises(
        DataFormatError,
        match=r"standardised.npz: x_train: expected pixels in \[0, 1\] or 0-255, "
        r"found values from -.* pass --standardised-inputs",
    ):
        train(FAST, data=str(path))
    lines = []
    result = train(
        FAST.replace(standardised_inputs=True, epochs=3), str(tmp_path / "run"), data=str(path), log=lines.append
    )
    assert any("standardised inputs from -" in line and "kept as they are" in line for line in lines)
    assert result["test_accuracy"] > 0.9
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "steadynet", "evaluate", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )  # the run's own flag is used to reload its data
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "steadynet",
            "train",
            "--data",
            str(path),
            "--standardised-inputs",
            "--hidden",
            "4",
            "--epochs",
            "1",
            "--val-size",
            "50",
            "--out",
            str(tmp_path / "cli"),
            "--no-plots",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
