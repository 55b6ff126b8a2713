"""Checkpoints and exact resume: a run stopped at any point and resumed ends with the weights,
bit for bit, of the same run left alone (same seed, same machine)."""

import json
import os
import signal

import numpy as np
import pytest

from conftest import interrupt_at, make_blobs
from steadynet import TrainConfig, load, train
from steadynet.errors import ConfigError, ModelFileError
from steadynet.persistence import CHECKPOINT_FORMAT, load_arrays
from steadynet.train import Interrupted

# 600 blobs, 100 held out: 500 training images of 4x4 pixels, 13 steps per epoch of 40
BASE = dict(epochs=3, hidden=(6,), batch_size=40, val_size=100, seed=3, augment_shift=0, learning_rate=0.2)
STEPS_PER_EPOCH = 13
CASES = {
    "sgd": dict(optimizer="sgd"),
    "nesterov": dict(optimizer="nesterov", learning_rate=0.05),
    "adam": dict(optimizer="adam", learning_rate=0.01, weight_decay=1e-3),
    "dropout": dict(optimizer="momentum", learning_rate=0.05, dropout=0.3, input_dropout=0.1),
    "augment": dict(optimizer="adamw", learning_rate=0.01, weight_decay=1e-2, augment_shift=1),
    "full_batch": dict(optimizer="nesterov", batch_size="full", learning_rate=0.5, epochs=30),  # 1 step per epoch
    "warps_maxnorm_ema_onecycle": dict(
        optimizer="nesterov",
        learning_rate=0.05,
        augment_shift=1,
        augment_rotate=10,
        augment_scale=0.1,
        augment_shear=5,
        elastic_alpha=3,
        elastic_sigma=1,
        max_norm=1.0,
        ema_decay=0.9,
        schedule="onecycle",
        dropout=0.2,
    ),
    "clip_warmup_smoothing": dict(
        optimizer="sgd",
        clip_norm=0.5,
        warmup_epochs=1.0,
        label_smoothing=0.1,
        schedule="step",
        decay_epochs=1.0,
        decay_factor=0.5,
        relu=None,
    ),
}


def config_of(case):
    kw = dict(BASE, **CASES[case])
    if kw.pop("relu", 0) is None:
        kw["activation"] = "relu"
    return TrainConfig(**kw)


def without_seconds(history):
    """The epochs' metrics without wall time and the sampled health record (its update ratios
    span two steps, and a sample that straddles the interruption is not taken again)."""
    return [{k: v for k, v in h.items() if k not in ("seconds", "health")} for h in history]


@pytest.fixture(scope="module")
def data():
    return make_blobs()


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted run of each case, trained once."""
    runs = {}

    def get(case):
        if case not in runs:
            out = tmp_path_factory.mktemp(f"ref-{case}")
            runs[case] = train(config_of(case), str(out), data=data)
        return runs[case]

    return get


def resume_until_done(config, out, data, stops):
    """Start the run, stop it with SIGINT after each step in ``stops`` (one stop per attempt),
    resuming each time; return the final result and the Interrupted messages."""
    messages = []
    for k, stop in enumerate(stops):
        try:
            train(
                None if k else config, out, data=data, resume=k > 0, handle_signals=True, on_step=interrupt_at({stop})
            )
        except Interrupted as exc:
            messages.append(str(exc))
    return train(None, out, data=data, resume=True), messages


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    "stops", [(STEPS_PER_EPOCH,), (5,), (1, 20, 27)], ids=["epoch-boundary", "mid-epoch", "three-stops"]
)
def test_interrupted_and_resumed_run_matches_uninterrupted_run(case, stops, data, reference, tmp_path):
    out = str(tmp_path / "run")
    ref = reference(case)
    result, messages = resume_until_done(config_of(case), out, data, stops)

    assert len(messages) == len(stops)
    assert all(f"steadynet train --resume {out}" in m for m in messages)
    assert np.array_equal(result.model.theta, ref.model.theta)
    assert without_seconds(result["epochs"]) == without_seconds(ref["epochs"])
    assert result["test_accuracy"] == ref["test_accuracy"]
    assert result["status"] == "completed" and result["best_epoch"] == ref["best_epoch"]
    # the finished run folder holds the same model
    assert np.array_equal(load(out).theta, ref.model.theta)


def test_interrupt_message_names_the_position(data, tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(Interrupted, match=r"resume at epoch 2, batch 3 with `steadynet train --resume"):
        train(config_of("sgd"), out, data=data, handle_signals=True, on_step=interrupt_at({STEPS_PER_EPOCH + 2}))
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["status"] == "interrupted" and len(metrics["epochs"]) == 1
    _, meta = load_arrays(os.path.join(out, "checkpoints", "last.npz"), CHECKPOINT_FORMAT)
    assert (meta["state"]["epoch"], meta["state"]["step"], meta["state"]["batch"]) == (1, STEPS_PER_EPOCH + 2, 2)
    # the explosion detector's memory of the run's first steps (median over 64 of them) travels with it
    assert meta["state"]["early_grad_norm"] is None  # 15 steps: not yet measured


def test_second_ctrl_c_stops_at_once_and_the_run_still_resumes_exactly(data, reference, tmp_path):
    out = str(tmp_path / "run")

    def twice(info):  # the second SIGINT arrives while the first is being honoured
        if info.step == 17:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="second Ctrl-C.*--resume"):
        train(config_of("adam"), out, data=data, handle_signals=True, on_step=twice)
    # stopped before its checkpoint: the last one on disk is the end of epoch 1
    _, meta = load_arrays(os.path.join(out, "checkpoints", "last.npz"), CHECKPOINT_FORMAT)
    assert meta["state"]["step"] == STEPS_PER_EPOCH
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back
    result = train(None, out, data=data, resume=True)
    assert np.array_equal(result.model.theta, reference("adam").model.theta)


class Crash(Exception):
    """Stands for the process dying: nothing after it runs, nothing is cleaned up."""


def crash_at(step):
    def on_step(info):
        if info.step == step:
            raise Crash

    return on_step


@pytest.mark.parametrize(
    "every, crash, saved_step",
    [(0, 20, STEPS_PER_EPOCH), (4, 20, 16), (4, 13, 12), (5, 24, 20), (5, 27, 26), (0, 3, 0)],
)
def test_crash_resumes_from_the_last_checkpoint_exactly(every, crash, saved_step, data, reference, tmp_path):
    out = str(tmp_path / "run")
    config = config_of("dropout").replace(checkpoint_every_steps=every)
    with pytest.raises(Crash):
        train(config, out, data=data, on_step=crash_at(crash))
    _, meta = load_arrays(os.path.join(out, "checkpoints", "last.npz"), CHECKPOINT_FORMAT)
    assert meta["state"]["step"] == saved_step
    result = train(None, out, data=data, resume=True)
    assert np.array_equal(result.model.theta, reference("dropout").model.theta)


def test_checkpoint_holds_weights_optimiser_rngs_position_and_metrics(data, tmp_path):
    out = str(tmp_path / "run")
    config = config_of("adam").replace(dropout=0.2, checkpoint_every_steps=6)
    with pytest.raises(Crash):
        train(config, out, data=data, on_step=crash_at(STEPS_PER_EPOCH + 7))
    arrays, meta = load_arrays(os.path.join(out, "checkpoints", "last.npz"), CHECKPOINT_FORMAT)
    assert {"W1", "W2", "b1", "b2", "optim.t", "optim.m", "optim.v", "best.theta"} <= set(arrays)
    assert int(arrays["optim.t"]) == meta["state"]["step"] == 18
    assert meta["state"]["batch"] == 5 and meta["state"]["rng_state"]["bit_generator"] == "PCG64"
    assert meta["dropout_rng"]["bit_generator"] == "PCG64"
    assert len(meta["history"]) == 1 and meta["history"][0]["epoch"] == 1
    assert meta["best"]["epoch"] == 1 and TrainConfig.from_dict(meta["config"]) == config


def test_best_model_is_kept_apart_from_the_latest(data, tmp_path):
    out = str(tmp_path / "run")
    result = train(config_of("sgd").replace(epochs=4), out, data=data)
    best = load(os.path.join(out, "checkpoints", "best.npz"))
    accs = [e["val_accuracy"] for e in result["epochs"]]
    assert result["best_epoch"] == 1 + int(np.argmax(accs))
    assert best.evaluate(*val_split(data))[1] == max(accs)
    with pytest.raises(ModelFileError, match="expected a steadynet-model file, found format 'steadynet-checkpoint'"):
        load(os.path.join(out, "checkpoints", "last.npz"))


def val_split(data):
    from steadynet.train import split_validation

    _, _, X_val, y_val = split_validation(data, BASE["val_size"], BASE["seed"])
    return X_val, y_val


def test_early_stopping_resumes_exactly(data, tmp_path):
    config = config_of("adam").replace(epochs=8, patience=1, learning_rate=0.05)
    ref = train(config, str(tmp_path / "ref"), data=data)
    out = str(tmp_path / "run")
    with pytest.raises(Interrupted):
        train(config, out, data=data, handle_signals=True, on_step=interrupt_at({2 * STEPS_PER_EPOCH + 4}))
    result = train(None, out, data=data, resume=True)
    assert len(result["epochs"]) == len(ref["epochs"]) and result["best_epoch"] == ref["best_epoch"]
    assert np.array_equal(result.model.theta, ref.model.theta)


def test_a_finished_run_is_extended_by_a_larger_epochs_and_the_change_is_recorded(data, tmp_path):
    out = str(tmp_path / "run")
    first = train(config_of("nesterov"), out, data=data)
    with pytest.raises(ConfigError, match=r"already finished its 3 epochs; .* pass a larger --epochs"):
        train(None, out, data=data, resume=True)  # a dead end before: 'resuming at epoch 4', 0 s, exit 0
    lines = []
    longer = train(None, out, data=data, resume=True, epochs=5, learning_rate=0.02, log=lines.append)
    assert [e["epoch"] for e in longer["epochs"]] == [1, 2, 3, 4, 5] and longer["status"] == "completed"
    assert without_seconds(longer["epochs"][:3]) == without_seconds(first["epochs"])
    assert not np.array_equal(longer.model.theta, first.model.theta)
    assert any("epochs 3 -> 5" in line and "learning_rate 0.05 -> 0.02" in line for line in lines)
    with open(os.path.join(out, "config.json")) as f:
        description = json.load(f)
    assert description["config"]["epochs"] == 5 and description["config"]["learning_rate"] == 0.02
    assert description["resumes"][0]["epoch"] == 3
    assert description["resumes"][0]["changed"] == {"epochs": [3, 5], "learning_rate": [0.05, 0.02]}
    with pytest.raises(ConfigError, match=r"only --epochs, --lr and --patience can change on resume, not --hidden"):
        train(None, out, data=data, resume=True, epochs=9, hidden=(7,))


def test_resume_refuses_a_folder_without_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match=r"^resume .*: no checkpoint there"):
        train(None, str(tmp_path), resume=True)


def test_resume_refuses_a_checkpoint_that_does_not_fit_the_data(data, tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(Crash):
        train(config_of("sgd"), out, data=data, on_step=crash_at(3))
    wider = make_blobs(n_features=25)
    with pytest.raises(ModelFileError, match=r"16-6-3 network, but the data now calls for 25-6-3"):
        train(None, out, data=wider, resume=True)


def test_gpu_style_dropout_generator_is_reported_not_silently_inexact(data, tmp_path, monkeypatch):
    """A checkpoint without a dropout RNG state (CuPy's cannot be saved) resumes with a notice."""
    from steadynet.train import checkpoint

    out = str(tmp_path / "run")
    monkeypatch.setattr(checkpoint, "dropout_rng_state", lambda model: None)
    with pytest.raises(Crash):  # checkpoints written as a GPU run writes them
        train(config_of("dropout"), out, data=data, on_step=crash_at(15))
    monkeypatch.undo()
    lines = []
    train(None, out, data=data, resume=True, log=lines.append)
    assert any("dropout masks after this resume are drawn afresh" in line for line in lines)


def test_distilled_run_with_averaged_weights_resumes_exactly(data, tmp_path):
    """The teacher is reloaded on resume, and the average of the weights comes back from the
    checkpoint (``optim.ema``), so the student ends as if never stopped."""
    teacher = str(tmp_path / "teacher")
    train(config_of("sgd").replace(hidden=(16,)), teacher, data=data)
    config = config_of("nesterov").replace(
        teacher=teacher, distill_weight=0.6, distill_temperature=3.0, ema_decay=0.95, augment_shift=1
    )
    ref = train(config, str(tmp_path / "ref"), data=data)
    out = str(tmp_path / "run")
    result, _ = resume_until_done(config, out, data, (5, STEPS_PER_EPOCH + 3))
    assert np.array_equal(result.model.theta, ref.model.theta)
    assert without_seconds(result["epochs"]) == without_seconds(ref["epochs"])
    arrays, _ = load_arrays(os.path.join(out, "checkpoints", "last.npz"), CHECKPOINT_FORMAT)
    # the saved model is the average, the checkpoint keeps the raw weights beside it
    assert np.array_equal(arrays["optim.ema"], ref.model.theta)
    assert not np.array_equal(np.concatenate([arrays[k].ravel() for k in ("W1", "W2", "b1", "b2")]), ref.model.theta)


def test_a_run_killed_after_its_last_epoch_resumes_to_write_its_model(data, tmp_path):
    # SIGKILL after the last checkpoint, before model.npz and the final metrics: nothing to
    # train, but resuming must finish the run (a finished run is refused; this one is not)
    out = str(tmp_path / "run")
    first = train(config_of("nesterov"), out, data=data)
    os.remove(os.path.join(out, "model.npz"))
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    metrics["status"] = "running"
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    lines = []
    result = train(None, out, data=data, resume=True, log=lines.append)
    assert result["status"] == "completed" and os.path.exists(os.path.join(out, "model.npz"))
    assert np.array_equal(load(out).theta, first.model.theta)
    assert result["test_accuracy"] == first["test_accuracy"]
    assert any("epochs are trained; writing the model" in line for line in lines)


def test_a_resumed_run_measures_spikes_against_its_first_steps(data, tmp_path, monkeypatch):
    """The explosion detector's floor (the median gradient norm of the run's first 64 steps) is
    checkpointed: a run resumed late does not take its fitted network's tiny gradients for the
    run's typical ones (a resumed run was once stopped as diverged by a hard batch)."""
    from steadynet.diagnostics.divergence import ExplosionDetector
    from steadynet.train import loop

    out, config = str(tmp_path / "run"), config_of("sgd").replace(epochs=6)
    with pytest.raises(Interrupted):
        train(config, out, data=data, handle_signals=True, on_step=interrupt_at({5 * STEPS_PER_EPOCH + 3}))
    _, meta = load_arrays(os.path.join(out, "checkpoints", "last.npz"), CHECKPOINT_FORMAT)
    saved = meta["state"]
    assert saved["early_grad_norm"] > 0 and saved["first_loss"] > 0  # measured over steps 1-64
    given = []

    class Recording(ExplosionDetector):
        def __init__(self, *args, **kwargs):
            given.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(loop, "ExplosionDetector", Recording)
    train(None, out, data=data, resume=True)
    assert given == [{"first_loss": saved["first_loss"], "early_grad_norm": saved["early_grad_norm"]}]
