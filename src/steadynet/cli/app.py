"""``steadynet <command>``: the parser, shared options and error handling.

Each subcommand module exposes ``add_parser(subparsers)`` (its options, every one with help)
and ``run(args) -> int`` (the exit status). A :class:`SteadynetError` becomes one line on
stderr and a non-zero exit; a traceback only ever means a bug in steadynet.
"""

import argparse
import importlib
import json
import sys

from .. import __version__
from ..errors import SteadynetError

# subcommand name -> module in steadynet.cli
COMMANDS = {
    "train": "train",
    "evaluate": "evaluate",
    "data": "data",
    "export": "export",
    "predict": "predict",
    "plot": "plot",
    "report": "report",
    "compare": "compare",
    "gradcheck": "gradcheck",
    "doctor": "doctor",
    "serve": "serve",
    "tune": "tune",
}

EXIT_ERROR = 1  # a user mistake or a failed run
EXIT_USAGE = 2  # bad command-line arguments
EXIT_INTERRUPTED = 130  # stopped by SIGINT/SIGTERM after writing a checkpoint


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: ``steadynet train: error: ...``."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser():
    parser = Parser(prog="steadynet", description="Train, diagnose and inspect from-scratch "
                    "NumPy multi-layer perceptrons on MNIST-like data.")
    parser.add_argument("--version", action="version", version=f"steadynet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, module in COMMANDS.items():
        importlib.import_module(f"{__package__}.{module}").add_parser(sub)
    return parser


def add_common(p, data=True, out=False, seed=False, json_flag=True):
    """The options shared by subcommands: --data, --out, --seed, --json."""
    if data:
        p.add_argument("--data", metavar="PATH|NAME", default=None,
                       help="data set: a registered name (mnist, fashion-mnist) or a path: HDF5, NPZ, IDX "
                            "folder, CSV file/folder, image folder (see docs/data.md)")
    if out:
        p.add_argument("--out", metavar="DIR", default=None, help="the run folder to write")
    if seed:
        p.add_argument("--seed", type=int, default=None, help="seed for every random choice (default 0)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def print_json(obj):
    print(json.dumps(obj, indent=2, default=float))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except SteadynetError as exc:
        from ..train import Interrupted

        print(f"steadynet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(exc, Interrupted) else EXIT_ERROR
    except KeyboardInterrupt:
        print(f"steadynet {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
