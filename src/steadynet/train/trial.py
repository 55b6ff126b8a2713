"""The augmentation chosen on the user's own validation split (``augment_trial``).

Warps made for handwritten digits (rotation, shear, elastic distortion) help on digits and
hurt where the pixels' positions carry other meaning: clothes, letters, scrambled or
permuted features. Which is the case is the data's to say, not the preset's. So with
``augment_trial=E`` a run first trains, from the same initial weights, one short run of ``E``
epochs (its whole schedule compressed into them) at each level of augmentation up to the one
configured:

1. ``none``: the images as they are;
2. ``shifts``: whole-pixel shifts (``augment_shift``);
3. ``affine``: rotation, scale and shear (and sub-pixel shifts);
4. ``elastic``: the affine warps with elastic distortion;

and then trains for real at the strongest level whose validation accuracy is within
``TOLERANCE_SE`` binomial standard errors of the best level's. Short runs favour weaker
augmentation (its benefit comes late, its cost early), so a level is dropped only when it
clearly hurts; on digits the warps survive, on permuted pixels they do not.

The trials draw from their own generators (the same seeds as the run's), so the run that
follows is the run that would have been trained with the chosen level set by hand, bit for
bit. The choice and its evidence are returned for ``config.json``; the chosen settings replace
the configured ones (and ``augment_trial`` becomes 0), so a resumed run keeps the choice.
"""

import math
import time

from .loop import build, train_loop

TOLERANCE_SE = 2.0  # a level is kept unless it is this many standard errors below the best
WARPS = ("augment_rotate", "augment_scale", "augment_shear")


def augmentation_levels(config):
    """The levels a trial compares, weakest first, up to ``config``'s own: a list of
    ``(name, settings)`` where ``settings`` are the augmentation fields of that level."""
    off = dict(augment_shift=0, augment_rotate=0.0, augment_scale=0.0, augment_shear=0.0, elastic_alpha=0.0)
    levels = [("none", off)]
    if config.augment_shift:
        levels.append(("shifts", dict(off, augment_shift=config.augment_shift)))
    affine = {k: getattr(config, k) for k in WARPS if getattr(config, k)}
    if affine:
        levels.append(("affine", dict(levels[-1][1], **affine)))
    if config.elastic_alpha:
        levels.append(("elastic", dict(levels[-1][1], elastic_alpha=config.elastic_alpha)))
    return levels


def trial_config(config, settings):
    """The short run of a trial: ``config`` at one level, its schedule compressed into
    ``augment_trial`` epochs; no weight average (over so few steps it would still hold the
    initial weights), checkpoints, early stopping or teacher."""
    epochs = config.augment_trial
    return config.replace(
        **settings,
        epochs=epochs,
        warmup_epochs=min(config.warmup_epochs, epochs / 4),
        decay_epochs=config.decay_epochs * epochs / config.epochs,
        augment_trial=0,
        ema_decay=0.0,
        patience=None,
        checkpoint_every_steps=0,
        teacher=None,
    )


def choose_augmentation(
    config, X, y, X_val, y_val, image_shape, n_features, n_classes, log=None, should_stop=None, input_mean=None
):
    """Run the trials and pick a level (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
        With ``augment_trial > 0`` and a validation split (``val_size > 0``).
    X, y : the training split; X_val, y_val : the validation split
    image_shape : tuple (h, w)
    n_features, n_classes : int
    log : callable(str), optional
    should_stop : callable() -> bool, optional
        Checked after every step of the trials; when it returns True, so does this, with None.
    input_mean : ndarray of shape (n_features,), optional
        The run's input centring (:mod:`steadynet.train.centring`), which the trials share.

    Returns
    -------
    None when stopped, else ``(config, record)``:

    config : TrainConfig
        ``config`` with the chosen level's settings and ``augment_trial=0``.
    record : dict
        ``{"epochs", "rule", "levels": [{"name", "settings", "val_accuracy", "seconds"}],
        "chosen"}``, for ``config.json``.
    """
    levels = augmentation_levels(config)
    if len(levels) == 1:  # no augmentation configured: nothing to compare
        record = {"epochs": config.augment_trial, "rule": "no augmentation configured", "levels": [], "chosen": "none"}
        return config.replace(augment_trial=0), record
    tried = []
    for name, settings in levels:
        short = trial_config(config, settings)
        model, optimizer, ema = build(short, n_features, n_classes, input_mean)
        started = time.perf_counter()
        result = None
        for result in train_loop(
            model, optimizer, short, X, y, image_shape, X_val=X_val, y_val=y_val, ema=ema, should_stop=should_stop
        ):
            pass
        if should_stop is not None and should_stop():
            return None
        tried.append(
            {
                "name": name,
                "settings": settings,
                "val_accuracy": result.val_accuracy,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        if log:
            log(f"augmentation trial: {name:7s} val acc {result.val_accuracy:.4f} after {short.epochs} epochs")
    best = max(t["val_accuracy"] for t in tried)
    p = min(best, 1 - 0.5 / len(y_val))  # a perfect score still has the error of half a sample
    margin = TOLERANCE_SE * math.sqrt(p * (1 - p) / len(y_val))
    chosen = next(t for t in reversed(tried) if t["val_accuracy"] >= best - margin)
    if log:
        log(f"augmentation trial: keeping {chosen['name']} (within {margin:.4f} of the best, {best:.4f})")
    record = {
        "epochs": config.augment_trial,
        "rule": f"the strongest level within {TOLERANCE_SE:g} standard errors ({margin:.4f}) of the best",
        "levels": tried,
        "chosen": chosen["name"],
    }
    return config.replace(**chosen["settings"], augment_trial=0), record
