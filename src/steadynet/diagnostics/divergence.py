"""Why a run diverged: exploding-value detection, and the likely causes ranked from evidence.

The training loop asks :class:`ExplosionDetector` about every step before applying it: a
non-finite loss or gradient, or a finite one far above its running level, is refused before
the update (see :func:`steadynet.train.loop.train_loop`), so the model keeps the weights of the
last accepted step. Every step's check, the loop's or not, answers with a :class:`Refusal`
(the reason, and what exploded) or None; :func:`non_finite` is the one every step gets.
:func:`explain_divergence` turns the loop's report into a ranked list of
causes, each with its evidence and the change to try.
"""

import math
from collections import deque

import numpy as np

from ..backend import to_numpy
from ..config import DEFAULT_FULL_BATCH_LEARNING_RATE, DEFAULT_LEARNING_RATE
from ..data.dataset import as_float_batch
from ..init import init_rms
from ..layers import Activation
from .health import unit_fractions


class Refusal(str):
    """Why a step is refused: the reason in words (it is a str), and ``kind``, what exploded:
    ``"loss"``, ``"gradient norm"`` or ``"weights"``. When no value is non-finite yet, the
    divergence report names ``kind`` as what went first."""

    def __new__(cls, reason, kind="loss"):
        refusal = super().__new__(cls, reason)
        refusal.kind = kind
        return refusal

    def __getnewargs__(self):
        return str(self), self.kind


def non_finite(loss, grad_norm):
    """The check every step gets (see :func:`steadynet.train.step.train_step`): a
    :class:`Refusal` when the loss or the gradient's norm is not finite, else None."""
    if not math.isfinite(loss):
        return Refusal("non-finite loss", "loss")
    if not math.isfinite(grad_norm):
        return Refusal("non-finite gradient", "gradient norm")
    return None


class ExplosionDetector:
    """Decides whether one step's values explode. O(window) per step, no arrays.

    A step explodes when its loss or gradient norm is non-finite, or when

    - its loss exceeds ``100 ln(k)`` (the true class gets probability below ``e^-100k``: the
      logits have blown up, whatever came before), or
    - its gradient norm exceeds ``factor`` times the running median of the accepted steps (or,
      once the network fits its batches and that median has fallen far below the gradients of
      the run's first ``window`` steps, ``factor`` times a tenth of their median: a hard batch
      late in a run that fits the training set is not an explosion), or
    - its loss exceeds ``loss_factor`` times the lower of its running median and the first
      loss, and ``2 ln(k)`` (worse than guessing after training had brought it down).

    Parameters
    ----------
    n_classes : int
        ``k``: the loss of a network unsure of every class is ``ln(k)``.
    factor : float, default=100
    window : int, default=64
        Accepted steps the medians run over.
    loss_factor : float, default=10
    first_loss, early_grad_norm : float, optional
        What an earlier part of the same run measured (its first loss, the median gradient
        norm of its first ``window`` steps), for a run resumed from a checkpoint.
    """

    def __init__(self, n_classes, factor=100.0, window=64, loss_factor=10.0, first_loss=None, early_grad_norm=None):
        self.chance = math.log(n_classes)
        self.factor, self.loss_factor = float(factor), float(loss_factor)
        self.grad_norms = deque(maxlen=window)
        self.losses = deque(maxlen=window)
        self.first_loss = first_loss
        self.early_grad_norm = early_grad_norm  # the median gradient norm of the first `window` accepted steps
        self._medians = None  # (grad norm, loss) medians, refreshed every few steps
        self._refresh = 0

    def __call__(self, loss, grad_norm):
        """Check one step: returns None (accepted and remembered) or why it explodes (a :class:`Refusal`)."""
        refusal = non_finite(loss, grad_norm)
        if refusal:
            return refusal
        if loss > 100 * self.chance:
            return Refusal(
                f"loss {loss:.3g} is over 100 ln(k) = {100 * self.chance:.3g}: either the logits have "
                f"exploded, or this is not a mean cross-entropy (summed over the batch, or another formula)",
                "loss",
            )
        if self.grad_norms:
            # the medians move slowly: sorting the window every 8th step keeps this off the
            # training hot path
            if self._refresh == 0 or self._medians is None:
                self._medians = (median(self.grad_norms), median(self.losses))
            self._refresh = (self._refresh + 1) % 8
            g_med, l_med = self._medians
            if grad_norm > self.factor * max(g_med, 0.1 * (self.early_grad_norm or 0.0)):
                return Refusal(
                    f"gradient norm {grad_norm:.3g} is {grad_norm / g_med:.0f}x its running median {g_med:.3g}",
                    "gradient norm",
                )
            ref = min(l_med, self.first_loss)
            if loss > self.loss_factor * ref and loss > 2 * self.chance:
                return Refusal(f"loss {loss:.3g} is {loss / ref:.0f}x its earlier level {ref:.3g}", "loss")
        elif self.first_loss is None:
            self.first_loss = loss
        self.grad_norms.append(grad_norm)
        self.losses.append(loss)
        if self.early_grad_norm is None and len(self.grad_norms) == self.grad_norms.maxlen:
            self.early_grad_norm = median(self.grad_norms)
        return None


def median(values):
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])


# ------------------------------------------------------------------------------ causes


def input_evidence(X):
    """Scale of the inputs as the network sees them: ``max_abs``, ``mean``, ``std``."""
    return {"max_abs": float(np.abs(X).max()), "mean": float(X.mean()), "std": float(X.std())}


def unit_evidence(model, X):
    """Forward ``X`` through the model's current (last finite) weights and measure its hidden
    units: the saturated fraction of sigmoid/tanh activations and the dead fraction of ReLUs."""
    xp = model.xp
    A = xp.asarray(X)
    saturated, dead = [0.0], [0.0]
    for layer in model.layers:
        A = layer.forward(A, False)
        if isinstance(layer, Activation):
            fractions = unit_fractions(layer.name, to_numpy(A))
            saturated.append(fractions.get("saturated", 0.0))
            dead.append(fractions.get("dead", 0.0))
    return {"saturated": max(saturated), "dead": max(dead)}


def init_evidence(model):
    """The initial weights' RMS under the model's init scheme over Glorot's, the scale
    ``sqrt(2 / (fan_in + fan_out))`` (:func:`steadynet.init.init_rms`): the largest ratio over
    the layers (1 for Glorot)."""
    sizes = model.layer_sizes
    ratio = max(
        init_rms(model.init, fi, fo) / init_rms("glorot_uniform", fi, fo) for fi, fo in zip(sizes[:-1], sizes[1:])
    )
    return {"init": model.init, "rms_over_glorot": ratio, "all_positive": model.init == "uniform_01"}


def step_evidence(report, recent):
    """The size of the last accepted steps: ``lr * ||g|| / ||theta||`` and the growth of the
    gradient norm over the recorded history."""
    recent = [r for r in (recent or []) if math.isfinite(r.get("grad_norm") or math.nan)]
    weight_norm = math.sqrt(sum(v**2 for v in report.get("weight_norms", {}).values())) or 1e-30
    last = recent[-1] if recent else {"grad_norm": math.nan, "learning_rate": report["learning_rate"]}
    relative_step = last["learning_rate"] * last["grad_norm"] / weight_norm
    growth = recent[-1]["grad_norm"] / max(recent[0]["grad_norm"], 1e-30) if len(recent) > 1 else math.nan
    return {"relative_step": relative_step, "grad_norm_growth": growth}


def rank_causes(report, config, evidence):
    """Score each likely cause of a divergence in [0, 1] from the evidence; best first.

    Parameters
    ----------
    report : dict
        :func:`steadynet.train.loop.divergence_report`'s dict.
    config : TrainConfig
    evidence : dict
        ``inputs`` (:func:`input_evidence`), ``units`` (:func:`unit_evidence`), ``init``
        (:func:`init_evidence`), ``steps`` (:func:`step_evidence`).

    Returns
    -------
    list of dict
        ``{"cause", "score", "evidence", "fix"}``, sorted by decreasing score.
    """
    inputs, units, init, steps = (evidence[k] for k in ("inputs", "units", "init", "steps"))
    lr = config.resolved_learning_rate()  # the configured rate; report["learning_rate"] is scheduled
    table = DEFAULT_FULL_BATCH_LEARNING_RATE if config.batch_size == "full" else DEFAULT_LEARNING_RATE
    default_lr = table[config.optimizer]
    causes = []

    # unscaled inputs: pixels 0-255 make every first-layer pre-activation and gradient 255x larger
    m = inputs["max_abs"]
    score = 0.95 if m > 10 else 0.6 if m > 2 else 0.05
    causes.append(
        {
            "cause": "unscaled_inputs",
            "score": score,
            "evidence": f"inputs reach {m:.4g} (mean {inputs['mean']:.3g}, std {inputs['std']:.3g}); "
            f"pixels in [0, 1] give at most 1",
            "fix": "scale the inputs to [0, 1] (divide 0-255 pixels by 255) or standardise each "
            "feature; load the data through steadynet.load_data, which does it",
        }
    )

    # the learning rate: large relative to its default, or steps large relative to the weights
    over_default = lr / default_lr
    rel = steps["relative_step"]
    # a large step at the default rate says the gradient is large, which other causes explain
    step_score = 0.8 if rel > 1 else 0.6 if rel > 0.1 else 0.3 if rel > 0.01 else 0.0
    score = max(
        0.9 if over_default >= 10 else 0.5 if over_default >= 3 else 0.1,
        step_score if over_default >= 3 else min(step_score, 0.5),
    )
    batch = "the full training set" if config.batch_size == "full" else f"batch size {config.batch_size}"
    causes.append(
        {
            "cause": "learning_rate",
            "score": score,
            "evidence": f"learning rate {lr:g} ({report['learning_rate']:.3g} at this step) is {over_default:.3g}x the default {default_lr:g} of "
            f"{config.optimizer} with {batch}; the last step moved the weights by "
            f"{rel:.2g} of their norm (healthy about 1e-3)",
            "fix": f"lower the learning rate to {lr / 10:.4g} (--lr {lr / 10:.4g}), or add --clip-norm 1 "
            f"or --warmup-epochs 1; a gradient summed over the batch instead of averaged "
            f"multiplies the step by the batch size",
        }
    )

    # saturated or dead units: the gradient can no longer steer them back
    sat = max(units["saturated"], units["dead"])
    word = "saturated" if units["saturated"] >= units["dead"] else "dead"
    causes.append(
        {
            "cause": "saturated_units",
            "score": 0.7 * sat,
            "evidence": f"{sat:.0%} of the hidden activations are {word} with the last finite weights",
            "fix": "keep the pre-activations small: Glorot/He initialisation, inputs in [0, 1] and a "
            "smaller learning rate; saturated units have a near-zero derivative",
        }
    )

    # initialisation scale
    r = init["rms_over_glorot"]
    score = 0.85 if init["all_positive"] else 0.5 if r > 5 else 0.02
    causes.append(
        {
            "cause": "init_scale",
            "score": score,
            "evidence": f"init {init['init']!r} starts the weights at {r:.3g}x the Glorot scale"
            + (" and every weight is positive" if init["all_positive"] else ""),
            "fix": "--init glorot_uniform for sigmoid/tanh, he_normal for ReLU (the defaults), "
            "which keep each layer's output variance about 1",
        }
    )
    return sorted(causes, key=lambda c: -c["score"])


def explain_divergence(report, model, config, X, recent=None, max_samples=512):
    """Add the likely causes and the norm history to a divergence report.

    Parameters
    ----------
    report : dict
        From :func:`steadynet.train.loop.divergence_report` (``DivergenceError.report``).
    model : MLP
        Holding the last finite weights (the loop never applies a non-finite step).
    config : TrainConfig
    X : ndarray of shape (n, n_inputs)
        Training inputs, uint8 or float as given to training; the first ``max_samples`` rows
        are used.
    recent : sequence of dict, optional
        The last steps (``HealthMonitor.recent``): step, loss, grad_norm, learning_rate.

    Returns
    -------
    dict
        ``report`` plus ``norm_history`` (the recent steps) and ``causes``
        (:func:`rank_causes`); the input dict is not modified.
    """
    Xs = as_float_batch(np.asarray(X[:max_samples]), model.dtype)
    # the accepted steps, then the refused one
    history = list(recent or []) + [{k: report.get(k) for k in ("step", "epoch", "loss", "grad_norm", "learning_rate")}]
    evidence = {
        "inputs": input_evidence(Xs),
        "units": unit_evidence(model, Xs),
        "init": init_evidence(model),
        "steps": step_evidence(report, history),
    }
    return {**report, "norm_history": history, "evidence": evidence, "causes": rank_causes(report, config, evidence)}


def format_causes(explained, most=3):
    """The ranked causes as lines for a log: ``1. learning_rate (0.90): evidence -> fix``."""
    lines = [
        f"training diverged at epoch {explained['epoch']}, step {explained['step']}: "
        f"{explained['first']} went first"
        + (f" ({explained['reason']})" if explained.get("reason") else "")
        + "; likely causes:"
    ]
    for i, c in enumerate(explained["causes"][:most], 1):
        lines.append(f"  {i}. {c['cause']} ({c['score']:.2f}): {c['evidence']}\n     try: {c['fix']}")
    return "\n".join(lines)
