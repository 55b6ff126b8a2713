"""``tune()``: a hyperparameter search on Optuna, each trial an ordinary run folder.

Optuna (``pip install 'steadynet[tune]'``) samples the settings, stores the study and prunes
bad trials; steadynet trains each trial with :func:`steadynet.train` and reports the
validation accuracy of every epoch, so a trial that is clearly behind stops early. The
objective is the validation accuracy of the trial's last epoch (the model its run folder
keeps); the test split is dropped from the data before the first trial, so no choice can be
made on it.

A study folder holds::

    study.json         what was asked: the space, the base config, the budget, the storage
    journal.log        Optuna's journal storage (unless --storage names a database server)
    trials/0000/ ...   one run folder per trial: config.json, metrics.json, model.npz, checkpoints/
    best_config.json   the best trial's config.json, as is: `steadynet train --config best_config.json`
    summary.json       what `steadynet tune --json` prints
    report.html        the study report: history, parameter importances, slices, every trial

The journal is appended one record at a time under a lock, so a study killed at any moment
(Ctrl-C or SIGKILL) keeps every finished trial, and ``resume=True`` continues it: the trials
that were running are marked failed and their settings are tried again, until the study holds
``trials`` finished (completed or pruned) trials.

A search space is a dict ``{"fixed": {field: value}, "params": {name: spec}}`` where every name
is a :class:`TrainConfig` field, or ``width``/``depth`` (hidden layer width and count, which
together set ``hidden``), and a spec is ``{"choices": [...]}`` or ``{"low": a, "high": b}``
with optional ``"log": true`` and ``"step"`` (integer bounds sample integers). It comes from
:data:`SPACES` by name, from a TOML file of that shape, or from a Python file defining
``space(trial) -> dict`` of settings (Optuna's define-by-run, for conditional spaces).
"""

import json
import os
import shutil
import subprocess
import sys
import time

from .config import TrainConfig, option_flag
from .data import Dataset, load_data
from .errors import ConfigError, SteadynetError
from .persistence import atomic_write
from .report import STYLE, esc, png_data_uri, table
from .runs import RunFolder, write_json
from .train import DivergenceError, Interrupted, train
from .viz import figure_png

INSTALL_HINT = "steadynet tune needs Optuna: pip install 'steadynet[tune]'"

# named search spaces; "seed" keeps the seed's 784-30-10 sigmoid net and searches how it is trained
SPACES = {
    "seed": {
        "fixed": {"hidden": [30], "activation": "sigmoid", "optimizer": "nesterov"},
        "params": {
            "learning_rate": {"low": 0.01, "high": 0.5, "log": True},
            "momentum": {"low": 0.5, "high": 0.95},
            "batch_size": {"choices": [32, 64, 128, 256]},
            "augment_shift": {"low": 0, "high": 2},
            "schedule": {"choices": ["constant", "cosine", "onecycle"]},
        },
    },
    "mlp": {
        "fixed": {},
        "params": {
            "width": {"low": 32, "high": 512, "log": True},
            "depth": {"low": 1, "high": 3},
            "activation": {"choices": ["sigmoid", "tanh", "relu"]},
            "dropout": {"low": 0.0, "high": 0.5},
            "optimizer": {"choices": ["nesterov", "adam"]},
            "learning_rate": {"low": 1e-4, "high": 0.3, "log": True},
            "batch_size": {"choices": [32, 64, 128, 256]},
            "augment_shift": {"low": 0, "high": 2},
            "schedule": {"choices": ["constant", "cosine", "onecycle"]},
        },
    },
}
SHAPE_PARAMS = ("width", "depth")  # not TrainConfig fields: together they make ``hidden``
DEFAULT_EPOCHS = 10  # epochs per trial unless given: a search runs many trials
TRIALS_DIR = "trials"
FINISHED = ("COMPLETE", "PRUNED")  # trial states that count towards --trials


def require_optuna():
    """Import Optuna, or raise :class:`TuneError` saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise TuneError(INSTALL_HINT + ".") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is reported by steadynet, in one line
    return optuna


class TuneError(SteadynetError):
    """A search cannot start or continue: a bad space, study folder or storage."""


class _Pruned(Exception):
    """Raised from ``on_epoch`` to leave :func:`train` when the pruner says so."""


class _Surplus(Exception):
    """A trial started by a worker after the study already had enough (a race between workers)."""


# ------------------------------------------------------------------------- search spaces


def load_space(space):
    """A search space from a name in :data:`SPACES`, a ``.toml`` file or a ``.py`` file.

    Returns
    -------
    dict
        ``{"fixed": {...}, "params": {...}}`` checked by :func:`check_space`, or, for a Python
        file, ``{"python": ABSOLUTE_PATH}`` (its ``space(trial)`` is called in each trial).

    Raises
    ------
    TuneError
        Unknown name, unreadable file, or a space that names unknown settings.
    """
    if isinstance(space, dict):
        return check_space(space, "the space")
    if space in SPACES:
        return check_space(SPACES[space], f"--space {space}")
    if not isinstance(space, str) or not space.endswith((".toml", ".py")):
        raise TuneError(f"--space must be one of {sorted(SPACES)} or a .toml or .py file, got {space!r}.")
    if not os.path.isfile(space):
        raise TuneError(f"--space {space}: no such file.")
    if space.endswith(".py"):
        python_space(os.path.abspath(space))  # fail now, not in the first trial
        return {"python": os.path.abspath(space)}
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(space, "rb") as f:
            text = tomllib.load(f)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TuneError(f"--space {space}: not a readable TOML file ({exc}).") from None
    return check_space(text, f"--space {space}")


def check_space(space, where):
    """Check a ``{"fixed", "params"}`` space; return it with only those two keys."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"data", "seed", "preset"}
    extra = sorted(set(space) - {"fixed", "params"})
    if extra or not isinstance(space.get("params", {}), dict) or not isinstance(space.get("fixed", {}), dict):
        raise TuneError(f"{where}: expected tables [fixed] and [params] only, found {extra or list(space)}.")
    fixed, params = dict(space.get("fixed", {})), dict(space.get("params", {}))
    if not params:
        raise TuneError(f"{where}: expected at least one entry under [params], found none.")
    for name in list(fixed) + list(params):
        if name not in fields and name not in SHAPE_PARAMS:
            raise TuneError(
                f"{where}: {name!r} is not a setting that can be searched; expected one of "
                f"{sorted(fields | set(SHAPE_PARAMS))}."
            )
    for name, spec in params.items():
        ok = isinstance(spec, dict) and (
            (
                set(spec) == {"choices"}
                and isinstance(spec["choices"], list)
                and spec["choices"]
                and all(isinstance(c, (bool, int, float, str)) for c in spec["choices"])
            )
            or (
                {"low", "high"} <= set(spec) <= {"low", "high", "log", "step"}
                and all(isinstance(spec[k], (int, float)) and not isinstance(spec[k], bool) for k in ("low", "high"))
                and spec["low"] < spec["high"]
                and (not spec.get("log") or spec["low"] > 0)
            )
        )
        if not ok:
            raise TuneError(
                f"{where}: params.{name} must be {{choices = [...]}} or {{low = a, high = b}} with "
                f"a < b (and a > 0 with log = true), optional step; found {spec!r}."
            )
    return {"fixed": fixed, "params": params}


def python_space(path):
    """The ``space(trial)`` function of a Python space file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("steadynet_tune_space", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise TuneError(f"--space {path}: running the file failed ({type(exc).__name__}: {exc}).") from None
    if not callable(getattr(module, "space", None)):
        raise TuneError(f"--space {path}: expected a function space(trial) returning a dict of settings, found none.")
    return module.space


def suggest(trial, space):
    """The settings of one trial: ``space``'s fixed ones plus one sample of each param.

    Returns
    -------
    dict
        TrainConfig fields (``width``/``depth`` already folded into ``hidden``).
    """
    if "python" in space:
        changes = python_space(space["python"])(trial)
        if not isinstance(changes, dict):
            raise TuneError(
                f"--space {space['python']}: space(trial) must return a dict of settings, got {type(changes).__name__}."
            )
    else:
        changes = dict(space["fixed"])
        for name, spec in space["params"].items():
            if "choices" in spec:
                changes[name] = trial.suggest_categorical(name, spec["choices"])
            elif all(isinstance(spec[k], int) for k in ("low", "high")) and isinstance(spec.get("step", 1), int):
                changes[name] = trial.suggest_int(
                    name, spec["low"], spec["high"], step=spec.get("step", 1), log=bool(spec.get("log"))
                )
            else:
                changes[name] = trial.suggest_float(
                    name, spec["low"], spec["high"], step=spec.get("step"), log=bool(spec.get("log"))
                )
    if "hidden" in changes:
        changes["hidden"] = tuple(changes["hidden"])
    if "width" in changes or "depth" in changes:
        hidden = changes.get("hidden", (30,))
        width, depth = changes.pop("width", hidden[0]), changes.pop("depth", len(hidden))
        changes["hidden"] = (int(width),) * int(depth)
    return changes


# ------------------------------------------------------------------------- the search


def tune(
    out,
    space="seed",
    *,
    trials=None,
    timeout=None,
    data=None,
    preset=None,
    epochs=None,
    seed=None,
    workers=1,
    storage=None,
    study_name=None,
    resume=False,
    report=True,
    log=None,
    **overrides,
):
    """Search training settings with Optuna; each trial is a run folder under ``out/trials``.

    Parameters
    ----------
    out : str
        The study folder (created; with ``resume=True``, the study to continue).
    space : str or dict, default="seed"
        A name in :data:`SPACES`, a ``.toml`` or ``.py`` file, or a space dict (module docstring).
    trials : int, optional
        Stop once the study holds this many finished (completed or pruned) trials, whichever
        worker ran them.
    timeout : float, optional
        Stop starting new trials after this many seconds (of this call).
    data : str, optional
        Registered name or path; default: the base config's (``mnist``).
    preset : str, optional
        Start each trial's settings from this preset (:data:`steadynet.presets.PRESETS`).
    epochs : int, optional
        Epochs per trial, default :data:`DEFAULT_EPOCHS`.
    seed : int, optional
        Seeds the sampler, and every trial's run (the same seed for all, so trials differ only
        in their settings). Default 0.
    workers : int, default=1
        Processes on this machine sharing the study, each with one BLAS thread.
    storage : str, optional
        A database URL (``postgresql://user@host/db``) whose study workers on other machines
        join; default: the journal file in ``out``.
    study_name : str, optional
        Name of the study in the storage; default: the study folder's name.
    resume : bool, default=False
        Continue the study in ``out`` with the settings it was started with (``trials``,
        ``timeout``, ``workers`` and ``storage`` may be given anew).
    report : bool, default=True
        Write ``out/report.html`` at the end (needs matplotlib; skipped with a notice without).
    log : callable(str), optional
        Receives one line per finished trial, and notices.
    **overrides
        Other :class:`TrainConfig` fields fixed for every trial (below the space's own).

    Returns
    -------
    dict
        The summary (also ``out/summary.json``): trial counts, the best trial and its config
        file, wall time.

    Raises
    ------
    TuneError, ConfigError
        Optuna missing, a bad space, a study folder in the wrong state, a trial whose settings
        are invalid.
    """
    log = log or (lambda line: None)
    optuna = require_optuna()
    if workers is None or not isinstance(workers, int) or workers < 1:
        raise TuneError(f"--workers must be an integer >= 1, got {workers!r}.")
    if trials is not None and (not isinstance(trials, int) or trials < 1):
        raise TuneError(f"--trials must be an integer >= 1, got {trials!r}.")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise TuneError(f"--timeout must be a number of seconds > 0, got {timeout!r}.")
    if resume:
        spec = read_spec(out)
        spec.update({k: v for k, v in (("trials", trials), ("timeout", timeout)) if v is not None})
        if storage is not None:
            spec["storage"] = storage
        elif spec.get("storage_redacted"):
            raise TuneError(
                f"--resume {out}: the study's storage URL held a password, which was not "
                f"saved; give it again with --storage URL."
            )
    else:
        if os.path.exists(os.path.join(out, "study.json")):
            raise TuneError(
                f"--out {out}: already holds a study; continue it with --resume {out} or choose another folder."
            )
        if trials is None and timeout is None:
            raise TuneError("give --trials N and/or --timeout SECONDS: the search needs a budget.")
        base = TrainConfig.from_preset(preset) if preset else TrainConfig()
        changes = dict(overrides, epochs=epochs or DEFAULT_EPOCHS, seed=0 if seed is None else seed)
        if data is not None:
            changes["data"] = data
        base = base.replace(**changes)
        if base.val_size < 1:
            raise ConfigError("--val-size must be >= 1 for a search: trials are compared on the validation split.")
        spec = {
            "space": load_space(space),
            "base": base.to_dict(),
            "trials": trials,
            "timeout": timeout,
            "seed": base.seed,
            "storage": storage,
            "study_name": study_name or os.path.basename(os.path.normpath(os.path.abspath(out))),
        }
        try:
            os.makedirs(os.path.join(out, TRIALS_DIR), exist_ok=True)
        except OSError as exc:
            raise TuneError(f"--out {out}: cannot create the study folder there ({exc.strerror or exc}).") from None

    started = time.perf_counter()
    study = open_study(out, spec, optuna, create=True)  # first, so that a bad --storage leaves no study.json
    if not resume:
        write_spec(out, spec)
    if resume:
        retry_unfinished(study, spec, optuna, log)
    try:
        if workers == 1:
            study = open_study(out, spec, optuna, seed_offset=(len(study.trials), 0))
            run_worker(out, spec, study, optuna, worker=0, log=log)
        else:
            run_worker_processes(out, spec, workers, log)
    except KeyboardInterrupt:
        raise Interrupted(
            f"search interrupted; every finished trial is kept in the study, continue it with "
            f"`steadynet tune --resume {out}`."
        ) from None
    return write_results(out, open_study(out, spec, optuna), spec, time.perf_counter() - started, report, log)


def read_spec(out):
    path = os.path.join(out, "study.json")
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        TrainConfig.from_dict(spec["base"])
        spec["space"] = spec["space"] if "python" in spec["space"] else check_space(spec["space"], path)
    except FileNotFoundError:
        raise TuneError(f"--resume {out}: not a study folder (expected {path}, written by steadynet tune).") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TuneError(f"{path}: not a readable study description ({type(exc).__name__}: {exc}).") from None
    return spec


def write_spec(out, spec):
    """``study.json``; a storage URL's password is never written."""
    saved = dict(spec)
    if spec.get("storage"):
        redacted = redact(spec["storage"])
        saved["storage"], saved["storage_redacted"] = redacted, redacted != spec["storage"]
    atomic_write(
        os.path.join(out, "study.json"), lambda f: f.write((json.dumps(saved, indent=2) + "\n").encode("utf-8"))
    )


def redact(url):
    """``url`` without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"))


def open_storage(out, url, optuna):
    """The journal file in ``out``, or the database at ``url`` (with heartbeats, so that a trial
    whose machine died is failed by the others and its settings retried)."""
    if not url:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(os.path.join(out, "journal.log")))
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; the test extra installs psycopg 3
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9
                retry = {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(1)}
            else:
                retry = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}
            return optuna.storages.RDBStorage(url, heartbeat_interval=20, grace_period=60, **retry)
    except Exception as exc:  # SQLAlchemy/driver errors: an unreachable or unusable server
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TuneError(
            f"--storage {redact(url)}: cannot use this database ({first}); check the URL, that "
            f"the server is up, and that its driver is installed (psycopg for PostgreSQL)."
        ) from None


def open_study(out, spec, optuna, create=False, seed_offset=(0, 0)):
    """The study in ``spec``'s storage, with a TPE sampler seeded from ``spec["seed"]`` and
    ``seed_offset``: (trials already in the study, worker index), so that neither a resumed
    study nor a second worker replays the settings already proposed."""
    import numpy as np

    seed = (
        spec["seed"]
        if not any(seed_offset)
        else int(np.random.SeedSequence([spec["seed"], *seed_offset]).generate_state(1)[0])
    )
    sampler = optuna.samplers.TPESampler(seed=seed)
    # compare with the median of earlier trials at the same epoch, from the second epoch on
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    storage = open_storage(out, spec.get("storage"), optuna)
    try:
        if create:
            return optuna.create_study(
                storage=storage,
                study_name=spec["study_name"],
                direction="maximize",
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
        return optuna.load_study(storage=storage, study_name=spec["study_name"], sampler=sampler, pruner=pruner)
    except KeyError:
        raise TuneError(f"{out}: the storage holds no study named {spec['study_name']!r}.") from None


def count(study, states, optuna, below=None):
    """Trials of ``study`` in ``states`` (names), numbered below ``below`` if given."""
    wanted = tuple(getattr(optuna.trial.TrialState, s) for s in states)
    return sum(1 for t in study.get_trials(deepcopy=False, states=wanted) if below is None or t.number < below)


def retry_unfinished(study, spec, optuna, log):
    """On resume: trials left running by a killed study are failed, and every failed trial that
    was neither a surplus nor already retried is queued again with the same settings."""
    TrialState = optuna.trial.TrialState
    if not spec.get("storage"):  # a shared database: other machines may still be running theirs
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(t.number, state=TrialState.FAIL)
            log(f"trial {t.number}: was running when the study stopped; trying its settings again")
    trials = study.get_trials(deepcopy=False)
    # retried by us on an earlier resume, or by Optuna's heartbeat callback (database storages)
    retried = {t.user_attrs.get("retry_of") for t in trials} | {t.system_attrs.get("failed_trial") for t in trials}
    for t in trials:
        if t.state == TrialState.FAIL and not t.user_attrs.get("surplus") and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)


def run_worker(out, spec, study, optuna, worker=0, log=None):
    """Run trials in this process until the study holds ``spec["trials"]`` finished ones or
    ``spec["timeout"]`` seconds pass."""
    log = log or (lambda line: None)
    goal = spec.get("trials")
    if goal and count(study, FINISHED, optuna) >= goal:
        return
    base = TrainConfig.from_dict(spec["base"])
    data = load_data(base.data, log=log)
    # the test split stays out of the search: no trial is ever measured on it
    data = Dataset(
        data.x_train, data.y_train, data.x_test[:0], data.y_test[:0], data.image_shape, data.source, data.notices
    )

    def objective(trial):
        if goal and count(study, FINISHED + ("RUNNING",), optuna, below=trial.number) >= goal:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise _Surplus()
        changes = suggest(trial, spec["space"])
        try:
            config = base.replace(**changes)
        except ConfigError as exc:
            raise exc.within(f"trial {trial.number} ({short(trial.params)})") from None
        run_dir = os.path.join(out, TRIALS_DIR, f"{trial.number:04d}")
        shutil.rmtree(run_dir, ignore_errors=True)  # a number's folder is only ever this trial's
        trial.set_user_attr("run", os.path.join(TRIALS_DIR, f"{trial.number:04d}"))
        trial.set_user_attr("worker", worker)

        def on_epoch(result):
            trial.report(result.val_accuracy, result.epoch)
            if trial.should_prune():
                raise _Pruned(result)

        started = time.perf_counter()
        try:
            result = train(config, run_dir, data, on_epoch=on_epoch)
        except _Pruned as exc:
            mark_pruned(
                run_dir,
                f"pruned at epoch {exc.args[0].epoch}: validation accuracy behind the median of earlier trials",
                exc.args[0],
            )
            log(
                f"trial {trial.number}: pruned at epoch {exc.args[0].epoch} (val acc "
                f"{exc.args[0].val_accuracy:.4f}; {short(trial.params)})"
            )
            raise optuna.TrialPruned() from None
        except DivergenceError as exc:
            trial.set_user_attr("diverged", str(exc))
            mark_pruned(run_dir, f"pruned: {exc}")
            log(f"trial {trial.number}: pruned, diverged ({short(trial.params)})")
            raise optuna.TrialPruned() from None
        value = result["epochs"][-1]["val_accuracy"]
        seconds = time.perf_counter() - started
        log(f"trial {trial.number}: val acc {value:.4f} ({short(trial.params)}) {seconds:.1f}s")
        return value

    def stop_when_enough(study, trial):
        # running trials count too: the workers running them will finish them
        if goal and count(study, FINISHED + ("RUNNING",), optuna) >= goal:
            study.stop()

    study.optimize(
        objective,
        n_trials=goal,
        timeout=spec.get("timeout"),
        callbacks=[stop_when_enough],
        catch=(_Surplus,),
        gc_after_trial=False,
    )


def short(changes):
    """The sampled settings of a trial in a few words."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in changes.items())


def mark_pruned(run_dir, reason, result=None):
    """Record in the trial's ``metrics.json`` that it was stopped by the search, with the epoch
    that decided it (``result``: the pruner stops the run before :func:`train` writes it)."""
    run = RunFolder(run_dir)
    try:
        with open(run.metrics_path, encoding="utf-8") as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        return
    if result is not None and (not metrics["epochs"] or metrics["epochs"][-1]["epoch"] < result.epoch):
        metrics["epochs"].append(result.to_dict())
    metrics.update(status="pruned", pruned=reason)
    run.write_json(run.metrics_path, metrics)


WORKER_CODE = "import sys; from steadynet.tune import worker_main; sys.exit(worker_main(sys.argv[1:]))"
BLAS_THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def run_worker_processes(out, spec, workers, log):
    """Start ``workers`` processes on the study and wait for them; each gets one BLAS thread
    (set in its environment, so before it imports NumPy) so that they do not fight for cores."""
    env = dict(os.environ, **{name: "1" for name in BLAS_THREAD_VARIABLES})
    env.pop("STEADYNET_TUNE_STORAGE", None)
    if spec.get("storage"):
        env["STEADYNET_TUNE_STORAGE"] = spec["storage"]  # the URL, password included, never on disk
    procs = [subprocess.Popen([sys.executable, "-c", WORKER_CODE, out, str(i)], env=env) for i in range(workers)]
    log(f"{workers} worker processes started on {out} (one BLAS thread each)")
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:  # the workers got the same Ctrl-C; let them record their trials
        for p in procs:
            p.wait()
        raise
    failed = [(i, c) for i, c in enumerate(codes) if c != 0]
    if failed:
        raise TuneError(
            f"worker {failed[0][0]} exited with status {failed[0][1]} (its error is printed above); "
            f"the study is intact: fix the cause and continue with `steadynet tune --resume {out}`."
        )


def worker_main(argv):
    """Entry point of a worker process: ``STUDY_DIR WORKER_INDEX``."""
    out, worker = argv[0], int(argv[1])
    try:
        optuna = require_optuna()
        spec = read_spec(out)
        spec["storage"] = os.environ.get("STEADYNET_TUNE_STORAGE") or spec.get("storage")
        study = open_study(out, spec, optuna)
        study = open_study(out, spec, optuna, seed_offset=(len(study.trials), worker + 1))
        run_worker(
            out,
            spec,
            study,
            optuna,
            worker=worker,
            log=lambda line: print(f"[worker {worker}] {line}", file=sys.stderr, flush=True),
        )
    except SteadynetError as exc:
        print(f"steadynet tune: worker {worker}: error: {exc.render(option_flag)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


# ------------------------------------------------------------------------- results


def write_results(out, study, spec, seconds, report=True, log=None):
    """``summary.json``, ``best_config.json`` and ``report.html``; returns the summary."""
    optuna = require_optuna()
    TrialState = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    states = {
        name: sum(1 for t in trials if t.state == getattr(TrialState, name) and not t.user_attrs.get("surplus"))
        for name in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
    }
    summary = {
        "study": out,
        "study_name": spec["study_name"],
        "storage": redact(spec["storage"]) if spec.get("storage") else os.path.join(out, "journal.log"),
        "trials": states,
        "diverged": sum(1 for t in trials if t.user_attrs.get("diverged")),
        "wall_seconds": seconds,
        "best": None,
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = max(complete, key=lambda t: (t.value, -t.number))
        run = os.path.join(out, best.user_attrs["run"])
        config_path = os.path.join(out, "best_config.json")
        if os.path.isfile(RunFolder(run).config_path):
            shutil.copyfile(RunFolder(run).config_path, config_path)
        summary["best"] = {
            "trial": best.number,
            "val_accuracy": best.value,
            "params": best.params,
            "run": run,
            "config": config_path,
            "rerun": f"steadynet train --config {config_path}",
        }
    write_json(os.path.join(out, "summary.json"), summary)
    try:
        if report:
            summary["report"] = write_study_report(out, study, summary, optuna)
    except ImportError:
        if log:
            log("report.html skipped: matplotlib is not installed (pip install 'steadynet[plot]')")
    return summary


def study_figures(study, optuna):
    """``[(title, caption, png bytes)]``: optimisation history, parameter importances, one slice plot
    per setting; each only when the study has enough trials for it."""
    import warnings

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    varied = {k for t in complete for k in t.params if len({repr(u.params.get(k)) for u in complete}) > 1}
    plots = [
        (
            "Optimisation history",
            "Validation accuracy of each completed trial and the best so far.",
            ovm.plot_optimization_history,
            len(complete) >= 1,
        )
    ]
    plots += [
        (
            "Parameter importances",
            "How much of the variation in validation accuracy each setting "
            "explains (fANOVA over the completed trials).",
            ovm.plot_param_importances,
            len(complete) >= 2 and bool(varied),
        )
    ]
    plots += [
        (
            "Slices",
            "Validation accuracy of each completed trial against each setting; darker dots are later trials.",
            ovm.plot_slice,
            len(complete) >= 2 and bool(varied),
        )
    ]
    figures = []
    for title, caption, plot, enough in plots:
        if not enough:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = plot(study)
            except (ValueError, RuntimeError):  # e.g. importances of a study too small to fit
                continue
        axes = list(axes.flat) if hasattr(axes, "flat") else [axes]
        fig = axes[0].figure
        for ax in axes:
            if ax.get_ylabel() == "Objective Value":
                ax.set_ylabel("validation accuracy")
        if len(axes) == 1:  # Optuna lays out the slices (and their colour bar) itself
            fig.set_size_inches(9.0, 4.0)
            fig.tight_layout()
        figures.append((title, caption, figure_png(fig)))
        plt.close(fig)
    return figures


def write_study_report(out, study, summary, optuna):
    """``out/report.html``: the study on one self-contained page (plots embedded)."""
    figures = study_figures(study, optuna)
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    best = summary["best"]
    page = [
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>steadynet study "
        f"{esc(summary['study_name'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>Study <code>{esc(summary['study_name'])}</code></h1>",
        "<p class=note>Every trial is measured on the validation split only; the test set never reaches a trial.</p>",
    ]
    cards = [(f"{k.lower()} trials", v) for k, v in summary["trials"].items()]
    cards += [
        ("best val accuracy", best and best["val_accuracy"]),
        ("best trial", best and best["trial"]),
        ("wall time (s)", summary["wall_seconds"]),
    ]
    page.append(
        "<div class=cards>" + "".join(f"<div class=card>{esc(k)}<b>{esc(v)}</b></div>" for k, v in cards) + "</div>"
    )
    if best:
        page.append(f"<p>Rerun the best trial's settings: <code>{esc(best['rerun'])}</code></p>")
    for title, caption, png in figures:
        page.append(
            f'<h2>{esc(title)}</h2><figure><img alt="{esc(title)}" src="{png_data_uri(png)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    rows, classes = [], []
    for t in trials:
        if t.user_attrs.get("surplus"):
            continue
        last = max(t.intermediate_values) if t.intermediate_values else None
        rows.append(
            [
                t.number,
                t.state.name.lower() + (" (diverged)" if t.user_attrs.get("diverged") else ""),
                t.value,
                last,
                *(t.params.get(k) for k in names),
            ]
        )
        classes.append("best" if best and t.number == best["trial"] else None)
    page.append("<h2>Trials</h2>" + table(["trial", "state", "val accuracy", "epochs", *names], rows, classes))
    page.append("</body></html>\n")
    path = os.path.join(out, "report.html")
    atomic_write(path, lambda f: f.write("\n".join(page).encode("utf-8")))
    return path
