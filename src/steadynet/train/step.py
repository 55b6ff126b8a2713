"""One optimiser step, :func:`train_step`: the training loop, the scikit-learn estimator and
doctor all step through it.

It owns the order of a step and nothing else: forward, loss and backward (the labels'
cross-entropy, or with a teacher's softened outputs the distillation loss), the gradient's
norm, the check that may refuse the step before it reaches the weights (by default
:func:`steadynet.diagnostics.divergence.non_finite`), clipping, and the update. What comes
around a step (the batches, the learning-rate schedule, the weight average, bookkeeping) is
the caller's.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..diagnostics.divergence import non_finite
from ..functional import distillation_cross_entropy, softmax
from ..optim import clip_grad_norm


@dataclass
class Step:
    """What :func:`train_step` did on one batch."""

    loss: float  # mean loss over the batch, at the weights before the update
    Z: Any  # (n, k): the logits of the forward pass
    grad_norm: float  # global L2 norm of the gradient (before clipping)
    refused: str | None = None  # why the step was not applied (a Refusal), or None: applied


def train_step(
    model,
    optimizer,
    X,
    y,
    lr,
    *,
    label_smoothing=0.0,
    sample_weight=None,
    P_teacher=None,
    temperature=None,
    distill_weight=None,
    penalty=0.0,
    clip_norm=0.0,
    check=non_finite,
    before_update=None,
):
    """Forward, loss, backward, the check, clipping and the update, on one batch.

    Parameters
    ----------
    model : MLP
        Its gradient is left in ``model.grad``; its weights ``model.theta`` are updated
        unless the step is refused.
    optimizer : Optimizer
    X : ndarray of shape (n, n_features), floats on the model's device
    y : ndarray of shape (n,), int class indices
    lr : float
        This step's learning rate.
    label_smoothing : float, default=0.0
    sample_weight : ndarray of shape (n,), optional
        Weighs each sample's loss (see :meth:`steadynet.MLP.loss_and_grad`).
    P_teacher : ndarray of shape (n, k), optional
        Distillation: the teacher's probabilities on ``X`` at ``temperature``, a second
        target weighted by ``distill_weight`` (see
        :func:`steadynet.functional.distillation_cross_entropy`).
    temperature, distill_weight : float, optional
        With ``P_teacher`` only.
    penalty : float, default=0.0
        Added to the loss before the check (an L2 term the optimiser applies itself).
    clip_norm : float, default=0.0
        Scale the gradient down to this global L2 norm before the update (0: no clipping).
    check : callable(loss, grad_norm) -> Refusal or None
        Refuses the step (returns why) before anything reaches the weights; default: the
        loss and the gradient's norm must be finite.
    before_update : callable(loss, grad_norm), optional
        Called once the step is accepted, just before the update.

    Returns
    -------
    Step
        ``refused`` is None when the update was applied.
    """
    if P_teacher is None:
        loss, Z = model.loss_and_grad(X, y, label_smoothing=label_smoothing, sample_weight=sample_weight)
    else:
        loss, Z = distilled_loss_and_grad(model, X, y, P_teacher, temperature, distill_weight, label_smoothing)
    if penalty:
        loss += penalty
    with np.errstate(over="ignore"):  # an overflow here is what the check reports
        grad_norm = math.sqrt(float(model.grad @ model.grad))
    refused = check(loss, grad_norm)
    if refused:
        return Step(loss, Z, grad_norm, refused)
    if clip_norm:
        clip_grad_norm(model.grad, clip_norm)
    if before_update is not None:
        before_update(loss, grad_norm)
    optimizer.step(model.theta, model.grad, lr)
    return Step(loss, Z, grad_norm)


def distilled_loss_and_grad(model, X, y, P_teacher, temperature, weight, label_smoothing=0.0):
    """Like ``model.loss_and_grad``, with the teacher's softened outputs ``P_teacher`` (n, k)
    on the same batch as a second target, weighted by ``weight`` (see
    :func:`steadynet.functional.distillation_cross_entropy`)."""
    Z = model.forward(X, training=True)
    loss, dZ = distillation_cross_entropy(Z, y, P_teacher, temperature, weight, label_smoothing)
    model.backward(dZ)
    return loss, Z


def teacher_probabilities(teacher, X, temperature, dtype):
    """The teacher's probabilities on ``X`` (n, n_features) at ``temperature``: (n, k) of ``dtype``."""
    return softmax(teacher.forward(X) / temperature).astype(dtype, copy=False)
