"""``steadynet train``: train an MLP and write a run folder."""

import dataclasses
import os
import sys
import time

from ..config import TrainConfig
from ..errors import ConfigError
from ..presets import PRESETS
from ..threads import threads_setting
from .app import add_common, print_json

DEFAULTS = TrainConfig()

# option -> (TrainConfig field, type, help, group). Defaults shown in --help come from TrainConfig,
# choices from the tables the config is validated against.
OPTIONS = {
    "--hidden": ("hidden", "widths", "hidden layer widths, comma-separated, e.g. 30 or 512,256", "network"),
    "--activation": ("activation", str, "hidden activation", "network"),
    "--init": ("init", str, "weight init (default: glorot_uniform for sigmoid/tanh, he_normal for ReLU)", "network"),
    "--dropout": ("dropout", float, "dropout rate after each hidden layer", "network"),
    "--input-dropout": ("input_dropout", float, "dropout rate on the input pixels", "network"),
    "--max-norm": ("max_norm", float, "cap each hidden unit's incoming weight vector at this L2 norm", "network"),
    "--dtype": ("dtype", str, "floating-point type of weights and arithmetic", "network"),
    "--epochs": ("epochs", int, "passes over the training set", "optimisation"),
    "--batch-size": (
        "batch_size",
        "batch",
        "samples per step, or 'full' for full-batch gradient descent",
        "optimisation",
    ),
    "--optimizer": ("optimizer", str, "update rule", "optimisation"),
    "--lr": (
        "learning_rate",
        float,
        "learning rate (default: the optimiser's own: sgd 0.1, momentum/nesterov "
        "0.05, adam/adamw 0.001; 10x that with --batch-size full)",
        "optimisation",
    ),
    "--momentum": ("momentum", float, "momentum coefficient for momentum/nesterov", "optimisation"),
    "--weight-decay": ("weight_decay", float, "L2 weight decay on weights (decoupled for adamw)", "optimisation"),
    "--clip-norm": (
        "clip_norm",
        float,
        "clip the global gradient norm to this value (default: no clipping)",
        "optimisation",
    ),
    "--schedule": ("schedule", str, "learning-rate schedule", "optimisation"),
    "--warmup-epochs": ("warmup_epochs", float, "linear learning-rate warmup, in epochs", "optimisation"),
    "--decay-epochs": ("decay_epochs", float, "step schedule: decay every this many epochs", "optimisation"),
    "--decay-factor": ("decay_factor", float, "step schedule: multiply the rate by this", "optimisation"),
    "--label-smoothing": ("label_smoothing", float, "label smoothing in [0, 1)", "optimisation"),
    "--ema-decay": (
        "ema_decay",
        float,
        "validate, test and save a moving average of the weights with this decay per step, e.g. 0.999 (0: off)",
        "optimisation",
    ),
    "--teacher": (
        "teacher",
        str,
        "distil from this model file or run folder: its softened outputs join the labels as targets (default: none)",
        "optimisation",
    ),
    "--distill-temperature": (
        "distill_temperature",
        float,
        "softmax temperature of the distillation loss",
        "optimisation",
    ),
    "--distill-weight": (
        "distill_weight",
        float,
        "weight of the teacher's soft targets (labels: 1 - this)",
        "optimisation",
    ),
    "--augment-shift": (
        "augment_shift",
        int,
        "shift training images by up to this many pixels (0: off)",
        "augmentation",
    ),
    "--augment-rotate": ("augment_rotate", float, "rotate training images by up to this many degrees", "augmentation"),
    "--augment-scale": (
        "augment_scale",
        float,
        "rescale training images by up to this fraction (0.1: 0.9x-1.1x)",
        "augmentation",
    ),
    "--augment-shear": ("augment_shear", float, "shear training images by up to this many degrees", "augmentation"),
    "--elastic-alpha": (
        "elastic_alpha",
        float,
        "elastic distortion strength in pixels (0: off; Simard et al.: 34)",
        "augmentation",
    ),
    "--elastic-sigma": ("elastic_sigma", float, "elastic distortion smoothness in pixels", "augmentation"),
    "--val-size": ("val_size", int, "training images held out for validation", "data"),
    "--patience": (
        "patience",
        int,
        "early stopping: epochs without a better validation accuracy (default: off)",
        "run",
    ),
    "--device": ("device", str, "cpu (NumPy) or gpu (CuPy)", "run"),
    "--on-diverge": ("on_diverge", str, "stop, or recover (halve the learning rate and go on)", "run"),
    "--checkpoint-every-steps": (
        "checkpoint_every_steps",
        int,
        "also write checkpoints/last.npz every this many steps (0: each epoch only)",
        "run",
    ),
    "--threads": (
        "threads",
        threads_setting,
        "BLAS threads while training: a number, or auto (one on small networks, more where the "
        "matrix products gain; recorded in config.json)",
        "run",
    ),
    "--engine": (
        "engine",
        str,
        "the training step: numpy is the reference, numba is compiled (needs "
        "steadynet[fast]), auto takes numba where installed",
        "run",
    ),
}

# other spellings accepted for an option (the docs' British spelling, the long form)
ALIASES = {"--lr": ("--learning-rate",), "--optimizer": ("--optimiser",), "--batch-size": ("--batch",)}

GROUPS = {
    "data": "data",
    "network": "network",
    "optimisation": "optimisation",
    "augmentation": "augmentation",
    "run": "run",
}


def option_choices():
    """The allowed values of the options that take a name, from the tables that define them."""
    from ..config import DIVERGE_ACTIONS
    from ..functional import ACTIVATIONS
    from ..init import INITS
    from ..kernels import ENGINES
    from ..optim import OPTIMIZERS
    from ..schedules import SCHEDULES

    return {
        "activation": sorted(set(ACTIVATIONS) - {"identity"}),
        "init": sorted(INITS),
        "optimizer": sorted(OPTIMIZERS),
        "schedule": list(SCHEDULES),
        "dtype": ["float32", "float64"],
        "device": ["cpu", "gpu"],
        "on_diverge": list(DIVERGE_ACTIONS),
        "engine": list(ENGINES),
    }


def add_training_options(p, skip_groups=(), skip=()):
    """Add the TrainConfig options to ``p`` in titled groups (leaving out the groups and options
    named in ``skip_groups`` and ``skip``); returns the groups by key."""
    groups = {key: p.add_argument_group(f"{title} options") for key, title in GROUPS.items() if key not in skip_groups}
    choices = option_choices()
    for flag, (field, kind, text, group) in OPTIONS.items():
        if group in skip_groups or flag in skip:
            continue
        default = getattr(DEFAULTS, field)
        shown = ",".join(map(str, default)) if field == "hidden" else default
        if default is not None and "(default:" not in text:
            text = f"{text} (default: {shown})"
        groups[group].add_argument(
            flag,
            *ALIASES.get(flag, ()),
            dest=field,
            default=None,
            metavar=flag[2:].replace("-", "_").upper() if field not in choices else None,
            choices=choices.get(field),
            type=str if kind in ("widths", "batch") else kind,
            help=text,
        )
    return groups


def parse_widths(text):
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ConfigError(f"--hidden must be comma-separated integers like 30 or 512,256, got {text!r}.") from None
    return widths


def parse_batch(text):
    if text == "full":
        return "full"
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--batch-size must be an integer or 'full', got {text!r}.") from None


def add_parser(sub):
    p = sub.add_parser(
        "train",
        help="train a network and write a run folder",
        usage="steadynet train [--data PATH|NAME] [--out DIR] [--config FILE] [options]",
        description="Train an MLP. The defaults are the seed's 784-30-10 sigmoid network "
        "with settings that take it past 97% test accuracy on MNIST. Settings come "
        "from, in increasing priority: the defaults, --preset, --config FILE, and "
        "the options given.",
    )
    groups = add_training_options(p)
    add_common(groups["data"], data=True, json_flag=False)
    add_standardised_flag(groups["data"])
    add_common(groups["run"], data=False, out=True, seed=True, json_flag=False)
    groups["run"].add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="start from a named bundle of settings (docs/accuracy.md): seed (784-30-10 "
        "sigmoid, at its best), fast (about a minute), best (under 20 minutes)",
    )
    groups["run"].add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="read settings from a TOML file (keys as the options, e.g. hidden = [512], "
        'optimizer = "adam") or a run\'s config.json (or its folder), to rerun '
        "or vary it; options given explicitly override it",
    )
    groups["run"].add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue a run from its last checkpoint; --epochs N extends a finished "
        "run, --lr and --patience may change (recorded in config.json)",
    )
    groups["run"].add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its model, metrics, checkpoints and plots are deleted first)",
    )
    groups["run"].add_argument(
        "--quiet",
        action="store_true",
        help="plain per-epoch lines instead of a live progress line, and no summary table",
    )
    groups["run"].add_argument("--no-plots", action="store_true", help="do not draw the run's plots at the end")
    groups["run"].add_argument(
        "--serve",
        action="store_true",
        help="serve this run's live page (as steadynet serve) on 127.0.0.1 at a free "
        "port, printed on start; it stays up after training until Ctrl-C",
    )
    groups["run"].add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.set_defaults(run=run)


def add_standardised_flag(group):
    group.add_argument(
        "--standardised-inputs",
        "--standardized-inputs",
        dest="standardised_inputs",
        action="store_true",
        default=None,
        help="the inputs are standardised on purpose (e.g. mean 0, std 1 per feature): keep "
        "values outside [0, 1] as they are instead of refusing them",
    )


def read_config_file(path):
    """The settings in a TOML file or a run's ``config.json`` (or run folder), as a dict of fields.

    TOML keys may be written as the options are (``batch-size``) or as the fields
    (``batch_size``); a ``[train]`` table, if present, is read instead of the top level.
    """
    import json

    where = f"--config {path}"
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
        where = f"--config {path}"
    if not os.path.isfile(path):
        raise ConfigError(f"{where}: no such file (expected a .toml file, a run's config.json or a run folder).")
    try:
        with open(path, "rb") as f:
            raw = f.read(1_000_001)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc}).") from None
    if len(raw) > 1_000_000:
        raise ConfigError(f"{where}: larger than 1 MB; a config file is a few lines.")
    if path.endswith(".json"):
        try:
            d = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc}).") from None
        if isinstance(d, dict) and isinstance(d.get("config"), dict):  # a run's config.json
            d = d["config"]
    else:
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            d = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{where}: not valid TOML ({exc}).") from None
        if isinstance(d.get("train"), dict):
            d = d["train"]
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table of settings, found {type(d).__name__}.")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    renamed = {"lr": "learning_rate", "optimiser": "optimizer"}
    out = {}
    for key, value in d.items():
        name = renamed.get(key.replace("-", "_"), key.replace("-", "_"))
        if name not in fields:
            import difflib

            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys are {sorted(fields)}"
            raise ConfigError(f"{where}: unknown setting {key!r}{hint}")
        if name == "hidden" and isinstance(value, int):
            value = [value]
        out[name] = tuple(value) if name == "hidden" and isinstance(value, list) else value
    if (
        isinstance(out.get("data"), str)
        and not os.path.isabs(out["data"])
        and os.path.exists(os.path.join(os.path.dirname(os.path.abspath(path)), out["data"]))
    ):
        out["data"] = os.path.join(os.path.dirname(os.path.abspath(path)), out["data"])  # relative to the file
    return out


def config_from_args(args):
    """A TrainConfig from the defaults, the preset, the --config file and the options given."""
    changes = {}
    for flag, (field, kind, *_) in OPTIONS.items():
        value = getattr(args, field, None)
        if value is None:
            continue
        if kind == "widths":
            value = parse_widths(value)
        elif kind == "batch":
            value = parse_batch(value)
        changes[field] = value
    if args.data is not None:
        changes["data"] = args.data
    if getattr(args, "standardised_inputs", None):
        changes["standardised_inputs"] = True
    if args.seed is not None:
        changes["seed"] = args.seed
    if getattr(args, "config", None):
        changes = {**read_config_file(args.config), **changes}
    preset = getattr(args, "preset", None) or changes.pop("preset", None)
    if preset:  # other commands (doctor) reuse these options without --preset
        return TrainConfig.from_preset(preset, **changes)
    try:
        return dataclasses.replace(DEFAULTS, **changes).validate()
    except TypeError as exc:
        raise ConfigError(f"--config {args.config}: {exc}.") from None


def run(args):
    from ..progress import ProgressBar, summary_table, terminal_width
    from ..train import train

    def log(line):
        print(line, file=sys.stderr, flush=True)

    changes = {}
    if args.resume:
        out, resume, config = args.resume, True, None
        allowed = {"epochs", "learning_rate", "patience"}
        given = [f for f, (field, *_) in OPTIONS.items() if getattr(args, field) is not None and field not in allowed]
        given += ["--preset"] * bool(args.preset) + ["--config"] * bool(args.config) + ["--data"] * bool(args.data)
        given += ["--seed"] * (args.seed is not None) + ["--overwrite"] * args.overwrite
        given += ["--standardised-inputs"] * bool(args.standardised_inputs)
        if given:
            raise ConfigError(
                f"--resume continues a run with its own settings; only --epochs, --lr and "
                f"--patience can change, so drop {', '.join(given)} (or start a new run with "
                f"--config {os.path.join(out, 'config.json')})."
            )
        if args.out is not None and os.path.abspath(args.out) != os.path.abspath(out):
            raise ConfigError(f"--out {args.out}: a resumed run is written back to its own folder ({out}); drop --out.")
        changes = {field: getattr(args, field) for field in allowed if getattr(args, field) is not None}
    else:
        config = config_from_args(args)
        out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
        resume = False
    progress = ProgressBar(None, live=False) if args.quiet else True
    server = {}

    def start_server(info):
        # the run's first checkpoint is written before the first step: there is a model to show
        if args.serve and not server:
            from ..web.server import make_server

            server["page"] = make_server(out, log=log).start()
            log(f"live page of this run at {server['page'].url}")

    result = train(
        config,
        out,
        resume=resume,
        overwrite=args.overwrite,
        progress=progress,
        log=log,
        handle_signals=True,
        plots=not args.no_plots,
        on_step=start_server,
        **changes,
    )
    if not args.quiet:
        width = terminal_width(sys.stderr) - 1 if sys.stderr.isatty() else None
        print(summary_table(result, width=width), file=sys.stderr)
    if args.json:
        print_json({k: v for k, v in result.items()} | {"run": out})
    else:
        acc = result["test_accuracy"]
        print(
            f"test accuracy {'-' if acc is None else f'{acc:.4f}'}  ({result['train_seconds']:.1f} s of "
            f"training; run folder {out})"
        )
    if server:
        log(f"training done; the page stays up at {server['page'].url} until Ctrl-C")
        server["page"].thread.join()
    return 0
