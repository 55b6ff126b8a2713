"""``train()``: a whole run, from data to a run folder.

What a run folder holds, and the rules for a new run's folder (refused if it holds anything
unless ``overwrite=True``; paths in the config stored resolved), are in :mod:`steadynet.runs`;
checkpoints are written by :mod:`.checkpoint`.

``metrics.json``::

    {"config": {...}, "status": "completed" | "interrupted" | "diverged",
     "epochs": [{"epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "learning_rate", "seconds",
                 "health": {"layers": [...], "warnings": [...], ...}}, ...],
     "best_epoch", "test_loss", "test_accuracy", "per_class_accuracy", "classification", "train_seconds",
     "tta": {"setting", "used", ...} (once completed), "divergence": {...} (if diverged)}

``health`` is :meth:`steadynet.diagnostics.health.HealthMonitor.on_epoch`'s record. ``tta`` is
the test-time augmentation decision and its evidence (:func:`steadynet.tta.tta_decision`);
where it is used, the test results above are those of the averaged predictions and the
plain ones are kept in it as ``test_loss_plain`` and ``test_accuracy_plain``.

This module owns the order of a run. ``_train`` reads top to bottom as labelled stages (the
config: new run or resume; data and the validation split; model and optimiser; the run
folder; train; the final weights and the test) over the :func:`~.loop.train_loop`
generator, whose steps and epochs go to small consumers: :class:`EarlyStopping` (the best
epoch and the one early-stopping rule), :class:`CheckpointWriter`, :class:`MetricsWriter`,
:class:`Display` (progress and notices) and the health monitor. Checkpoint files are
:mod:`.checkpoint`'s, signals :mod:`.signals`', a step :mod:`.step`'s.
"""

import importlib.util
import os
import platform
import sys
import time
from contextlib import nullcontext

import numpy as np

from .._version import __version__
from ..config import TrainConfig
from ..data import Dataset, load_data
from ..data.dataset import check_labels_count_from_zero
from ..diagnostics.divergence import explain_divergence, format_causes
from ..diagnostics.health import HealthMonitor
from ..errors import ConfigError, ModelFileError
from ..metrics import classification_report
from ..persistence import FileWriteError, load_model, save_model
from ..progress import ProgressBar, epoch_line, in_notebook
from ..report import write_run_plots
from ..runs import RunFolder, RunFolderLock, resolved_path, write_json
from ..threads import describe
from ..tta import tta_decision, tta_evaluate, tta_line
from .centring import centring
from .checkpoint import Best, load_run_for_resume, restore_checkpoint, write_checkpoint
from .loop import DivergenceError, LoopState, build, execution, report_line, steps_per_epoch, train_loop
from .signals import Interrupted, StopRequest, install_signal_handlers, restore_signal_handlers
from .trial import choose_augmentation


class RunResult(dict):
    """What :func:`train` returns: the ``metrics.json`` dict, plus the trained model as ``.model``
    (None until the run completes)."""

    def __init__(self, *args, model=None, **fields):
        super().__init__(*args, **fields)
        self.model = model


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
    stop = StopRequest()
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
    """The body of :func:`train`, in stages; ``stop`` (a :class:`StopRequest`) is set by the signal handlers."""
    display = Display(progress, log, quiet, config.epochs if config else None)
    log = display.log

    # the config: new run or resume
    checkpoint, resumed_from = None, None
    if resume:
        if out is None:
            raise ConfigError("{resume} needs {out}, the folder of the run to continue.", field="resume")
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
    display.set_epochs(config.epochs)

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

    # input centring: the per-feature mean of the training split, when the setting asks for it
    input_mean, centring_record = centring(config.centre_inputs, X)
    if input_mean is not None and not resume:
        log(f"centring the inputs (mean {centring_record['mean']:.3f}, std {centring_record['std']:.3f})")

    # the augmentation, when asked: chosen on the validation split (a resumed run keeps its choice)
    trial = None
    if config.augment_trial:
        chosen = choose_augmentation(
            config,
            X,
            y,
            X_val,
            y_val,
            data.image_shape,
            data.n_features,
            data.n_classes,
            log,
            should_stop=stop,
            input_mean=input_mean,
        )
        if chosen is None:
            raise Interrupted(
                "training interrupted during the augmentation trial, before any checkpoint; start it again."
            )
        config, trial = chosen

    # model and optimiser, and where a resumed run left them
    model, optimizer, ema = build(config, data.n_features, data.n_classes, input_mean)
    state, history, best, changed = LoopState(), [], Best(), {}
    if checkpoint:
        batches = steps_per_epoch(X.shape[0], config.batch_size)
        state, history, best = restore_checkpoint(checkpoint, model, optimizer, config, batches, log, ema)
        changed = check_resume_position(out, resumed_from, config, state, log)
    stopping = EarlyStopping(config.patience, best)

    # the run folder: a checkpoint comes first, so a run killed at any later moment can resume
    checkpoints = CheckpointWriter(out, model, optimizer, state, history, stopping, config, ema)
    if out is not None:
        try:
            os.makedirs(checkpoints.folder, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "{out} {path}: cannot create the run folder there ({why}).",
                field="out",
                path=out,
                why=exc.strerror or exc,
            ) from None
        if not checkpoint:
            checkpoints.write_last()
        run = RunFolder(out)
        description = run_description(config, data, model, trial, centring_record)
        if checkpoint and os.path.exists(run.config_path):
            description = run.record_resume(description, changed, state)
        write_json(run.config_path, description)
    metrics = MetricsWriter(
        out,
        RunResult(config=config.to_dict(), status="running", epochs=history, best_epoch=best.epoch, train_seconds=None),
    )
    # layer health, sampled a few steps per epoch; a distilled loss is not compared with ln(k)
    monitor = HealthMonitor(model, plain_loss=not config.teacher)

    # train
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
            on_step=each(monitor.on_step, display.on_step, on_step, checkpoints.on_step),
            should_stop=stop,
            log=log,
            ema=ema,
            teacher=teacher,
        ):
            history.append(dict(result.to_dict(), health=monitor.on_epoch(result)))
            display.on_epoch(result, history[-1]["health"]["warnings"], config.epochs)
            if on_epoch:
                on_epoch(result)
            if stopping.observe(result, model.theta if ema is None else ema.theta):
                checkpoints.write_best(result.epoch)  # the weights validated: the average, when there is one
            checkpoints.write_last()
            metrics.write(best_epoch=stopping.best.epoch, train_seconds=time.perf_counter() - started)
            if stopping.stopped(result.epoch):
                log(
                    f"early stopping: no better validation accuracy for {config.patience} epochs; "
                    f"keeping epoch {stopping.best.epoch}"
                )
                break
    except FileWriteError as exc:
        raise resume_hint(exc, out) from None
    except DivergenceError as exc:
        exc.report = explain_divergence(exc.report, model, config, X, monitor.recent)
        log(format_causes(exc.report))
        # the last line names the change the first-ranked cause calls for
        first = exc.report["causes"][0]
        exc.args = (report_line(exc.report, f"Most likely {first['cause']}: {first['fix']}."),)
        metrics.diverged(exc.report, model)
        raise
    finally:
        display.close()
    train_seconds = time.perf_counter() - started

    # stopped by a signal before the run's end (not by early stopping): a checkpoint to resume from
    if stop.requested and state.epoch < config.epochs and not stopping.stopped(state.epoch):
        try:
            checkpoints.write_last()
            metrics.write(status="interrupted", train_seconds=train_seconds)
        except FileWriteError as exc:
            raise resume_hint(exc, out) from None
        where = f"epoch {state.epoch + 1}, batch {state.batch + 1}" if state.batch else f"epoch {state.epoch + 1}"
        raise Interrupted(
            f"training interrupted; checkpoint written, resume at {where} with `steadynet train --resume {out}`."
            if out
            else "training interrupted."
        )

    # the final weights and the test: the averaged weights are the model; early stopping keeps
    # the best epoch's weights
    if ema is not None:
        model.theta[...] = ema.theta
    if config.patience and stopping.best.theta is not None:
        model.theta[...] = stopping.best.theta
    # test-time augmentation: decided on the validation split, then used on the test set or not
    tta = tta_decision(config.tta, model, X_val, y_val, data.image_shape, data.source)
    if config.tta != "off":
        log(tta_line(tta))
    test_loss, test_acc = model.evaluate(data.x_test, data.y_test) if len(data.y_test) else (None, None)
    y_pred = None  # the test predictions: the model's own unless averaged over shifts
    if tta["used"] and len(data.y_test):
        tta.update(test_loss_plain=test_loss, test_accuracy_plain=test_acc)
        test_loss, test_acc, y_pred = tta_evaluate(model, data.x_test, data.y_test, data.image_shape)
    result = metrics.metrics
    result.update(
        status="completed",
        best_epoch=stopping.best.epoch,
        test_loss=test_loss,
        test_accuracy=test_acc,
        per_class_accuracy=per_class_accuracy(model, data, y_pred),
        classification=test_classification(model, data, y_pred),
        train_seconds=train_seconds,
        tta=tta,
    )
    result.model = model
    if out is not None:
        save_model(RunFolder(out).model_path, model, epoch=state.epoch)
        metrics.write()
        if plots and importlib.util.find_spec("matplotlib") is None:
            log("plots skipped: matplotlib is not installed (pip install 'steadynet[plot]')")
        elif plots:
            log(f"drawing the plots into {RunFolder(out).plots_dir} ...")
            write_run_plots(out, model=model, data=data, log=log)
    return result


def check_resume_position(out, resumed_from, config, state, log):
    """A resumed run's position against its (possibly changed) config: refuse a finished run
    that is not extended, and say where it resumes and what changed; returns the changes,
    ``{setting: [before, after]}``."""
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
    return changed


def resume_hint(exc, out):
    """A failed write, with how to continue once the problem is fixed."""
    return FileWriteError(
        f"{exc} Training stopped; once the problem is fixed, `steadynet train "
        f"--resume {out}` continues from the last checkpoint written."
    )


# ------------------------------------------------------------------------- the run's consumers


def each(*consumers):
    """One callable that passes its argument to each of ``consumers`` in turn (None skipped)."""
    consumers = [c for c in consumers if c is not None]

    def call(info):
        for consumer in consumers:
            consumer(info)

    return call


class EarlyStopping:
    """The best epoch by validation accuracy (:class:`Best`), and the one rule that ends a
    run early: ``patience`` epochs without a better validation accuracy (0: never).

    :meth:`stopped` is asked after every epoch, to end the loop, and after an interrupt, to
    tell a run that had reached its early stop from one to resume.
    """

    def __init__(self, patience, best=None):
        self.patience = patience
        self.best = best if best is not None else Best()

    def observe(self, result, theta):
        """Record an epoch's validation accuracy; when it is the best so far, keep a copy of
        the weights it validated (``theta``) and return True."""
        if result.val_accuracy is None or not result.val_accuracy > self.best.val_accuracy:
            return False
        self.best = Best(result.epoch, result.val_accuracy, theta.copy())
        return True

    def stopped(self, epoch):
        """Whether a run with ``epoch`` epochs completed has reached its early stop."""
        return bool(self.patience) and self.best.epoch is not None and epoch - self.best.epoch >= self.patience


class CheckpointWriter:
    """The run's checkpoints in ``out/checkpoints`` (``folder``): ``last.npz``, everything
    needed to resume exactly (:func:`write_checkpoint`; at the start, after every epoch, every
    ``config.checkpoint_every_steps`` steps if set, and on interrupt), and ``best.npz``, the
    model of the best validation accuracy so far. Without a run folder it writes nothing."""

    def __init__(self, out, model, optimizer, state, history, stopping, config, ema=None):
        self.run = None if out is None else RunFolder(out)
        self.folder = None if out is None else self.run.checkpoints_dir
        self.model, self.optimizer, self.state, self.history = model, optimizer, state, history
        self.stopping, self.config, self.ema = stopping, config, ema

    def write_last(self):
        if self.folder:
            write_checkpoint(
                self.run.last_checkpoint,
                self.model,
                self.optimizer,
                self.state,
                self.history,
                self.stopping.best,
                self.config,
                self.ema,
            )

    def write_best(self, epoch):
        """The model as validated at ``epoch`` (with the averaged weights, when averaging)."""
        if self.folder:
            with self.ema.applied(self.model) if self.ema is not None else nullcontext():
                save_model(self.run.best_checkpoint, self.model, epoch=epoch)

    def on_step(self, info):
        """Every ``checkpoint_every_steps`` steps; the last batch of an epoch is followed by the
        epoch's own checkpoint."""
        every = self.config.checkpoint_every_steps
        if every and info.step % every == 0 and info.batch < info.batches:
            self.write_last()


class MetricsWriter:
    """``metrics.json`` (the module docstring's contract): ``metrics``, the :class:`RunResult`,
    updated and rewritten after every epoch and at the end; on divergence also
    ``divergence.json`` and ``last_finite.npz``. Without a run folder only the dict is updated."""

    def __init__(self, out, metrics):
        self.run, self.metrics = (None if out is None else RunFolder(out)), metrics

    def write(self, **changes):
        self.metrics.update(changes)
        if self.run is not None:
            write_json(self.run.metrics_path, self.metrics)

    def diverged(self, report, model):
        """The divergence ``report``, and the last finite weights ``model`` holds."""
        self.metrics.update(status="diverged", divergence=report)
        if self.run is not None:
            write_json(self.run.divergence_path, report)
            save_model(
                self.run.last_finite_path,
                model,
                step=report.get("kept", {}).get("step", report["step"]),
            )
            self.write()


class Display:
    """What the person running the run sees: the progress display (``bar``) and the notices
    (:meth:`log`), from :func:`train`'s ``progress``, ``log`` and ``quiet``."""

    def __init__(self, progress, log, quiet, epochs):
        notebook = in_notebook() and not quiet
        if progress is None:
            progress = notebook
        self.bar = None if quiet else ProgressBar(epochs) if progress is True else (progress or None)
        self.user_log = (log or (lambda line: print(line, file=sys.stderr)) if notebook else log) if not quiet else None

    def set_epochs(self, epochs):
        if self.bar is not None and self.bar.epochs is None:
            self.bar.epochs = epochs

    def log(self, line):
        if self.user_log:
            if self.bar:
                self.bar.clear()  # a notice goes above the live line, never into it
            self.user_log(line)

    def on_step(self, info):
        if self.bar:
            self.bar.on_step(info)

    def on_epoch(self, result, warnings, epochs):
        """An epoch's health warnings, then its line (or the progress display's update)."""
        for warning in warnings:
            self.log(f"warning: epoch {result.epoch}: {warning}")
        if self.bar:
            self.bar.on_epoch(result)
        else:
            self.log(epoch_line(result, epochs))

    def close(self):
        if self.bar:
            self.bar.close()


def test_classification(model, data, y_pred=None):
    """Precision, recall and F1 per class on the test set (:func:`steadynet.metrics.classification_report`)
    of the predictions ``y_pred`` (default: the model's own)."""
    if not len(data.y_test):
        return None
    return classification_report(data.y_test, model.predict(data.x_test) if y_pred is None else y_pred, model.n_classes)


def per_class_accuracy(model, data, y_pred=None):
    """Accuracy on the test set of each class, as a list indexed by class (None if absent), of
    the predictions ``y_pred`` (default: the model's own)."""
    if not len(data.y_test):
        return None
    pred = model.predict(data.x_test) if y_pred is None else y_pred
    return [
        float((pred[data.y_test == k] == k).mean()) if (data.y_test == k).any() else None
        for k in range(model.n_classes)
    ]


def load_teacher(config, data):
    """The distillation teacher named by ``config.teacher``, checked against the data."""
    try:
        teacher = load_model(config.teacher, device=config.device)
    except ModelFileError as exc:
        raise ConfigError("{teacher}: {why}", field="teacher", why=exc) from None
    if (teacher.n_inputs, teacher.n_classes) != (data.n_features, data.n_classes):
        raise ConfigError(
            "{teacher} {path}: a {sizes} network, but the data calls for {n_features} inputs and {n_classes} classes.",
            field="teacher",
            path=config.teacher,
            sizes="-".join(map(str, teacher.layer_sizes)),
            n_features=data.n_features,
            n_classes=data.n_classes,
        )
    return teacher


def run_description(config, data, model, trial=None, centring_record=None):
    """``config.json``: the resolved config, plus what a reader needs to interpret the run
    (with ``trial``, the augmentation trial's record, :func:`.trial.choose_augmentation`;
    with ``centring_record``, whether the inputs were centred and why, :func:`.centring.centring`)."""
    description = {
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
    if centring_record is not None:
        description["input_centring"] = centring_record
    if trial is not None:
        description["augmentation_trial"] = trial
    return description


def execution_record(config, data, model):
    """How the steps ran: ``{"engine": "numba" or "numpy", "threads": {"used", "blas"}}``."""
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
