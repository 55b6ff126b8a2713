"""Real processes, real signals: Ctrl-C, SIGTERM and SIGKILL at random moments never lose what
was learned, and every run folder left behind resumes to the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import make_blobs
from steadynet import load
from steadynet.data.npz import write_npz
from steadynet.persistence import CHECKPOINT_FORMAT, load_arrays
from steadynet.runs import RunFolder

# 1,800 training images of 8x8 pixels, 113 steps per epoch: a couple of seconds in all, with
# everything that has state switched on (Adam, dropout, shifts, step checkpoints)
SETTINGS = [
    "--epochs",
    "20",
    "--hidden",
    "16",
    "--batch-size",
    "16",
    "--val-size",
    "200",
    "--augment-shift",
    "1",
    "--dropout",
    "0.1",
    "--optimizer",
    "adam",
    "--checkpoint-every-steps",
    "10",
    "--seed",
    "5",
    "--quiet",
]
# the random-kill test's run: ten times as long, so that on a fast machine its nine kills still
# land before its end (20 epochs train in under a second once NumPy and the data are loaded)
LONG_SETTINGS = [("200" if prev == "--epochs" else a) for prev, a in zip([None, *SETTINGS], SETTINGS)]
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "blobs.npz"
    write_npz(path, make_blobs(n_train=2000, n_features=64))
    return str(path)


def start(args, stderr=subprocess.PIPE):
    return subprocess.Popen(
        [sys.executable, "-m", "steadynet", "train", *args], env=ENV, stdout=subprocess.PIPE, stderr=stderr, text=True
    )


def start_run(data_file, out, settings=SETTINGS):
    """Start the run, or resume it when it has a checkpoint to resume from."""
    if os.path.exists(os.path.join(out, "checkpoints", "last.npz")):
        return start(["--resume", out, "--quiet"])
    return start(["--data", data_file, "--out", out, *settings])


def uninterrupted(data_file, out, settings):
    """The weights of the run done straight."""
    proc = start(["--data", data_file, "--out", out, *settings])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return load(out).theta


@pytest.fixture(scope="module")
def reference(data_file, tmp_path_factory):
    return uninterrupted(data_file, str(tmp_path_factory.mktemp("ref") / "run"), SETTINGS)


def check_run_folder(out):
    """Every file in the folder is whole: it loads, or it is not there. Returns the step of the
    last checkpoint (-1 without one)."""
    for name in ("config.json", "metrics.json"):
        if os.path.exists(os.path.join(out, name)):
            with open(os.path.join(out, name)) as f:
                json.load(f)
    for name in ("model.npz", os.path.join("checkpoints", "best.npz")):
        if os.path.exists(os.path.join(out, name)):
            load(os.path.join(out, name))
    last = os.path.join(out, "checkpoints", "last.npz")
    if not os.path.exists(last):
        return -1
    _, meta = load_arrays(last, CHECKPOINT_FORMAT)
    return meta["state"]["step"]


def wait_for(path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def finish(out):
    proc = start(["--resume", out, "--quiet"])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_prints_how_to_resume_and_exits_130(sig, data_file, reference, tmp_path):
    out = str(tmp_path / "run")
    proc = start_run(data_file, out)
    wait_for(os.path.join(out, "metrics.json"), proc)  # an epoch is done: training is under way
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130
    assert "Traceback" not in err
    assert f"{sig.name}: finishing this step and writing a checkpoint" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("steadynet train: error: training interrupted; checkpoint written, resume at epoch ")
    assert last.endswith(f"with `steadynet train --resume {out}`.")
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["status"] == "interrupted"
    assert check_run_folder(out) > 0
    finish(out)
    assert np.array_equal(load(out).theta, reference)


@pytest.mark.slow
def test_second_ctrl_c_exits_at_once_without_corrupting_anything(data_file, reference, tmp_path):
    out = str(tmp_path / "run")
    with open(tmp_path / "stderr", "w+") as err_file:
        proc = start(["--data", data_file, "--out", out, *SETTINGS], stderr=err_file)
        wait_for(os.path.join(out, "metrics.json"), proc)
        proc.send_signal(signal.SIGINT)
        while "finishing this step" not in (tmp_path / "stderr").read_text() and proc.poll() is None:
            time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == 130 and "Traceback" not in err
    # the second Ctrl-C either stopped the step at once or came after the process had finished it
    assert ("stopped at once by a second Ctrl-C" in err) or ("training interrupted; checkpoint written" in err)
    assert f"steadynet train --resume {out}" in err
    assert check_run_folder(out) > 0
    finish(out)
    assert np.array_equal(load(out).theta, reference)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_the_run(data_file, tmp_path):
    reference = uninterrupted(data_file, str(tmp_path / "straight"), LONG_SETTINGS)
    out = str(tmp_path / "run")
    rng = np.random.default_rng(2024)
    steps, kills = [], 0
    while kills < 9:
        proc = start_run(data_file, out, LONG_SETTINGS)
        try:
            proc.wait(timeout=rng.uniform(0.3, 1.2))  # a random moment: start-up, a step, a write
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            kills += 1
        else:
            assert proc.returncode == 0, proc.communicate()[1]
        steps.append(check_run_folder(out))
        if RunFolder(out).completed():  # finished before this kill (or as it came): nothing to resume
            break
    else:
        finish(out)

    assert kills >= 5, steps
    assert steps == sorted(steps)  # never lost a checkpoint
    assert sum(s > 0 for s in steps) >= 3  # most kills landed in the middle of training
    assert check_run_folder(out) == 200 * 113
    assert np.array_equal(load(out).theta, reference)
