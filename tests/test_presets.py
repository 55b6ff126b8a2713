"""Presets: named bundles of settings that explicit options override, recorded in config.json."""

import json
import subprocess
import sys

import pytest

from conftest import make_blobs
from steadynet import TrainConfig, train
from steadynet.cli.app import build_parser
from steadynet.cli.options import config_from_args
from steadynet.errors import ConfigError
from steadynet.presets import PRESETS


def cli_config(*argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_config_that_records_its_name(name):
    config = TrainConfig.from_preset(name)
    assert config.preset == name
    for field, value in PRESETS[name].items():
        assert getattr(config, field) == value


def test_seed_preset_is_the_seed_network():
    config = TrainConfig.from_preset("seed")
    assert config.hidden == (30,) and config.activation == "sigmoid"


def test_best_preset_uses_the_tools_the_published_results_rely_on():
    config = TrainConfig.from_preset("best")
    assert config.warps() and config.elastic_alpha > 0 and config.dropout > 0 and config.max_norm
    assert config.ema_decay > 0 and len(config.hidden) >= 2


def test_explicit_options_override_the_preset():
    config = cli_config("--preset", "fast", "--epochs", "2", "--hidden", "64", "--seed", "7")
    assert (config.epochs, config.hidden, config.seed, config.preset) == (2, (64,), 7, "fast")
    assert config.activation == PRESETS["fast"]["activation"]  # the rest comes from the preset
    assert cli_config("--epochs", "2").preset is None and cli_config().hidden == TrainConfig().hidden


def test_unknown_preset_is_refused():
    with pytest.raises(ConfigError, match=r"^preset must be one of \['best', 'fast', 'seed'\], got 'huge'"):
        TrainConfig.from_preset("huge")
    with pytest.raises(ConfigError, match="^preset must be one of"):
        TrainConfig(preset="huge").validate()
    r = subprocess.run(
        [sys.executable, "-m", "steadynet", "train", "--preset", "huge"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "invalid choice: 'huge'" in r.stderr and "Traceback" not in r.stderr


def test_run_folder_records_the_preset(tmp_path):
    config = TrainConfig.from_preset("seed", epochs=1, val_size=100, data="blobs")
    train(config, str(tmp_path / "run"), data=make_blobs())
    description = json.loads((tmp_path / "run" / "config.json").read_text())
    saved, trial = description["config"], description["augmentation_trial"]
    assert saved["preset"] == "seed" and saved["ema_decay"] == PRESETS["seed"]["ema_decay"]
    # what was trained: the preset, with the augmentation its trial chose
    chosen = next(level["settings"] for level in trial["levels"] if level["name"] == trial["chosen"])
    assert TrainConfig.from_dict(saved) == config.replace(augment_trial=0, **chosen)


def test_resume_refuses_a_preset(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "steadynet", "train", "--resume", str(tmp_path), "--preset", "fast"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "--preset" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_end_to_end(name):
    """Each preset's whole bundle (warps, dropout, max-norm, weight average...) runs together
    and moves the weights. (Tiny 4x4 blobs say nothing about accuracy: warps scramble them.)"""
    import numpy as np

    from steadynet import MLP

    config = TrainConfig.from_preset(name, epochs=2, val_size=100, data="blobs")
    result = train(config, data=make_blobs())
    initial = MLP((16, *config.hidden, 3), config.activation, seed=config.seed)
    assert result["status"] == "completed" and np.isfinite(result["epochs"][-1]["train_loss"])
    assert np.isfinite(result.model.theta).all() and not np.allclose(result.model.theta, initial.theta)
