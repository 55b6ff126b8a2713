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

# option -> (TrainConfig field, type, help). Defaults shown in --help come from TrainConfig.
OPTIONS = {
    "--hidden": ("hidden", "widths", "hidden layer widths, comma-separated, e.g. 30 or 512,256"),
    "--activation": ("activation", str, "hidden activation: sigmoid, tanh, relu, leaky_relu"),
    "--epochs": ("epochs", int, "passes over the training set"),
    "--batch-size": ("batch_size", "batch", "samples per step, or 'full' for full-batch gradient descent"),
    "--optimizer": ("optimizer", str, "sgd, momentum, nesterov, adam or adamw"),
    "--lr": ("learning_rate", float, "learning rate (default: the optimiser's default, larger for full batch)"),
    "--momentum": ("momentum", float, "momentum coefficient for momentum/nesterov"),
    "--weight-decay": ("weight_decay", float, "L2 weight decay on weights (decoupled for adamw)"),
    "--clip-norm": ("clip_norm", float, "clip the global gradient norm to this value"),
    "--schedule": ("schedule", str, "learning-rate schedule: constant, step, cosine or onecycle"),
    "--warmup-epochs": ("warmup_epochs", float, "linear learning-rate warmup, in epochs"),
    "--decay-epochs": ("decay_epochs", float, "step schedule: decay every this many epochs"),
    "--decay-factor": ("decay_factor", float, "step schedule: multiply the rate by this"),
    "--augment-shift": ("augment_shift", int, "shift training images by up to this many pixels (0: off)"),
    "--augment-rotate": ("augment_rotate", float, "rotate training images by up to this many degrees"),
    "--augment-scale": ("augment_scale", float, "rescale training images by up to this fraction (0.1: 0.9x-1.1x)"),
    "--augment-shear": ("augment_shear", float, "shear training images by up to this many degrees"),
    "--elastic-alpha": ("elastic_alpha", float, "elastic distortion strength in pixels (0: off; Simard et al.: 34)"),
    "--elastic-sigma": ("elastic_sigma", float, "elastic distortion smoothness in pixels"),
    "--dropout": ("dropout", float, "dropout rate after each hidden layer"),
    "--max-norm": ("max_norm", float, "cap each hidden unit's incoming weight vector at this L2 norm"),
    "--ema-decay": ("ema_decay", float, "validate, test and save a moving average of the weights with "
                                        "this decay per step, e.g. 0.999 (0: off)"),
    "--teacher": ("teacher", str, "distil from this model file or run folder: its softened outputs "
                                  "join the labels as targets"),
    "--distill-temperature": ("distill_temperature", float, "softmax temperature of the distillation loss"),
    "--distill-weight": ("distill_weight", float, "weight of the teacher's soft targets (labels: 1 - this)"),
    "--input-dropout": ("input_dropout", float, "dropout rate on the input pixels"),
    "--label-smoothing": ("label_smoothing", float, "label smoothing in [0, 1)"),
    "--val-size": ("val_size", int, "training images held out for validation"),
    "--patience": ("patience", int, "early stopping: epochs without a better validation accuracy"),
    "--init": ("init", str, "weight init: glorot_uniform, he_normal, uniform_01 (default by activation)"),
    "--dtype": ("dtype", str, "float32 or float64"),
    "--device": ("device", str, "cpu (NumPy) or gpu (CuPy)"),
    "--on-diverge": ("on_diverge", str, "stop, or recover (halve the learning rate and go on)"),
    "--checkpoint-every-steps": ("checkpoint_every_steps", int,
                                 "also write checkpoints/last.npz every this many steps (0: each epoch only)"),
    "--threads": ("threads", threads_setting,
                  "BLAS threads while training: a number, or auto (one on small networks, more where the "
                  "matrix products gain; recorded in config.json)"),
    "--engine": ("engine", str, "the training step: numpy (the reference), numba (compiled, needs "
                                "steadynet[fast]) or auto (numba where installed)"),
}


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
    p = sub.add_parser("train", help="train a network and write a run folder",
                       description="Train an MLP. The defaults are the seed's 784-30-10 sigmoid network "
                                   "with settings that take it past 97% test accuracy on MNIST.")
    add_common(p, data=True, out=True, seed=True)
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="start from a named bundle of settings (docs/accuracy.md): seed (784-30-10 "
                        "sigmoid, at its best), fast (about a minute), best (under 20 minutes); "
                        "options given explicitly override it")
    for flag, (field, kind, text) in OPTIONS.items():
        default = getattr(DEFAULTS, field)
        shown = ",".join(map(str, default)) if field == "hidden" else default
        flags = (flag, "--learning-rate") if flag == "--lr" else (flag,)
        p.add_argument(*flags, dest=field, default=None, metavar=flag[2:].replace("-", "_").upper(),
                       type=str if kind in ("widths", "batch") else kind,
                       help=f"{text} (default: {shown})")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue an interrupted run from its last checkpoint")
    p.add_argument("--quiet", action="store_true",
                   help="plain per-epoch lines instead of a live progress bar, and no summary table")
    p.add_argument("--no-plots", action="store_true", help="do not draw the run's plots at the end")
    p.add_argument("--serve", action="store_true",
                   help="serve this run's live page (as steadynet serve) on 127.0.0.1 at a free port, "
                        "printed on start; it stays up after training until Ctrl-C")
    p.set_defaults(run=run)


def config_from_args(args):
    """A TrainConfig from the options given (the others keep their defaults, or the preset's)."""
    changes = {}
    for flag, (field, kind, _) in OPTIONS.items():
        value = getattr(args, field)
        if value is None:
            continue
        if kind == "widths":
            value = parse_widths(value)
        elif kind == "batch":
            value = parse_batch(value)
        changes[field] = value
    if args.data is not None:
        changes["data"] = args.data
    if args.seed is not None:
        changes["seed"] = args.seed
    if getattr(args, "preset", None):  # other commands (doctor) reuse these options without --preset
        return TrainConfig.from_preset(args.preset, **changes)
    return dataclasses.replace(DEFAULTS, **changes).validate()


def run(args):
    from ..train import train

    from ..progress import ProgressBar, summary_table

    def log(line):
        print(line, file=sys.stderr, flush=True)

    if args.resume:
        out, resume, config = args.resume, True, None
        given = [f for f, (field, _, _) in OPTIONS.items() if getattr(args, field) is not None]
        given += ["--preset"] if args.preset else []
        if given or args.data or args.seed is not None:
            raise ConfigError(f"--resume continues a run with its own settings; drop {given or ['--data/--seed']}.")
    else:
        config = config_from_args(args)
        out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
        resume = False
        if os.path.exists(os.path.join(out, "metrics.json")):
            raise ConfigError(f"--out {out}: already holds a run; choose another folder or --resume {out}.")
    epochs = config.epochs if not resume else None
    progress = ProgressBar(epochs, live=False) if args.quiet and epochs else (not args.quiet or None)
    server = {}

    def start_server(info):
        # the run's first checkpoint is written before the first step: there is a model to show
        if args.serve and not server:
            from ..web.server import make_server

            server["page"] = make_server(out, log=log).start()
            log(f"live page of this run at {server['page'].url}")

    result = train(config, out, resume=resume, progress=progress, log=log, handle_signals=True,
                   plots=not args.no_plots, on_step=start_server)
    if not args.quiet:
        print(summary_table(result), file=sys.stderr)
    if args.json:
        print_json({k: v for k, v in result.items()} | {"run": out})
    else:
        acc = result["test_accuracy"]
        print(f"test accuracy {'-' if acc is None else f'{acc:.4f}'}  ({result['train_seconds']:.1f} s of "
              f"training; run folder {out})")
    if server:
        log(f"training done; the page stays up at {server['page'].url} until Ctrl-C")
        server["page"].thread.join()
    return 0
