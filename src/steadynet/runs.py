"""The run folder: its layout, and every read and write of it by name.

:class:`RunFolder` is the only place that knows where a run keeps what; the trainer writes
through it, and ``evaluate``, ``plot``, ``report``, ``serve`` and ``tune`` read through it. A
run folder holds:

- ``config.json``: the resolved configuration, the data set's description and versions, the
  augmentation trial's levels and choice (``"augmentation_trial"``, :mod:`steadynet.train.trial`),
  and each resume's changes (``"resumes"``);
- ``metrics.json``: per-epoch metrics, the final test accuracy and the test-time augmentation
  decision (``"tta"``, :mod:`steadynet.tta`, which ``evaluate`` and ``predict`` follow); the
  contract is in :mod:`steadynet.train.trainer`;
- ``model.npz``: the trained model (see :mod:`steadynet.persistence`);
- ``checkpoints/last.npz`` (at the start, after every epoch, every
  ``checkpoint_every_steps`` steps if set, and on interrupt): everything needed to resume
  exactly; ``checkpoints/best.npz``: the model of the best validation accuracy so far;
- ``divergence.json`` and ``last_finite.npz`` if training diverged;
- ``plots/*.png`` when asked for (see :func:`steadynet.report.write_run_plots`);
- ``report.html`` when asked for (see :func:`steadynet.report.write_report`);
- ``.lock``: held (``flock``) while a run writes the folder, so two runs cannot share it;
  removed when the run ends.

A new run refuses a folder that holds anything (another run's checkpoints, a model, any file
it did not make) unless it overwrites, which removes the files a run writes (``RUN_FILES``)
and nothing else. Paths in the config (``data``, ``teacher``) are stored resolved
(:func:`resolved_path`), so the run folder can be used from any working directory.

Which of the model files stands for "the run's model" is :meth:`RunFolder.model_file`'s one
order of precedence (``MODEL_FILES``); each reader names the part of it it wants (``PREFER``).
"""

import json
import os
import sys
from typing import NamedTuple

from .data.limits import regular_file
from .errors import ConfigError, ModelFileError
from .persistence import CHECKPOINT_FORMAT, MODEL_FORMAT, atomic_write, load_arrays, model_from

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.npz"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = os.path.join(CHECKPOINTS_DIR, "last.npz")
BEST_CHECKPOINT = os.path.join(CHECKPOINTS_DIR, "best.npz")
DIVERGENCE_FILE = "divergence.json"
LAST_FINITE_FILE = "last_finite.npz"
PLOTS_DIR = "plots"
REPORT_FILE = "report.html"
LOCK_FILE = ".lock"
KEPT_ON_RESUME = ("augmentation_trial",)  # config.json's records of the run's start, carried over by a resume
# what a run writes: an overwrite removes these (and nothing else); any of them marks a folder as a run's
RUN_FILES = (CONFIG_FILE, METRICS_FILE, MODEL_FILE, CHECKPOINTS_DIR, PLOTS_DIR, DIVERGENCE_FILE, LAST_FINITE_FILE)

# the run's model files, in their one order of precedence, with the format each is written in
MODEL_FILES = {
    MODEL_FILE: MODEL_FORMAT,  # the final model of a completed run
    LAST_FINITE_FILE: MODEL_FORMAT,  # the last finite weights of a diverged run
    BEST_CHECKPOINT: MODEL_FORMAT,  # the best validation epoch's model so far
    LAST_CHECKPOINT: CHECKPOINT_FORMAT,  # the latest checkpoint: the weights as training left them
}


class Choice(NamedTuple):
    """What one ``prefer`` value of :meth:`RunFolder.model_file` takes."""

    files: tuple  # the model files it takes, in MODEL_FILES order
    direct: str | tuple  # the format(s) a file named directly (not a folder) may have
    missing: str  # what a run folder holding none of ``files`` is told


NOT_FINISHED = "a run folder must hold {first}; it does not (did the run finish? checkpoints are in {checkpoints})"
PREFER = {
    # load_model: a finished run's model, nothing else
    "final": Choice((MODEL_FILE,), MODEL_FORMAT, NOT_FINISHED),
    # evaluate, gradcheck: the best model there is to measure, a checkpoint if need be
    "best": Choice(
        (MODEL_FILE, BEST_CHECKPOINT, LAST_CHECKPOINT),
        (MODEL_FORMAT, CHECKPOINT_FORMAT),
        "a run folder must hold {first} or {last}; it holds neither",
    ),
    # a live view (serve): the run as it trains, then its final model
    "latest": Choice((MODEL_FILE, LAST_CHECKPOINT), MODEL_FORMAT, NOT_FINISHED),
    # plots and report: the weights the run left, a diverged run's last finite ones before its best epoch's
    "inspect": Choice(
        (MODEL_FILE, LAST_FINITE_FILE, BEST_CHECKPOINT), MODEL_FORMAT, "the run folder holds no model file ({files})"
    ),
}


def choice(prefer):
    """``PREFER[prefer]``, or a one-line error naming the choices."""
    if prefer not in PREFER:
        raise ValueError(f"prefer must be one of {', '.join(map(repr, PREFER))}; got {prefer!r}.")
    return PREFER[prefer]


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path``, atomically (:func:`steadynet.persistence.atomic_write`)."""
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode("utf-8")))


def read_json_object(path):
    """The JSON object in ``path``; :class:`ModelFileError` naming the file if it is unreadable or not an object."""
    regular_file(path, "JSON file", ModelFileError)  # never a FIFO, which would block
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: not readable JSON ({exc}).") from None
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path}: expected a JSON object, found {type(obj).__name__}.")
    return obj


def resolved_path(path):
    """``path`` made absolute when it names an existing file or folder; names (mnist) unchanged."""
    if path is None or not os.path.exists(path):
        return path
    return os.path.abspath(path)


def either(names):
    """``"a"``, ``"a or b"``, ``"a, b or c"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class RunFolder:
    """A run folder at ``path`` (which need not exist yet): its files by name, read and written.

    Parameters
    ----------
    path : str or os.PathLike
        The folder, kept as given so that messages name it as the user did.
    """

    RUN_FILES = RUN_FILES

    def __init__(self, path):
        self.path = os.fspath(path)

    def __repr__(self):
        return f"RunFolder({self.path!r})"

    @property
    def name(self):
        """The folder's own name (``runs/seed/`` -> ``seed``), for titles."""
        return os.path.basename(os.path.normpath(self.path))

    def file(self, name):
        """The path of ``name`` (one of the layout's names, such as ``MODEL_FILE``) in this folder."""
        return os.path.join(self.path, name)

    config_path = property(lambda self: self.file(CONFIG_FILE), doc="``config.json``")
    metrics_path = property(lambda self: self.file(METRICS_FILE), doc="``metrics.json``")
    model_path = property(lambda self: self.file(MODEL_FILE), doc="``model.npz``")
    checkpoints_dir = property(lambda self: self.file(CHECKPOINTS_DIR), doc="``checkpoints/``")
    last_checkpoint = property(lambda self: self.file(LAST_CHECKPOINT), doc="``checkpoints/last.npz``")
    best_checkpoint = property(lambda self: self.file(BEST_CHECKPOINT), doc="``checkpoints/best.npz``")
    divergence_path = property(lambda self: self.file(DIVERGENCE_FILE), doc="``divergence.json``")
    last_finite_path = property(lambda self: self.file(LAST_FINITE_FILE), doc="``last_finite.npz``")
    plots_dir = property(lambda self: self.file(PLOTS_DIR), doc="``plots/``")
    report_path = property(lambda self: self.file(REPORT_FILE), doc="``report.html``")
    lock_path = property(lambda self: self.file(LOCK_FILE), doc="``.lock``")

    @classmethod
    def containing(cls, path):
        """The run folder ``path`` belongs to, or None.

        ``path`` may be the folder itself, a file in it (``model.npz``) or a checkpoint in its
        ``checkpoints/``. The folder counts as a run's when it holds ``config.json``.
        """
        path = os.path.abspath(os.fspath(path))
        if not os.path.isdir(path):
            path = os.path.dirname(path)
            if os.path.basename(path) == CHECKPOINTS_DIR:
                path = os.path.dirname(path)
        run = cls(path)
        return run if os.path.isfile(run.config_path) else None

    # ------------------------------------------------------------------ reading

    def config(self):
        """``config.json`` as a dict (``{}`` if absent); :class:`ModelFileError` naming it if it is not JSON."""
        return read_json_object(self.config_path) if os.path.exists(self.config_path) else {}

    def metrics(self):
        """``metrics.json`` as a dict; :class:`ModelFileError` if the folder or the file is missing or bad."""
        if not os.path.isdir(self.path):
            raise ModelFileError(f"{self.path}: not a run folder (no such folder).")
        if not os.path.exists(self.metrics_path):
            raise ModelFileError(
                f"{self.path}: a run folder must hold {METRICS_FILE}; it does not (did the run finish its first epoch?)."
            )
        metrics = read_json_object(self.metrics_path)
        if not isinstance(metrics.get("epochs", []), list):
            raise ModelFileError(
                f"{self.metrics_path}: 'epochs' must be a list, found {type(metrics['epochs']).__name__}."
            )
        return metrics

    def divergence(self):
        """``divergence.json`` as a dict, or None if the run did not diverge."""
        return read_json_object(self.divergence_path) if os.path.exists(self.divergence_path) else None

    def settings(self):
        """The training config recorded in ``config.json`` (its ``"config"``), or ``{}`` when
        the file is absent, unreadable or does not hold one: for readers that can do without."""
        try:
            settings = self.config().get("config")
        except ModelFileError:
            return {}
        return settings if isinstance(settings, dict) else {}

    def data_spec(self):
        """The data set the run was trained on (``config.json``'s ``config.data``), or None."""
        return self.settings().get("data")

    def standardised(self):
        """Whether the run was trained on standardised inputs (``config.standardised_inputs``)."""
        return bool(self.settings().get("standardised_inputs"))

    def tta(self):
        """The run's test-time augmentation decision (``metrics.json``'s ``"tta"``,
        :func:`steadynet.tta.tta_decision`), or None where the run records none (not finished,
        an older run, an unreadable file)."""
        try:
            record = read_json_object(self.metrics_path).get("tta") if os.path.exists(self.metrics_path) else None
        except ModelFileError:
            return None
        return record if isinstance(record, dict) else None

    def completed(self):
        """Whether the run got to its end: its model written and its metrics saying so."""
        try:
            with open(self.metrics_path) as f:
                status = json.load(f).get("status")
        except (OSError, ValueError, AttributeError):
            return False
        return status == "completed" and os.path.exists(self.model_path)

    # ------------------------------------------------------------------ the model

    def model_file(self, prefer="final", missing_ok=False):
        """The file that stands for the run's model, and the format(s) to read it as.

        The run's model files, in their one order of precedence (``MODEL_FILES``):

        1. ``model.npz``, the final model of a completed run;
        2. ``last_finite.npz``, the last finite weights of a diverged run;
        3. ``checkpoints/best.npz``, the best validation epoch's model so far;
        4. ``checkpoints/last.npz``, the latest checkpoint (a checkpoint file, not a model file).

        ``prefer`` says which of them count; the first present is taken:

        - ``"final"`` (:func:`steadynet.load`): 1 only;
        - ``"best"`` (``evaluate``, ``gradcheck``): 1, 3, 4: the best model there is to measure;
        - ``"latest"`` (``serve``, following a run as it trains): 1, 4;
        - ``"inspect"`` (plots, report): 1, 2, 3: what the run left, a diverged run's last
          finite weights before its best epoch's.

        A path that is not a folder is a model file named directly: it is returned as it is
        (``"best"`` reads it as a model file or a checkpoint).

        Returns
        -------
        (str, str or tuple of str)
            The file, and the format(s) :func:`steadynet.persistence.load_arrays` is to expect;
            ``(None, None)`` when the folder holds none of them and ``missing_ok``.

        Raises
        ------
        ModelFileError
            No such file or folder, not a regular file, or (unless ``missing_ok``) a run folder
            holding none of the files ``prefer`` takes.
        """
        names, direct_format = choice(prefer).files, choice(prefer).direct
        if not os.path.isdir(self.path):
            if not os.path.exists(self.path):
                raise ModelFileError(f"{self.path}: no such model file or run folder.")
            regular_file(self.path, "model file (.npz) or run folder", ModelFileError)
            return self.path, direct_format
        for name in names:
            if os.path.exists(self.file(name)):
                return self.file(name), MODEL_FILES[name]
        if missing_ok:
            return None, None
        raise ModelFileError(f"{self.path}: {self.no_model_file(prefer)}.")

    def no_model_file(self, prefer):
        """What a run folder holding none of the model files ``prefer`` takes is told (one clause)."""
        names, missing = choice(prefer).files, choice(prefer).missing
        return missing.format(files=either(names), first=names[0], last=names[-1], checkpoints=self.checkpoints_dir)

    def load_model(self, prefer="final", device="cpu"):
        """Load the file :meth:`model_file` picks, a model file or a checkpoint alike.

        Returns
        -------
        (MLP, str, dict)
            The model, the file it came from and the file's metadata (a checkpoint's holds the
            training config); ``(None, None, None)`` for a run folder without a model file and
            ``prefer="inspect"`` (the plots say so instead).
        """
        path, fmt = self.model_file(prefer, missing_ok=prefer == "inspect")
        if path is None:
            return None, None, None
        arrays, meta = load_arrays(path, fmt)
        return model_from(arrays, meta, path, device), path, meta

    # ------------------------------------------------------------------ writing

    def write_json(self, path_or_name, obj):
        """Write ``obj`` as JSON, atomically: a bare name (``"metrics.json"``) inside this
        folder, a path (``self.metrics_path``) as it is."""
        path = os.fspath(path_or_name)
        write_json(path if os.path.dirname(path) else self.file(path), obj)

    def prepare(self, overwrite):
        """Make the folder ready for a new run: refuse one that holds anything, unless
        ``overwrite``, which removes what a run writes (``RUN_FILES``) and nothing else."""
        import shutil

        out = self.path
        if not os.path.isdir(out):
            if os.path.exists(out):
                raise ConfigError(
                    "{out} {path}: is a file, not a folder; choose a folder for the run.", field="out", path=out
                )
            return
        present = sorted(set(os.listdir(out)) - {LOCK_FILE})
        if not present:
            return
        if not overwrite:
            kind = "a run" if set(present) & set(RUN_FILES) else "files this run did not make"
            raise ConfigError(
                f"--out {out}: already holds {kind} ({', '.join(present[:4])}"
                f"{', ...' if len(present) > 4 else ''}); continue it with --resume {out}, "
                f"replace it with --overwrite, or choose a new folder."
            )
        for name in set(present) & set(RUN_FILES):
            path = self.file(name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)

    def lock(self):
        """A context manager holding the folder's ``.lock`` while a run writes it (:class:`RunFolderLock`)."""
        return RunFolderLock(self.path)

    def record_resume(self, description, changed, state):
        """``config.json`` for a resumed run: ``description`` (the new one), with the resumes
        recorded so far in this folder's ``config.json`` and this one appended to ``resumes``.

        Parameters
        ----------
        description : dict
            The run's description as it is now (what ``config.json`` is to hold).
        changed : dict of str -> [before, after]
            The settings this resume changed.
        state : LoopState
            Where the run resumes (its ``epoch`` and ``step``).
        """
        try:
            with open(self.config_path, encoding="utf-8") as f:
                previous = json.load(f)
            previous = previous if isinstance(previous, dict) else {}
        except (OSError, ValueError):
            previous = {}
        resumes = list(previous.get("resumes", []))
        resumes.append({"epoch": state.epoch, "step": state.step, "changed": changed, "command": sys.argv})
        kept = {k: previous[k] for k in KEPT_ON_RESUME if k in previous and k not in description}
        return dict(description, **kept, resumes=resumes)


def recorded_tta(path):
    """The test-time augmentation decision recorded for the model at ``path`` (a run folder,
    or a model file), or None: only a run's ``model.npz`` has one; its checkpoints and bare
    model files were never measured."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        path = os.path.join(path, MODEL_FILE)
    run = RunFolder.containing(path)
    if run is None or path != os.path.abspath(run.model_path):
        return None
    return run.tta()


class RunFolderLock:
    """Holds an exclusive ``flock`` on ``out/.lock`` while a run writes ``out``.

    The lock dies with the process (SIGKILL included), so a stale ``.lock`` file never blocks
    a run; the file is removed on a normal exit, and so is a folder this lock created if
    nothing else was written into it. Where ``fcntl`` is missing (Windows) there is no lock.
    ``out=None`` locks nothing.
    """

    def __init__(self, out):
        self.out, self.file, self.created = out, None, False

    def __enter__(self):
        if self.out is None:
            return self
        try:
            import fcntl
        except ImportError:
            return self
        path = os.path.join(self.out, LOCK_FILE)
        try:
            self.created = not os.path.exists(self.out)
            os.makedirs(self.out, exist_ok=True)
            while True:
                f = open(path, "a+")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    f.close()
                    raise ConfigError(
                        "{out} {path}: another run is writing this folder right now; wait "
                        "for it to finish or choose a new folder.",
                        field="out",
                        path=self.out,
                    ) from None
                # the holder before us may have removed the file between our open and our lock
                if os.path.exists(path) and os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                    break
                f.close()
        except OSError as exc:
            raise ConfigError(
                "{out} {path}: cannot create the run folder there ({why}).",
                field="out",
                path=self.out,
                why=exc.strerror or exc,
            ) from None
        self.file = f
        return self

    def __exit__(self, *exc):
        if self.file is None:
            return False
        try:
            os.remove(os.path.join(self.out, LOCK_FILE))  # while still held, so no one else has it
            if self.created and not os.listdir(self.out):
                os.rmdir(self.out)
        except OSError:
            pass
        self.file.close()  # releases the lock
        return False
