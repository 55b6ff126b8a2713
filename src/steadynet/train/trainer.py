"""``train()``: a whole run, from data to a run folder.

A run folder holds:

- ``config.json``: the resolved configuration, the data set's description and versions;
- ``metrics.json``: per-epoch metrics and the final test accuracy (the contract below);
- ``model.npz``: the trained model (see :mod:`steadynet.persistence`);
- ``checkpoints/last.npz`` (every epoch, and on interrupt) and ``checkpoints/best.npz``
  (best validation accuracy so far);
- ``divergence.json`` if training diverged.

``metrics.json``::

    {"config": {...}, "status": "completed" | "interrupted" | "diverged",
     "epochs": [{"epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "learning_rate", "seconds"}, ...],
     "best_epoch", "test_loss", "test_accuracy", "per_class_accuracy", "train_seconds"}
"""

import json
import os
import platform
import signal
import sys
import time

import numpy as np

from .. import __version__
from ..config import TrainConfig
from ..data import Dataset, load_data
from ..errors import ConfigError, SteadynetError
from ..model import MLP
from ..optim import make_optimizer
from ..persistence import (CHECKPOINT_FORMAT, MODEL_FILE, atomic_write, load_arrays, model_from,
                           save_arrays, save_model)
from ..progress import ProgressBar, epoch_line
from .loop import DivergenceError, LoopState, train_loop


class Interrupted(SteadynetError):
    """Training was stopped by SIGINT/SIGTERM; a checkpoint was written."""


class RunResult(dict):
    """What :func:`train` returns: the ``metrics.json`` dict, plus the model as ``.model``."""

    model = None


def split_validation(data, val_size, seed):
    """Carve a seeded random validation split out of the training set.

    Returns ``(X_train, y_train, X_val, y_val)``; the test set is never touched.
    """
    n = data.x_train.shape[0]
    if val_size >= n:
        raise ConfigError(f"--val-size must be smaller than the training set ({n} images), got {val_size}.")
    if val_size == 0:
        return data.x_train, data.y_train, data.x_train[:0], data.y_train[:0]
    order = np.random.default_rng([seed, 2**31]).permutation(n)
    val, tr = np.sort(order[:val_size]), np.sort(order[val_size:])
    return data.x_train[tr], data.y_train[tr], data.x_train[val], data.y_train[val]


def write_json(path, obj):
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode("utf-8")))


def train(config=None, out=None, data=None, *, resume=False, progress=None, log=None,
          handle_signals=False, on_step=None, on_epoch=None, **overrides):
    """Train an MLP and (with ``out``) write a run folder.

    Parameters
    ----------
    config : TrainConfig, optional
        Defaults to ``TrainConfig()`` (the seed's network); ``overrides`` replace fields.
    out : str, optional
        Run folder to write (created if needed). With ``resume=True``, the folder of the run
        to continue: its config and last checkpoint are used.
    data : Dataset, optional
        Data already loaded; default: ``load_data(config.data)``.
    progress : ProgressBar or bool, optional
        True: a progress bar on stderr (live on a terminal); None/False: none.
    log : callable(str), optional
        Receives notices (data rescaling, recovery from divergence, where files went).
    handle_signals : bool, default=False
        Catch SIGINT/SIGTERM: finish the step, checkpoint, raise :class:`Interrupted`.
    on_step, on_epoch : callables, optional
        Receive each :class:`StepInfo` and :class:`EpochResult`.

    Returns
    -------
    RunResult
        The ``metrics.json`` dict; the trained model is ``result.model``.
    """
    log = log or (lambda line: None)
    checkpoint = None
    if resume:
        if out is None:
            raise ConfigError("resume needs the run folder (--resume RUN_DIR).")
        config, checkpoint = load_run_for_resume(out)
    config = (config or TrainConfig())
    if overrides:
        config = config.replace(**overrides)
    config.validate()

    # data and the validation split
    if data is None:
        data = load_data(config.data, log=log)
    for notice in data.notices:
        log(notice)
    config.validate(n_features=data.n_features)
    X, y, X_val, y_val = split_validation(data, config.val_size, config.seed)
    if config.batch_size != "full" and config.batch_size > X.shape[0]:
        raise ConfigError(f"--batch-size must be at most the number of training images "
                          f"({X.shape[0]} after the validation split), got {config.batch_size}; "
                          f"use --batch-size full for full-batch training.")

    # model and optimiser
    model = MLP((data.n_features, *config.hidden, data.n_classes), config.activation,
                init=config.init, dropout=config.dropout, input_dropout=config.input_dropout,
                dtype=config.dtype, seed=config.seed, device=config.device)
    optimizer = make_optimizer(config.optimizer, model.n_weights, config.weight_decay, config.momentum)
    state, history, best = LoopState(), [], {"epoch": None, "val_accuracy": -1.0}
    if checkpoint:
        state, history, best = restore_checkpoint(checkpoint, model, optimizer, out)
        log(f"resuming {out} at epoch {state.epoch + 1}, step {state.step + 1}")

    # the run folder
    ckpt_dir = None
    if out is not None:
        ckpt_dir = os.path.join(out, "checkpoints")
        os.makedirs(ckpt_dir, exist_ok=True)
        write_json(os.path.join(out, "config.json"), run_description(config, data, model))

    metrics = RunResult(config=config.to_dict(), status="running", epochs=history,
                        best_epoch=best["epoch"], train_seconds=None)
    bar = ProgressBar(config.epochs) if progress is True else (progress or None)
    stop = {"requested": False}
    previous_handlers = install_signal_handlers(stop) if handle_signals else None

    def step_hook(info):
        if bar:
            bar.on_step(info)
        if on_step:
            on_step(info)

    def save_checkpoint(name="last.npz"):
        if ckpt_dir:
            write_checkpoint(os.path.join(ckpt_dir, name), model, optimizer, state, history, best, config)

    started = time.perf_counter()
    try:
        for result in train_loop(model, optimizer, config, X, y, data.image_shape, X_val=X_val,
                                 y_val=y_val, state=state, on_step=step_hook,
                                 should_stop=lambda: stop["requested"], log=log):
            history.append(result.to_dict())
            if bar:
                bar.on_epoch(result)
            else:
                log(epoch_line(result, config.epochs))
            if on_epoch:
                on_epoch(result)
            improved = result.val_accuracy is not None and result.val_accuracy > best["val_accuracy"]
            if improved:
                best = {"epoch": result.epoch, "val_accuracy": result.val_accuracy,
                        "theta": model.xp.copy(model.theta)}
                if ckpt_dir:
                    save_model(os.path.join(ckpt_dir, "best.npz"), model, epoch=result.epoch)
            save_checkpoint()
            if out is not None:
                metrics.update(best_epoch=best["epoch"], train_seconds=time.perf_counter() - started)
                write_json(os.path.join(out, "metrics.json"), metrics)
            if config.patience and best["epoch"] is not None and result.epoch - best["epoch"] >= config.patience:
                log(f"early stopping: no better validation accuracy for {config.patience} epochs; "
                    f"keeping epoch {best['epoch']}")
                break
    except DivergenceError as exc:
        metrics.update(status="diverged", divergence=exc.report)
        if out is not None:
            write_json(os.path.join(out, "divergence.json"), exc.report)
            save_model(os.path.join(out, "last_finite.npz"), model, step=exc.report["step"])
            write_json(os.path.join(out, "metrics.json"), metrics)
        raise
    finally:
        if bar:
            bar.close()
        if previous_handlers:
            restore_signal_handlers(previous_handlers)
    train_seconds = time.perf_counter() - started

    if stop["requested"] and state.epoch < config.epochs and not (config.patience and best["epoch"]
                                                                 and state.epoch - best["epoch"] >= config.patience):
        save_checkpoint()
        metrics.update(status="interrupted", train_seconds=train_seconds)
        if out is not None:
            write_json(os.path.join(out, "metrics.json"), metrics)
        where = f"epoch {state.epoch + 1}, batch {state.batch + 1}" if state.batch else f"epoch {state.epoch + 1}"
        raise Interrupted(f"training interrupted; checkpoint written, resume at {where} with "
                          f"`steadynet train --resume {out}`." if out else "training interrupted.")

    # early stopping keeps the best epoch's weights
    if config.patience and best.get("theta") is not None:
        model.theta[...] = best["theta"]

    # test
    test_loss, test_acc = model.evaluate(data.x_test, data.y_test) if len(data.y_test) else (None, None)
    metrics.update(status="completed", best_epoch=best["epoch"], test_loss=test_loss,
                   test_accuracy=test_acc, per_class_accuracy=per_class_accuracy(model, data),
                   train_seconds=train_seconds)
    if out is not None:
        save_model(os.path.join(out, MODEL_FILE), model, epoch=state.epoch)
        write_json(os.path.join(out, "metrics.json"), metrics)
    metrics.model = model
    return metrics


def per_class_accuracy(model, data):
    """Accuracy on the test set of each class, as a list indexed by class (None if absent)."""
    if not len(data.y_test):
        return None
    pred = model.predict(data.x_test)
    return [float((pred[data.y_test == k] == k).mean()) if (data.y_test == k).any() else None
            for k in range(model.n_classes)]


def run_description(config, data, model):
    """``config.json``: the resolved config, plus what a reader needs to interpret the run."""
    return {"steadynet_version": __version__, "config": config.to_dict(),
            "learning_rate": config.resolved_learning_rate(), "model": model.config(),
            "data": {"source": data.source, "n_train": int(data.x_train.shape[0]),
                     "n_test": int(data.x_test.shape[0]), "n_features": data.n_features,
                     "n_classes": data.n_classes, "image_shape": list(data.image_shape)},
            "python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "command": sys.argv}


# ------------------------------------------------------------------------- checkpoints


def write_checkpoint(path, model, optimizer, state, history, best, config):
    """Everything needed to continue exactly: weights, optimiser state, loop state, RNGs."""
    arrays = dict(model.state_dict())
    arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
    if best.get("theta") is not None:
        arrays["best.theta"] = np.asarray(model.xp.asnumpy(best["theta"]) if model.xp is not np else best["theta"])
    drop_rngs = [layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")
                 and hasattr(layer.rng, "bit_generator")]
    meta = {"format": CHECKPOINT_FORMAT, "model": model.config(), "config": config.to_dict(),
            "state": dict(state.__dict__), "history": history,
            "best": {"epoch": best["epoch"], "val_accuracy": best["val_accuracy"]},
            "dropout_rng": drop_rngs[0] if drop_rngs else None}
    save_arrays(path, arrays, meta)


def load_run_for_resume(run_dir):
    """The config and last checkpoint of a run folder."""
    path = os.path.join(run_dir, "checkpoints", "last.npz")
    if not os.path.exists(path):
        raise ConfigError(f"--resume {run_dir}: no checkpoint there (expected {path}).")
    arrays, meta = load_arrays(path, CHECKPOINT_FORMAT)
    return TrainConfig.from_dict(meta["config"]), (arrays, meta, path)


def restore_checkpoint(checkpoint, model, optimizer, run_dir):
    arrays, meta, path = checkpoint
    restored = model_from(arrays, meta, path, model.device)
    model.theta[...] = restored.theta
    optim_state = {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")}
    optimizer.load_state_dict(optim_state, model.theta)
    if meta.get("dropout_rng"):
        for layer in model.layers:
            if hasattr(layer, "rng") and hasattr(layer.rng, "bit_generator"):
                layer.rng.bit_generator.state = meta["dropout_rng"]
    state = LoopState(**meta["state"])
    best = dict(meta["best"])
    best["theta"] = model.xp.asarray(arrays["best.theta"]) if "best.theta" in arrays else None
    return state, list(meta["history"]), best


# ------------------------------------------------------------------------- signals


def install_signal_handlers(stop):
    """SIGINT/SIGTERM set ``stop["requested"]``; a second SIGINT interrupts at once."""
    def handler(signum, frame):
        if stop["requested"] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop["requested"] = True
        print(f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint "
              f"(Ctrl-C again to quit at once)", file=sys.stderr)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    return previous


def restore_signal_handlers(previous):
    for sig, h in previous.items():
        signal.signal(sig, h)
