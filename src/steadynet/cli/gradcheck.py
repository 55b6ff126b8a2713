"""``steadynet gradcheck``: check a steadynet model's backprop against central differences."""

import os
import sys

from ..config import choices_of, parse_hidden
from ..data import load_data
from ..diagnostics import check_model_gradients
from ..errors import ConfigError, DataFormatError
from ..model import MLP
from .app import add_common, print_json
from .evaluate import open_model


def add_parser(sub):
    p = sub.add_parser(
        "gradcheck",
        help="check a model's gradients against central differences",
        description="Gradient check of a trained model (a run folder or model file) or of a "
        "fresh network, on a small batch of the data: relative error per tensor "
        "and, for a failing one, the kind of mistake.",
    )
    p.add_argument(
        "model",
        metavar="RUN_OR_MODEL",
        nargs="?",
        default=None,
        help="a run folder, model .npz file or checkpoint (default: a fresh network from --hidden etc.)",
    )
    add_common(p, data=True, seed=True)
    p.add_argument("--hidden", default="30", help="fresh network: hidden widths, comma-separated (default: 30)")
    p.add_argument(
        "--activation",
        default="sigmoid",
        choices=choices_of("activation"),
        help="fresh network: the hidden activation (default: sigmoid)",
    )
    p.add_argument(
        "--init",
        default=None,
        choices=choices_of("init"),
        help="fresh network: weight init (default: the activation's own)",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=choices_of("dtype"),
        help="fresh network: floating-point type (default: float32)",
    )
    p.add_argument(
        "--batch-size", "--batch", dest="batch", type=int, default=16, help="samples in the checked batch (default: 16)"
    )
    p.add_argument(
        "--per-tensor",
        type=int,
        default=100,
        help="elements checked per tensor; larger tensors are sampled (default: 100)",
    )
    p.set_defaults(run=run)


def gradcheck(
    model_path=None,
    data=None,
    *,
    hidden=(30,),
    activation="sigmoid",
    init=None,
    dtype="float32",
    seed=0,
    batch=16,
    per_tensor=100,
):
    """Gradient check of a saved model, or of a fresh one, on the first ``batch`` training
    samples of ``data`` (default: the run's own data set, else mnist). Returns a :class:`GradCheckResult`."""
    if batch < 1 or per_tensor < 1:
        raise ConfigError(f"--batch-size and --per-tensor must be >= 1, got {batch} and {per_tensor}.")
    if model_path is not None:
        model, used, run_data = open_model(model_path)
        if used != os.fspath(model_path):
            print(f"checking {used}", file=sys.stderr)
        data = data or run_data
        dataset = load_data(data or "mnist")
        if dataset.n_features != model.n_inputs:
            raise DataFormatError(
                f"{data or 'mnist'}: images have {dataset.n_features} pixels, but the model "
                f"{model_path} expects {model.n_inputs}."
            )
    else:
        dataset = load_data(data or "mnist")
        model = MLP((dataset.n_features, *hidden, dataset.n_classes), activation, init=init, dtype=dtype, seed=seed)
    y = dataset.y_train[:batch]
    if y.max() >= model.n_classes:
        raise DataFormatError(
            f"{data or 'mnist'}: labels go up to {int(y.max())}, but the model knows {model.n_classes} classes."
        )
    return check_model_gradients(model, dataset.x_train[:batch], y, max_per_tensor=per_tensor, seed=seed)


def run(args):
    result = gradcheck(
        args.model,
        args.data,
        hidden=parse_hidden(args.hidden),
        activation=args.activation,
        init=args.init,
        dtype=args.dtype,
        seed=args.seed or 0,
        batch=args.batch,
        per_tensor=args.per_tensor,
    )
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.report())
    return 0 if result.passed else 1
