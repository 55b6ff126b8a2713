"""``steadynet compare``: overlay the learning curves of several runs."""

from ..report import write_compare
from .app import add_common, print_json


def add_parser(sub):
    p = sub.add_parser(
        "compare",
        help="overlay the learning curves of several runs in one PNG",
        description="Overlay the loss and accuracy curves (validation solid, train "
        "dashed) of two or more runs in one PNG.",
    )
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="run folders written by `steadynet train`")
    p.add_argument("--out", metavar="FILE.png", required=True, help="the PNG file to write")
    add_common(p, data=False)
    p.set_defaults(run=run)


def run(args):
    path = write_compare(args.run_dirs, args.out)
    if args.json:
        print_json({"plot": path})
    else:
        print(path)
    return 0
