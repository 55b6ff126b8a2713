"""``steadynet plot``: draw a run's plots as PNG files."""

import sys

from ..report import write_run_plots
from .app import add_common, print_json


def add_parser(sub):
    p = sub.add_parser(
        "plot",
        help="draw a run's plots (curves, confusion matrix, mistakes, weights) as PNGs",
        description="Draw every plot a run folder supports into RUN_DIR/plots/: learning "
        "curves, sample inputs, the confusion matrix, the most confident "
        "mistakes, the first layer's weights and (when recorded) health.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `steadynet train`")
    add_common(p, data=True)
    p.add_argument("--out", metavar="DIR", default=None, help="folder for the PNG files (default: RUN_DIR/plots)")
    p.set_defaults(run=run)


def run(args):
    written = write_run_plots(args.run_dir, data=args.data, out=args.out, log=lambda line: print(line, file=sys.stderr))
    if args.json:
        print_json({"plots": written})
    else:
        for path in written.values():
            print(path)
    return 0
