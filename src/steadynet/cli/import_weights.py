"""``steadynet import``: turn plain NumPy weights (``np.savez(..., W1=..., b1=...)``) into a
steadynet model file, so that evaluate, predict, serve and report can read them."""

import os
import re

import numpy as np

from ..config import choices_of
from ..errors import ConfigError, ModelFileError
from ..model import MLP
from ..persistence import read_members, save_model
from .app import add_common, print_json

WEIGHT_NAME = re.compile(r"^(?:w|weight|weights)_?(\d+)$", re.I)
BIAS_NAME = re.compile(r"^(?:b|bias|biases)_?(\d+)$", re.I)
LAYOUTS = ("auto", "in-out", "out-in")


def add_parser(sub):
    p = sub.add_parser(
        "import",
        help="make a steadynet model file from plain NumPy weights (np.savez)",
        description="Read W1, b1, W2, b2, ... (or weights_1, bias_1, ...; or arr_0, arr_1, ... "
        "as np.savez(W1, b1, ...) names them) from an .npz file and write a steadynet "
        "model file. Weights may be stored (inputs, outputs), as steadynet does, or "
        "(outputs, inputs); the layout is detected from how the shapes chain.",
    )
    p.add_argument("weights", metavar="WEIGHTS.npz", help="the .npz file written with np.savez")
    p.add_argument(
        "--activation",
        required=True,
        choices=choices_of("activation"),
        help="the hidden layers' activation the weights were trained with (the output is softmax)",
    )
    p.add_argument(
        "--layout",
        default="auto",
        choices=LAYOUTS,
        help="how each W is stored: in-out (inputs, outputs), out-in, or auto (default: auto)",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="floating-point type of the model (default: float32)",
    )
    add_common(p, data=False, out=False)
    p.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="the model file to write (default: WEIGHTS-steadynet.npz beside the input)",
    )
    p.set_defaults(run=run)


def pair_arrays(arrays, where):
    """``[(W, b), ...]`` in layer order from the names in ``arrays``, and how they were named."""
    weights = {int(m.group(1)): a for k, a in arrays.items() if (m := WEIGHT_NAME.match(k))}
    biases = {int(m.group(1)): a for k, a in arrays.items() if (m := BIAS_NAME.match(k))}
    if weights:
        if sorted(weights) != sorted(biases):
            raise ModelFileError(
                f"{where}: weights {sorted(weights)} and biases {sorted(biases)} are not numbered "
                f"alike; expected W1, b1, W2, b2, ..."
            )
        return [(weights[i], biases[i]) for i in sorted(weights)], "W1, b1, ..."
    positional = sorted((int(k[4:]), a) for k, a in arrays.items() if re.fullmatch(r"arr_\d+", k))
    if positional and len(positional) % 2 == 0:
        arrs = [a for _, a in positional]
        return list(zip(arrs[0::2], arrs[1::2])), "arr_0, arr_1, ... read as W1, b1, W2, b2, ..."
    raise ModelFileError(
        f"{where}: found arrays {sorted(arrays)[:8]}; expected W1, b1, W2, b2, ... (or "
        f"np.savez(W1, b1, W2, b2) without names)."
    )


def chains(pairs):
    """Whether the (W, b) pairs chain as (inputs, outputs) matrices: each W's columns are the
    next W's rows, and each b has one value per column."""
    return all(W.ndim == 2 and b.size == W.shape[1] for W, b in pairs) and all(
        a.shape[1] == c.shape[0] for (a, _), (c, _) in zip(pairs, pairs[1:])
    )


def import_weights(path, activation, *, layout="auto", dtype="float32"):
    """Build an :class:`MLP` from plain NumPy weights in an ``.npz`` file.

    Parameters
    ----------
    path : str
        An ``.npz`` holding ``W1, b1, W2, b2, ...`` (or ``weights_1``/``bias_1``, or unnamed
        ``arr_0, arr_1, ...`` in that order). Biases may be (n,), (1, n) or (n, 1).
    activation : str
        The hidden layers' activation; the output layer is softmax, as in steadynet.
    layout : {"auto", "in-out", "out-in"}, default="auto"
        How each ``W`` is stored; auto takes (inputs, outputs) when the shapes chain that
        way, else (outputs, inputs) when they chain transposed.

    Returns
    -------
    (MLP, dict): the model and what was read (``names``, ``layout``, ``layer_sizes``).
    """
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise ModelFileError(f"{where}: no such file.")
    try:
        arrays = read_members(where)
    except ModelFileError as exc:
        if "compressed" in str(exc):
            raise ModelFileError(
                f"{exc} Save the weights with np.savez (not np.savez_compressed) to import them."
            ) from None
        raise
    except Exception as exc:  # a file that is not a zip archive at all
        raise ModelFileError(f"{where}: not an .npz file written by np.savez ({type(exc).__name__}).") from None
    pairs, names = pair_arrays(arrays, where)
    pairs = [(np.asarray(W), np.asarray(b).reshape(-1)) for W, b in pairs]
    transposed = [(W.T, b) for W, b in pairs] if all(W.ndim == 2 for W, _ in pairs) else pairs
    if layout == "in-out" or (layout == "auto" and chains(pairs)):
        chosen, used = pairs, "in-out"
    elif layout == "out-in" or (layout == "auto" and chains(transposed)):
        chosen, used = transposed, "out-in"
    else:
        shapes = ", ".join(f"W{i} {W.shape} b{i} ({b.size},)" for i, (W, b) in enumerate(pairs, 1))
        raise ModelFileError(
            f"{where}: the shapes do not chain as layers either way ({shapes}); each W must be "
            f"(inputs, outputs) or (outputs, inputs) and each b one value per output."
        )
    if not chains(chosen):
        raise ModelFileError(f"{where}: with --layout {layout} the shapes do not chain as layers; try --layout auto.")
    sizes = [chosen[0][0].shape[0]] + [W.shape[1] for W, _ in chosen]
    try:
        model = MLP(sizes, activation, dtype=dtype)
        model.load_state_dict(
            {**{f"W{i}": W for i, (W, _) in enumerate(chosen, 1)}, **{f"b{i}": b for i, (_, b) in enumerate(chosen, 1)}}
        )
    except ConfigError as exc:
        raise ModelFileError(f"{where}: {exc}") from None
    if not all(np.isfinite(p).all() for p in model.state_dict().values()):
        raise ModelFileError(f"{where}: the weights hold NaN or infinity.")
    return model, {"names": names, "layout": used, "layer_sizes": sizes}


def run(args):
    model, info = import_weights(args.weights, args.activation, layout=args.layout, dtype=args.dtype)
    out = args.out or os.path.splitext(args.weights)[0] + "-steadynet.npz"
    save_model(out, model, imported_from=os.path.abspath(args.weights), import_layout=info["layout"])
    if args.json:
        print_json(dict(info, model=out))
    else:
        sizes = "-".join(map(str, info["layer_sizes"]))
        how = "(inputs, outputs)" if info["layout"] == "in-out" else "(outputs, inputs), transposed"
        print(
            f"imported a {sizes} {args.activation} network from {args.weights} ({info['names']}; W stored "
            f"{how}) into {out}; evaluate it with `steadynet evaluate {out} --data PATH|NAME`"
        )
    return 0
