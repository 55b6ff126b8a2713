"""``train()``: a whole run, from data to a run folder.

What a run folder holds, and the rules for a new run's folder (refused if it holds anything
unless ``overwrite=True``; paths in the config stored resolved), are in :mod:`steadynet.runs`;
checkpoints are written by :func:`write_checkpoint`.

``metrics.json``::

    {"config": {...}, "status": "completed" | "interrupted" | "diverged",
     "epochs": [{"epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "learning_rate", "seconds",
                 "health": {"layers": [...], "warnings": [...], ...}}, ...],
     "best_epoch", "test_loss", "test_accuracy", "per_class_accuracy", "classification", "train_seconds",
     "divergence": {...} (if diverged)}

``health`` is :meth:`steadynet.diagnostics.health.HealthMonitor.on_epoch`'s record.
"""

import importlib.util
import os
import platform
import signal
import sys
import time
from contextlib import nullcontext

import numpy as np

from .._version import __version__
from ..backend import to_numpy
from ..config import TrainConfig
from ..data import Dataset, load_data
from ..data.dataset import check_labels_count_from_zero
from ..diagnostics.divergence import explain_divergence, format_causes
from ..diagnostics.health import HealthMonitor
from ..errors import ConfigError, ModelFileError, SteadynetError
from ..model import MLP
from ..optim import make_optimizer
from ..persistence import (
    CHECKPOINT_FORMAT,
    FileWriteError,
    load_arrays,
    load_model,
    model_from,
    save_arrays,
    save_model,
)
from ..progress import ProgressBar, epoch_line, in_notebook
from ..runs import MODEL_FILE, RunFolder, RunFolderLock, resolved_path, write_json
from .loop import DivergenceError, LoopState, execution, report_line, steps_per_epoch, train_loop
from .weights import WeightAverage


class Interrupted(SteadynetError):
    """Training was stopped by SIGINT/SIGTERM; a checkpoint was written."""


class RunResult(dict):
    """What :func:`train` returns: the ``metrics.json`` dict, plus the model as ``.model``."""

    model = None


def split_validation(data, val_size, seed):
    """Carve a seeded random validation split out of the training set.

    Returns ``(X_train, y_train, X_val, y_val)``; the test set is never touched. ``val_size``
    must be smaller than the training set (:meth:`TrainConfig.validate_for` checks it).
    """
    n = data.x_train.shape[0]
    if val_size == 0:
        return data.x_train, data.y_train, data.x_train[:0], data.y_train[:0]
    order = np.random.default_rng([seed, 2**31]).permutation(n)
    val, tr = np.sort(order[:val_size]), np.sort(order[val_size:])
    return data.x_train[tr], data.y_train[tr], data.x_train[val], data.y_train[val]


def train(
    config=None,
    out=None,
    data=None,
    *,
    resume=False,
    overwrite=False,
    progress=None,
    log=None,
    quiet=False,
    handle_signals=False,
    on_step=None,
    on_epoch=None,
    plots=False,
    **overrides,
):
    """Train an MLP and (with ``out``) write a run folder.

    Parameters
    ----------
    config : TrainConfig, optional
        Defaults to ``TrainConfig()`` (the seed's network); ``overrides`` replace fields.
    out : str, optional
        Run folder to write (created if needed; a folder that holds anything is refused unless
        ``overwrite``). With ``resume=True``, the folder of the run to continue: its config and
        last checkpoint are used; ``overrides`` may then change ``epochs`` (a finished run is
        extended), ``learning_rate`` and ``patience``, and the change is recorded in
        ``config.json`` under ``"resumes"``.
    data : Dataset or str, optional
        Data already loaded, or a registered name or path for :func:`load_data`; default:
        ``load_data(config.data)``.
    overwrite : bool, default=False
        Replace the run in ``out``: its config, metrics, model, checkpoints, plots and
        divergence files are removed first (other files are left alone).
    progress : ProgressBar or bool, optional
        True: a progress display on stderr (one live line on a terminal, a widget in a
        notebook); False: none; None: shown in a Jupyter notebook only.
    log : callable(str), optional
        Receives notices (data rescaling, recovery from divergence, where files went) and,
        without a progress display, the per-epoch lines. None: printed to stderr in a
        notebook, dropped elsewhere.
    quiet : bool, default=False
        No progress display and no notices (overrides the notebook defaults).
    handle_signals : bool, default=False
        Catch SIGINT/SIGTERM from the start of the call to its end: finish the step,
        checkpoint, raise :class:`Interrupted`; a second SIGINT raises it at once.
    on_step, on_epoch : callables, optional
        Receive each :class:`StepInfo` and :class:`EpochResult`.
    plots : bool, default=False
        Draw the run's plots into ``out/plots`` at the end (needs matplotlib).

    Returns
    -------
    RunResult
        The ``metrics.json`` dict; the trained model is ``result.model``.
    """
    stop = {"requested": False}
    previous_handlers = install_signal_handlers(stop, out) if handle_signals else None
    try:
        with RunFolderLock(out):
            return _train(
                config, out, data, resume, overwrite, progress, log, quiet, stop, on_step, on_epoch, plots, overrides
            )
    finally:
        if previous_handlers:
            restore_signal_handlers(previous_handlers)


def _train(config, out, data, resume, overwrite, progress, log, quiet, stop, on_step, on_epoch, plots, overrides):
    """The body of :func:`train`; ``stop["requested"]`` is set by the signal handlers."""
    notebook = in_notebook() and not quiet
    if progress is None:
        progress = notebook
    bar = None if quiet else ProgressBar(config.epochs if config else None) if progress is True else (progress or None)
    user_log = (log or (lambda line: print(line, file=sys.stderr)) if notebook else log) if not quiet else None

    def log(line):
        if user_log:
            if bar:
                bar.clear()  # a notice goes above the live line, never into it
            user_log(line)

    checkpoint, resumed_from = None, None
    if resume:
        if out is None:
            raise ConfigError("resume needs the run folder (--resume RUN_DIR).")
        if config is not None:
            raise ConfigError(
                "resume continues a run with its own config; pass only the settings "
                "to change (epochs, learning_rate, patience) as keyword arguments."
            )
        resumed_from, checkpoint = load_run_for_resume(out)
        config = resumed_from.replace(**check_resume_changes(overrides, out))
    else:
        config = config or TrainConfig()
        if overrides:
            config = config.replace(**overrides)
        if out is not None:
            RunFolder(out).prepare(overwrite)
    if isinstance(data, (str, os.PathLike)):  # the data named here is the run's data: record it
        config = config.replace(data=os.fspath(data))
        data = None
    config = config.replace(data=resolved_path(config.data), teacher=resolved_path(config.teacher))
    if bar is not None and bar.epochs is None:
        bar.epochs = config.epochs

    # data and the validation split
    if data is None or isinstance(data, (str, os.PathLike)):
        data = load_data(config.data if data is None else data, log=log, standardised=config.standardised_inputs)
    elif isinstance(data, Dataset):  # built in Python: checked as a file's arrays are
        data = data.validated(standardised=config.standardised_inputs)
    elif not hasattr(data, "x_train"):
        raise ConfigError(
            f"data must be a Dataset, a registered name or a path, got {type(data).__name__}; "
            f"build one with steadynet.data.make_dataset(x_train, y_train, x_test, y_test)."
        )
    for notice in data.notices:
        log(notice)
    check_labels_count_from_zero(data)
    config.validate_for(data)
    X, y, X_val, y_val = split_validation(data, config.val_size, config.seed)
    teacher = load_teacher(config, data) if config.teacher else None

    # model and optimiser
    model = MLP(
        (data.n_features, *config.hidden, data.n_classes),
        config.activation,
        init=config.init,
        dropout=config.dropout,
        input_dropout=config.input_dropout,
        dtype=config.dtype,
        seed=config.seed,
        device=config.device,
    )
    optimizer = make_optimizer(config.optimizer, model.n_weights, config.weight_decay, config.momentum)
    ema = WeightAverage(model.theta, config.ema_decay) if config.ema_decay else None
    state, history, best = LoopState(), [], {"epoch": None, "val_accuracy": -1.0}
    if checkpoint:
        state, history, best = restore_checkpoint(
            checkpoint, model, optimizer, config, steps_per_epoch(X.shape[0], config.batch_size), log, ema
        )
        if state.epoch >= config.epochs and RunFolder(out).completed():
            raise ConfigError(
                f"--resume {out}: the run already finished its {config.epochs} epochs; to train "
                f"it further pass a larger --epochs (e.g. --epochs {config.epochs * 2})."
            )
        if state.epoch >= config.epochs:  # stopped after its last epoch, before its model and test were written
            log(
                f"resuming {out}: its {config.epochs} epochs are trained; writing the model, the test result "
                f"and the metrics it did not get to"
            )
        changed = {
            k: [getattr(resumed_from, k), getattr(config, k)]
            for k in RESUME_CHANGES
            if getattr(resumed_from, k) != getattr(config, k)
        }
        log(
            f"resuming {out} at epoch {state.epoch + 1}, step {state.step + 1}"
            + "".join(f"; {k} {a} -> {b}" for k, (a, b) in changed.items())
        )

    def save_checkpoint(name="last.npz"):
        if ckpt_dir:
            write_checkpoint(os.path.join(ckpt_dir, name), model, optimizer, state, history, best, config, ema)

    # the run folder: a checkpoint comes first, so a run killed at any later moment can resume
    ckpt_dir = None
    if out is not None:
        ckpt_dir = os.path.join(out, "checkpoints")
        try:
            os.makedirs(ckpt_dir, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot create the run folder there ({exc.strerror or exc}).") from None
        if not checkpoint:
            save_checkpoint()
        description = run_description(config, data, model)
        if checkpoint and os.path.exists(os.path.join(out, "config.json")):
            description = RunFolder(out).record_resume(description, changed, state)
        write_json(os.path.join(out, "config.json"), description)

    metrics = RunResult(
        config=config.to_dict(), status="running", epochs=history, best_epoch=best["epoch"], train_seconds=None
    )
    # layer health, sampled a few steps per epoch; a distilled loss is not compared with ln(k)
    monitor = HealthMonitor(model, plain_loss=not config.teacher)

    def step_hook(info):
        monitor.on_step(info)
        if bar:
            bar.on_step(info)
        if on_step:
            on_step(info)
        # the last batch of an epoch is followed by the epoch's own checkpoint
        if (
            config.checkpoint_every_steps
            and info.step % config.checkpoint_every_steps == 0
            and info.batch < info.batches
        ):
            save_checkpoint()

    def resume_hint(exc):
        return FileWriteError(
            f"{exc} Training stopped; once the problem is fixed, `steadynet train "
            f"--resume {out}` continues from the last checkpoint written."
        )

    started = time.perf_counter()
    try:
        for result in train_loop(
            model,
            optimizer,
            config,
            X,
            y,
            data.image_shape,
            X_val=X_val,
            y_val=y_val,
            state=state,
            on_step=step_hook,
            should_stop=lambda: stop["requested"],
            log=log,
            ema=ema,
            teacher=teacher,
        ):
            history.append(dict(result.to_dict(), health=monitor.on_epoch(result)))
            for warning in history[-1]["health"]["warnings"]:
                log(f"warning: epoch {result.epoch}: {warning}")
            if bar:
                bar.on_epoch(result)
            else:
                log(epoch_line(result, config.epochs))
            if on_epoch:
                on_epoch(result)
            improved = result.val_accuracy is not None and result.val_accuracy > best["val_accuracy"]
            if improved:  # the weights validated: the average, when there is one
                best = {
                    "epoch": result.epoch,
                    "val_accuracy": result.val_accuracy,
                    "theta": model.xp.copy(model.theta if ema is None else ema.theta),
                }
                if ckpt_dir:
                    with ema.applied(model) if ema is not None else nullcontext():
                        save_model(os.path.join(ckpt_dir, "best.npz"), model, epoch=result.epoch)
            save_checkpoint()
            if out is not None:
                metrics.update(best_epoch=best["epoch"], train_seconds=time.perf_counter() - started)
                write_json(os.path.join(out, "metrics.json"), metrics)
            if config.patience and best["epoch"] is not None and result.epoch - best["epoch"] >= config.patience:
                log(
                    f"early stopping: no better validation accuracy for {config.patience} epochs; "
                    f"keeping epoch {best['epoch']}"
                )
                break
    except FileWriteError as exc:
        raise resume_hint(exc) from None
    except DivergenceError as exc:
        exc.report = explain_divergence(exc.report, model, config, X, monitor.recent)
        log(format_causes(exc.report))
        # the last line names the change the first-ranked cause calls for
        first = exc.report["causes"][0]
        exc.args = (report_line(exc.report, f"Most likely {first['cause']}: {first['fix']}."),)
        metrics.update(status="diverged", divergence=exc.report)
        if out is not None:
            write_json(os.path.join(out, "divergence.json"), exc.report)
            save_model(
                os.path.join(out, "last_finite.npz"),
                model,
                step=exc.report.get("kept", {}).get("step", exc.report["step"]),
            )
            write_json(os.path.join(out, "metrics.json"), metrics)
        raise
    finally:
        if bar:
            bar.close()
    train_seconds = time.perf_counter() - started

    if (
        stop["requested"]
        and state.epoch < config.epochs
        and not (config.patience and best["epoch"] and state.epoch - best["epoch"] >= config.patience)
    ):
        metrics.update(status="interrupted", train_seconds=train_seconds)
        try:
            save_checkpoint()
            if out is not None:
                write_json(os.path.join(out, "metrics.json"), metrics)
        except FileWriteError as exc:
            raise resume_hint(exc) from None
        where = f"epoch {state.epoch + 1}, batch {state.batch + 1}" if state.batch else f"epoch {state.epoch + 1}"
        raise Interrupted(
            f"training interrupted; checkpoint written, resume at {where} with `steadynet train --resume {out}`."
            if out
            else "training interrupted."
        )

    # the averaged weights are the model; early stopping keeps the best epoch's weights
    if ema is not None:
        model.theta[...] = ema.theta
    if config.patience and best.get("theta") is not None:
        model.theta[...] = best["theta"]

    # test
    test_loss, test_acc = model.evaluate(data.x_test, data.y_test) if len(data.y_test) else (None, None)
    classification = test_classification(model, data)
    metrics.update(
        status="completed",
        best_epoch=best["epoch"],
        test_loss=test_loss,
        test_accuracy=test_acc,
        per_class_accuracy=per_class_accuracy(model, data),
        classification=classification,
        train_seconds=train_seconds,
    )
    if out is not None:
        save_model(os.path.join(out, MODEL_FILE), model, epoch=state.epoch)
        write_json(os.path.join(out, "metrics.json"), metrics)
        if plots and importlib.util.find_spec("matplotlib") is None:
            log("plots skipped: matplotlib is not installed (pip install 'steadynet[plot]')")
        elif plots:
            from ..report import write_run_plots

            log(f"drawing the plots into {os.path.join(out, 'plots')} ...")

            write_run_plots(out, model=model, data=data, log=log)
    metrics.model = model
    return metrics


def test_classification(model, data):
    """Precision, recall and F1 per class on the test set (:func:`steadynet.metrics.classification_report`)."""
    from ..metrics import classification_report

    if not len(data.y_test):
        return None
    return classification_report(data.y_test, model.predict(data.x_test), model.n_classes)


def per_class_accuracy(model, data):
    """Accuracy on the test set of each class, as a list indexed by class (None if absent)."""
    if not len(data.y_test):
        return None
    pred = model.predict(data.x_test)
    return [
        float((pred[data.y_test == k] == k).mean()) if (data.y_test == k).any() else None
        for k in range(model.n_classes)
    ]


def load_teacher(config, data):
    """The distillation teacher named by ``config.teacher``, checked against the data."""
    try:
        teacher = load_model(config.teacher, device=config.device)
    except ModelFileError as exc:
        raise ConfigError(f"--teacher: {exc}") from None
    if (teacher.n_inputs, teacher.n_classes) != (data.n_features, data.n_classes):
        raise ConfigError(
            f"--teacher {config.teacher}: a {'-'.join(map(str, teacher.layer_sizes))} network, "
            f"but the data calls for {data.n_features} inputs and {data.n_classes} classes."
        )
    return teacher


def run_description(config, data, model):
    """``config.json``: the resolved config, plus what a reader needs to interpret the run."""
    return {
        "steadynet_version": __version__,
        "config": config.to_dict(),
        "learning_rate": config.resolved_learning_rate(),
        "model": model.config(),
        "data": {
            "source": data.source,
            "n_train": int(data.x_train.shape[0]),
            "n_test": int(data.x_test.shape[0]),
            "n_features": data.n_features,
            "n_classes": data.n_classes,
            "image_shape": list(data.image_shape),
        },
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "command": sys.argv,
        "execution": execution_record(config, data, model),
    }


def execution_record(config, data, model):
    """How the steps ran: ``{"engine": "numba" or "numpy", "threads": {"used", "blas"}}``."""
    from ..threads import describe

    how = execution(config, model.layer_sizes, max(int(data.x_train.shape[0]) - config.val_size, 1))
    return {"engine": how["engine"], "threads": describe(how["threads"])}


# ------------------------------------------------------------------------- resume


RESUME_CHANGES = ("epochs", "learning_rate", "patience")  # what a resume may change


def check_resume_changes(overrides, out):
    """The settings a resume may change; anything else is refused, naming it."""
    refused = sorted(set(overrides) - set(RESUME_CHANGES))
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        raise ConfigError(
            f"--resume {out} continues the run with its own settings; only --epochs, --lr and "
            f"--patience can change on resume, not {flags} (start a new run with "
            f"--config {RunFolder(out).config_path} to vary the others)."
        )
    return {k: v for k, v in overrides.items() if v is not None}


# ------------------------------------------------------------------------- checkpoints


def write_checkpoint(path, model, optimizer, state, history, best, config, ema=None):
    """Everything needed to continue exactly: weights, optimiser state, loop state, RNGs.

    Arrays: the parameters, ``optim.<name>`` (the optimiser's step count and state arrays,
    and ``optim.ema``, the moving average of the weights, when there is one) and
    ``best.theta`` (the best epoch's weights, for early stopping). JSON: the config, the
    :class:`LoopState` (epoch, step, batch, data-order RNG state, running sums), the metrics so
    far (``history``), the best epoch and the dropout RNG state.
    """
    arrays = dict(model.state_dict())
    arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
    if ema is not None:
        arrays["optim.ema"] = to_numpy(ema.theta)
    if best.get("theta") is not None:
        arrays["best.theta"] = to_numpy(best["theta"])
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model": model.config(),
        "config": config.to_dict(),
        "state": dict(state.__dict__),
        "history": history,
        "best": {"epoch": best["epoch"], "val_accuracy": best["val_accuracy"]},
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
    path = os.path.join(run_dir, "checkpoints", "last.npz")
    if not os.path.isfile(path):
        raise ConfigError(
            f"--resume {run_dir}: no checkpoint there (expected {path}); if the run was "
            f"stopped before writing one, start it again."
        )
    arrays, meta = load_arrays(path, CHECKPOINT_FORMAT)
    try:
        config = TrainConfig.from_dict(meta["config"])
    except (KeyError, ConfigError) as exc:
        raise ModelFileError(f"{path}: the checkpoint's config is missing or invalid ({exc}).") from None
    from ..persistence import check_checkpoint_config  # the arrays against the config, before any network is built

    check_checkpoint_config(arrays, meta, path, config.hidden)
    return config, (arrays, meta, path)


def restore_checkpoint(checkpoint, model, optimizer, config, batches, log=None, ema=None):
    """Load a checkpoint into ``model``, ``optimizer`` (and ``ema``); return ``(state, history, best)``.

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
        best["theta"] = None if best_theta is None else model.xp.asarray(best_theta, dtype=model.dtype)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path}: not a usable checkpoint for this run ({type(exc).__name__}: {exc}).") from None
    return state, history, best


# ------------------------------------------------------------------------- signals


def install_signal_handlers(stop, out=None):
    """SIGINT/SIGTERM set ``stop["requested"]``; a second SIGINT raises :class:`Interrupted` at
    once, wherever the run is: every file is written atomically, so none is left half-written."""

    def handler(signum, frame):
        if stop["requested"] and signum == signal.SIGINT:
            where = f": resume with `steadynet train --resume {out}`" if out else ""
            raise Interrupted(f"stopped at once by a second Ctrl-C; the last checkpoint written is intact{where}.")
        stop["requested"] = True
        print(
            f"\n{signal.Signals(signum).name}: finishing this step and writing a checkpoint "
            f"(Ctrl-C again to quit at once)",
            file=sys.stderr,
        )

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
