"""The command line's help and forgiveness: grouped options with real defaults and choices,
"did you mean", aliases, and `--config FILE` (TOML or a run's config.json)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_blobs


def steadynet(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "steadynet", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture
def npz(tmp_path):
    d = make_blobs(n_train=300, n_test=60)
    path = tmp_path / "blobs.npz"
    np.savez(path, x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["trian"], "invalid choice: 'trian' (choose from"),
        (["trian"], "did you mean 'train'?"),
        (["train", "--hiden", "3"], "unrecognized arguments: --hiden 3; did you mean --hidden?"),
        (["train", "--activation", "sigmod"], "did you mean 'sigmoid'?"),
        (["evaluate", "run", "--jsn"], "did you mean --json?"),
        (["train", "--optimiser", "adma"], "did you mean 'adam'?"),
    ],
)
def test_mistyped_words_get_one_line_with_a_suggestion(args, message, tmp_path):
    r = steadynet(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_train_help_is_grouped_with_choices_and_real_defaults():
    out = steadynet("train", "--help").stdout
    for group in (
        "data options:",
        "network options:",
        "optimisation options:",
        "augmentation options:",
        "run options:",
    ):
        assert group in out
    assert "{adam,adamw,momentum,nesterov,sgd}" in out and "{constant,step,cosine,onecycle}" in out
    assert "(default: None)" not in out
    assert "--optimiser" in out and "--learning-rate" in out
    assert "(default: runs/YYYYmmdd-HHMMSS" in out and "--config FILE" in out and "--overwrite" in out
    assert out.index("network options:") < out.index("--hidden") < out.index("optimisation options:")


def test_doctor_help_leaves_out_options_its_checks_never_use():
    out = steadynet("doctor", "--help").stdout
    assert "--hidden" in out and "--lr" in out
    assert "--teacher" not in out and "--augment-shift" not in out


def test_config_toml_sets_options_and_the_command_line_overrides_it(npz, tmp_path):
    (tmp_path / "small.toml").write_text(
        'hidden = [5]\noptimiser = "adam"\nepochs = 2\nbatch-size = 32\nval_size = 50\nlr = 0.01\n'
    )
    r = steadynet(
        "train",
        "--config",
        "small.toml",
        "--data",
        npz,
        "--out",
        "run",
        "--epochs",
        "1",
        "--no-plots",
        "--json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    config = json.loads(r.stdout)["config"]
    assert (config["hidden"], config["optimizer"], config["batch_size"], config["learning_rate"]) == (
        [5],
        "adam",
        32,
        0.01,
    )
    assert config["epochs"] == 1  # the option given wins over the file


def test_a_runs_config_json_reruns_it(npz, tmp_path):
    r = steadynet(
        "train",
        "--data",
        npz,
        "--out",
        "first",
        "--hidden",
        "6",
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--activation",
        "tanh",
        "--no-plots",
        "--json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    for source in ("first/config.json", "first"):  # the file or its run folder
        out = "again-" + source.replace("/", "-")
        r = steadynet("train", "--config", source, "--out", out, "--no-plots", "--json", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        again = json.loads(r.stdout)
        assert again["config"] == first["config"] and again["test_accuracy"] == first["test_accuracy"]
    # a plain dict of settings (as a tuning trial's best config may be written) works too
    (tmp_path / "best.json").write_text(json.dumps({"hidden": [6], "epochs": 1, "val_size": 50, "data": str(npz)}))
    r = steadynet("train", "--config", "best.json", "--out", "best", "--no-plots", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ("hiden = [5]\n", "--config bad.toml: unknown setting 'hiden'; did you mean 'hidden'?"),
        ("hidden = [5\n", "--config bad.toml: not valid TOML"),
        ("epochs = 'many'\n", "--epochs must be an integer >= 1, got 'many'."),
    ],
)
def test_a_bad_config_file_is_one_line(text, message, tmp_path):
    (tmp_path / "bad.toml").write_text(text)
    r = steadynet("train", "--config", "bad.toml", cwd=tmp_path)
    assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_every_setting_is_described_once_and_listed_by_train_help():
    from steadynet.config import OPTION_GROUPS, option_fields, option_flag, option_flags

    out = steadynet("train", "--help").stdout
    for f in option_fields():
        assert f.metadata["help"] and f.metadata["group"] in OPTION_GROUPS, f.name
        assert option_flag(f.name) in option_flags(f.name)  # errors name a flag the command line takes
        for flag in option_flags(f.name):
            assert flag in out, flag
    assert option_flags("learning_rate") == ("--lr", "--learning-rate")
