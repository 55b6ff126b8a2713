"""Absurd settings are refused before anything is allocated, each with one line naming the
option, the allowed range and the value given."""

import tracemalloc

import numpy as np
import pytest

from conftest import make_blobs
from steadynet import TrainConfig, train
from steadynet.cli.app import main
from steadynet.errors import ConfigError
from steadynet.train.checkpoint import load_run_for_resume


@pytest.fixture
def small():
    return make_blobs(n_train=300, n_test=50)


def refused(pattern, **settings):
    with pytest.raises(ConfigError, match=pattern) as info:
        train(data=make_blobs(n_train=300, n_test=50), **dict(dict(epochs=1, val_size=50), **settings))
    assert "\n" not in str(info.value)
    assert "--" not in str(info.value)  # a Python caller is told about fields, not flags
    return str(info.value)


def test_network_too_large_for_memory_is_refused_before_allocating():
    tracemalloc.start()
    try:
        refused(  # 16-1000000x4-3: the blobs' 16 inputs and 3 classes
            r"hidden must be small enough to fit in memory \(at most 2,000,000,000 parameters, "
            r"this network has 3,000,023,000,003\), got '1000000,1000000,1000000,1000000'",
            hidden=(10**6,) * 4,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # the 12 GB of weights were never asked for


def test_memory_check_counts_gradient_and_optimiser_state(monkeypatch):
    from steadynet import config

    monkeypatch.setattr(config, "physical_memory", lambda: 2**30)
    # 16-20000-20000-3: 400,420,003 parameters; adam keeps theta, grad, a buffer, m and v
    message = refused(
        r"hidden must be small enough to fit in memory \(adam in float32 needs 7\.5 GiB",
        hidden=(20000, 20000),
        optimizer="adam",
    )
    assert "this machine has 1.0 GiB" in message
    refused(r"sgd in float64 needs 9\.0 GiB", hidden=(20000, 20000), optimizer="sgd", dtype="float64")


def test_memory_check_counts_the_data_sets_classes():
    config = TrainConfig(hidden=(10**6,) * 2)
    for n_classes, n_params in ((10, "1,000,028,000,010"), (1000, "1,001,018,001,000")):
        with pytest.raises(ConfigError, match=f"this network has {n_params}"):
            config.validate(n_features=16, n_classes=n_classes)


def test_batch_larger_than_the_data_is_refused():
    refused(
        r"batch_size must be at most the number of training images \(250 after the validation split\), "
        r"got 251; use batch_size full",
        batch_size=251,
    )


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf")])
def test_non_positive_or_non_finite_learning_rate_is_refused(lr):
    refused(rf"learning_rate must be a finite number > 0, got {lr!r}", learning_rate=lr)


def test_unknown_activation_lists_the_allowed_ones():
    refused(
        r"activation must be one of \['leaky_relu', 'relu', 'sigmoid', 'tanh'\], got 'softmax'", activation="softmax"
    )


@pytest.mark.parametrize(
    "settings, pattern",
    [
        (dict(epochs=0), r"epochs must be an integer >= 1, got 0"),
        (dict(hidden=(0,)), r"hidden must be comma-separated widths from 1 to 1000000"),
        (dict(hidden=(4,) * 65), r"at most 64 layers"),
        (dict(momentum=1.0), r"momentum must be in \[0, 1\), got 1.0"),
        (dict(dropout=-0.1), r"dropout must be in \[0, 1\)"),
        (dict(seed=-1), r"seed must be an integer from 0 to 2\*\*63 - 1, got -1"),
        (dict(checkpoint_every_steps=-5), r"checkpoint_every_steps must be an integer >= 0"),
        (dict(warmup_epochs=2.0), r"warmup_epochs must be in \[0, epochs=1\], got 2.0"),
        (dict(val_size=300), r"val_size must be smaller than the training set \(300 images\), got 300"),
        (
            dict(augment_shift=4),
            r"augment_shift must be 0 or less than the image's height and width "
            r"\(images of blobs have shape \(4, 4\)\), got 4",
        ),
    ],
)
def test_out_of_range_settings_are_refused(settings, pattern):
    refused(pattern, **settings)


def test_augment_shift_needs_two_dimensional_images():
    data = make_blobs(n_train=300, n_test=50, n_features=10)  # 10 pixels: image shape (10,)
    with pytest.raises(ConfigError, match=r"^augment_shift must be 0 or less .* shape \(10,\)\), got 2"):
        train(data=data, epochs=1, val_size=50, augment_shift=2)
    assert train(data=data, epochs=1, val_size=50, augment_shift=0)["status"] == "completed"


@pytest.mark.parametrize(
    "field, value",
    [
        ("momentum", "0.9"),
        ("hidden", "30"),
        ("activation", ["relu"]),
        ("epochs", 2.5),
        ("epochs", True),
        ("learning_rate", "big"),
        ("dtype", None),
        ("seed", 1.0),
    ],
)
def test_wrong_types_from_a_config_file_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=rf"^{field} must be"):
        TrainConfig.from_dict({field: value})


def test_config_file_that_is_not_an_object_is_refused():
    with pytest.raises(ConfigError, match="a config must be a JSON object of settings, got list"):
        TrainConfig.from_dict([1, 2])


def test_out_that_is_a_file_is_refused(tmp_path, small):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"^out .*file: cannot create the run folder there"):
        train(data=small, out=str(tmp_path / "file"), epochs=1, val_size=50)


def test_resume_of_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="no checkpoint there"):
        load_run_for_resume(str(tmp_path / "file"))


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["--lr", "-1"], "--learning-rate must be a finite number > 0, got -1.0."),
        (["--hidden", "1000000,1000000,1000000"], "--hidden must be small enough to fit in memory"),
        (["--batch-size", "100000"], "--batch-size must be at most the number of training images"),
        # an unknown --activation is now an argparse choice: exit 2 with "did you mean" (test_cli_help.py)
        (["--hidden", "3,x"], "--hidden must be comma-separated integers like 30 or 512,256, got '3,x'."),
        (["--checkpoint-every-steps", "-1"], "--checkpoint-every-steps must be an integer >= 0"),
    ],
)
def test_cli_prints_one_line_and_exits_1(argv, pattern, tmp_path, capsys):
    from steadynet.data.npz import write_npz

    write_npz(tmp_path / "d.npz", make_blobs(n_train=300, n_test=50))
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "d.npz"),
            "--out",
            str(tmp_path / "run"),
            "--val-size",
            "50",
            "--epochs",
            "1",
            "--quiet",
            *argv,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("steadynet train: error: ") and pattern in err and err.count("\n") == 1
    assert not np.any([name.startswith("Traceback") for name in err.splitlines()])


def test_library_errors_name_fields_and_the_command_line_renders_flags():
    import pickle

    from steadynet.config import option_flag

    with pytest.raises(ConfigError) as info:
        TrainConfig(batch_size=0).validate()
    exc = info.value
    assert exc.field == "batch_size"
    assert str(exc) == "batch_size must be an integer >= 1 or 'full', got 0."
    assert exc.render(option_flag) == "--batch-size must be an integer >= 1 or 'full', got 0."
    copy = pickle.loads(pickle.dumps(exc))  # tune's worker processes send errors back whole
    assert copy.field == "batch_size" and copy.render(option_flag) == exc.render(option_flag)
    within = exc.within("trial 3")
    assert str(within) == f"trial 3: {exc}" and within.render(option_flag) == f"trial 3: {exc.render(option_flag)}"
    with pytest.raises(ConfigError) as info:
        TrainConfig(learning_rate=-1.0).validate()
    assert info.value.render(option_flag).startswith("--learning-rate must be")  # --lr's long form


def test_data_dependent_errors_name_fields_in_python_and_flags_on_the_command_line(small):
    from steadynet.config import option_flag

    with pytest.raises(ConfigError) as info:
        train(data=small, epochs=1, val_size=50, batch_size=10**9)
    assert str(info.value) == (
        "batch_size must be at most the number of training images (250 after the validation split), "
        "got 1000000000; use batch_size full for full-batch training."
    )
    assert info.value.render(option_flag) == (
        "--batch-size must be at most the number of training images (250 after the validation split), "
        "got 1000000000; use --batch-size full for full-batch training."
    )


def test_a_value_that_looks_like_a_placeholder_is_quoted_as_given():
    from steadynet.config import option_flag
    from steadynet.data import load_data
    from steadynet.errors import DataFormatError

    with pytest.raises(DataFormatError) as info:
        load_data("{batch_size}")
    assert str(info.value).startswith("data '{batch_size}': not a file, folder or registered data set")
    assert info.value.render(option_flag).startswith("--data '{batch_size}': not a file")
