"""The configuration of a training run: one frozen dataclass, saved whole in ``config.json``,
with each setting's description and its checks.

Defaults are the seed's network (784-30-10, sigmoid hidden units, softmax and cross-entropy)
with settings that train it well; every one of them was chosen on the validation split,
never on the test set.

This module owns what a setting *is*: each field's one-line help, the option group it is shown
in, its choices and how the command line spells it live once, in the field's metadata
(:func:`setting`); ``steadynet train`` builds its options from them (:mod:`steadynet.cli.options`),
and :func:`option_flag` names a field as the command line does. It also owns the checks:
:meth:`TrainConfig.validate` (each setting's range, and with the data's shape whether the
network fits in memory) and :meth:`TrainConfig.validate_for` (the checks that need the data).
Errors name the field (``batch_size``); the command line shows the flag (``--batch-size``).
"""

import dataclasses
import math
import os
from dataclasses import dataclass

from .errors import ConfigError, need
from .functional import ACTIVATIONS
from .init import INITS
from .kernels import ENGINES, resolve_engine
from .model import count_params
from .optim import OPTIMIZERS
from .presets import PRESETS
from .schedules import SCHEDULES
from .threads import threads_setting
from .tta import SETTINGS as TTA_SETTINGS
from .tta import check_images

CENTRE_INPUTS = ("auto", "on", "off")  # steadynet/train/centring.py

# the learning rate each optimiser starts from when none is given
DEFAULT_LEARNING_RATE = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 1e-3, "adamw": 1e-3}
# full-batch gradient descent (the seed's mode) takes larger steps: one step per epoch
DEFAULT_FULL_BATCH_LEARNING_RATE = {"sgd": 1.0, "momentum": 0.5, "nesterov": 0.5, "adam": 1e-2, "adamw": 1e-2}

MAX_PARAMS = 2_000_000_000  # refuse networks whose weights alone would need > 8 GB (float32)
MAX_EPOCHS = 1_000_000  # epochs and patience: a million epochs of MNIST would take years here
MAX_COUNT = 1_000_000_000  # batch size, validation size, steps: a billion is beyond any data set that fits
DIVERGE_ACTIONS = ("stop", "recover")

# the option groups of `steadynet train --help`, in the order shown
OPTION_GROUPS = (
    "data",
    "network",
    "regularisation",
    "optimisation",
    "schedule",
    "augmentation",
    "distillation",
    "run",
)


def parse_hidden(text):
    """``hidden`` from text as the command line writes it: ``"30"`` or ``"512,256"``."""
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ConfigError(
            "{hidden} must be comma-separated integers like 30 or 512,256, got {text!r}.", field="hidden", text=text
        ) from None


def parse_batch_size(text):
    """``batch_size`` from text: an integer, or ``"full"``."""
    if text == "full":
        return "full"
    try:
        return int(text)
    except ValueError:
        raise ConfigError(
            "{batch_size} must be an integer or 'full', got {text!r}.", field="batch_size", text=text
        ) from None


def setting(default, help, group, *, flags=None, choices=None, metavar=None, type=None, parse=None):
    """A :class:`TrainConfig` field with its description, kept in the field's metadata.

    Parameters
    ----------
    default
        The field's default.
    help : str
        One line saying what the setting does (``--help`` adds ``(default: ...)`` unless the
        line already says what the default is).
    group : str
        The option group it is listed in (one of :data:`OPTION_GROUPS`).
    flags : tuple of str, optional
        The command line's spellings, the first shown first; default ``("--field-name",)``.
    choices : sequence of str, optional
        The names the setting takes, from the table that defines them.
    metavar : str, optional
        The value's name in ``--help`` (default: from the first flag, e.g. ``LR``).
    type : callable, optional
        Text to value as the command line reads it (default: the field's type, e.g. ``int``).
    parse : callable, optional
        Text to value, raising :class:`ConfigError` for text it cannot read; used where a
        mistake should be reported as a bad setting rather than as a usage error.
    """
    meta = {"help": help, "group": group, "flags": flags, "choices": choices, "metavar": metavar}
    return dataclasses.field(default=default, metadata={**meta, "type": type, "parse": parse})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    A run is reproducible bit for bit from its config on the same machine: ``seed`` fixes the
    initial weights, the validation split, the order of the batches, the shifts and the
    dropout masks. Each field's help is in its metadata (``steadynet train --help`` shows it).
    """

    data: str = setting(
        "mnist",
        "data set: a registered name (mnist, fashion-mnist) or a path: HDF5, NPZ, IDX folder, CSV "
        "file/folder, image folder (see docs/data.md)",
        "data",
        metavar="PATH|NAME",
    )
    val_size: int = setting(5000, "training images held out for validation", "data")
    standardised_inputs: bool = setting(
        False,
        "the inputs are standardised on purpose (e.g. mean 0, std 1 per feature): keep values outside "
        "[0, 1] as they are instead of refusing them",
        "data",
        flags=("--standardised-inputs", "--standardized-inputs"),
    )
    centre_inputs: str = setting(
        "auto",
        "train the first layer as if each input feature had mean 0 (steadynet/train/centring.py); auto: "
        "when the inputs' mean exceeds their spread, as on a light ground",
        "data",
        flags=("--centre-inputs", "--center-inputs"),
        choices=CENTRE_INPUTS,
    )
    hidden: tuple = setting(
        (30,), "hidden layer widths, comma-separated, e.g. 30 or 512,256", "network", parse=parse_hidden
    )  # (30,) is the seed's network
    activation: str = setting(
        "sigmoid", "hidden activation", "network", choices=tuple(sorted(set(ACTIVATIONS) - {"identity"}))
    )
    init: str | None = setting(
        None,
        "weight init (default: glorot_uniform for sigmoid/tanh, he_normal for ReLU)",
        "network",
        choices=tuple(sorted(INITS)),
    )
    dropout: float = setting(0.0, "dropout rate after each hidden layer", "regularisation")
    input_dropout: float = setting(0.0, "dropout rate on the input pixels", "regularisation")
    dtype: str = setting(
        "float32", "floating-point type of weights and arithmetic", "network", choices=("float32", "float64")
    )  # float32 is exact enough and about 2x faster than float64
    epochs: int = setting(150, "passes over the training set", "optimisation")
    batch_size: object = setting(
        64,
        "samples per step, or 'full' for full-batch gradient descent",
        "optimisation",
        flags=("--batch-size", "--batch"),
        parse=parse_batch_size,
    )
    optimizer: str = setting(
        "nesterov",
        "update rule",
        "optimisation",
        flags=("--optimizer", "--optimiser"),
        choices=tuple(sorted(OPTIMIZERS)),
    )
    learning_rate: float | None = setting(
        None,
        "learning rate (default: the optimiser's own: sgd 0.1, momentum/nesterov 0.05, adam/adamw 0.001; "
        "10x that with --batch-size full)",
        "optimisation",
        flags=("--lr", "--learning-rate"),
    )  # None: DEFAULT_LEARNING_RATE (or the full-batch one)
    momentum: float = setting(0.9, "momentum coefficient for momentum/nesterov", "optimisation")
    weight_decay: float = setting(0.0, "L2 weight decay on weights (decoupled for adamw)", "regularisation")
    clip_norm: float | None = setting(
        None, "clip the global gradient norm to this value (default: no clipping)", "optimisation"
    )
    schedule: str = setting("cosine", "learning-rate schedule", "schedule", choices=SCHEDULES)
    warmup_epochs: float = setting(0.0, "linear learning-rate warmup, in epochs", "schedule")
    decay_epochs: float = setting(0.0, "step schedule: decay every this many epochs", "schedule")
    decay_factor: float = setting(0.1, "step schedule: multiply the rate by this", "schedule")
    label_smoothing: float = setting(0.0, "label smoothing in [0, 1)", "regularisation")
    augment_shift: int = setting(1, "shift training images by up to this many pixels (0: off)", "augmentation")
    # warps (any of the next four non-zero: images are resampled, and the shift above becomes
    # a sub-pixel translation of up to augment_shift pixels)
    augment_rotate: float = setting(0.0, "rotate training images by up to this many degrees", "augmentation")
    augment_scale: float = setting(
        0.0, "rescale training images by up to this fraction (0.1: 0.9x-1.1x)", "augmentation"
    )
    augment_shear: float = setting(0.0, "shear training images by up to this many degrees", "augmentation")
    elastic_alpha: float = setting(
        0.0, "elastic distortion strength in pixels (0: off; Simard et al.: 34)", "augmentation"
    )
    elastic_sigma: float = setting(4.0, "elastic distortion smoothness in pixels", "augmentation")
    augment_trial: int = setting(
        0,
        "first train this many epochs at each augmentation level up to the one set (none, shifts, affine, "
        "elastic) and keep the strongest that does not lower validation accuracy (0: off; steadynet/train/trial.py)",
        "augmentation",
        metavar="EPOCHS",
    )
    tta: str = setting(
        "off",
        "test-time augmentation: average the probabilities over each image and its 4 one-pixel shifts "
        "(steadynet/tta.py); auto: where that beats plain on validation by more than a standard error",
        "augmentation",
        choices=TTA_SETTINGS,
    )  # off: a run is tested as it always was; the presets take auto
    max_norm: float | None = setting(
        None, "cap each hidden unit's incoming weight vector at this L2 norm (default: no cap)", "regularisation"
    )
    ema_decay: float = setting(
        0.0,
        "validate, test and save a moving average of the weights with this decay per step, e.g. 0.999 (0: off)",
        "optimisation",
    )
    teacher: str | None = setting(
        None,
        "distil from this model file or run folder: its softened outputs join the labels as targets (default: none)",
        "distillation",
    )
    distill_temperature: float = setting(4.0, "softmax temperature of the distillation loss", "distillation")
    distill_weight: float = setting(0.5, "weight of the teacher's soft targets (labels: 1 - this)", "distillation")
    preset: str | None = setting(
        None,
        "start from a named bundle of settings (docs/accuracy.md): seed (784-30-10 sigmoid, at its best), "
        "fast (about a minute), best (under 20 minutes)",
        "run",
        choices=tuple(sorted(PRESETS)),
    )  # recorded in config.json: the preset the run started from
    patience: int | None = setting(
        None, "early stopping: epochs without a better validation accuracy (default: off)", "regularisation"
    )
    seed: int = setting(0, "seed for every random choice", "run")
    device: str = setting("cpu", "cpu (NumPy) or gpu (CuPy)", "run", choices=("cpu", "gpu"))
    on_diverge: str = setting(
        "stop", "stop, or recover (halve the learning rate and go on)", "run", choices=DIVERGE_ACTIONS
    )
    checkpoint_every_steps: int = setting(
        0, "also write checkpoints/last.npz every this many steps (0: each epoch only)", "run"
    )
    threads: object = setting(
        "auto",
        "BLAS threads while training: a number, or auto (one on small networks, more where the matrix "
        "products gain; recorded in config.json)",
        "run",
        type=threads_setting,
    )
    engine: str = setting(
        "auto",
        "the training step: numpy is the reference, numba is compiled (needs steadynet[fast]), auto takes "
        "numba where installed",
        "run",
        choices=ENGINES,
    )

    def resolved_learning_rate(self):
        """The learning rate actually used (the default of the optimiser when None)."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        table = DEFAULT_FULL_BATCH_LEARNING_RATE if self.batch_size == "full" else DEFAULT_LEARNING_RATE
        return table[self.optimizer]

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_preset(cls, name, **changes):
        """The settings of preset ``name`` (:data:`steadynet.presets.PRESETS`), with ``changes``
        applied over them; the preset's name is recorded in the ``preset`` field."""
        if name not in PRESETS:
            need(False, "preset", f"one of {sorted(PRESETS)}", name)
        return cls(**{**PRESETS[name], "preset": name, **changes}).validate()

    @classmethod
    def from_dict(cls, d):
        """Build from a dict such as ``config.json``; unknown keys are refused."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object of settings, got {type(d).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known keys are {sorted(names)}.")
        d = dict(d)
        if isinstance(d.get("hidden"), list):
            d["hidden"] = tuple(d["hidden"])
        return cls(**d).validate()

    def warps(self):
        """Whether the images are resampled (rotation, scale, shear or elastic distortion)."""
        return bool(self.augment_rotate or self.augment_scale or self.augment_shear or self.elastic_alpha)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes).validate()

    def validate(self, n_features=None, n_classes=None, n_train=None, image_shape=None, source="the data"):
        """Raise :class:`ConfigError` naming the first setting that is out of range; return self.

        Every check is made before anything is allocated, and a value of the wrong type is
        reported like one out of range (configs also come from files, not only the CLI).
        The checks that depend on the data are made for what is given of it (:meth:`validate_for`
        gives all of it, as :func:`steadynet.train` does once the data is loaded):

        - ``n_features`` and ``n_classes``: whether the network fits in memory;
        - ``n_train`` (training samples before the validation split): ``val_size`` and ``batch_size``;
        - ``image_shape`` (one sample's shape; ``source`` names the data in the message):
          ``augment_shift`` and the warps.
        """

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def is_real(v):  # a finite int or float
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def one_of(v, choices):
            return isinstance(v, str) and v in choices

        need(isinstance(self.data, str) and self.data != "", "data", "a path or a registered name", self.data)
        need(
            isinstance(self.standardised_inputs, bool), "standardised_inputs", "true or false", self.standardised_inputs
        )
        need(
            one_of(self.centre_inputs, CENTRE_INPUTS),
            "centre_inputs",
            f"one of {list(CENTRE_INPUTS)}",
            self.centre_inputs,
        )
        need(is_int(self.epochs) and self.epochs >= 1, "epochs", "an integer >= 1", self.epochs)
        need(
            self.batch_size == "full" or (is_int(self.batch_size) and self.batch_size >= 1),
            "batch_size",
            "an integer >= 1 or 'full'",
            self.batch_size,
        )
        need(is_int(self.val_size) and self.val_size >= 0, "val_size", "an integer >= 0", self.val_size)
        hidden = self.hidden if isinstance(self.hidden, tuple) else ()
        need(
            isinstance(self.hidden, tuple)
            and len(hidden) <= 64
            and all(is_int(h) and 1 <= h <= 1_000_000 for h in hidden),
            "hidden",
            "comma-separated widths from 1 to 1000000 (at most 64 layers)",
            ",".join(map(str, hidden)) if hidden else self.hidden,
        )
        need(
            one_of(self.activation, choices_of("activation")),
            "activation",
            f"one of {choices_of('activation')}",
            self.activation,
        )
        need(self.init is None or one_of(self.init, INITS), "init", f"one of {choices_of('init')}", self.init)
        need(one_of(self.optimizer, OPTIMIZERS), "optimizer", f"one of {choices_of('optimizer')}", self.optimizer)
        need(one_of(self.schedule, SCHEDULES), "schedule", f"one of {choices_of('schedule')}", self.schedule)
        need(one_of(self.dtype, choices_of("dtype")), "dtype", "float32 or float64", self.dtype)
        need(one_of(self.device, choices_of("device")), "device", "cpu or gpu", self.device)
        need(one_of(self.on_diverge, DIVERGE_ACTIONS), "on_diverge", f"one of {list(DIVERGE_ACTIONS)}", self.on_diverge)
        lr = self.learning_rate
        need(lr is None or (is_real(lr) and lr > 0), "learning_rate", "a finite number > 0", lr)
        need(is_real(self.momentum) and 0 <= self.momentum < 1, "momentum", "in [0, 1)", self.momentum)
        need(
            is_real(self.weight_decay) and self.weight_decay >= 0,
            "weight_decay",
            "a finite number >= 0",
            self.weight_decay,
        )
        need(
            self.clip_norm is None or (is_real(self.clip_norm) and self.clip_norm > 0),
            "clip_norm",
            "a finite number > 0",
            self.clip_norm,
        )
        need(is_real(self.dropout) and 0 <= self.dropout < 1, "dropout", "in [0, 1)", self.dropout)
        need(
            is_real(self.input_dropout) and 0 <= self.input_dropout < 1,
            "input_dropout",
            "in [0, 1)",
            self.input_dropout,
        )
        need(
            is_real(self.label_smoothing) and 0 <= self.label_smoothing < 1,
            "label_smoothing",
            "in [0, 1)",
            self.label_smoothing,
        )
        need(
            is_int(self.augment_shift) and 0 <= self.augment_shift <= 8,
            "augment_shift",
            "an integer from 0 to 8 (pixels)",
            self.augment_shift,
        )
        need(
            is_int(self.augment_trial) and 0 <= self.augment_trial <= 100,
            "augment_trial",
            "an integer from 0 to 100 (epochs)",
            self.augment_trial,
        )
        need(
            not self.augment_trial or self.val_size > 0,
            "augment_trial",
            "0 without a validation split: the trial compares validation accuracies",
            self.augment_trial,
        )
        need(one_of(self.tta, TTA_SETTINGS), "tta", f"one of {list(TTA_SETTINGS)}", self.tta)
        for name in ("augment_rotate", "augment_shear"):
            need(
                is_real(getattr(self, name)) and 0 <= getattr(self, name) <= 45,
                name,
                "in [0, 45] (degrees)",
                getattr(self, name),
            )
        need(
            is_real(self.augment_scale) and 0 <= self.augment_scale < 1,
            "augment_scale",
            "in [0, 1)",
            self.augment_scale,
        )
        need(
            is_real(self.elastic_alpha) and 0 <= self.elastic_alpha <= 100,
            "elastic_alpha",
            "in [0, 100] (pixels)",
            self.elastic_alpha,
        )
        need(
            is_real(self.elastic_sigma) and 0.5 <= self.elastic_sigma <= 20,
            "elastic_sigma",
            "in [0.5, 20] (pixels)",
            self.elastic_sigma,
        )
        need(
            self.max_norm is None or (is_real(self.max_norm) and self.max_norm > 0),
            "max_norm",
            "a finite number > 0",
            self.max_norm,
        )
        need(is_real(self.ema_decay) and 0 <= self.ema_decay < 1, "ema_decay", "in [0, 1) (0: off)", self.ema_decay)
        need(
            self.teacher is None or (isinstance(self.teacher, str) and self.teacher != ""),
            "teacher",
            "a model file or run folder",
            self.teacher,
        )
        need(
            is_real(self.distill_temperature) and 0 < self.distill_temperature <= 100,
            "distill_temperature",
            "in (0, 100]",
            self.distill_temperature,
        )
        need(
            is_real(self.distill_weight) and 0 <= self.distill_weight <= 1,
            "distill_weight",
            "in [0, 1]",
            self.distill_weight,
        )
        need(
            self.preset is None or one_of(self.preset, PRESETS), "preset", f"one of {choices_of('preset')}", self.preset
        )
        need(
            is_real(self.warmup_epochs) and 0 <= self.warmup_epochs <= self.epochs,
            "warmup_epochs",
            f"in [0, epochs={self.epochs}]",
            self.warmup_epochs,
        )
        need(is_real(self.decay_epochs) and self.decay_epochs >= 0, "decay_epochs", ">= 0", self.decay_epochs)
        need(is_real(self.decay_factor) and 0 < self.decay_factor <= 1, "decay_factor", "in (0, 1]", self.decay_factor)
        need(
            self.patience is None or (is_int(self.patience) and self.patience >= 1),
            "patience",
            "an integer >= 1",
            self.patience,
        )
        need(is_int(self.seed) and 0 <= self.seed < 2**63, "seed", "an integer from 0 to 2**63 - 1", self.seed)
        need(
            is_int(self.checkpoint_every_steps) and self.checkpoint_every_steps >= 0,
            "checkpoint_every_steps",
            "an integer >= 0 (0: checkpoint at the end of each epoch only)",
            self.checkpoint_every_steps,
        )
        need(
            self.threads == "auto" or (is_int(self.threads) and 1 <= self.threads <= 1024),
            "threads",
            "'auto' or an integer from 1 to 1024",
            self.threads,
        )
        need(one_of(self.engine, ENGINES), "engine", f"one of {list(ENGINES)}", self.engine)
        resolve_engine(self)  # --engine numba: numba installed, and covering every setting used
        # absurd integers (--epochs 100000000000000000000000) are refused before anything starts
        for name, top in (
            ("epochs", MAX_EPOCHS),
            ("patience", MAX_EPOCHS),
            ("batch_size", MAX_COUNT),
            ("val_size", MAX_COUNT),
            ("checkpoint_every_steps", MAX_COUNT),
        ):
            value = getattr(self, name)
            need(not is_int(value) or value <= top, name, f"at most {top:,}", value)
        if n_features is not None and n_classes is not None:
            self._validate_memory(n_features, n_classes)
        if n_train is not None:
            self._validate_split(n_train)
        if image_shape is not None:
            self._validate_augmentation(tuple(image_shape), source)
        return self

    def validate_for(self, data):
        """:meth:`validate` against a loaded :class:`~steadynet.data.Dataset`: its input width,
        classes, training-set size and image shape; returns self."""
        return self.validate(
            n_features=data.n_features,
            n_classes=data.n_classes,
            n_train=data.x_train.shape[0],
            image_shape=data.image_shape,
            source=data.source,
        )

    def _validate_memory(self, n_features, n_classes):
        """The network must fit in memory before anything is allocated: the parameters, their
        gradient, the optimiser's scratch buffer and its state arrays, all of n_params floats."""
        n_params = count_params((n_features, *self.hidden, n_classes))
        width = ",".join(map(str, self.hidden))
        need(
            n_params <= MAX_PARAMS,
            "hidden",
            f"small enough to fit in memory (at most {MAX_PARAMS:,} parameters, this network has {n_params:,})",
            width,
        )
        copies = 3 + len(OPTIMIZERS[self.optimizer].state_names)
        needed, available = n_params * copies * (4 if self.dtype == "float32" else 8), physical_memory()
        need(
            available is None or needed <= available,
            "hidden",
            f"small enough to fit in memory ({self.optimizer} in {self.dtype} needs {needed / 2**30:.1f} GiB "
            f"for this network's parameters, gradient and optimiser state; this machine has "
            f"{(available or 0) / 2**30:.1f} GiB)",
            width,
        )

    def _validate_split(self, n_train):
        """The validation split leaves training samples, and a batch is at most all of them."""
        need(self.val_size < n_train, "val_size", f"smaller than the training set ({n_train} images)", self.val_size)
        n_left = n_train - self.val_size
        if self.batch_size != "full" and self.batch_size > n_left:
            raise ConfigError(
                "{batch_size} must be at most the number of training images ({n} after the validation split), "
                "got {value}; use {batch_size} full for full-batch training.",
                field="batch_size",
                n=n_left,
                value=self.batch_size,
            )

    def _validate_augmentation(self, image_shape, source):
        """Shifts need 2-D images larger than the shift; warps need 2-D images; so does
        ``tta`` on (auto means off without them)."""
        check_images(self.tta, image_shape, source)
        need(
            not self.augment_shift or (len(image_shape) == 2 and self.augment_shift < min(image_shape)),
            "augment_shift",
            f"0 or less than the image's height and width (images of {source} have shape {image_shape})",
            self.augment_shift,
        )
        if self.warps() and len(image_shape) != 2:
            warps = ("augment_rotate", "augment_scale", "augment_shear", "elastic_alpha")
            raise ConfigError(
                "{augment_rotate}/{augment_scale}/{augment_shear}/{elastic_alpha} need images (2-D samples), "
                "but {source} holds samples of shape {shape}.",
                field=next(name for name in warps if getattr(self, name)),
                source=source,
                shape=image_shape,
            )


def option_fields():
    """The :class:`TrainConfig` fields, in their order, each with its description (:func:`setting`)."""
    return dataclasses.fields(TrainConfig)


def option_metadata(name):
    """Field ``name``'s description: ``help``, ``group``, ``flags``, ``choices``, ... (:func:`setting`)."""
    return TrainConfig.__dataclass_fields__[name].metadata


def choices_of(name):
    """The names field ``name`` takes (e.g. ``choices_of("activation")``), as a list."""
    return list(option_metadata(name)["choices"])


def option_flags(name):
    """The command line's spellings of field ``name``, the first shown first in ``--help``."""
    f = TrainConfig.__dataclass_fields__.get(name)
    return (f and f.metadata.get("flags")) or ("--" + name.replace("_", "-"),)


def option_flag(name):
    """How the command line names setting ``name`` in a message: its long flag, the field's name
    with dashes (``batch_size`` -> ``--batch-size``, ``learning_rate`` -> ``--learning-rate``,
    which ``--lr`` abbreviates) where that is one of its spellings, else its first flag. Any
    other name (a command's own setting, ``out`` -> ``--out``) is written the same way.

    Pass it to :meth:`steadynet.errors.SteadynetError.render` to show an error as the command
    line does.
    """
    long = "--" + name.replace("_", "-")
    flags = option_flags(name)
    return long if long in flags else flags[0]


def physical_memory():
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
