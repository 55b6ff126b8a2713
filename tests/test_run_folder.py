"""The run folder's lifecycle: nothing overwritten unless asked, one writer at a time, paths
stored resolved so a run is usable from any folder."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_blobs
from steadynet import TrainConfig, train
from steadynet.errors import ConfigError
from steadynet.runs import RunFolderLock

FAST = TrainConfig(epochs=1, hidden=(4,), batch_size=50, val_size=100, augment_shift=0, learning_rate=0.2)


def steadynet(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "steadynet", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def data():
    return make_blobs()


@pytest.fixture
def npz(tmp_path):
    d = make_blobs(n_train=300, n_test=60)
    path = tmp_path / "blobs.npz"
    np.savez(path, x_train=d.x_train, y_train=d.y_train, x_test=d.x_test, y_test=d.y_test)
    return path


def test_a_killed_runs_checkpoints_are_not_overwritten(data, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.npz").write_bytes(b"step 4000 of someone's run")
    with pytest.raises(
        ConfigError,
        match=r"--out .*run: already holds a run \(checkpoints\); continue it with "
        r"--resume .*, replace it with --overwrite, or choose a new folder",
    ):
        train(FAST, str(out), data=data)
    assert (out / "checkpoints" / "last.npz").read_bytes() == b"step 4000 of someone's run"


def test_files_the_run_did_not_make_are_not_overwritten(data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"already holds files this run did not make \(notes.txt\)"):
        train(FAST, str(out), data=data)
    assert os.listdir(out) == ["notes.txt"]


def test_overwrite_replaces_a_run_and_leaves_other_files(data, tmp_path):
    out = tmp_path / "run"
    train(FAST, str(out), data=data)
    (out / "notes.txt").write_text("mine")
    (out / "divergence.json").write_text("{}")  # left by an earlier, diverged run
    second = train(FAST.replace(seed=5), str(out), data=data, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and not (out / "divergence.json").exists()
    with open(out / "metrics.json") as f:
        assert json.load(f)["config"]["seed"] == 5 == second["config"]["seed"]


def test_a_folder_being_written_by_another_run_is_refused(data, tmp_path):
    out = tmp_path / "run"
    with RunFolderLock(str(out)):  # what a running `steadynet train --out run` holds
        with pytest.raises(ConfigError, match=r"^out .*run: another run is writing this folder right now"):
            train(FAST, str(out), data=data, overwrite=True)
        with pytest.raises(ConfigError, match=r"another run is writing this folder"):
            train(None, str(out), data=data, resume=True)
    train(FAST, str(out), data=data)  # the lock died with its holder


def test_two_runs_started_at_once_with_the_same_out_cannot_both_write(npz, tmp_path):
    args = [
        "train",
        "--data",
        npz,
        "--out",
        "run",
        "--hidden",
        "4",
        "--epochs",
        "2",
        "--val-size",
        "50",
        "--no-plots",
        "--json",
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "steadynet", *map(str, args), "--seed", str(seed)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert sorted(code for code, _, _ in results) == [0, 1], results
    ((_, stdout, _),) = [r for r in results if r[0] == 0]
    ((_, _, stderr),) = [r for r in results if r[0] == 1]
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "another run is writing this folder" in stderr or "already holds a run" in stderr
    with open(tmp_path / "run" / "metrics.json") as f:  # the winner's results, whole
        assert json.load(f)["config"]["seed"] == json.loads(stdout)["config"]["seed"]


def test_paths_are_stored_resolved_so_the_run_works_from_another_folder(npz, tmp_path):
    r = steadynet(
        "train",
        "--data",
        npz.name,
        "--out",
        "run",
        "--hidden",
        "4",
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--no-plots",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["config"]["data"] == str(npz)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = steadynet("evaluate", tmp_path / "run", cwd=elsewhere)  # the data comes from the run's config
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout


def test_cli_resume_extends_a_finished_run_and_changes_the_learning_rate(npz, tmp_path):
    base = ["--data", npz, "--hidden", "4", "--val-size", "50", "--no-plots"]
    assert steadynet("train", *base, "--out", "run", "--epochs", "1", cwd=tmp_path).returncode == 0
    r = steadynet("train", "--resume", "run", "--epochs", "2", "--lr", "0.01", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "resuming run at epoch 2" in r.stderr and "learning_rate" in r.stderr
    assert [e["epoch"] for e in json.loads(r.stdout)["epochs"]] == [1, 2]
    r = steadynet("train", "--resume", "run", "--hidden", "8", cwd=tmp_path)
    assert r.returncode == 1 and "only --epochs, --lr and --patience can change, so drop --hidden" in r.stderr


def test_plots_that_need_no_data_are_drawn_when_the_runs_data_has_moved(npz, tmp_path):
    pytest.importorskip("matplotlib")
    r = steadynet(
        "train",
        "--data",
        npz,
        "--out",
        "run",
        "--hidden",
        "4",
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--no-plots",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    npz.rename(tmp_path / "moved.npz")
    r = steadynet("plot", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "plots" / "curves.png").exists()  # from metrics.json alone
    assert "could not be reloaded" in r.stderr and "--data" in r.stderr
