"""``steadynet doctor``: pre-training sanity checks for a data set and a configuration."""

import sys

from .app import add_common, print_json
from .train import DEFAULTS, OPTIONS, config_from_args


def add_parser(sub):
    p = sub.add_parser("doctor", help="check data, initialisation, gradients and learning rate before training",
                       description="Pre-training checks on a few thousand samples: input scale, label balance, "
                                   "initial loss, gradient check, overfit-one-batch and a learning-rate range "
                                   "test, then a verdict. Takes the same settings as `steadynet train`.")
    add_common(p, data=True, seed=True)
    for flag, (field, kind, text) in OPTIONS.items():
        default = getattr(DEFAULTS, field)
        shown = ",".join(map(str, default)) if field == "hidden" else default
        flags = (flag, "--learning-rate") if flag == "--lr" else (flag,)
        p.add_argument(*flags, dest=field, default=None, metavar=flag[2:].replace("-", "_").upper(),
                       type=str if kind in ("widths", "batch") else kind, help=f"{text} (default: {shown})")
    p.add_argument("--samples", type=int, default=2000, help="training samples used by the checks (default: 2000)")
    p.add_argument("--summed-gradients", action="store_true",
                   help="your training code sums the gradient over the batch instead of averaging it "
                        "(the checks then use learning rate x batch size)")
    p.set_defaults(run=run)


def run(args):
    from ..diagnostics.doctor import doctor
    from ..errors import ConfigError

    if args.samples < 32:
        raise ConfigError(f"--samples must be at least 32, got {args.samples}.")
    result = doctor(config_from_args(args), n_samples=args.samples, summed_gradients=args.summed_gradients,
                    log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.report())
    return 0 if result.healthy else 1
