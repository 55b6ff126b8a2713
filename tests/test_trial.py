"""The augmentation trial (steadynet/train/trial.py): on data where moving pixels destroys the
class it picks no augmentation, where it does no harm it keeps the strongest; the choice is
reproducible, recorded in config.json, the same as setting it by hand, and kept on resume."""

import json
import os

import numpy as np
import pytest

from conftest import interrupt_at, make_blobs
from steadynet import TrainConfig, load, train
from steadynet.data import make_dataset
from steadynet.errors import ConfigError
from steadynet.report import write_report
from steadynet.train import Interrupted
from steadynet.train.trial import augmentation_levels

WARPED = dict(
    hidden=(32,),
    activation="relu",
    epochs=3,
    batch_size=32,
    val_size=300,
    learning_rate=0.05,
    augment_shift=2,
    augment_rotate=15.0,
    augment_shear=10.0,
    elastic_alpha=8.0,
    elastic_sigma=3.0,
    augment_trial=2,
)


def scrambled():
    """12x12 images whose every pixel has its own class centre: a shifted or warped image
    carries other pixels' values, so augmentation destroys the class."""
    return make_blobs(n_train=1500, n_test=300, n_features=144, n_classes=4)


def quadrants():
    """12x12 images of one bright blob in one of four quadrants, the class, with a tenth of
    the labels drawn at random: shifts of 2 pixels and mild warps keep the quadrant, so every
    level reaches the same accuracy (that of the labels' noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:12, :12]

    def draw(n):
        y = rng.integers(0, 4, n)
        cy = np.where(y // 2, 8.0, 3.0) + rng.uniform(-1, 1, n)
        cx = np.where(y % 2, 8.0, 3.0) + rng.uniform(-1, 1, n)
        blob = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / 4)
        X = blob + rng.normal(0, 0.05, (n, 12, 12))
        y = np.where(rng.random(n) < 0.1, rng.integers(0, 4, n), y)
        return np.clip(X, 0, 1).reshape(n, 144).astype(np.float32), y

    return make_dataset(*draw(1500), *draw(300))


def trial_of(out):
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        description = json.load(f)
    return description["augmentation_trial"], description["config"]


def test_levels_go_from_none_up_to_the_configured_augmentation():
    levels = augmentation_levels(TrainConfig(**WARPED))
    assert [name for name, _ in levels] == ["none", "shifts", "affine", "elastic"]
    assert levels[0][1] == dict(
        augment_shift=0, augment_rotate=0.0, augment_scale=0.0, augment_shear=0.0, elastic_alpha=0.0
    )
    assert levels[2][1] == dict(levels[1][1], augment_rotate=15.0, augment_shear=10.0)
    assert levels[3][1] == dict(levels[2][1], elastic_alpha=8.0)
    assert [name for name, _ in augmentation_levels(TrainConfig(augment_shift=1))] == ["none", "shifts"]
    assert [name for name, _ in augmentation_levels(TrainConfig(augment_shift=0))] == ["none"]


def test_where_moving_pixels_destroys_the_class_the_trial_picks_no_augmentation(tmp_path):
    lines = []
    result = train(data=scrambled(), out=str(tmp_path / "run"), log=lines.append, **WARPED)
    trial, config = trial_of(tmp_path / "run")
    assert trial["chosen"] == "none"
    accuracies = {level["name"]: level["val_accuracy"] for level in trial["levels"]}
    assert list(accuracies) == ["none", "shifts", "affine", "elastic"]
    # clearly, not by noise: over 2 standard errors at 300 validation images (moved pixels fill with the ground, 0.5 here)
    assert accuracies["none"] > max(accuracies["shifts"], accuracies["affine"], accuracies["elastic"]) + 0.02
    # the run trained with the choice, and says so; the trial is not run again by a resume
    assert config["augment_shift"] == 0 and config["elastic_alpha"] == 0 and config["augment_trial"] == 0
    assert result["config"] == config
    assert any(line.startswith("augmentation trial: keeping none (within") for line in lines)
    assert all(len(line) <= 79 for line in lines if line.startswith("augmentation trial"))  # an 80-column terminal
    page = open(write_report(str(tmp_path / "run")), encoding="utf-8").read()
    assert ">Augmentation trial</h2>" in page and "kept: <b>none</b>" in page


def test_where_augmentation_does_no_harm_the_strongest_level_is_kept(tmp_path):
    train(data=quadrants(), out=str(tmp_path / "run"), **WARPED)
    trial, config = trial_of(tmp_path / "run")
    assert trial["chosen"] == "elastic"
    assert (config["augment_shift"], config["augment_rotate"], config["elastic_alpha"]) == (2, 15.0, 8.0)


def test_the_run_after_the_trial_is_the_run_with_its_choice_set_by_hand():
    data = scrambled()
    tried = train(data=data, **WARPED)
    by_hand = train(
        data=data,
        **dict(WARPED, augment_trial=0, augment_shift=0, augment_rotate=0.0, augment_shear=0.0, elastic_alpha=0.0),
    )
    assert np.array_equal(tried.model.theta, by_hand.model.theta)
    assert tried["epochs"][-1]["val_loss"] == by_hand["epochs"][-1]["val_loss"]


def test_the_choice_is_reproducible_with_the_seed(tmp_path):
    for name in ("a", "b"):
        train(data=quadrants(), out=str(tmp_path / name), seed=3, **WARPED)
    (trial_a, _), (trial_b, _) = trial_of(tmp_path / "a"), trial_of(tmp_path / "b")
    assert [level["val_accuracy"] for level in trial_a["levels"]] == [
        level["val_accuracy"] for level in trial_b["levels"]
    ]
    assert trial_a["chosen"] == trial_b["chosen"]
    assert np.array_equal(load(str(tmp_path / "a")).theta, load(str(tmp_path / "b")).theta)


def test_resume_keeps_the_choice_and_runs_no_second_trial(tmp_path):
    data = scrambled()
    straight = train(data=data, **WARPED)
    out = str(tmp_path / "run")

    with pytest.raises(Interrupted):
        train(data=data, out=out, handle_signals=True, on_step=interrupt_at({5}, epoch=2), **WARPED)
    lines = []
    resumed = train(data=data, out=out, resume=True, log=lines.append)
    assert not any("augmentation trial" in line for line in lines)
    trial, config = trial_of(out)
    assert trial["chosen"] == "none" and config["augment_shift"] == 0
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        assert len(json.load(f)["resumes"]) == 1  # the record of the start survived the resume's rewrite
    assert np.array_equal(resumed.model.theta, straight.model.theta)


def test_without_augmentation_there_is_nothing_to_try(tmp_path):
    lines = []
    train(
        data=quadrants(),
        out=str(tmp_path / "run"),
        log=lines.append,
        **dict(WARPED, augment_shift=0, augment_rotate=0.0, augment_shear=0.0, elastic_alpha=0.0),
    )
    trial, config = trial_of(tmp_path / "run")
    assert trial["levels"] == [] and trial["chosen"] == "none" and config["augment_trial"] == 0
    assert not any("augmentation trial" in line for line in lines)


def test_a_trial_needs_a_validation_split():
    with pytest.raises(ConfigError, match=r"^augment_trial must be 0 without a validation split"):
        TrainConfig(augment_trial=2, val_size=0).validate()
