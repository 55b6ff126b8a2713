"""``steadynet doctor``: pre-training sanity checks for a data set and a configuration."""

import sys

from ..diagnostics.doctor import doctor
from ..errors import ConfigError
from .app import add_common, print_json
from .options import add_config_options, config_from_args

# training settings the checks never use: option groups and fields
DOCTOR_SKIP_GROUPS = ("augmentation", "distillation")
DOCTOR_SKIPS = ("preset", "ema_decay", "patience", "checkpoint_every_steps", "on_diverge")


def add_parser(sub):
    p = sub.add_parser(
        "doctor",
        help="check data, initialisation, gradients and learning rate before training",
        description="Pre-training checks on a few thousand samples: input scale, label balance, "
        "initial loss, gradient check, overfit-one-batch and a learning-rate range "
        "test, then a verdict. Takes the same settings as `steadynet train`.",
    )
    groups = add_config_options(p, skip_groups=DOCTOR_SKIP_GROUPS, skip=DOCTOR_SKIPS)
    add_common(groups["run"], data=False)
    p.add_argument("--samples", type=int, default=2000, help="training samples used by the checks (default: 2000)")
    p.add_argument(
        "--summed-gradients",
        action="store_true",
        help="your training code sums the gradient over the batch instead of averaging it "
        "(the checks then use learning rate x batch size)",
    )
    p.set_defaults(run=run)


def run(args):
    if args.samples < 32:
        raise ConfigError(f"--samples must be at least 32, got {args.samples}.")
    result = doctor(
        config_from_args(args),
        n_samples=args.samples,
        summed_gradients=args.summed_gradients,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.report())
    return 0 if result.healthy else 1
