"""Learning-rate schedules: pure functions of the step number."""

import math

from .errors import ConfigError

SCHEDULES = ("constant", "step", "cosine", "onecycle")

ONECYCLE_START = 25.0  # one-cycle starts at base_lr / 25 ...
ONECYCLE_END = 1e4  # ... and ends at base_lr / (25 * 1e4), as in PyTorch's OneCycleLR
ONECYCLE_RISE = 0.3  # share of the steps spent rising when no warmup is given


def learning_rate(
    step, total_steps, base_lr, schedule="constant", warmup_steps=0, decay_every=None, decay_factor=0.1, min_ratio=0.0
):
    """The learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    1. Warmup: rises linearly from ``base_lr / warmup_steps`` to ``base_lr`` over the first
       ``warmup_steps`` steps (any schedule).
    2. Then by ``schedule``:
       - ``"constant"``: ``base_lr``;
       - ``"step"``: multiplied by ``decay_factor`` every ``decay_every`` steps;
       - ``"cosine"``: cosine decay from ``base_lr`` down to ``min_ratio * base_lr`` at the
         last step.

    ``"onecycle"`` (Smith & Topin 2019) replaces both stages: a cosine rise from
    ``base_lr / 25`` to ``base_lr`` over ``warmup_steps`` (30% of the steps when 0), then a
    cosine fall to ``base_lr / 250000`` at the last step.

    References
    ----------
    Smith, L. N. and Topin, N. (2019). Super-convergence: very fast training of neural
    networks using large learning rates. SPIE 11006.
    """
    if schedule == "onecycle":
        rise = warmup_steps or max(round(ONECYCLE_RISE * total_steps), 1)
        low, lowest = base_lr / ONECYCLE_START, base_lr / (ONECYCLE_START * ONECYCLE_END)
        if step < rise:  # cosine from low up to base_lr
            return low + (base_lr - low) * 0.5 * (1 - math.cos(math.pi * step / rise))
        progress = min((step - rise) / max(total_steps - 1 - rise, 1), 1.0)
        return lowest + (base_lr - lowest) * 0.5 * (1 + math.cos(math.pi * progress))
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        if not decay_every:
            return base_lr
        return base_lr * decay_factor ** ((step - warmup_steps) // decay_every)
    if schedule == "cosine":
        span = max(total_steps - warmup_steps, 1)
        progress = min((step - warmup_steps) / span, 1.0)
        return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    raise ConfigError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}.")
