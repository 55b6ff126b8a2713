"""``steadynet train``: train an MLP and write a run folder.

Its settings' options come from :mod:`steadynet.cli.options` (one per ``TrainConfig`` field);
this module adds what only a run needs: where it goes, ``--config``, ``--resume``, output.
"""

import os
import sys
import time

from ..config import option_fields, option_flags
from ..errors import ConfigError
from ..progress import ProgressBar, summary_table, terminal_width
from ..train import train
from ..web.server import make_server
from .app import add_common, print_json
from .options import add_config_options, config_from_args


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
    groups = add_config_options(p)
    add_common(groups["run"], data=False, out=True, json_flag=False)
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


def run(args):
    def log(line):
        print(line, file=sys.stderr, flush=True)

    changes = {}
    if args.resume:
        out, resume, config = args.resume, True, None
        allowed = {"epochs", "learning_rate", "patience"}
        given = [
            option_flags(f.name)[0]
            for f in option_fields()
            if getattr(args, f.name) is not None and f.name not in allowed
        ]
        given += ["--config"] * bool(args.config) + ["--overwrite"] * args.overwrite
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
