"""Checkpoints: what a run writes to continue exactly where it stopped, and reading it back.

``checkpoints/last.npz`` (:func:`write_checkpoint`) holds the weights, the optimiser's step
count and state arrays (through its public ``state_dict()``/``load_state_dict()``), the weight
average, the best epoch (:class:`Best`), the loop's position and its random-number
generators' states, and the metrics so far. :func:`load_run_for_resume` reads a run folder's
config and last checkpoint; :func:`restore_checkpoint` checks every part against the run
being resumed and loads it.
"""

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..config import TrainConfig
from ..errors import ConfigError, ModelFileError
from ..persistence import CHECKPOINT_FORMAT, check_checkpoint_config, load_arrays, model_from, save_arrays
from ..runs import RunFolder
from .loop import LoopState


@dataclass
class Best:
    """The best epoch so far by validation accuracy: its number (None before the first
    validated epoch), its accuracy and its weights (the averaged ones when averaging), kept
    for early stopping."""

    epoch: int | None = None
    val_accuracy: float = -1.0
    theta: Any = None  # (n_params,) on the model's device, or None


def write_checkpoint(path, model, optimizer, state, history, best, config, ema=None):
    """Everything needed to continue exactly: weights, optimiser state, loop state, RNGs.

    Arrays: the parameters, ``optim.<name>`` (the optimiser's step count and state arrays,
    and ``optim.ema``, the moving average of the weights, when there is one) and
    ``best.theta`` (the best epoch's weights, for early stopping). JSON: the config, the
    :class:`LoopState` (epoch, step, batch, data-order RNG state, running sums), the metrics so
    far (``history``), the best epoch (``best``, a :class:`Best`) and the dropout RNG state.
    """
    arrays = dict(model.state_dict())
    arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
    if ema is not None:
        arrays["optim.ema"] = to_numpy(ema.theta)
    if best.theta is not None:
        arrays["best.theta"] = to_numpy(best.theta)
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model": model.config(),
        "config": config.to_dict(),
        "state": dict(state.__dict__),
        "history": history,
        "best": {"epoch": best.epoch, "val_accuracy": best.val_accuracy},
        "dropout_rng": dropout_rng_state(model),
    }
    save_arrays(path, arrays, meta)


def dropout_rng_state(model):
    """The state of the generator the dropout layers share (NumPy only), or None.

    CuPy's generators cannot export their state, so a run on the GPU resumes with fresh
    dropout masks: close to, but not bit for bit, the uninterrupted run.
    """
    rngs = [layer.rng for layer in model.layers if hasattr(layer, "rng")]
    if rngs and isinstance(rngs[0], np.random.Generator):
        return rngs[0].bit_generator.state
    return None


def load_run_for_resume(run_dir):
    """The config and last checkpoint of a run folder."""
    path = RunFolder(run_dir).last_checkpoint
    if not os.path.isfile(path):
        raise ConfigError(
            "{resume} {run_dir}: no checkpoint there (expected {path}); if the run was "
            "stopped before writing one, start it again.",
            field="resume",
            run_dir=run_dir,
            path=path,
        )
    arrays, meta = load_arrays(path, CHECKPOINT_FORMAT)
    try:
        config = TrainConfig.from_dict(meta["config"])
    except (KeyError, ConfigError) as exc:
        raise ModelFileError(f"{path}: the checkpoint's config is missing or invalid ({exc}).") from None
    check_checkpoint_config(
        arrays, meta, path, config.hidden
    )  # the arrays against the config, before any network is built
    return config, (arrays, meta, path)


def restore_checkpoint(checkpoint, model, optimizer, config, batches, log=None, ema=None):
    """Load a checkpoint into ``model``, ``optimizer`` (and ``ema``); return ``(state, history, best)``,
    the :class:`LoopState`, the metrics so far and the :class:`Best` epoch.

    Every part is checked against the run being resumed, so that a checkpoint that does not
    belong to it (or was forged) is refused here with :class:`ModelFileError` rather than
    failing later inside the loop.
    """
    arrays, meta, path = checkpoint
    restored = model_from(arrays, meta, path, model.device)
    if restored.layer_sizes != model.layer_sizes:
        raise ModelFileError(
            f"{path}: the checkpoint holds a {'-'.join(map(str, restored.layer_sizes))} "
            f"network, but the data now calls for {'-'.join(map(str, model.layer_sizes))}; "
            f"was the data file changed since the run started?"
        )

    def check(ok, what):
        if not ok:
            raise ValueError(what)

    try:
        model.theta[...] = restored.theta
        # the optimiser: a step count and, once it has stepped, every state array
        optim_state = {k[len("optim.") :]: v for k, v in arrays.items() if k.startswith("optim.")}
        t = optim_state.get("t")
        check(t is not None and t.shape == () and t.dtype.kind in "iu" and int(t) >= 0, "optim.t must be a count")
        for name in optimizer.state_names if int(t) else ():
            a = optim_state.get(name)
            check(
                a is not None and a.shape == model.theta.shape and bool(np.isfinite(a).all()),
                f"optim.{name} must be finite, of shape {model.theta.shape}",
            )
        optimizer.load_state_dict(optim_state, model.theta)
        if ema is not None:
            a = optim_state.get("ema")
            check(
                a is not None and a.shape == model.theta.shape and bool(np.isfinite(a).all()),
                f"optim.ema must be finite, of shape {model.theta.shape}",
            )
            ema.theta[...] = model.xp.asarray(a, dtype=model.dtype)
        # the loop's position and its random-number generators
        state = LoopState(**meta["state"])
        ints = (state.epoch, state.step, state.batch, state.epoch_correct, state.epoch_seen)
        check(all(isinstance(v, int) and v >= 0 for v in ints), "epoch/step/batch counters must be integers >= 0")
        check(state.epoch <= config.epochs and state.batch < batches, "the position is past the run's end")
        check(
            all(isinstance(v, (int, float)) for v in (state.epoch_loss, state.lr_scale)) and state.lr_scale > 0,
            "epoch_loss and lr_scale must be numbers",
        )
        check(
            all(v is None or isinstance(v, (int, float)) for v in (state.first_loss, state.early_grad_norm)),
            "first_loss and early_grad_norm must be numbers or null",
        )
        if state.rng_state is not None:
            np.random.default_rng().bit_generator.state = state.rng_state
        dropout = [layer.rng for layer in model.layers if hasattr(layer, "rng")]
        if dropout and meta.get("dropout_rng"):
            dropout[0].bit_generator.state = meta["dropout_rng"]  # one generator, shared by the layers
        elif dropout and log:
            log(
                "note: dropout masks after this resume are drawn afresh (the checkpoint holds no "
                "dropout RNG state), so they differ from the uninterrupted run's"
            )
        # the metrics so far and the best epoch
        history, best = meta["history"], dict(meta["best"])
        check(isinstance(history, list) and all(isinstance(h, dict) for h in history), "history must be a list")
        check(
            (best["epoch"] is None or isinstance(best["epoch"], int))
            and isinstance(best["val_accuracy"], (int, float)),
            "best must hold an epoch and an accuracy",
        )
        best_theta = arrays.get("best.theta")
        check(best_theta is None or best_theta.shape == model.theta.shape, "best.theta must be shaped like theta")
        best = Best(
            best["epoch"],
            best["val_accuracy"],
            None if best_theta is None else model.xp.asarray(best_theta, dtype=model.dtype),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path}: not a usable checkpoint for this run ({type(exc).__name__}: {exc}).") from None
    return state, history, best
