"""One call that diagnoses a user's own hand-written network, as they wrote it.

"Is it the sigmoid, or is one of my backprop equations wrong?" :func:`diagnose` takes the
user's parameters, data and functions (forward, backward, and optionally their own loss and
learning rate) and checks, in the order a fix should follow:

1. **data**: the labels' form and range, the inputs' scale;
2. **forward**: do the probabilities of each sample sum to 1 over the classes; does one
   sample's output depend on the others (a softmax over the batch axis); does the softmax
   survive large logits (the row maximum subtracted);
3. **loss**: the user's reported loss against the cross-entropy of their own probabilities
   with the true labels, and which formula mistake reproduces their number;
4. **backprop**: their gradients against central differences of a *reference* loss of their
   forward (so a wrong loss cannot mask the backprop), and, for an MLP, the combination of
   known mistakes that reproduces their gradients to rounding;
5. **initialisation**: saturated units, weights all positive, scale against Glorot/He;
6. **first step**: the learning rate times their gradient against the weights.

The result, :class:`Diagnosis`, has ``.findings`` (in fix order), ``.verdict``, ``.report()``
and ``.to_dict()``.
"""

import math
import textwrap
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from . import mistakes as M
from .gradcheck import check_gradients, formulas
from .userparams import UserParams

STAGES = ("data", "forward", "loss", "backprop", "init", "step")
STAGE_TITLES = {
    "data": "data",
    "forward": "forward pass",
    "loss": "loss",
    "backprop": "backprop",
    "init": "initialisation",
    "step": "first step",
}


@dataclass
class Finding:
    """One thing the numbers show.

    ``severity`` is "mistake" (a formula to change), "warning" (the check itself is limited,
    or a setting is risky) or "note"; ``stage`` one of :data:`STAGES`; ``kind`` a short key
    (e.g. ``"softmax_batch_axis"``); ``seed_mistake`` the number of the matching mistake in
    the seed's program (1-9), when there is one; ``fix`` says which formula to change and how.
    """

    stage: str
    kind: str
    severity: str
    title: str
    evidence: str = ""
    fix: str = ""
    seed_mistake: int | None = None
    tensors: list | None = None

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Diagnosis:
    """The result of :func:`diagnose`."""

    findings: list
    layout: dict | None = None
    network: str = ""
    gradcheck: object | None = None
    notes: list = field(default_factory=list)
    step: dict = field(default_factory=dict)

    @property
    def mistakes(self):
        return [f for f in self.findings if f.severity == "mistake"]

    @property
    def ok(self):
        return not self.mistakes

    def count(self, *stages):
        return sum(1 for f in self.mistakes if f.stage in stages)

    @property
    def verdict(self):
        n_back, n_loss, n_fwd, n_data = (
            self.count("backprop"),
            self.count("loss"),
            self.count("forward"),
            self.count("data"),
        )
        n_init, n_step = self.count("init"), self.count("step")
        sigmoid = "sigmoid" in self.network
        if n_back or n_loss or n_fwd or n_data:
            parts = []
            if n_back:
                parts.append(f"your backprop has {n_back} mistake{'s' * (n_back > 1)}")
            for count, what in (
                (n_fwd, "your forward pass"),
                (n_loss, "your loss"),
                (n_data, "your data"),
                (n_init, "the initialisation"),
                (n_step, "the step size"),
            ):
                if count:
                    parts.append(f"{what} {count}" if parts else f"{what} has {count} mistake{'s' * (count > 1)}")
            head = "Not the sigmoid: " if sigmoid else ""
            text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
            text = text if head else text[0].upper() + text[1:]
            return f"{head}{text}; fix them in this order."
        if n_init or n_step:
            what = []
            if n_step:
                what.append("the step is too large")
            if n_init:
                what.append("the initialisation is off")
            return f"Your gradients are right; {' and '.join(what)}: fix in this order."
        if any(f.severity == "warning" for f in self.findings):
            return "No mistake found, but read the warnings: part of the check could not be trusted."
        return "Your network is right: forward pass, loss and gradients agree with the numbers."

    def to_dict(self):
        return {
            "verdict": self.verdict,
            "ok": self.ok,
            "network": self.network,
            "layout": self.layout,
            "findings": [f.to_dict() for f in self.findings],
            "notes": self.notes,
            "step": self.step,
            "gradcheck": self.gradcheck.to_dict() if self.gradcheck is not None else None,
        }

    def report(self, width=79):
        """The verdict, then each finding with what was seen and the fix, wrapped to ``width``."""

        def wrap(text, first, rest="     "):
            return textwrap.fill(
                text,
                width,
                initial_indent=first,
                subsequent_indent=rest,
                break_on_hyphens=False,
                break_long_words=False,
            )

        lines = [wrap(self.verdict, "", "")]
        if self.mistakes and "sigmoid" in self.network and self.count("backprop", "loss", "forward"):
            lines.append(
                wrap(
                    "A stable sigmoid would only silence the overflow warnings: the numbers below are what blows up.",
                    "",
                    "",
                )
            )
        if self.network:
            lines.append(wrap(f"network: {self.network}", "", "  "))
        numbered = 0
        for f in self.findings:
            if f.severity == "mistake":
                numbered += 1
                tag = f"{numbered}."
            else:
                tag = "warning:" if f.severity == "warning" else "note:"
            # the tag is kept on one line: its spaces are not break points
            seed = f" [seed\0mistake\0{f.seed_mistake}]" if f.seed_mistake else ""
            lines.append(wrap(f"{tag} {STAGE_TITLES[f.stage]}: {f.title}{seed}", "", "    "))
            if f.evidence:
                lines.append(wrap(f.evidence, "    seen: ", "          "))
            if f.fix:
                lines.append(wrap(f.fix, "    fix:  ", "          "))
        lines += [wrap(n, "note: ", "      ") for n in self.notes]
        lines = [line.replace("\0", " ") for line in lines]
        if self.gradcheck is not None:
            lines.append("")
            lines.append(self.gradcheck.report())
        return "\n".join(lines)

    __str__ = report


# ------------------------------------------------------------------------------ helpers


def _labels(y, n, k=None):
    """The true labels as (n,) ints, and the form they were given in."""
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape and y.size == n:
        form = "integer column" if y.shape[1] == 1 else "integer row"
        y = y.reshape(-1)
    elif (
        y.ndim == 2
        and y.size == n * (k or y.shape[1])
        and np.isin(y, (0, 1)).all()
        and (np.allclose(y.sum(axis=1), 1) or np.allclose(y.sum(axis=0), 1))
    ):
        if y.shape[0] == n and np.allclose(y.sum(axis=1), 1):
            return y.argmax(axis=1), "one-hot (rows)"
        return y.argmax(axis=0), "one-hot (columns)"
    else:
        form = "integers"
    if y.ndim != 1 or y.size != n:
        raise ConfigError(
            f"y: expected {n} labels (integers, a column of integers, or one-hot), found shape {np.shape(y)}."
        )
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise ConfigError("y: expected integer class labels, found fractional values.")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu" or y.min() < 0:
        raise ConfigError(f"y: expected class labels 0, 1, ..., found {y.min()} as the smallest.")
    return y.astype(np.int64), form


def _call(fn, params, X, y, what, rng_state=None):
    """Call one of the user's functions; NumPy's global random state is reset first (so a
    dropout mask drawn with np.random is the same at every call), warnings are collected."""
    if rng_state is not None:
        np.random.set_state(rng_state)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with np.errstate(all="warn"):
                out = fn(params, X, y)
    except Exception as e:
        raise ConfigError(
            f"{what}(params, X, y) raised {type(e).__name__}: {e}; diagnose calls it with the "
            f"params in your container, X and y in your layout."
        ) from e
    overflow = sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})
    return out, overflow


def probabilities_of(out, n):
    """The output probabilities in what a forward pass returned: the array itself, the first
    2-D array of a tuple (``(P, cache)``), or a dict's entry named like an output."""
    if isinstance(out, (tuple, list)):
        arrays = [o for o in out if isinstance(o, np.ndarray) and o.ndim == 2 and n in o.shape]
        if not arrays:
            raise ConfigError(
                f"forward: returned a {type(out).__name__} holding no (n, k) array of outputs; "
                f"return the probabilities, e.g. lambda p, X, y: my_forward(X, p)[0]."
            )
        return arrays[0]
    if isinstance(out, dict):
        for key in ("P", "probs", "probabilities", "y_hat", "yhat", "output", "out", "A_out"):
            if key in out:
                return out[key]
        layered = sorted((k for k in out if str(k)[:1] == "A" and str(k)[1:].isdigit()), key=lambda k: int(k[1:]))
        if layered:
            return out[layered[-1]]
        raise ConfigError(
            f"forward: returned a dict without the outputs (keys {', '.join(map(str, out))}); "
            f"return the probabilities, e.g. lambda p, X, y: my_forward(X, p)['A2']."
        )
    return out


def _take(a, idx, axis):
    a = np.asarray(a)
    return np.take(a, idx, axis=axis) if a.ndim > axis else a


def scalar(value):
    """A loss as one float (the sum, where a function returned the per-sample values)."""
    try:
        return float(np.asarray(value, dtype=np.float64).sum())
    except (TypeError, ValueError):
        raise ConfigError(f"loss: expected a number, found {type(value).__name__} {str(value)[:40]!r}.") from None


def _fmt(x):
    return f"{x:.3g}" if abs(x) < 1e4 and abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


# ------------------------------------------------------------------------------ the call


def diagnose(
    params, X, y, *, forward, backward=None, loss=None, lr=None, shapes=None, n_samples=64, seed=0, max_per_tensor=300
):
    """Diagnose a hand-written network from its numbers: forward pass, loss, backprop,
    initialisation and first step, each mistake with the formula to change, in fix order.

    Parameters
    ----------
    params : dict, list or tuple of ndarray, flat ndarray (with ``shapes``), or layer objects
        The parameters as your code holds them, e.g. ``{"W1": (784, 30), "b1": (1, 30), ...}``.
    X : ndarray of shape (n_samples, n_inputs) or (n_inputs, n_samples)
        Inputs, in your layout (samples in rows or in columns: detected).
    y : ndarray
        The labels as your code passes them: integers ``(n,)``, a column ``(n, 1)``, or
        one-hot ``(n, k)``.
    forward : callable(params, X, y) -> ndarray
        Your forward pass: the output probabilities, ``(n, k)`` (or ``(k, n)``).
    backward : callable(params, X, y) -> gradients, optional
        Your backprop: a dict (``W1`` or ``dW1``, ``W1_grad``, ...) or list of gradients.
    loss : callable(params, X, y) -> float, optional
        The loss your program reports, to be checked against the cross-entropy.
    lr : float, optional
        Your learning rate, to judge the first step.
    shapes : sequence of tuple, optional
        For ``params`` given as one flat vector.
    n_samples : int, default=64
        The checks run on this many samples drawn from ``X`` (the first step uses all of it).
    seed : int, default=0
    max_per_tensor : int, default=300
        Elements checked one by one per tensor (besides every row, column or block as a whole).

    Returns
    -------
    Diagnosis
        ``.verdict``, ``.findings``, ``.report()``, ``.to_dict()``.

    Raises
    ------
    ConfigError
        If the parameters, data or functions cannot be used as given; the message says why.
    """
    if not callable(forward):
        raise ConfigError("forward: expected your forward pass, a function (params, X, y) -> probabilities.")
    user = UserParams(params, shapes)
    names, arrays = user.names, user.arrays
    X = np.asarray(X)
    if X.ndim != 2:
        raise ConfigError(f"X: expected a 2-D array of inputs, found shape {X.shape}.")
    findings, notes = [], list(user.notes)
    rng = np.random.default_rng(seed)

    # which axis of X holds the samples: the one the first weight matrix does not match
    W_first = next((a for a in arrays.values() if a.ndim == 2 and min(a.shape) > 1), None)
    if W_first is None:
        raise ConfigError("params: found no weight matrix (a 2-D array) among them.")
    rows_ok = X.shape[1] in W_first.shape
    sample_axis = 0 if rows_ok or X.shape[0] not in W_first.shape else 1
    n_full = X.shape[sample_axis]
    y_arr = np.asarray(y)
    if y_arr.ndim == 0 or n_full not in y_arr.shape[:2]:
        raise ConfigError(f"y: expected labels for the {n_full} samples of X, found shape {y_arr.shape}.")
    y_axis = 0 if y_arr.shape[0] == n_full else 1

    # the samples the checks run on
    idx = np.sort(rng.choice(n_full, min(n_samples, n_full), replace=False))
    Xs, ys = _take(X, idx, sample_axis), _take(y_arr, idx, y_axis)
    n = len(idx)
    y_true, y_form = _labels(y_arr if y_axis == 0 else y_arr.T, n_full)
    y_s = y_true[idx]

    state = np.random.get_state()

    def call(fn, P, what, Xa=Xs, ya=ys):
        with user.bound():
            return _call(fn, user.rebuild(P), Xa, ya, what, state)

    reads = {}  # how the forward's output is read, settled at the first call

    def call_forward(P, Xa=Xs, ya=ys):
        out, warns = call(forward, P, "forward", Xa, ya)
        out = probabilities_of(out, n)
        if "logits" not in reads:
            finite = np.asarray(out)[np.isfinite(out)]
            reads["logits"] = bool(finite.size and (finite.min() < 0 or finite.max() > 1))
            if reads["logits"]:
                notes.append(
                    "your forward pass returns values outside [0, 1]: read as logits, and the checks "
                    "take their softmax over the classes"
                )
        if reads["logits"]:
            axis = 1 if np.shape(out)[0] == n else 0
            with np.errstate(all="ignore"):
                Zq = np.asarray(out, np.float64)
                E = np.exp(Zq - Zq.max(axis=axis, keepdims=True))
                out = (E / E.sum(axis=axis, keepdims=True)).astype(np.asarray(out).dtype)
        return out, warns

    P_raw, overflow = call_forward(arrays)
    low_precision = np.asarray(P_raw).dtype.kind == "f" and np.asarray(P_raw).dtype.itemsize < 8
    P_out = np.asarray(P_raw, dtype=np.float64)
    P_again, _ = call_forward(arrays)
    if not np.array_equal(np.asarray(P_again, np.float64), P_out):
        findings.append(
            Finding(
                "forward",
                "random_forward",
                "warning",
                "your forward pass is random",
                "two calls at the same weights gave different outputs (dropout or noise drawn "
                "with a generator other than np.random)",
                "switch dropout off for the diagnosis (or draw its mask from np.random), or the "
                "gradient check cannot be trusted",
            )
        )

    # ------------------------------------------------------------------ data
    x_max, x_min = float(np.nanmax(X)), float(np.nanmin(X))
    if x_max > 10:
        findings.append(
            Finding(
                "data",
                "unscaled_inputs",
                "mistake",
                "inputs are not scaled",
                f"X ranges {_fmt(x_min)} to {_fmt(x_max)}",
                "divide pixel values by 255 (or "
                "standardise): large inputs saturate every sigmoid and make the gradients huge",
            )
        )
    k_guess = int(
        P_out.shape[1] if P_out.ndim == 2 and P_out.shape[0] == n else (P_out.shape[0] if P_out.ndim == 2 else 0)
    )
    if k_guess and y_true.max() >= k_guess:
        findings.append(
            Finding(
                "data",
                "label_range",
                "mistake",
                "labels out of range",
                f"labels go up to {y_true.max()} but the network has {k_guess} outputs",
                "labels must be 0 .. k-1 (subtract 1 from labels 1..k)",
            )
        )

    # ------------------------------------------------------------------ forward
    if P_out.ndim != 2:
        raise ConfigError(f"forward: expected probabilities of shape (n, k) or (k, n), found shape {P_out.shape}.")
    samples_in = "rows" if P_out.shape[0] == n else "columns"
    Pc = P_out if samples_in == "rows" else P_out.T
    k = Pc.shape[1]
    net = M.read_network(names, arrays, Xs, P_out, forward_at=lambda Q: call_forward(Q)[0])
    network_text = ""
    if net is not None:
        sizes = [user.arrays[net.layers[0][0]].shape[0 if net.weights == "in_out" else 1]]
        sizes += [net.weight(arrays, wn).shape[1] for wn, _ in net.layers]
        network_text = (
            f"{'-'.join(map(str, sizes))} MLP, {net.activation} hidden units, "
            f"{'softmax' if 'softmax' in net.output else net.output} output; samples in {net.samples}, "
            f"weights stored {'(in, out)' if net.weights == 'in_out' else '(out, in)'}"
        )
    else:
        notes.append(
            "your forward pass could not be read as an MLP (Z = A W + b, one activation, softmax or "
            "sigmoid output): the backprop is checked by central differences only, without naming the "
            "formula mistakes."
        )
    finite = np.all(np.isfinite(Pc))
    row_sums, col_sums = Pc.sum(axis=1), Pc.sum(axis=0)
    softmax_like = finite and np.all(Pc >= 0)
    rows_one = finite and np.allclose(row_sums, 1, atol=1e-4)
    cols_one = finite and np.allclose(col_sums, 1, atol=1e-4)
    forward_wrong = False
    if not finite:
        findings.append(
            Finding(
                "forward",
                "non_finite",
                "mistake",
                "the forward pass gives NaN or infinity",
                f"{int((~np.isfinite(Pc)).sum())} of {Pc.size} outputs are not finite"
                + (f"; NumPy warned: {'; '.join(overflow)}" if overflow else ""),
                "subtract the row maximum before exp in the softmax, and use a stable sigmoid",
            )
        )
        forward_wrong = True
    elif cols_one and not rows_one:
        findings.append(
            Finding(
                "forward",
                "softmax_batch_axis",
                "mistake",
                "softmax normalised over the batch axis, not over the classes of each sample",
                f"the outputs of each class sum to 1 over the {n} samples; each sample's outputs sum "
                f"to {_fmt(row_sums.min())} .. {_fmt(row_sums.max())}",
                "normalise over the classes: E = np.exp(Z - Z.max(axis=1, keepdims=True)); "
                "P = E / E.sum(axis=1, keepdims=True) (Python's sum() adds up rows: the batch axis)"
                if samples_in == "rows"
                else "normalise over the classes: axis 0 when samples are columns (E / E.sum(axis=0, keepdims=True))",
                seed_mistake=2,
            )
        )
        forward_wrong = True
    elif softmax_like and not rows_one and net is not None and net.output == "sigmoid":
        pass  # sigmoid outputs: they need not sum to 1
    elif softmax_like and not rows_one:
        findings.append(
            Finding(
                "forward",
                "not_normalised",
                "mistake",
                "output probabilities do not sum to 1",
                f"sums per sample {_fmt(row_sums.min())} .. {_fmt(row_sums.max())}",
                "end the forward pass with a softmax over the classes",
            )
        )
        forward_wrong = True
    if finite and n > 1 and Xs.size:
        # one sample's output must not depend on the others
        X2 = np.array(Xs, dtype=np.float64)
        other = (slice(1, None), slice(None)) if sample_axis == 0 else (slice(None), slice(1, None))
        X2[other] = X2[other][::-1] if sample_axis == 0 else X2[other][:, ::-1]
        P2, _ = call_forward(arrays, X2.astype(Xs.dtype), ys)
        P2 = np.asarray(P2, np.float64)
        first = (P2[0] if samples_in == "rows" else P2[:, 0]), (P_out[0] if samples_in == "rows" else P_out[:, 0])
        if np.all(np.isfinite(P2)) and not np.allclose(*first, rtol=1e-6, atol=1e-9):
            if not any(f.kind == "softmax_batch_axis" for f in findings):
                findings.append(
                    Finding(
                        "forward",
                        "batch_coupling",
                        "mistake",
                        "one sample's output depends on the other samples in the batch",
                        "changing the other samples changed the first sample's probabilities",
                        "normalise (softmax) over the classes of each sample, never over the batch",
                    )
                )
                forward_wrong = True
    if finite and net is not None and "softmax" in net.output:
        # a softmax must not care about a constant added to all logits; without the max it overflows
        bn = net.layers[-1][1]
        if bn is not None:
            shifted = dict(arrays)
            shifted[bn] = arrays[bn] + 1000.0
            P3, warns = call_forward(shifted)
            P3 = np.asarray(P3, np.float64)
            if not np.all(np.isfinite(P3)) or not np.allclose(P3, P_out, rtol=1e-2, atol=1e-4):
                # a warning while the outputs are finite: it breaks once the logits grow
                axis = "axis=1" if samples_in == "rows" else "axis=0"
                findings.append(
                    Finding(
                        "forward",
                        "softmax_overflow",
                        "warning",
                        "the softmax does not subtract the maximum logit",
                        "adding 1000 to every logit (which leaves a softmax unchanged) gave "
                        + ("NaN/inf" if not np.all(np.isfinite(P3)) else "different outputs"),
                        f"compute exp(Z - Z.max({axis}, keepdims=True)): exp overflows above 709 "
                        f"in float64 and 88 in float32, and then the outputs are NaN",
                        seed_mistake=2,
                    )
                )

    # ------------------------------------------------------------------ loss
    term = "cross_entropy" if net is None or net.output != "sigmoid" else "half_squared_error"
    P_ref_forward = Pc  # the probabilities the reference loss is taken of
    if forward_wrong and net is not None:
        P_ref_forward = M.OUTPUTS["softmax"](net.forward(arrays, Xs)[0][-1])
    weight_names = (
        [wn for wn, _ in net.layers]
        if net is not None
        else [nm for nm in names if arrays[nm].ndim == 2 and min(arrays[nm].shape) > 1]
    )

    def sum_w2(Q):
        return float(sum((np.asarray(Q[w], np.float64) ** 2).sum() for w in weight_names))

    l2 = None  # the L2 coefficient of the user's loss, once known
    if loss is not None:
        raw_value, _ = call(loss, arrays, "loss")
        if np.size(raw_value) != 1:
            notes.append(
                f"your loss returns {np.size(raw_value)} values, not one number: their sum is taken "
                f"as the loss you report"
            )
        value, value_again = scalar(raw_value), scalar(call(loss, arrays, "loss")[0])
        if value_again != value:
            findings.append(
                Finding(
                    "loss",
                    "random_loss",
                    "warning",
                    "your loss is random",
                    "two calls at the same weights gave different values (a dropout mask drawn anew)",
                    "draw the mask once per step, or switch dropout off to diagnose",
                )
            )
        points = [(Pc, value, sum_w2(arrays))]
        if net is not None:  # a second point, with every layer out of saturation
            shrunk = M.shrink(net, arrays, Xs)
            P2, _ = call_forward(shrunk)
            v2, _ = call(loss, shrunk, "loss")
            points.append((net.outputs(P2), scalar(v2), sum_w2(shrunk)))
        rtol = 1e-3 if low_precision else 1e-5
        with np.errstate(all="ignore"):
            matched = M.match_loss(points, y_s, rtol=max(rtol, 1e-4))
        ce = M.reference_loss("cross_entropy", P_ref_forward, y_s)
        if matched is None:
            findings.append(
                Finding(
                    "loss",
                    "unknown_loss",
                    "warning",
                    "your loss matches no formula known here",
                    f"yours {_fmt(value)}; the cross-entropy of your probabilities with the true labels is {_fmt(ce)}",
                    "the mean over samples of -log P[i, y_i] is the cross-entropy; the gradient is checked against it",
                )
            )
        else:
            t, norm, l2 = matched
            if t in M.CORRECT_TERMS:
                term = t
            if l2:
                findings.append(
                    Finding(
                        "loss",
                        "l2_penalty",
                        "note",
                        f"your loss adds an L2 penalty lambda / 2 * sum(W**2) with lambda = {l2:.4g}",
                        f"reproduced at two sets of weights over {', '.join(weight_names)}",
                        "the gradient must then hold lambda * W for each weight matrix",
                    )
                )
            if t == "rows_v_y":
                findings.append(
                    Finding(
                        "loss",
                        "rows_v_y",
                        "mistake",
                        "the cross-entropy picks whole rows P[y] instead of each sample's probability of its own class",
                        f"your loss {_fmt(value)} is reproduced by -log(P[y]); the cross-entropy is {_fmt(ce)}",
                        "loss = -np.log(P[np.arange(n), y]).mean() with y the integer labels (n,)",
                        seed_mistake=3,
                    )
                )
            if norm != "samples":
                seed_no = 9 if norm == "classes" else None
                findings.append(
                    Finding(
                        "loss",
                        f"loss_{norm}",
                        "mistake",
                        f"the loss is {M.NORMALISERS[norm]}",
                        f"your loss {_fmt(value)} is reproduced by the total "
                        f"{'/ k' if norm == 'classes' else '/ (n k)' if norm == 'elements' else ''}"
                        f" (n = {n}, k = {k})",
                        "divide the summed loss by the number of samples n, once",
                        seed_mistake=seed_no,
                    )
                )

    # ------------------------------------------------------------------ backprop
    grads = None
    reading = None
    if backward is not None:
        raw, _ = call(backward, arrays, "backward")
        try:
            grads, grad_notes = user.match_gradients(raw)
        except ConfigError as e:
            raise ConfigError(f"backward: returned what cannot be read as gradients: {e}") from None
        notes += grad_notes
        missing = [nm for nm in names if nm not in grads]
        if missing and len(missing) == len(names):
            raise ConfigError(
                f"backward: none of its gradients ({', '.join(map(str, raw))}) could be matched to "
                f"the parameters ({', '.join(names)}); name them like the parameters (W1 or dW1)."
            )
        # the reference: a correct loss of the forward pass (theirs where it is right, the correct one otherwise)
        # in float64 where the user's code is not: their own network, read as an MLP, is the reference
        use_ours = net is not None and (forward_wrong or low_precision)
        if net is not None:
            rtol = 1e-6 if all(np.asarray(g).dtype == np.float64 for g in grads.values()) else 2e-3
            with np.errstate(all="ignore"):
                reading = M.match_backprop(net, arrays, Xs, y_s, grads, Pc, term, n_full, rtol=rtol, l2=l2)
            lams = list(reading.decay.values())
            if l2 is None and lams and len(lams) == len(weight_names) and max(lams) - min(lams) <= 1e-4 * max(lams):
                # a weight-decay term in the gradient, and no loss said to carry it: check against it too
                l2 = float(np.mean(lams))
                notes.append(
                    f"your gradient holds a weight-decay term lambda * W (lambda = {l2:.4g}); the gradient "
                    f"check takes the loss to carry lambda / 2 * sum(W**2)"
                )
        l2_ref = l2 or 0.0

        def reference(container):
            Q = user.named(container)
            if use_ours:
                with np.errstate(all="ignore"):
                    Pq = M.OUTPUTS["softmax"](net.forward(Q, Xs)[0][-1])
            else:
                with user.bound():
                    out, _ = call_forward(Q)
                out = np.asarray(out)
                Pq = out if samples_in == "rows" else out.T
            with np.errstate(all="ignore"):
                value = M.reference_loss(term, Pq, y_s, l2_ref, sum_w2(Q) if l2_ref else 0.0)
            return value

        result = check_gradients(
            reference,
            {nm: g for nm, g in grads.items()},
            params,
            batch_size=n,
            seed=seed,
            max_per_tensor=max_per_tensor,
            shapes=shapes,
            layout=net.layout if net is not None else None,
        )
        if use_ours and forward_wrong:
            notes.append(
                "your forward pass is wrong, so the gradients are checked against the correct network with your weights"
            )
        elif use_ours:
            notes.append(
                f"your forward pass computes in {np.asarray(P_raw).dtype}: the gradients are checked "
                f"against central differences of the same network computed in float64"
            )
        notes += [nt for nt in result.notes if nt not in notes]
        if reading is not None:
            findings += backprop_findings(reading, net, result, n, n_full, y_form)
        if not reading or not reading.matched:
            for name in result.failed:
                if reading is not None and (name not in reading.unexplained or result.tensors[name].kind == "wrong"):
                    continue  # explained by the reading, or left to its "unexplained" finding
                t = result.tensors[name]
                findings.append(
                    Finding(
                        "backprop",
                        f"gradient_{t.kind}",
                        "mistake",
                        f"{name}: {t.detail}",
                        f"relative error {t.rel_error:.2e} against central differences",
                        result.where,
                        tensors=[name],
                    )
                )
        for name, t in result.tensors.items():
            if t.status == "warn" and t.detail and not t.detail.startswith("saturated"):
                findings.append(Finding("backprop", "borderline", "warning", f"{name}: {t.detail}", tensors=[name]))
    else:
        result = None

    # ------------------------------------------------------------------ initialisation
    if net is not None:
        findings += init_findings(net, arrays, Xs)

    # ------------------------------------------------------------------ first step
    step = {}
    if lr is not None and backward is not None:
        step, step_findings = first_step(user, backward, X, y_arr, lr, grads, reading, n, n_full, state)
        findings += step_findings

    findings.sort(key=lambda f: (STAGES.index(f.stage), {"mistake": 0, "warning": 1, "note": 2}[f.severity]))
    return Diagnosis(findings, net.layout if net is not None else None, network_text, result, notes, step)


# ------------------------------------------------------------------------------ findings


def backprop_findings(reading, net, result, n, n_full, y_form):
    """Findings from the combination of mistakes that reproduces the user's gradients."""
    out = []
    top = len(net.layers)
    sw, correct = reading.switches, reading.correct
    L_name = f"dZ{top}"
    if sw.get("labels") == "integer_column":
        out.append(
            Finding(
                "backprop",
                "integer_labels",
                "mistake",
                "integer labels used where the one-hot matrix Y is needed",
                f"your gradients are reproduced with {L_name} built from the labels as given ({y_form}), "
                f"broadcast against P: the output error then ranges up to k - 1 instead of 1",
                "pass the one-hot labels to backprop: Y = np.eye(k)[y]",
                seed_mistake=1,
            )
        )
    if sw.get("probabilities") == "theirs":
        out.append(
            Finding(
                "backprop",
                "uses_wrong_probabilities",
                "note",
                "the backprop uses the forward pass's wrong probabilities",
                "reproduced with P from your forward pass (see the forward-pass finding)",
                "fixing the softmax fixes this too",
            )
        )
    if sw.get("sign") == -1:
        out.append(
            Finding(
                "backprop",
                "sign",
                "mistake",
                "the output error has the wrong sign: Y - P, then subtracted",
                "every gradient is reproduced with the sign flipped: the update climbs the loss",
                f"{L_name} = P - Y (and keep W -= lr * dW)",
                seed_mistake=6,
            )
        )
    if sw.get("output_factor") != correct.get("output_factor"):
        got, want = sw["output_factor"], correct["output_factor"]
        if want == "none":
            of = "of the pre-activation Z" if got == "Z(1-Z)" else "of the output"
            out.append(
                Finding(
                    "backprop",
                    "extra_output_derivative",
                    "mistake",
                    f"an extra 'softmax derivative' factor {got} {of} at the output",
                    f"your gradients are reproduced with {L_name} multiplied by {got}",
                    f"with softmax and cross-entropy the gradient at the output is simply "
                    f"{L_name} = (P - Y) / n: drop the factor",
                    seed_mistake=4,
                )
            )
        else:
            out.append(
                Finding(
                    "backprop",
                    "missing_output_derivative",
                    "mistake",
                    "the output activation's derivative is missing",
                    f"your gradients are reproduced without the factor A * (1 - A) in {L_name}",
                    f"{L_name} = (A - Y) * A * (1 - A) / n for a sigmoid output with squared error",
                )
            )
    if sw.get("scale2") != correct.get("scale2"):
        out.append(
            Finding(
                "backprop",
                "factor_two",
                "mistake",
                "the output error is off by a factor 2",
                "reproduced with the factor 2 of the squared error's derivative "
                + ("missing" if sw["scale2"] == 1 else "added"),
                "d/dP of sum (P - Y)**2 is 2 (P - Y); of half of it, P - Y",
            )
        )
    batch = sw.get("batch")
    if batch == "sum":
        out.append(
            Finding(
                "backprop",
                "batch_sum",
                "mistake",
                "gradients summed over the batch, not averaged",
                f"every gradient is reproduced without dividing by the batch size: {n}x too large here "
                f"({n_full}x on all {n_full} samples)",
                f"divide the output error by the batch size once: {L_name} = (P - Y) / n",
                seed_mistake=7,
            )
        )
    elif batch == "mean_twice":
        out.append(
            Finding(
                "backprop",
                "batch_divided",
                "mistake",
                "divided by the batch size twice",
                f"every gradient is reproduced divided by n**2 = {n * n}",
                "divide by the batch size once, at the output error",
            )
        )
    elif batch == "fixed_count":
        out.append(
            Finding(
                "backprop",
                "fixed_count",
                "note",
                f"the gradient divides by {n_full}, not by the batch",
                f"reproduced with {L_name} / {n_full}: your code divides by the size of the whole set",
                "divide by the number of samples in the batch (X.shape[0]) so mini-batches work too",
            )
        )
    for l in range(top - 1, 0, -1):
        d = sw.get(f"derivative_{l}")
        if d in (None, "of_A"):
            continue
        act = net.activation
        want = M.DERIVATIVE_TEXT[act]
        want = f"({want})" if " " in want else want
        if d == "of_Z":
            text = want.replace("A", f"Z{l}")
            out.append(
                Finding(
                    "backprop",
                    "derivative_of_Z",
                    "mistake",
                    f"layer {l}: the {act} derivative {text} is taken of the pre-activation Z{l}, "
                    f"not of the activation A{l}",
                    f"reproduced with dZ{l} = dA{l} * {text}",
                    f"dZ{l} = dA{l} * {want.replace('A', f'A{l}')} (the derivative in terms of the output)",
                    seed_mistake=5 if act == "sigmoid" else None,
                    tensors=[n_ for n_ in net.layers[l - 1] if n_],
                )
            )
        elif d == "missing":
            out.append(
                Finding(
                    "backprop",
                    "missing_derivative",
                    "mistake",
                    f"layer {l}: the activation's derivative is missing",
                    f"reproduced with dZ{l} = dA{l}, no {want} factor",
                    f"dZ{l} = dA{l} * {want.replace('A', f'A{l}')}",
                    tensors=[n_ for n_ in net.layers[l - 1] if n_],
                )
            )
        elif d == "of_f_of_A":
            out.append(
                Finding(
                    "backprop",
                    "derivative_applied_twice",
                    "mistake",
                    f"layer {l}: the derivative formula applies the {act} again to A{l}",
                    f"reproduced with {act}'({act}(Z{l})): the activation applied twice",
                    f"dZ{l} = dA{l} * {want.replace('A', f'A{l}')}, with A{l} = {act}(Z{l}) already",
                )
            )
    for wn, _ in net.layers:
        if sw.get(f"shape_{wn}") == "transposed":
            out.append(
                Finding(
                    "backprop",
                    "gradient_transposed",
                    "mistake",
                    f"d{wn} is transposed",
                    f"its transpose reproduces the gradient; d{wn} must have {wn}'s shape",
                    f"d{wn} = {formulas(net.layout)['dW']}",
                    tensors=[wn],
                )
            )
        got, want = sw.get(f"decay_{wn}"), correct.get(f"decay_{wn}")
        if got == "none" and want == "included":
            out.append(
                Finding(
                    "backprop",
                    "missing_weight_decay",
                    "mistake",
                    f"d{wn} misses the weight-decay term of your loss's L2 penalty",
                    f"reproduced without lambda * {wn}",
                    f"d{wn} = A_prev.T @ dZ + lambda * {wn}",
                    tensors=[wn],
                )
            )
    for l in range(top - 1, 0, -1):
        d = sw.get(f"derivative_{l}") or ""
        if d.startswith("other:"):
            other = d[6:]
            out.append(
                Finding(
                    "backprop",
                    "derivative_of_other_activation",
                    "mistake",
                    f"layer {l}: the derivative of {other} is used for a {net.activation} layer",
                    f"reproduced with dZ{l} = dA{l} * {M.DERIVATIVE_TEXT[other]}",
                    f"dZ{l} = dA{l} * {M.DERIVATIVE_TEXT[net.activation].replace('A', f'A{l}')}",
                    tensors=[n_ for n_ in net.layers[l - 1] if n_],
                )
            )
    # tensors no combination reproduces, and that the gradient check cannot name more precisely
    vague = [nm for nm in reading.unexplained if nm in result.failed and result.tensors[nm].kind in (None, "wrong")]
    if vague:
        names = ", ".join(vague)
        closest = ", ".join(f"{nm} {reading.errors[nm]:.1e}" for nm in vague)
        out.append(
            Finding(
                "backprop",
                "unexplained",
                "mistake",
                f"{names}: wrong in a way no known mistake (or combination) reproduces",
                f"closest rebuilt gradients differ by {closest} (relative)",
                result.where
                or "compare each line of your backward pass with dZ = (P - Y) / n at the "
                "output, dW = A_prev.T @ dZ, db = dZ.sum(axis=0), dA_prev = dZ @ W.T, dZ_prev = dA_prev "
                "* f'(A_prev)",
                tensors=vague,
            )
        )
    return out


def init_findings(net, P, X):
    """Saturated or dead units at the starting weights, and the weights' scale against Glorot."""
    out = []
    Zs, As = net.forward(P, X)
    all_positive = []
    for l, (wn, _) in enumerate(net.layers, 1):
        W = net.weight(P, wn)
        if W.size > 1 and W.min() >= 0 and W.max() < 1 and W.std() > 0.2:
            all_positive.append(wn)
    if all_positive:
        out.append(
            Finding(
                "init",
                "uniform_01",
                "mistake",
                f"{', '.join(all_positive)} drawn uniform on [0, 1)",
                "every weight is positive with a mean near 0.5 (np.random.rand): far too large and all of one sign",
                "scale by fan-in: W = rng.normal(0, np.sqrt(1 / n_in), (n_in, n_out)) "
                "(Glorot for sigmoid/tanh: np.sqrt(2 / (n_in + n_out)); He for ReLU: np.sqrt(2 / n_in))",
                seed_mistake=8,
            )
        )
    if net.activation in ("sigmoid", "tanh"):
        for l in range(len(net.layers) - 1):
            A = As[l + 1]
            sat = float(np.mean(A * (1 - A) < 0.01) if net.activation == "sigmoid" else np.mean(np.abs(A) > 0.99))
            if sat > 0.5:
                out.append(
                    Finding(
                        "init",
                        "saturated",
                        "mistake" if sat > 0.9 else "warning",
                        f"layer {l + 1}: {sat:.0%} of the hidden {net.activation} units start saturated",
                        f"pre-activations Z{l + 1} reach |Z| = {_fmt(float(np.abs(Zs[l]).max()))}; the "
                        f"gradient through them is ~{_fmt(float((A * (1 - A)).mean()) if net.activation == 'sigmoid' else 0)}",
                        "smaller initial weights (Glorot) and inputs scaled to [0, 1]",
                    )
                )
    elif net.activation in ("relu", "leaky_relu"):
        for l in range(len(net.layers) - 1):
            dead = float(np.mean(np.all(As[l + 1] <= 0, axis=0)))
            if dead > 0.5:
                out.append(
                    Finding(
                        "init",
                        "dead",
                        "warning",
                        f"layer {l + 1}: {dead:.0%} of the ReLUs are 0 on every sample",
                        "",
                        "He initialisation and zero biases",
                    )
                )
    return out


def first_step(user, backward, X, y, lr, grads_sample, reading, n, n_full, rng_state):
    """What one update ``W -= lr * dW`` does to each weight matrix, on all the data given."""
    findings = []
    if n_full > n and n_full <= 200_000:
        with user.bound():
            raw, _ = _call(backward, user.rebuild(user.arrays), X, y, "backward", rng_state)
        G, _ = user.match_gradients(raw)
        where = f"on all {n_full} samples"
    else:
        G, where = grads_sample, f"on {n} samples"
    step = {}
    for name in user.names:
        if name not in G or np.shape(G[name]) != user.arrays[name].shape:
            continue
        W = user.arrays[name]
        if W.ndim != 2 or min(W.shape) == 1:
            continue
        with np.errstate(all="ignore"):
            g = np.asarray(G[name], np.float64)
            ratio = float(np.linalg.norm(lr * g) / max(np.linalg.norm(W), 1e-300))
            after = float(np.abs(W - lr * g).max())
        step[name] = {"update_to_weight": ratio, "max_abs_after": after, "max_abs_before": float(np.abs(W).max())}
    if not step:
        return step, findings
    worst = max(step, key=lambda k: step[k]["update_to_weight"])
    r = step[worst]["update_to_weight"]
    if not math.isfinite(r) or r > 0.1:
        has_mistakes = reading is not None and reading.mistakes
        multiplies = step[worst]["max_abs_after"] / max(step[worst]["max_abs_before"], 1e-300)
        findings.append(
            Finding(
                "step",
                "step_too_large",
                "mistake",
                f"your first step multiplies the largest |{worst}| by {_fmt(multiplies)}",
                f"lr {lr:g} x your gradient {where}: ||lr d{worst}|| / ||{worst}|| = {_fmt(r)} (a healthy "
                f"step is about 1e-3); {worst} would reach |{worst}| = {_fmt(step[worst]['max_abs_after'])}",
                ("fix the gradient first (the mistakes above make it too large); then " if has_mistakes else "")
                + "lower the learning rate until the update is about 1e-3 of the weights",
            )
        )
    return step, findings
