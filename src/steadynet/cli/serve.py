"""``steadynet serve``: a local web page to draw digits and look inside a model."""

import sys

from ..web.server import make_server
from .app import add_common


def add_parser(sub):
    p = sub.add_parser(
        "serve",
        help="a local web page to draw a digit and look inside the model",
        description="Serve a page where you draw a digit and watch the model read it: "
        "class probabilities, the 28x28 input it sees, hidden activations, "
        "each unit's weights, the input gradient, the test set's most "
        "confident mistakes and, for a run folder still training, live "
        "curves. Needs Starlette and uvicorn (`pip install steadynet[web]`). "
        "API: docs/serve.md.",
    )
    p.add_argument(
        "model", metavar="RUN_OR_MODEL", help="a run folder (followed live while it trains) or a model .npz file"
    )
    add_common(p, data=True, json_flag=False)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the page to the network)",
    )
    p.add_argument("--port", type=int, default=0, help="port to listen on (default 0: any free port, printed on start)")
    p.set_defaults(run=run)


def run(args):
    server = make_server(
        args.model, data=args.data, host=args.host, port=args.port, log=lambda line: print(line, file=sys.stderr)
    )
    print(f"serving {args.model} at {server.url} (Ctrl-C to stop)", flush=True)
    server.run()
    return 0
