"""``steadynet tune``: a hyperparameter search on Optuna (see :mod:`steadynet.tune`)."""

import os
import sys
import time

from ..errors import ConfigError
from ..presets import PRESETS
from ..tune import redact, tune
from .app import add_common, print_json


def add_parser(sub):
    p = sub.add_parser(
        "tune",
        help="search training settings with Optuna; each trial is a run folder",
        description="Search training settings with Optuna (pip install 'steadynet[tune]'). "
        "Trials are compared on the validation split only and pruned when their "
        "per-epoch validation accuracy falls behind; each is a run folder in "
        "STUDY/trials. The best trial's config is written to STUDY/best_config.json "
        "(rerun: steadynet train --config STUDY/best_config.json). See docs/tune.md.",
    )
    add_common(p, data=True, out=False, seed=True)
    p.add_argument(
        "--out", metavar="DIR", default=None, help="the study folder to write (default: studies/YYYYmmdd-HHMMSS)"
    )
    p.add_argument(
        "--space",
        default=None,
        metavar="NAME|FILE",
        help="search space: seed (the 784-30-10 net's lr, momentum, batch size, shift, schedule), "
        "mlp (also width, depth, activation, dropout, optimiser), or a .toml or .py file "
        "(default: seed)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help="stop once the study holds this many finished (completed or pruned) trials",
    )
    p.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="start no new trial after this many seconds"
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: 10)")
    p.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="start every trial from this preset's settings (the space's settings override it)",
    )
    p.add_argument(
        "--val-size", type=int, default=None, help="training images held out to compare trials on (default: 5000)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on this machine sharing the study, one BLAS thread each (default: 1)",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        default=os.environ.get("STEADYNET_TUNE_STORAGE"),
        help="a database the study lives in, e.g. postgresql://user:password@host/db, so that "
        "workers on other machines join it; $STEADYNET_TUNE_STORAGE keeps a password out of "
        "the process list (default: a journal file in the study folder)",
    )
    p.add_argument("--study-name", default=None, help="the study's name in --storage (default: the folder's name)")
    p.add_argument(
        "--resume",
        metavar="STUDY",
        default=None,
        help="continue a stopped study with its own settings (--trials, --timeout, --workers "
        "and --storage may be given anew)",
    )
    p.set_defaults(run=run)


def run(args):
    def log(line):
        print(line, file=sys.stderr, flush=True)

    if args.storage:  # each trial's config.json records the command line: never with a password
        sys.argv = [redact(a) if a == args.storage else a for a in sys.argv]

    if args.resume:
        given = (
            ("--data", args.data),
            ("--seed", args.seed),
            ("--epochs", args.epochs),
            ("--preset", args.preset),
            ("--out", args.out),
            ("--study-name", args.study_name),
            ("--space", args.space),
            ("--val-size", args.val_size),
        )
        fixed = [flag for flag, value in given if value is not None]
        if fixed:
            raise ConfigError(f"--resume continues a study with its own settings; drop {fixed}.")
        summary = tune(
            args.resume,
            trials=args.trials,
            timeout=args.timeout,
            workers=args.workers,
            storage=args.storage,
            resume=True,
            log=log,
        )
    else:
        out = args.out or os.path.join("studies", time.strftime("%Y%m%d-%H%M%S"))
        summary = tune(
            out,
            args.space or "seed",
            trials=args.trials,
            timeout=args.timeout,
            data=args.data,
            preset=args.preset,
            epochs=args.epochs,
            seed=args.seed,
            workers=args.workers,
            storage=args.storage,
            study_name=args.study_name,
            log=log,
            **({} if args.val_size is None else {"val_size": args.val_size}),
        )
    if args.json:
        print_json(summary)
        return 0
    counts = summary["trials"]
    print(
        f"{counts['COMPLETE']} trials completed, {counts['PRUNED']} pruned, {counts['FAIL']} failed "
        f"in {summary['wall_seconds']:.1f} s; study folder {summary['study']}"
    )
    best = summary["best"]
    if best:
        print(
            f"best: trial {best['trial']}, validation accuracy {best['val_accuracy']:.4f}; rerun with `{best['rerun']}`"
        )
    return 0
