"""``steadynet export``: write a trained model as ONNX."""

from ..export import export_onnx
from .app import add_common, print_json


def add_parser(sub):
    p = sub.add_parser(
        "export",
        help="export a model or run folder to ONNX",
        description="Write a model as an ONNX graph. Input X: float32 (batch, n_inputs), "
        "pixels in [0, 1] (or 0-255 with --pixels 255). Outputs: probabilities "
        "(batch, n_classes) and label (batch,). Needs `pip install steadynet[onnx]`.",
    )
    p.add_argument("model", metavar="RUN_OR_MODEL", help="a run folder or a model .npz file")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument(
        "--pixels",
        choices=("1", "255"),
        default="1",
        help="range of the graph's input pixels: 1 for [0, 1] (default), 255 for 0-255 "
        "(the graph then divides by 255 itself)",
    )
    add_common(p, data=False)
    p.set_defaults(run=run)


def run(args):
    result = export_onnx(args.model, args.out, input_scale=1.0 / float(args.pixels))
    if args.json:
        print_json(result)
    else:
        print(
            f"wrote {result['path']} ({result['bytes']:,} bytes): X float32 (batch, {result['inputs']}) "
            f"in [0, {args.pixels}] -> probabilities (batch, {result['classes']}), label (batch,)"
        )
    return 0
