"""The training loop: a generator that yields one :class:`EpochResult` per epoch.

It does the work and nothing else: no files, no printing. The caller
(:func:`steadynet.train.train`) consumes the results, and ``on_step`` receives every step
(progress bars, health monitors). The body reads top to bottom as labelled stages: each
epoch's batches come from a :class:`BatchSource` (order, augmentation, the teacher's
outputs), each step is :func:`steadynet.train.step.train_step` under the loop's check (the
explosion detector and the weights' dtype) and :class:`StepGuard`, and a refused step
becomes a :func:`divergence_report`.
"""

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from ..backend import to_numpy
from ..data.augment import ground, random_shifts, random_warps, shift_images
from ..data.dataset import as_float_batch
from ..diagnostics.divergence import ExplosionDetector, Refusal
from ..errors import NonFiniteError
from ..functional import softmax
from ..kernels import float_batch, resolve_engine
from ..kernels import load as load_kernels
from ..model import MLP
from ..optim import make_optimizer
from ..schedules import learning_rate
from ..threads import blas_threads, choose_threads
from .centring import CentredFirstLayer, centred_start_
from .step import teacher_probabilities, train_step
from .weights import WeightAverage, hidden_weights, max_norm_


@dataclass
class StepInfo:
    """What one optimiser step did; passed to ``on_step``."""

    epoch: int  # 1-based
    step: int  # optimiser steps so far, this one included
    batch: int  # 1-based index of the batch within the epoch
    batches: int  # batches per epoch
    loss: float  # mean loss over this batch
    correct: int  # correctly classified samples of this batch (before the update)
    size: int  # samples in this batch
    learning_rate: float
    grad_norm: float  # global L2 norm of the gradient (before clipping)


@dataclass
class EpochResult:
    """Metrics of one epoch, as written to ``metrics.json``."""

    epoch: int
    step: int
    train_loss: float  # mean over the epoch's batches (with augmentation/dropout as trained)
    train_accuracy: float
    val_loss: float  # None without a validation split
    val_accuracy: float
    learning_rate: float  # at the epoch's last step
    seconds: float  # wall time of the epoch, validation included

    def to_dict(self):
        return dict(self.__dict__)


class DivergenceError(NonFiniteError):
    """Training produced a non-finite loss or gradient. The step was not applied, so the
    model still holds the last finite weights. ``report`` says where and what went first."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


@dataclass
class LoopState:
    """Where the loop is: enough, with the model and optimiser, to resume exactly."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps completed
    batch: int = 0  # batches of the current epoch completed (0 at an epoch boundary)
    rng_state: dict | None = None  # data-order RNG state at the start of the current epoch
    epoch_loss: float = 0.0  # running sums of the current epoch
    epoch_correct: int = 0
    epoch_seen: int = 0
    lr_scale: float = 1.0  # lowered by --on-diverge recover
    # the explosion detector's memory of the run's start (its first loss, the median gradient
    # norm of its first steps): a resumed run measures late spikes against the same floor
    first_loss: float | None = None
    early_grad_norm: float | None = None


def steps_per_epoch(n, batch_size):
    return 1 if batch_size == "full" else math.ceil(n / batch_size)


def build(config, n_features, n_classes, input_mean=None):
    """What a run trains: the model (its initial weights from ``config.seed``), its optimiser,
    and the moving average of its weights when ``config.ema_decay`` asks for one (else None).
    With ``input_mean`` (n_features,) the model starts, and the optimiser updates its first
    layer, as if the inputs were centred on it (:mod:`steadynet.train.centring`)."""
    model = MLP.from_config(config, n_features, n_classes)
    if input_mean is not None:
        centred_start_(model, input_mean)
    optimizer = run_optimizer(config, model, input_mean)
    ema = WeightAverage(model.theta, config.ema_decay) if config.ema_decay else None
    return model, optimizer, ema


def run_optimizer(config, model, input_mean=None):
    """The optimiser ``config`` names for ``model``; with ``input_mean`` (n_features,) it steps
    the first layer in centred coordinates (:class:`steadynet.train.centring.CentredFirstLayer`)."""
    optimizer = make_optimizer(config.optimizer, model.n_weights, config.weight_decay, config.momentum)
    return optimizer if input_mean is None else CentredFirstLayer(optimizer, model, input_mean)


def train_loop(
    model,
    optimizer,
    config,
    X,
    y,
    image_shape,
    *,
    X_val=None,
    y_val=None,
    state=None,
    on_step=None,
    should_stop=None,
    log=None,
    detector=None,
    ema=None,
    teacher=None,
):
    """Train ``model`` for ``config.epochs`` epochs, yielding an :class:`EpochResult` after each.

    Parameters
    ----------
    model : MLP
    optimizer : Optimizer
    config : TrainConfig
    X : ndarray of shape (n, n_features), uint8 or float32
    y : ndarray of shape (n,), int
    image_shape : tuple (h, w), for the shifts
    X_val, y_val : validation split, optional
    state : LoopState, optional
        Resume from here (a checkpoint's state); default: the start.
    on_step : callable(StepInfo), optional
    should_stop : callable() -> bool, optional
        Checked after every step; when it returns True the loop returns early, leaving
        ``state`` at the next step to run.
    detector : callable(loss, grad_norm) -> str or None, optional
        Says why a step explodes, or None to accept it; default
        :class:`steadynet.diagnostics.divergence.ExplosionDetector` (non-finite values, and
        finite ones far above their running level).
    ema : WeightAverage, optional
        Updated after every step; validation uses its averaged weights.
    teacher : MLP, optional
        Distillation: its softened outputs on each (augmented) batch join the labels as
        targets, weighted by ``config.distill_weight`` at ``config.distill_temperature``.

    Raises
    ------
    DivergenceError
        On an exploding or non-finite step (with ``on_diverge="stop"``). The step is refused
        before the update, so the model keeps the weights of the last accepted step.
    """
    state = state or LoopState()
    detector = detector or ExplosionDetector(
        model.n_classes, first_loss=state.first_loss, early_grad_norm=state.early_grad_norm
    )
    remembers = isinstance(detector, ExplosionDetector)
    dtype = model.dtype
    # a step of lr * |grad| beyond this would overflow the weights' dtype (momentum can add
    # up to 1 / (1 - momentum) times the gradient, Adam about 1 / (1 - beta1): margin 100)
    overflow = float(np.finfo(dtype).max) / 100
    source = BatchSource(model, config, X, y, image_shape, teacher)
    batches = source.batches
    total_steps = config.epochs * batches
    base_lr = config.resolved_learning_rate()
    warmup = round(config.warmup_epochs * batches)
    decay_every = round(config.decay_epochs * batches) or None
    constrained = hidden_weights(model) if config.max_norm else None
    rng = np.random.default_rng()
    # how the steps run: the engine (compiled or NumPy) and the BLAS threads (execution())
    how = execution(config, model.layer_sizes, X.shape[0])
    model.engine = optimizer.engine = how["engine"]
    if how["engine"] == "numba":
        load_kernels()  # and the BLAS they call, before its threads are limited
    # the weights from before a large step (one moving them by over 1% of their norm), so that
    # if the next step is refused the model goes back to before the step that did the damage
    guard = StepGuard(model)

    # the check and the hook of each step, at the step's learning rate ``lr`` (set per batch below)
    def refuse(loss, grad_norm):
        if reason := detector(loss, grad_norm):
            return reason
        if remembers and state.early_grad_norm is None:  # until the detector has its floor
            state.first_loss, state.early_grad_norm = detector.first_loss, detector.early_grad_norm
        if lr * max(grad_norm, 1.0) > overflow:
            return Refusal(f"a step of {lr:g} x {grad_norm:.3g} would overflow {dtype.name} weights", "weights")
        return None

    def before_update(loss, grad_norm):
        guard.before_update(state.step, loss, lr * grad_norm)

    while state.epoch < config.epochs:
        started = time.perf_counter()
        epoch = state.epoch + 1

        # this epoch's order and augmentation, drawn from the epoch's generator
        if state.rng_state is None:
            state.rng_state = rng_state_of(config.seed, state.epoch)
        rng.bit_generator.state = state.rng_state
        source.start_epoch(rng)

        with blas_threads(how["threads"]):  # the steps only: validation keeps the library's threads
            for b in range(state.batch, batches):
                Xb, yb, P_teacher = source.batch(b)
                lr = state.lr_scale * learning_rate(
                    state.step, total_steps, base_lr, config.schedule, warmup, decay_every, config.decay_factor
                )

                # the step; a refused one never reaches the weights
                step = train_step(
                    model,
                    optimizer,
                    Xb,
                    yb,
                    lr,
                    label_smoothing=config.label_smoothing,
                    P_teacher=P_teacher,
                    temperature=config.distill_temperature,
                    distill_weight=config.distill_weight,
                    clip_norm=config.clip_norm,
                    check=refuse,
                    before_update=before_update,
                )
                loss, grad_norm = step.loss, step.grad_norm
                if step.refused:
                    reason = step.refused
                    report = divergence_report(model, Xb, epoch, state.step + 1, b + 1, loss, grad_norm, lr, reason)
                    if config.on_diverge == "recover" and state.lr_scale > 1e-6:
                        state.lr_scale /= 2
                        if log:
                            log(
                                f"epoch {epoch} step {state.step + 1}: {reason}; learning rate halved "
                                f"to {base_lr * state.lr_scale:g}, batch skipped"
                            )
                        continue
                    report["kept"] = guard.restore(state.step, loss, model)
                    raise DivergenceError(report_line(report), report)

                # the constraints and the average, on the updated weights
                if constrained:
                    max_norm_(constrained, config.max_norm)
                if ema is not None:
                    ema.update(model.theta, state.step)

                # bookkeeping
                correct = int((step.Z.argmax(axis=1) == yb).sum())
                state.step += 1
                state.batch = b + 1
                state.epoch_loss += loss * yb.shape[0]
                state.epoch_correct += correct
                state.epoch_seen += yb.shape[0]
                if on_step:
                    on_step(StepInfo(epoch, state.step, b + 1, batches, loss, correct, int(yb.shape[0]), lr, grad_norm))
                if should_stop and should_stop() and state.batch < batches:
                    return

        # evaluate on the validation split (with the averaged weights, if averaging)
        val_loss = val_acc = None
        if X_val is not None and len(X_val):
            with ema.applied(model) if ema is not None else nullcontext():
                val_loss, val_acc = model.evaluate(X_val, y_val)
        seen = max(state.epoch_seen, 1)
        result = EpochResult(
            epoch,
            state.step,
            state.epoch_loss / seen,
            state.epoch_correct / seen,
            val_loss,
            val_acc,
            lr,
            time.perf_counter() - started,
        )
        state.epoch, state.batch, state.rng_state = epoch, 0, None
        state.epoch_loss, state.epoch_correct, state.epoch_seen = 0.0, 0, 0
        yield result
        if should_stop and should_stop():
            return


class BatchSource:
    """The batches of every epoch, as the step takes them: floats on the model's device, the
    labels, and with a teacher its probabilities on the same (augmented) images.

    One of four sources, chosen once from the config:

    - warps (rotation, scale, shear, elastic): each epoch's images warped afresh, in the
      epoch's order, in one pass (the teacher runs on every batch);
    - shifts only: each epoch's images shifted, in order, in one pass; a teacher's outputs at
      every offset are computed once (:func:`teacher_outputs`) and looked up;
    - several batches, no augmentation: the epoch's order, each batch gathered from the set;
    - one batch of the whole set, in order: converted to floats once, for every epoch.

    :meth:`start_epoch` draws the epoch's order, then its augmentation, from the epoch's
    generator; :meth:`batch` returns batch ``b`` of that epoch.
    """

    def __init__(self, model, config, X, y, image_shape, teacher=None):
        self.model, self.config, self.X, self.y, self.image_shape = model, config, X, y, image_shape
        self.teacher, self.temperature = teacher, config.distill_temperature
        n = X.shape[0]
        self.batch_size = n if config.batch_size == "full" else min(config.batch_size, n)
        self.batches = steps_per_epoch(n, config.batch_size)
        self.warps = config.warps()
        self.shift = config.augment_shift
        # what moves into a shifted or warped frame: black behind MNIST's digits, white behind dark ink
        self.fill = ground(X, image_shape) if self.warps or self.shift else 0
        self.kind = (
            "warps" if self.warps else "shifts" if self.shift else "shuffled" if self.batches > 1 else "whole set"
        )
        # distillation without warps: the teacher's outputs for every image at every
        # whole-pixel offset are computed once, so each step only looks them up
        self.P_cache = (
            None
            if teacher is None or self.warps
            else teacher_outputs(teacher, X, image_shape, self.shift, self.temperature, model.dtype, fill=self.fill)
        )
        self.X_epoch = None  # the epoch's augmented images, the buffer reused from epoch to epoch
        self.y_epoch = self.rows = self.P_epoch = None

    def start_epoch(self, rng):
        """Draw this epoch's order (when the batches are shuffled), then its augmentation, from ``rng``."""
        X, y, config, kind = self.X, self.y, self.config, self.kind
        order = rng.permutation(X.shape[0]) if kind != "whole set" else None
        if kind == "warps":
            self.X_epoch = random_warps(
                X,
                self.image_shape,
                rng,
                rotate=config.augment_rotate,
                scale=config.augment_scale,
                shear=config.augment_shear,
                shift=config.augment_shift,
                elastic_alpha=config.elastic_alpha,
                elastic_sigma=config.elastic_sigma,
                index=order,
                out=self.X_epoch,
                fill=self.fill,
            )
            self.y_epoch, self.rows = y[order], None
        elif kind == "shifts":
            self.X_epoch, offsets = random_shifts(
                X, self.image_shape, self.shift, rng, index=order, out=self.X_epoch, return_offsets=True, fill=self.fill
            )
            self.y_epoch, self.rows = y[order], None
            if self.P_cache is not None:  # (n, k): the teacher's output for each shifted image
                side = 2 * self.shift + 1
                self.P_epoch = self.P_cache[(offsets[:, 0] + self.shift) * side + offsets[:, 1] + self.shift, order]
        elif kind == "shuffled":
            self.X_epoch, self.y_epoch, self.rows = X, y, order  # gathered batch by batch: no copy of the set
            self.P_epoch = None if self.P_cache is None else self.P_cache[0]
        elif self.X_epoch is None:  # the whole set: floats once, for every epoch
            self.X_epoch = as_float_batch(X, self.model.dtype, self.model.xp)
            self.y_epoch, self.rows = y, None
            self.P_epoch = None if self.P_cache is None else self.P_cache[0]

    def batch(self, b):
        """Batch ``b`` of the epoch: ``(Xb, yb, P_teacher)``, floats in [0, 1] (n, d) on the
        model's device, labels (n,), the teacher's probabilities (n, k) or None without one."""
        model, xp = self.model, self.model.xp
        size = self.batch_size
        picked = slice(b * size, (b + 1) * size) if self.rows is None else self.rows[b * size : (b + 1) * size]
        if self.kind == "whole set":
            Xb = self.X_epoch
        elif model.engine == "numba":  # gathered, converted and scaled in one compiled pass
            Xb = float_batch(self.X_epoch, picked, model.dtype)
        else:
            Xb = as_float_batch(self.X_epoch[picked], model.dtype, xp)
        yb = xp.asarray(self.y_epoch[picked])
        if self.P_epoch is not None:
            P_teacher = xp.asarray(self.P_epoch[picked])
        elif self.teacher is not None:
            P_teacher = teacher_probabilities(self.teacher, Xb, self.temperature, model.dtype)
        else:
            P_teacher = None
        return Xb, yb, P_teacher


class StepGuard:
    """Keeps the weights from before the last large step, so that a divergence found at the
    next step (whose loss is the first to show the damage) can go back to before the step
    that did it.

    A step is large when it would move the weights by more than ``threshold`` of their norm
    (healthy steps move them by about 1e-3); only then are the weights copied, so ordinary
    steps cost one comparison. The weights' norm is refreshed every ``every`` steps.
    """

    def __init__(self, model, threshold=0.01, every=16):
        self.model, self.threshold, self.every = model, threshold, every
        self.copy = None
        self.copy_step = self.copy_loss = None  # the step the copy was taken before, its loss
        self.norm, self.norm_step = None, None

    def before_update(self, step, loss, update_norm):
        """Called with the step about to be applied (``step`` completed so far, this batch's
        ``loss`` at the current weights, and ``lr * |grad|``)."""
        theta = self.model.theta
        if self.norm is None or step - self.norm_step >= self.every:
            self.norm, self.norm_step = math.sqrt(float(theta @ theta)), step
        if update_norm > self.threshold * max(self.norm, 1e-12):
            if self.copy is None:
                self.copy = theta.copy()
            else:
                self.copy[...] = theta
            self.copy_step, self.copy_loss = step, float(loss)

    def restore(self, step, refused_loss, model):
        """Called when the step after ``step`` completed steps is refused: go back to before
        step ``step`` (the last one applied) if it was large. Returns what the model holds:
        ``{"step": steps applied, "loss": its loss on the batch it last saw, "restored": bool}``."""
        if self.copy is not None and self.copy_step == step - 1:
            model.theta[...] = self.copy
            return {"step": step - 1, "loss": self.copy_loss, "restored": True}
        return {"step": step, "loss": float(refused_loss), "restored": False}


def execution(config, layer_sizes, n_train):
    """How the steps of a run are executed, as its ``config.json`` records it:
    ``{"engine": "numba" or "numpy", "threads": BLAS threads during the steps}`` (see
    :func:`steadynet.kernels.resolve_engine` and :func:`steadynet.threads.choose_threads`)."""
    batch = n_train if config.batch_size == "full" else min(config.batch_size, n_train)
    return {"engine": resolve_engine(config), "threads": choose_threads(layer_sizes, batch, config.threads)}


def teacher_outputs(teacher, X, image_shape, shift, temperature, dtype, chunk=8192, fill=0):
    """The teacher's probabilities at ``temperature`` for every training image at every
    whole-pixel offset up to ``shift`` (``s``) that the shifts can draw: shape
    (offsets, n, n_classes), offset code ``(dy + s) * (2s + 1) + (dx + s)`` as
    :func:`random_shifts` numbers them (one offset, 0, without shifts). Costs
    ``(2s + 1)**2`` forward passes of the teacher over the set, once, instead of one per step;
    the shifts fill with ``fill``, the images' ground, as the training batches' do."""
    s, T = shift, temperature
    offsets = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)]
    P = np.empty((len(offsets), X.shape[0], teacher.n_classes), dtype=dtype)
    for code, (dy, dx) in enumerate(offsets):
        for start in range(0, X.shape[0], chunk):
            shifted = shift_images(X[start : start + chunk], image_shape, dy, dx, fill)
            Xc = as_float_batch(shifted, teacher.dtype, teacher.xp)
            P[code, start : start + chunk] = to_numpy(softmax(teacher.forward(Xc) / T))
    return P


def rng_state_of(seed, epoch):
    """The data-order RNG state for an epoch: a pure function of the seed and the epoch, so
    that a resumed run draws exactly the batches and shifts of an uninterrupted one."""
    return np.random.default_rng([seed, epoch]).bit_generator.state


def divergence_report(model, Xb, epoch, step, batch, loss, grad_norm, lr, reason):
    """What went wrong at a refused step: where, why (``reason``, the check's
    :class:`~steadynet.diagnostics.divergence.Refusal`), and the first tensor that went
    non-finite in the order the forward and backward passes computed them; if none did, what
    the check found exploding (``reason.kind``)."""
    xp = model.xp
    checked = [("input batch", Xb)]
    checked += [
        (f"activation of layer {j} ({layer!r})", layer.A)
        for j, layer in enumerate(model.layers)
        if getattr(layer, "A", None) is not None
    ]
    checked += [("loss", xp.asarray(loss))]
    checked += [(f"gradient d{name}", g) for name, g in reversed(list(model.grads.items()))]
    first = next((name for name, a in checked if not bool(xp.isfinite(a).all())), None)
    if first is None:  # finite but exploding: what the check found exploding (a plain str blames the loss)
        first = getattr(reason, "kind", "loss")
    norms = {name: float(xp.linalg.norm(p)) for name, p in model.params.items()}
    return {
        "epoch": epoch,
        "step": step,
        "batch": batch,
        "loss": loss,
        "grad_norm": grad_norm,
        "learning_rate": lr,
        "first": first,
        "reason": str(reason),
        "weight_norms": norms,
    }


def report_line(report, fix=None):
    """The one line a diverged run ends with: where, why, which weights were kept, and the
    change to try (``fix``: the first-ranked cause's, once the causes are known)."""
    kept = report.get("kept") or {}
    if kept.get("restored"):
        weights = (
            f"the weights were put back to before step {kept['step'] + 1}, the large step that did the "
            f"damage (loss {kept['loss']:.4g} on its batch)"
        )
    elif kept:
        weights = f"the weights after step {kept['step']} were kept (loss {kept['loss']:.4g} on this batch)"
    else:
        weights = "the weights were kept from the step before"
    fix = fix or (f"Try a smaller --lr (e.g. {report['learning_rate'] / 10:g}) or --clip-norm 1.")
    return (
        f"training diverged at epoch {report['epoch']}, step {report['step']}: {report['reason']} "
        f"(first: {report['first']}, learning rate {report['learning_rate']:g}); {weights}. {fix}"
    )
