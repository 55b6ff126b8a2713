"""``steadynet data``: fetch, inspect, convert and look at data sets."""

import sys

from ..data.fetch import fetch
from ..data.tools import convert, describe, show
from ..errors import ConfigError
from .app import Parser, print_json

MAX_SHOW = 400  # images in one grid: 20x20 is already too small to read on most screens


def add_parser(sub):
    p = sub.add_parser(
        "data",
        help="fetch, inspect, convert and show data sets",
        description="Data sets may be HDF5 (the seed's layout), NPZ (Keras' layout), a "
        "folder of IDX files, CSV (a folder with *train*.csv and *test*.csv, "
        "or one file), an image folder (train/<label>/*.png, test/<label>/*.png) "
        "or a registered name (mnist, fashion-mnist).",
    )
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", parser_class=Parser)
    data_sub.required = True

    f = data_sub.add_parser(
        "fetch",
        help="download a registered data set, verify it, store it as HDF5",
        description="Fetch a registered data set into the cache (or --out), verified by "
        "checksums, in the seed's HDF5 layout (x_train, y_train, x_test, y_test).",
    )
    f.add_argument("name", help="registered data set name: mnist or fashion-mnist")
    f.add_argument("--out", metavar="PATH", default=None, help="write the HDF5 file here (default: the cache)")
    f.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait on a source before the next (default 30)"
    )
    f.add_argument("--json", action="store_true", help="print the path as JSON on stdout")
    f.set_defaults(run=run_fetch)

    i = data_sub.add_parser(
        "info",
        help="format, shapes, labels, pixel range and checksum of a data set",
        description="Describe a data set and compare its arrays' SHA-256 with the registered data sets' known hashes.",
    )
    i.add_argument("path", metavar="PATH|NAME", help="a data file or folder, or a registered name")
    i.add_argument("--json", action="store_true", help="print the description as JSON on stdout")
    i.set_defaults(run=run_info)

    c = data_sub.add_parser(
        "convert",
        help="convert a data set to HDF5, NPZ, IDX, CSV or an image folder",
        description="Read SRC in any supported format and write DST. The format of DST "
        "follows its suffix (.h5/.hdf5: the seed's HDF5 layout, .npz: Keras' "
        "layout) or --format.",
    )
    c.add_argument("src", metavar="SRC", help="a data file or folder, or a registered name")
    c.add_argument("dst", metavar="DST", help="the file or folder to write (must not exist)")
    c.add_argument(
        "--format",
        dest="fmt",
        default=None,
        choices=("hdf5", "npz", "idx-folder", "csv", "images"),
        help="output format (default: from DST's suffix)",
    )
    c.add_argument("--json", action="store_true", help="print a summary as JSON on stdout")
    c.set_defaults(run=run_convert)

    s = data_sub.add_parser(
        "show",
        help="save a labelled grid of sample images as a PNG",
        description="Draw randomly chosen images, each titled with its label, into a PNG.",
    )
    s.add_argument("path", metavar="PATH|NAME", help="a data file or folder, or a registered name")
    s.add_argument("--out", metavar="PNG", required=True, help="the image file to write, e.g. grid.png")
    s.add_argument("--n", type=int, default=25, help=f"number of images, 1 to {MAX_SHOW} (default 25)")
    s.add_argument("--split", choices=("train", "test"), default="train", help="which split (default train)")
    s.add_argument("--seed", type=int, default=0, help="seed for choosing the images (default 0)")
    s.add_argument("--json", action="store_true", help="print the images shown as JSON on stdout")
    s.set_defaults(run=run_show)


def log(line):
    print(line, file=sys.stderr, flush=True)


def run_fetch(args):
    path = fetch(args.name, out=args.out, timeout=args.timeout, log=log)
    if args.json:
        print_json({"name": args.name, "path": path})
    else:
        print(path)
    return 0


def run_info(args):
    report = describe(args.path)
    if args.json:
        print_json(report)
        return 0
    print(
        f"{report['path']}: {report['format']}, images {'x'.join(map(str, report['image_shape']))}, "
        f"{report['n_classes']} classes"
    )
    for key, a in report["arrays"].items():
        stored = "absent" if a["stored_dtype"] is None else f"{a['stored_dtype']} {tuple(a['stored_shape'])}"
        pixels = f", pixels {a['pixel_min']:g} to {a['pixel_max']:g}" if "pixel_min" in a else ""
        print(f"  {key:<8} stored {stored}{pixels}; loaded as {a['dtype']} {tuple(a['shape'])}")
    for split, counts in report["label_counts"].items():
        print(f"  {split} labels: " + (" ".join(f"{k}:{c}" for k, c in enumerate(counts)) if sum(counts) else "none"))
    for notice in report["notices"]:
        print(f"  notice: {notice}")
    print("  checksum: " + checksum_line(report["checksum"]))
    if "files" in report:
        files = report["files"]
        print(
            "  IDX files: "
            + (
                "MD5 of each file matches the published " + files["name"]
                if files["status"] == "match"
                else f"MD5 differs from the published {files['name']} files (re-compressed files differ "
                f"even when the arrays are equal)"
                if files["status"] == "mismatch"
                else "no registered data set has these files"
            )
        )
    return 0


def checksum_line(c):
    if c["status"] == "match":
        return f"SHA-256 of x_train, y_train, x_test, y_test matches the known {c['name']}"
    if c["status"] == "mismatch":
        parts = ", ".join(
            f"{k} (expected {c['expected'][k][:12]}..., found {str(c['found'][k])[:12]}...)" for k in c["differs"]
        )
        return f"MISMATCH with the known {c['name']}: {parts} differ; this copy was altered or is incomplete"
    return "no registered data set matches these arrays"


def run_convert(args):
    result = convert(args.src, args.dst, args.fmt, log=log)
    if args.json:
        print_json(result)
    else:
        print(
            f"wrote {result['dst']} ({result['format']}: {result['n_train']} training and "
            f"{result['n_test']} test images)"
        )
    return 0


def run_show(args):
    if not 1 <= args.n <= MAX_SHOW:  # checked before the data is read: 3,000 took 89 s and 1.3 GB
        raise ConfigError(
            f"--n must be 1 to {MAX_SHOW} (a {int(MAX_SHOW**0.5)}x{int(MAX_SHOW**0.5)} grid), got {args.n}."
        )
    result = show(args.path, args.out, n=args.n, split=args.split, seed=args.seed)
    if args.json:
        print_json(result)
    else:
        print(result["path"])
    return 0
