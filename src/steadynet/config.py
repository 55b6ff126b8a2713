"""The configuration of a training run: one frozen dataclass, saved whole in ``config.json``.

Defaults are the seed's network (784-30-10, sigmoid hidden units, softmax and cross-entropy)
with settings that train it well; every one of them was chosen on the validation split,
never on the test set.
"""

import dataclasses
import math
import os
from dataclasses import dataclass

from .errors import ConfigError
from .functional import ACTIVATIONS
from .init import INITS
from .kernels import ENGINES, resolve_engine
from .optim import OPTIMIZERS
from .presets import PRESETS
from .schedules import SCHEDULES

# the learning rate each optimiser starts from when none is given
DEFAULT_LEARNING_RATE = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 1e-3, "adamw": 1e-3}
# full-batch gradient descent (the seed's mode) takes larger steps: one step per epoch
DEFAULT_FULL_BATCH_LEARNING_RATE = {"sgd": 1.0, "momentum": 0.5, "nesterov": 0.5, "adam": 1e-2, "adamw": 1e-2}

MAX_PARAMS = 2_000_000_000  # refuse networks whose weights alone would need > 8 GB (float32)
MAX_EPOCHS = 1_000_000  # epochs and patience: a million epochs of MNIST would take years here
MAX_COUNT = 1_000_000_000  # batch size, validation size, steps: a billion is beyond any data set that fits
DIVERGE_ACTIONS = ("stop", "recover")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    A run is reproducible bit for bit from its config on the same machine: ``seed`` fixes the
    initial weights, the validation split, the order of the batches, the shifts and the
    dropout masks.
    """

    # data
    data: str = "mnist"  # registered name or path (HDF5, NPZ, IDX folder, CSV, image folder)
    val_size: int = 5000  # images held out of the training set to choose settings and stop early
    standardised_inputs: bool = False  # inputs standardised on purpose (outside [0, 1]): keep them as they are
    # model
    hidden: tuple = (30,)  # hidden layer widths; (30,) is the seed's network
    activation: str = "sigmoid"  # hidden activation: sigmoid, tanh, relu, leaky_relu
    init: str | None = None  # None: Glorot for sigmoid/tanh, He for ReLU
    dropout: float = 0.0  # dropout rate after each hidden layer
    input_dropout: float = 0.0  # dropout rate on the input pixels
    dtype: str = "float32"  # float32 is exact enough and about 2x faster than float64
    # optimisation
    epochs: int = 150
    batch_size: object = 64  # an int, or "full" for full-batch gradient descent (the seed's mode)
    optimizer: str = "nesterov"  # sgd, momentum, nesterov, adam, adamw
    learning_rate: float | None = None  # None: DEFAULT_LEARNING_RATE (or the full-batch one)
    momentum: float = 0.9  # for momentum and nesterov
    weight_decay: float = 0.0  # L2 on weights (decoupled for adamw)
    clip_norm: float | None = None  # clip the global gradient norm to this, None: no clipping
    schedule: str = "cosine"  # constant, step, cosine, onecycle
    warmup_epochs: float = 0.0  # linear warmup, in epochs
    decay_epochs: float = 0.0  # "step" schedule: multiply by decay_factor every this many epochs
    decay_factor: float = 0.1
    label_smoothing: float = 0.0
    augment_shift: int = 1  # shift each training image by up to this many pixels (0: off)
    # warps (any of the next four non-zero: images are resampled, and the shift above becomes
    # a sub-pixel translation of up to augment_shift pixels)
    augment_rotate: float = 0.0  # largest rotation, degrees
    augment_scale: float = 0.0  # largest relative size change (0.1: 0.9x to 1.1x)
    augment_shear: float = 0.0  # largest shear, degrees
    elastic_alpha: float = 0.0  # elastic distortion strength, pixels (Simard et al. used 34)
    elastic_sigma: float = 4.0  # elastic distortion smoothness, pixels
    max_norm: float | None = None  # cap each hidden unit's incoming weight vector at this L2 norm
    ema_decay: float = 0.0  # evaluate and save an exponential moving average of the weights (0: off)
    teacher: str | None = None  # distillation: a model file or run folder whose soft outputs are also targets
    distill_temperature: float = 4.0  # softmax temperature of teacher and student in the soft loss
    distill_weight: float = 0.5  # weight of the soft loss; the labels' loss gets 1 - this
    preset: str | None = None  # the named preset the run started from (steadynet.presets), for the record
    patience: int | None = None  # early stopping: stop after this many epochs without a better val accuracy
    # running
    seed: int = 0
    device: str = "cpu"  # cpu (NumPy) or gpu (CuPy)
    on_diverge: str = "stop"  # stop, or recover (halve the learning rate and go on)
    checkpoint_every_steps: int = 0  # also checkpoint every this many steps (0: at epoch ends only)
    threads: object = "auto"  # BLAS threads while training: an int, or auto (by the step's shapes: threads.py)
    engine: str = "auto"  # the step: numpy (reference), numba (compiled: steadynet[fast]), auto (numba if installed)

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
            raise ConfigError(f"--preset must be one of {sorted(PRESETS)}, got {name!r}.")
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

    def validate(self, n_features=None):
        """Raise :class:`ConfigError` naming the first setting that is out of range.

        Every check is made before anything is allocated, and a value of the wrong type is
        reported like one out of range (configs also come from files, not only the CLI).
        Whether the network fits in memory depends on the input width: that check is made
        when ``n_features`` is given (:func:`steadynet.train` does so once the data is loaded).
        """

        def need(ok, option, rule, value):
            if not ok:
                raise ConfigError(f"--{option.replace('_', '-')} must be {rule}, got {value!r}.")

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
            one_of(self.activation, ACTIVATIONS) and self.activation != "identity",
            "activation",
            f"one of {sorted(set(ACTIVATIONS) - {'identity'})}",
            self.activation,
        )
        need(self.init is None or one_of(self.init, INITS), "init", f"one of {sorted(INITS)}", self.init)
        need(one_of(self.optimizer, OPTIMIZERS), "optimizer", f"one of {sorted(OPTIMIZERS)}", self.optimizer)
        need(one_of(self.schedule, SCHEDULES), "schedule", f"one of {list(SCHEDULES)}", self.schedule)
        need(one_of(self.dtype, ("float32", "float64")), "dtype", "float32 or float64", self.dtype)
        need(one_of(self.device, ("cpu", "gpu")), "device", "cpu or gpu", self.device)
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
        need(self.preset is None or one_of(self.preset, PRESETS), "preset", f"one of {sorted(PRESETS)}", self.preset)
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
        if n_features is None:
            return self
        # the network must fit in memory before anything is allocated: the parameters, their
        # gradient, the optimiser's scratch buffer and its state arrays, all of n_params floats
        sizes = (n_features, *self.hidden, 10)
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
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
        return self


def physical_memory():
    """Bytes of RAM on this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
