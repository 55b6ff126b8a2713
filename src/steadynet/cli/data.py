"""``steadynet data``: fetch registered data sets."""

import sys

from .app import Parser, print_json


def add_parser(sub):
    p = sub.add_parser("data", help="fetch and inspect data sets")
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", parser_class=Parser)
    data_sub.required = True

    f = data_sub.add_parser("fetch", help="download a registered data set, verify it, store it as HDF5",
                            description="Fetch a registered data set into the cache (or --out), verified by "
                                        "SHA-256, in the seed's HDF5 layout (x_train, y_train, x_test, y_test).")
    f.add_argument("name", help="registered data set name, e.g. mnist")
    f.add_argument("--out", metavar="PATH", default=None, help="write the HDF5 file here (default: the cache)")
    f.add_argument("--json", action="store_true", help="print the path as JSON on stdout")
    f.set_defaults(run=run_fetch)


def run_fetch(args):
    from ..data.fetch import fetch

    path = fetch(args.name, out=args.out, log=lambda line: print(line, file=sys.stderr))
    if args.json:
        print_json({"name": args.name, "path": path})
    else:
        print(path)
    return 0
