"""``steadynet <command>``: the parser, shared options and error handling.

Each subcommand module exposes ``add_parser(subparsers)`` (its options, every one with help)
and ``run(args) -> int`` (the exit status); the training options several of them take are in
:mod:`steadynet.cli.options`. A :class:`SteadynetError` becomes one line on stderr and a
non-zero exit, naming each setting by its flag (:func:`steadynet.config.option_flag`: the
library's ``batch_size`` is ``--batch-size`` here); a traceback only ever means a bug in steadynet.
"""

import argparse
import difflib
import importlib
import json
import re
import sys

from .. import __version__
from ..config import option_flag, option_metadata
from ..errors import SteadynetError
from ..train import Interrupted

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
    "import": "import_weights",
}

EXIT_ERROR = 1  # a user mistake or a failed run
EXIT_USAGE = 2  # bad command-line arguments
EXIT_INTERRUPTED = 130  # stopped by SIGINT/SIGTERM after writing a checkpoint


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: ``steadynet train: error: ...``, with a
    "did you mean" for a misspelt command, option or choice."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{self.suggestion(message)} (see `{self.prog} --help`)\n")

    def option_strings(self):
        return [s for a in self._actions for s in a.option_strings if s.startswith("--")]

    def suggestion(self, message):
        """``"; did you mean ...?"`` for the first unknown word in ``message``, or ``""``."""
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2)) or [c.strip() for c in m.group(2).split(",")]
            close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.5)
            return f"; did you mean '{close[0]}'?" if close else ""
        m = re.search(r"unrecognized arguments: (\S+)", message)
        if m and m.group(1).startswith("-"):
            word = m.group(1).split("=")[0]
            close = difflib.get_close_matches(word, self.option_strings(), n=1, cutoff=0.7)
            return f"; did you mean {close[0]}?" if close else ""
        return ""


def build_parser():
    parser = Parser(
        prog="steadynet",
        description="Train, diagnose and inspect from-scratch NumPy multi-layer perceptrons on MNIST-like data.",
    )
    parser.add_argument("--version", action="version", version=f"steadynet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name, module in COMMANDS.items():
        importlib.import_module(f"{__package__}.{module}").add_parser(sub)
    return parser


def add_common(p, data=True, out=False, seed=False, json_flag=True):
    """The options shared by subcommands: --data, --out, --seed, --json (--data and --seed with
    the help of ``TrainConfig``'s fields)."""
    if data:
        p.add_argument("--data", metavar="PATH|NAME", default=None, help=option_metadata("data")["help"])
    if out:
        p.add_argument(
            "--out",
            metavar="DIR",
            default=None,
            help="the run folder to write (default: runs/YYYYmmdd-HHMMSS in the current folder)",
        )
    if seed:
        p.add_argument("--seed", type=int, default=None, help=f"{option_metadata('seed')['help']} (default: 0)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_tta(p):
    """``--tta on|off|auto``, test-time augmentation, for the commands that classify with a
    model (evaluate, predict); auto follows the run's recorded choice."""
    from ..tta import SETTINGS

    p.add_argument(
        "--tta",
        choices=SETTINGS,
        default="auto",
        help="test-time augmentation: average the probabilities over each image and its 4 one-pixel shifts; "
        "auto follows the run folder's choice (metrics.json), off for a model file without one (default: auto)",
    )


def print_json(obj):
    print(json.dumps(obj, indent=2, default=float))


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the subcommand's parser, which knows its options
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.run(args) or 0
    except SteadynetError as exc:
        print(f"steadynet {args.command}: error: {exc.render(option_flag)}", file=sys.stderr)
        return EXIT_INTERRUPTED if isinstance(exc, Interrupted) else EXIT_ERROR
    except KeyboardInterrupt:
        print(f"steadynet {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`steadynet evaluate RUN | head`): not an error
        sys.stdout = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
