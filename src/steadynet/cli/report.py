"""``steadynet report``: one self-contained HTML page about a run."""

from ..report import write_report
from .app import add_common, print_json


def add_parser(sub):
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run",
        description="Write one HTML file with the run's outcome, warnings, divergence "
        "report, every plot (embedded), the metrics and the configuration. "
        "It opens offline and can be mailed as it is.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `steadynet train`")
    add_common(p, data=True)
    p.add_argument("--out", metavar="FILE", default=None, help="the HTML file (default: RUN_DIR/report.html)")
    p.set_defaults(run=run)


def run(args):
    path = write_report(args.run_dir, out=args.out, data=args.data)
    if args.json:
        print_json({"report": path})
    else:
        print(path)
    return 0
