"""Training health: per-layer norms, update sizes and unit saturation, sampled during training.

:class:`HealthMonitor` plugs into ``steadynet.train(on_step=monitor.on_step,
on_epoch=monitor.on_epoch)``. The hot path stays fast: on most steps ``on_step`` only appends
three numbers to a short ring buffer; every ``every``-th step it measures the layers (a few
norms over arrays the step already holds), and on the step after that one it measures the
update that step made (one copy of the parameters, taken once per sample).

The healthy ranges are rules of thumb, not laws:

- update-to-weight ratio ``||dW_step|| / ||W||`` about 1e-3 per step; above 3e-2 the steps are
  too large for the weights (the learning rate), far below 1e-6 the layer barely moves;
- under half the sigmoid/tanh activations saturated (derivative near 0), under half the ReLUs
  dead (0 for every sample of the batch);
- an initial loss within 0.5 of ``ln(number of classes)``: the untrained network is unsure of
  every class. Above that, the initial logits are too large (the initialisation scale).
"""

import math
from collections import deque

import numpy as np

from ..backend import to_numpy
from ..layers import Activation, Dense

# an activation whose derivative is below ~4% of its maximum counts as saturated
SATURATED = {
    "sigmoid": lambda A: (A < 0.01) | (A > 0.99),
    "tanh": lambda A: abs(A) > 0.99,
}
DEAD_CAPABLE = ("relu", "leaky_relu")  # units that output <= 0 for every sample are dead

UPDATE_RATIO_HIGH = 3e-2  # healthy default runs reach ~1e-2 in their first epoch
UPDATE_RATIO_LOW = 1e-6
SATURATION_HIGH = 0.5
DEAD_HIGH = 0.5
INITIAL_LOSS_MARGIN = 0.5  # nats: warn when the first loss exceeds ln(k) + 0.5


def unit_fractions(activation, A):
    """How many of a layer's units have stopped learning on a batch.

    Parameters
    ----------
    activation : str
        The layer's activation (a key of :data:`steadynet.functional.ACTIVATIONS`).
    A : ndarray of shape (n, units)
        Its output on a batch of ``n`` samples.

    Returns
    -------
    dict
        ``{"saturated": fraction}`` of the activations, for sigmoid/tanh (:data:`SATURATED`);
        ``{"dead": fraction}`` of the units, 0 for every sample, for ReLUs; {} for others.
    """
    if activation in SATURATED:
        return {"saturated": float(SATURATED[activation](A).mean())}
    if activation in DEAD_CAPABLE:
        return {"dead": float((A <= 0).all(axis=0).mean())}
    return {}


def activation_stats(layer):
    """:func:`unit_fractions` of the last batch an :class:`~steadynet.layers.Activation` saw;
    {} when nothing is cached."""
    if layer.A is None:
        return {}
    return unit_fractions(layer.name, layer.A)


def layer_stats(model):
    """Per Dense layer: ``layer`` (1-based), ``weight_norm``, ``grad_norm`` (of ``W``) and the
    activation statistics of the layer's output on the last batch.

    Returns a list of dicts, first layer first.
    """
    stats = []
    with np.errstate(over="ignore"):  # an infinite norm is worth recording, not warning about
        for layer in model.layers:
            if isinstance(layer, Dense):
                stats.append(
                    {
                        "layer": len(stats) + 1,
                        "weight_norm": float(np.linalg.norm(to_numpy(layer.W))),
                        "grad_norm": float(np.linalg.norm(to_numpy(layer.dW))),
                    }
                )
            elif isinstance(layer, Activation) and stats:
                stats[-1].update(activation_stats(layer))
    return stats


def update_ratios(model, previous_theta):
    """``||W_now - W_before|| / ||W_before||`` per weight matrix, from a copy of ``theta``."""
    ratios = []
    offset = 0
    for name, W in model.params.items():
        size = W.size
        if name.startswith("W"):
            before = previous_theta[offset : offset + size]
            ratios.append(float(np.linalg.norm(to_numpy(W).reshape(-1) - before) / max(np.linalg.norm(before), 1e-30)))
        offset += size
    return ratios


def health_warnings(layers, initial_loss=None, n_classes=None, lr_decayed=False):
    """The warnings for one epoch's per-layer averages (see the module docstring for ranges).

    ``lr_decayed``: the schedule has brought the learning rate below a tenth of its peak, so
    small updates are intended and not warned about."""
    out = []
    if initial_loss is not None and n_classes:
        chance = math.log(n_classes)
        if not math.isfinite(initial_loss) or initial_loss > chance + INITIAL_LOSS_MARGIN:
            out.append(
                f"initial loss {initial_loss:.3g} is far above ln({n_classes}) = {chance:.3f}, the loss "
                f"of an untrained network that is unsure of every class: the initial logits are "
                f"too large; check the initialisation scale (e.g. --init glorot_uniform) and the "
                f"input scale."
            )
    for s in layers:
        L = s["layer"]
        r = s.get("update_ratio")
        if r is not None and r > UPDATE_RATIO_HIGH:
            out.append(
                f"layer {L}: each step changes the weights by {r:.1e} of their norm (healthy about "
                f"1e-3): the learning rate is too large for this layer."
            )
        elif r is not None and r < UPDATE_RATIO_LOW and not lr_decayed:
            out.append(
                f"layer {L}: each step changes the weights by only {r:.1e} of their norm (healthy "
                f"about 1e-3): the layer barely learns; the learning rate may be too small or its "
                f"gradient vanishes."
            )
        if s.get("saturated", 0) > SATURATION_HIGH:
            out.append(
                f"layer {L}: {s['saturated']:.0%} of its activations are saturated (derivative near "
                f"0), so its gradient vanishes: check the initialisation and input scale, or lower "
                f"the learning rate."
            )
        if s.get("dead", 0) > DEAD_HIGH:
            out.append(
                f"layer {L}: {s['dead']:.0%} of its ReLU units are dead (0 for every sample): lower "
                f"the learning rate or use leaky_relu."
            )
    return out


class HealthMonitor:
    """Samples layer health during training; use its methods as ``on_step`` and ``on_epoch``.

    Parameters
    ----------
    model : MLP
        The model being trained (``result.model`` is the same object).
    every : int, optional
        Measure the layers every this many steps; default about 10 samples per epoch.
    recent : int, default=20
        How many of the last steps' ``(step, epoch, loss, grad_norm, learning_rate)`` to keep
        for a divergence report (:attr:`recent`).
    plain_loss : bool, default=True
        The loss is plain cross-entropy, so the first one is compared with ``ln(k)``; False
        for a distilled loss, whose teacher term makes that comparison meaningless.

    Attributes
    ----------
    history : list of dict
        One entry per epoch, as returned by :meth:`on_epoch`.
    recent : deque of dict
        The last steps, newest last.
    initial_loss : float
        The loss of the first step (before any update), when the run started at step 1.
    """

    def __init__(self, model, every=None, recent=20, plain_loss=True):
        self.model = model
        self.every = every
        self.plain_loss = plain_loss  # False: the loss is not plain cross-entropy (distillation)
        self.recent = deque(maxlen=recent)
        self.history = []
        self.initial_loss = None
        self._peak_lr = 0.0  # the largest learning rate the schedule has used
        self._samples = []  # per-layer stats sampled this epoch
        self._ratios = []  # per-layer update ratios measured this epoch
        self._previous = None  # (step, theta copy) taken at a sampled step

    def on_step(self, info):
        """Record one step (a :class:`~steadynet.train.loop.StepInfo`); measure the layers on
        sampled steps."""
        if self.every is None:
            self.every = max(1, info.batches // 10)
        if info.step == 1:
            self.initial_loss = info.loss
        self._peak_lr = max(self._peak_lr, info.learning_rate)
        self.recent.append(
            {
                "step": info.step,
                "epoch": info.epoch,
                "loss": info.loss,
                "grad_norm": info.grad_norm,
                "learning_rate": info.learning_rate,
            }
        )
        if self._previous is not None and self._previous[0] == info.step - 1:
            # the update this step made (grad, momentum, decay: whatever the optimiser did)
            self._ratios.append(update_ratios(self.model, self._previous[1]))
            self._previous = None
        if info.step % self.every == 0:
            stats = layer_stats(self.model)
            self.recent[-1]["weight_norm"] = math.sqrt(sum(s["weight_norm"] ** 2 for s in stats))
            self._samples.append(stats)
            self._previous = (info.step, to_numpy(self.model.theta).copy())

    def on_epoch(self, result):
        """Average this epoch's samples per layer.

        Returns
        -------
        dict
            ``{"epoch", "layers": [{"layer", "weight_norm", "grad_norm", "update_ratio",
            "saturated" | "dead"}, ...], "initial_loss", "expected_initial_loss" (first epoch
            only), "warnings": [str, ...]}``, also appended to :attr:`history`.
        """
        samples = self._samples or [layer_stats(self.model)]
        layers = []
        for i in range(len(samples[0])):
            keys = set().union(*(s[i] for s in samples)) - {"layer"}
            layers.append(
                {"layer": i + 1, **{k: float(np.mean([s[i][k] for s in samples if k in s[i]])) for k in sorted(keys)}}
            )
            if self._ratios:
                layers[-1]["update_ratio"] = float(np.mean([r[i] for r in self._ratios]))
        first = not self.history
        n_classes = self.model.n_classes
        entry = {"epoch": result.epoch, "layers": layers}
        if first and self.initial_loss is not None and self.plain_loss:
            entry.update(initial_loss=self.initial_loss, expected_initial_loss=math.log(n_classes))
        decayed = result.learning_rate < 0.1 * self._peak_lr
        initial = self.initial_loss if first and self.plain_loss else None
        entry["warnings"] = health_warnings(layers, initial, n_classes, decayed)
        self.history.append(entry)
        self._samples, self._ratios = [], []
        return entry
