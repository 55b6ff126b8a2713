"""Learning-rate schedules: pure functions of the step number."""

import math

from .errors import ConfigError

SCHEDULES = ("constant", "step", "cosine")


def learning_rate(step, total_steps, base_lr, schedule="constant", warmup_steps=0,
                  decay_every=None, decay_factor=0.1, min_ratio=0.0):
    """The learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    1. Warmup: rises linearly from ``base_lr / warmup_steps`` to ``base_lr`` over the first
       ``warmup_steps`` steps (any schedule).
    2. Then by ``schedule``:
       - ``"constant"``: ``base_lr``;
       - ``"step"``: multiplied by ``decay_factor`` every ``decay_every`` steps;
       - ``"cosine"``: cosine decay from ``base_lr`` down to ``min_ratio * base_lr`` at the
         last step.
    """
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
