"""``doctor``: sanity checks before training, for a data set and a configuration.

Each check runs on a few thousand training samples in seconds and returns ``ok``, ``warn`` or
``fail`` with what it measured and what to change:

1. input scale: pixels as the network sees them are in [0, 1] (and whether training centres
   the first layer on them, as on a light ground: ``steadynet.train.centring``);
2. label balance: every class is present, none dwarfs another;
3. initial loss: close to ``ln(k)`` with the configured initialisation, few saturated units;
4. gradient check: steadynet's backprop against central differences on a small batch, and the
   gradient's scale (a gradient summed over the batch makes every step batch-size times larger);
5. overfit one batch: the settings can drive the loss on 32 samples close to 0;
6. learning-rate range test: one step per rate over a geometric sweep, the loss at each rate,
   the suggested rate and the rate at which the loss blows up.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ..backend import to_numpy
from ..config import TrainConfig
from ..data import load_data
from ..data.dataset import as_float_batch
from ..init import INIT_FOR_ACTIVATION
from ..model import MLP
from ..train.centring import centred_start_, centring
from ..train.loop import run_optimizer
from ..train.step import train_step
from .divergence import Refusal, non_finite, unit_evidence
from .gradcheck import check_model_gradients


@dataclass
class Check:
    """One check: ``name``, ``status`` (ok/warn/fail), ``message`` (what was measured, in
    words), ``fix`` (what to change; empty when ok) and ``values`` (the numbers)."""

    name: str
    status: str
    message: str
    fix: str = ""
    values: dict = field(default_factory=dict)

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class DoctorResult:
    """All checks and the verdict in plain words; ``healthy`` when no check warns or fails."""

    checks: list
    effective_learning_rate: float
    suggested_learning_rate: float | None = None

    @property
    def healthy(self):
        return all(c.status == "ok" for c in self.checks)

    @property
    def problems(self):
        return [c for c in self.checks if c.status != "ok"]

    @property
    def verdict(self):
        if self.healthy:
            return "healthy: the data, the initialisation, the gradients and the learning rate all look right."
        fails = [c.name for c in self.checks if c.status == "fail"]
        warns = [c.name for c in self.checks if c.status == "warn"]
        parts = [f"{len(fails)} problem{'s' if len(fails) != 1 else ''} ({', '.join(fails)})"] if fails else []
        parts += [f"{len(warns)} warning{'s' if len(warns) != 1 else ''} ({', '.join(warns)})"] if warns else []
        return "not ready to train: " + " and ".join(parts) + "; fix them in the order listed."

    def to_dict(self):
        return {
            "healthy": self.healthy,
            "verdict": self.verdict,
            "effective_learning_rate": self.effective_learning_rate,
            "suggested_learning_rate": self.suggested_learning_rate,
            "checks": [c.to_dict() for c in self.checks],
        }

    def report(self):
        lines = []
        for c in self.checks:
            lines.append(f"[{c.status.upper():>4}] {c.name}: {c.message}")
            if c.fix:
                lines.append(f"       fix: {c.fix}")
        lines.append(f"verdict: {self.verdict}")
        return "\n".join(lines)


def doctor(config=None, data=None, *, n_samples=2000, summed_gradients=False, log=None):
    """Run the pre-training checks.

    Parameters
    ----------
    config : TrainConfig, optional
        The settings to check (default ``TrainConfig()``).
    data : Dataset, optional
        Default: ``load_data(config.data)``.
    n_samples : int, default=2000
        Training samples drawn (seeded by ``config.seed``) for the checks.
    summed_gradients : bool, default=False
        The training code to be checked sums the gradient over the batch instead of averaging
        it (as the seed did): its step is ``batch size * learning rate`` on the mean gradient,
        and that effective rate is what the checks use.
    log : callable(str), optional
        Receives a line as each check starts.

    Returns
    -------
    DoctorResult
    """
    log = log or (lambda line: None)
    config = (config or TrainConfig()).validate()
    if data is None:
        data = load_data(config.data, log=log, standardised=config.standardised_inputs)
    config.validate(n_features=data.n_features, n_classes=data.n_classes)
    rng = np.random.default_rng(config.seed)
    n_train = data.x_train.shape[0] - config.val_size
    idx = np.sort(rng.choice(data.x_train.shape[0], min(n_samples, data.x_train.shape[0]), replace=False))
    dtype = np.dtype(config.dtype)
    X = as_float_batch(data.x_train[idx], dtype)  # (n, d): what the network sees
    y = data.y_train[idx]
    k = data.n_classes
    batch = n_train if config.batch_size == "full" else config.batch_size
    lr = config.resolved_learning_rate() * (batch if summed_gradients else 1)
    input_mean, centring_record = centring(config.centre_inputs, X)  # the sample's mean, as training's

    def new_model():  # the configured network as a run starts it, without dropout, on the CPU
        model = MLP.from_config(config, data.n_features, k, dropout=0.0, input_dropout=0.0, device="cpu")
        if input_mean is not None:
            centred_start_(model, input_mean)
        return model

    checks = []
    log("doctor: input scale and labels")
    checks.append(check_inputs(X, data.x_train.dtype, data.notices, centring_record))
    checks.append(check_labels(data.y_train, k))
    log("doctor: initial loss")
    checks.append(check_initial_loss(new_model(), X, y, centred=input_mean is not None))
    log("doctor: gradient check")
    checks.append(check_gradient(new_model(), X[:8], y[:8], summed_gradients, batch))
    log("doctor: overfit one batch")
    checks.append(check_overfit(new_model(), X[:32], y[:32], config, lr, input_mean))
    log("doctor: learning-rate range test")
    lr_check, suggested = check_learning_rate(new_model(), X, y, config, lr, summed_gradients, input_mean)
    checks.append(lr_check)
    return DoctorResult(checks, lr, suggested)


# ------------------------------------------------------------------------------ checks


def check_inputs(X, stored_dtype, notices=(), centring_record=None):
    """The scale of the inputs the network will see, how the file stored them, and whether
    training centres them (``centring_record``, from :func:`steadynet.train.centring.centring`)."""
    lo, hi, mean, std = float(X.min()), float(X.max()), float(X.mean()), float(X.std())
    values = {"min": lo, "max": hi, "mean": mean, "std": std, "stored_dtype": str(stored_dtype)}
    seen = f"inputs range {lo:.3g} to {hi:.3g} (mean {mean:.3g}, std {std:.3g})"
    scaled = [n for n in notices if "0-255" in n or "scaled" in n]
    if scaled:
        values["file"] = scaled
        seen += f"; the file held {scaled[0].split(': ', 1)[-1]}"
    elif stored_dtype == np.uint8:
        seen += "; the file held 0-255 uint8 pixels, scaled to [0, 1] per batch"
    if centring_record and centring_record["centred"]:
        values["centred"] = True
        why = "as asked" if centring_record["setting"] == "on" else "its mean is above its spread, as on a light ground"
        seen += f"; training centres the first layer on them ({why}; --centre-inputs)"
    if hi > 1.5 or lo < -1.5:
        return Check(
            "input scale",
            "fail",
            seen,
            "scale the inputs to [0, 1] (divide 0-255 pixels by 255) or "
            "standardise each feature: large inputs make the first layer's pre-activations and "
            "gradients as large",
            values,
        )
    if std < 0.01:
        return Check(
            "input scale",
            "warn",
            seen + ": nearly constant",
            "check that the images were read correctly; constant inputs carry no information",
            values,
        )
    return Check("input scale", "ok", seen, values=values)


def check_labels(y, k):
    counts = np.bincount(y, minlength=k)
    values = {"counts": counts.tolist()}
    missing = [c for c in range(k) if counts[c] == 0]
    ratio = counts.min() / counts.max()
    seen = f"{k} classes, {counts.min()} to {counts.max()} samples each"
    if missing:
        return Check(
            "label balance",
            "fail",
            f"{seen}; classes {missing} never occur",
            "check the labels: the network cannot learn a class it never sees",
            values,
        )
    if ratio < 0.1:
        return Check(
            "label balance",
            "warn",
            f"{seen} (the rarest is {ratio:.1%} of the commonest)",
            "weigh the classes or resample: accuracy will be dominated by the common ones",
            values,
        )
    return Check("label balance", "ok", seen, values=values)


def check_initial_loss(model, X, y, centred=False):
    """The loss of the network as a run starts it (``centred``: its first layer centred on the
    inputs' mean), against chance, and what to change when it starts far from chance."""
    loss = float(model.evaluate(X, y)[0])
    chance = math.log(model.n_classes)
    units = unit_evidence(model, X[:512])
    values = {"initial_loss": loss, "ln_k": chance, **units}
    seen = f"initial loss {loss:.3g} vs ln({model.n_classes}) = {chance:.3f} with init {model.init!r}"
    stuck = max(units["saturated"], units["dead"])
    if stuck > 0.5:
        seen += f"; {stuck:.0%} of the hidden units start saturated or dead"
    if loss > chance + 0.5 or stuck > 0.5:
        return Check("initial loss", "fail", seen, initial_loss_fix(model, X, centred), values)
    return Check("initial loss", "ok", seen, values=values)


def initial_loss_fix(model, X, centred):
    """What to change when the network starts far from chance, from the likeliest cause."""
    designed = INIT_FOR_ACTIVATION.get(model.activation)
    if designed and model.init != designed:
        why = (
            ": uniform [0, 1) weights are all positive and far too large, so every hidden unit "
            "saturates and the logits start far apart"
            if model.init == "uniform_01"
            else ""
        )
        return f"use --init {designed} for {model.activation} (the default){why}"
    mean, std = float(X.mean()), float(X.std())
    if not centred and mean > std:
        return (
            f"the inputs share a large common part (mean {mean:.3g} above their spread {std:.3g}, as on "
            f"a light ground): train with --centre-inputs auto or on, which starts and steps the first "
            f"layer as if every input had mean 0"
        )
    return (
        f"the init is the one {model.activation} is designed for, so look at the inputs (the input-scale "
        f"check above) and at the depth: standardise features of very different scales, or try fewer layers"
    )


def check_gradient(model, X, y, summed_gradients, batch):
    result = check_model_gradients(model, X, y, max_per_tensor=30)
    values = {"passed": result.passed, "max_rel_error": max(t.rel_error for t in result.tensors.values())}
    if not result.passed:
        return Check(
            "gradient check",
            "fail",
            f"steadynet's own backprop disagrees with central differences ({', '.join(result.failed)}): {result.where}",
            "report this as a steadynet bug",
            values,
        )
    seen = (
        f"steadynet's own backprop for these settings matches central differences (max relative error "
        f"{values['max_rel_error']:.1e}); to check your own code, use steadynet.diagnose"
    )
    if summed_gradients:
        values["scale"] = batch
        return Check(
            "gradient check",
            "fail",
            seen + f"; but your gradient is summed over the batch, so it is {batch}x the gradient of the mean loss",
            f"divide the gradient by the batch size ({batch}) once, or the learning rate by it",
            values,
        )
    return Check("gradient check", "ok", seen, values=values)


def sgd_steps(model, X, y, config, lr, steps, input_mean=None):
    """Train ``model`` on the fixed batch ``(X, y)`` for ``steps`` steps at constant ``lr``, with
    the run's optimiser (centred on ``input_mean`` when given); returns the losses (stops at the
    first non-finite one)."""
    optimizer = run_optimizer(config, model, input_mean)
    Xd, yd = model.xp.asarray(X), model.xp.asarray(y)
    losses = []
    for _ in range(steps):
        step = train_step(model, optimizer, Xd, yd, lr)
        losses.append(step.loss)
        if step.refused:
            break
    return losses


def check_overfit(model, X, y, config, lr, input_mean=None, steps=150):
    losses = sgd_steps(model, X, y, config, lr, steps, input_mean)
    final = losses[-1]
    acc = (
        float((to_numpy(model.forward(model.xp.asarray(X))).argmax(axis=1) == y).mean())
        if math.isfinite(final)
        else 0.0
    )
    values = {"first_loss": losses[0], "final_loss": final, "accuracy": acc, "steps": len(losses)}
    seen = (
        f"{len(y)} samples, {len(losses)} steps at learning rate {lr:.3g}: loss {losses[0]:.3g} -> {final:.3g}, "
        f"accuracy {acc:.0%}"
    )
    if acc == 1.0 and final < 0.2 * losses[0]:
        return Check("overfit one batch", "ok", seen, values=values)
    return Check(
        "overfit one batch",
        "fail",
        seen + ": the network cannot even memorise one small batch",
        "fix the other failures first, above and below; a learning rate that is too large fails this check "
        "too: try the rate the learning-rate check below suggests",
        values,
    )


def lr_range_test(model, X, y, config, lrs, batch_size=64, input_mean=None):
    """One step of the run's optimiser (centred on ``input_mean`` when given) per learning rate
    in ``lrs`` (increasing), each on the next batch; returns the loss measured before each step,
    stopping once it explodes."""
    optimizer = run_optimizer(config, model, input_mean)
    xp, n = model.xp, X.shape[0]
    losses = []

    def blown_up(loss, grad_norm):  # non-finite, or over 4 times the lowest loss so far
        if refusal := non_finite(loss, grad_norm):
            return refusal
        if losses and loss > 4 * min(losses):
            return Refusal(f"loss {loss:.3g} is over 4 times the lowest so far, {min(losses):.3g}", "loss")
        return None

    for t, lr in enumerate(lrs):
        s = (t * batch_size) % max(n - batch_size, 1)
        Xb, yb = xp.asarray(X[s : s + batch_size]), xp.asarray(y[s : s + batch_size])
        step = train_step(model, optimizer, Xb, yb, lr, check=blown_up)
        losses.append(step.loss)
        if step.refused:
            break
    return losses


def check_learning_rate(model, X, y, config, lr, summed_gradients, input_mean=None, steps=80):
    lrs = np.geomspace(1e-4, 1e2, steps)
    batch = 64 if config.batch_size == "full" else min(config.batch_size, 256)
    losses = np.array(lr_range_test(model, X, y, config, lrs, batch, input_mean))
    # smoothed with a short moving average: single batches are noisy
    smooth = np.convolve(losses, np.ones(3) / 3, mode="valid") if len(losses) >= 3 else losses
    best = int(np.argmin(smooth)) + (len(losses) - len(smooth))
    suggested = float(lrs[best] / 10)  # a tenth of the rate where the loss was lowest: a safe margin
    blows_up = float(lrs[len(losses) - 1]) if len(losses) < steps else None
    values = {
        "learning_rates": lrs[: len(losses)].tolist(),
        "losses": losses.tolist(),
        "suggested": suggested,
        "diverges_at": blows_up,
        "effective": lr,
    }
    rate = f"learning rate {lr:.3g}" + (
        " (your rate times the batch size: summed gradients)" if summed_gradients else ""
    )
    seen = f"{rate}; the sweep suggests {suggested:.3g}" + (
        f" and the loss blows up from {blows_up:.3g}" if blows_up else ""
    )
    if blows_up is not None and lr >= blows_up:
        return Check(
            "learning rate",
            "fail",
            seen,
            f"use about {suggested:.3g}"
            + (" on the mean gradient (divide by the batch size)" if summed_gradients else ""),
            values,
        ), suggested
    if lr > 30 * suggested or lr < suggested / 100:
        return Check(
            "learning rate",
            "warn",
            seen + f" ({lr / suggested:.3g}x the suggestion)",
            f"try --lr {suggested:.3g}",
            values,
        ), suggested
    return Check("learning rate", "ok", seen, values=values), suggested
