"""Gradient check for any NumPy code, and a diagnosis of what a wrong gradient got wrong.

:func:`check_gradients` compares the gradients a backprop produced with central differences
of the loss, taken in float64, tensor by tensor. A tensor that fails is then classified from
the numbers alone:

- ``sign``: the gradient points the other way (cosine ~ -1), e.g. ``Y - P`` for ``P - Y``;
- ``batch_sum`` / ``scale``: off by a constant factor; ``batch_sum`` when the factor is the
  batch size (summed over the batch instead of averaged), ``batch_divided`` when it is
  ``1 / batch size`` (averaged twice);
- ``transposed``: the gradient of ``W.T`` was given for ``W``;
- ``missing``: absent or all zeros (e.g. no bias gradient);
- ``partial``: right in most of the tensor but wrong in some rows, columns or entries (a term
  missing or added in part of the tensor);
- ``shape``: the shape does not fit the parameter at all;
- ``wrong``: none of these; the formula itself is wrong.

Then :func:`locate` reads the pattern across layers (tensors named ``W1, b1, W2, ...``) to say
where in the backward pass the mistake enters.
"""

import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from ..backend import to_numpy
from ..data.dataset import as_float_batch
from ..errors import ConfigError
from ..functional import softmax_cross_entropy
from ..model import MLP, check_input
from .userparams import UserParams

# per-tensor relative error ||g - n|| / max(||g||, ||n||) limits: (pass below, warn below).
# A float32 backprop carries ~1e-7 relative rounding per operation, which sums over a batch.
TOLERANCES = {np.dtype("float64"): (1e-6, 1e-3), np.dtype("float32"): (1e-3, 1e-2)}

KINDS = {
    "sign": "wrong sign: the gradient points uphill (e.g. Y - P used where P - Y belongs)",
    "batch_sum": "summed over the batch instead of averaged: too large by the batch size",
    "batch_divided": "divided by the batch size twice: too small by the batch size",
    "scale": "off by a constant factor",
    "transposed": "transposed: this is the gradient of the transpose (e.g. dZ.T @ X for X.T @ dZ)",
    "missing": "missing: no gradient, or all zeros, where the loss does depend on this tensor",
    "partial": "a term missing or extra in part of the tensor; the rest is right",
    "shape": "wrong shape: does not match the parameter",
    "wrong": "plainly wrong: not a sign, scale or transpose of the true gradient",
}


@dataclass
class TensorCheck:
    """The check of one parameter tensor.

    ``rel_error`` is ``||g - n|| / max(||g||, ||n||)`` over the checked elements, ``g`` the
    given gradient and ``n`` the numerical one. ``status`` is "pass", "warn" or "fail";
    ``kind`` (a key of :data:`KINDS`) and ``detail`` say what is wrong when it is not "pass".
    """

    name: str
    status: str
    rel_error: float
    n_checked: int
    n_elements: int
    kind: str | None = None
    detail: str = ""
    cosine: float | None = None  # cosine between g and n
    factor: float | None = None  # least-squares k in g ~ k n
    rows: list | None = None  # for "partial": the disagreeing rows / columns / entries
    cols: list | None = None
    n_regions: int | None = None  # rows, columns or blocks each checked as a whole

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class GradCheckResult:
    """The structured result of :func:`check_gradients`: ``tensors[name]`` is a
    :class:`TensorCheck`; ``where`` is :func:`locate`'s reading of the pattern; ``notes``
    lists problems with the check itself (e.g. a float32 loss)."""

    tensors: dict
    where: str = ""
    notes: list = field(default_factory=list)

    @property
    def passed(self):
        return all(t.status != "fail" for t in self.tensors.values())

    @property
    def failed(self):
        return [name for name, t in self.tensors.items() if t.status == "fail"]

    def kinds(self):
        """``{name: kind}`` of every tensor that failed."""
        return {name: t.kind for name, t in self.tensors.items() if t.status == "fail"}

    def to_dict(self):
        return {
            "passed": self.passed,
            "failed": self.failed,
            "where": self.where,
            "notes": self.notes,
            "tensors": {name: t.to_dict() for name, t in self.tensors.items()},
        }

    def report(self, columns=79):
        """A readable report: one line per tensor, then the diagnosis, wrapped to ``columns``."""
        width = max(len(n) for n in self.tensors)
        indent = " " * (width + 10)

        def wrap(text, first, rest):
            return textwrap.fill(
                text,
                columns,
                initial_indent=first,
                subsequent_indent=rest,
                break_on_hyphens=False,
                break_long_words=False,
            )

        lines = [
            f"gradient check: {'PASSED' if self.passed else 'FAILED'} "
            f"({len(self.failed)} of {len(self.tensors)} tensors fail)"
        ]
        for name, t in self.tensors.items():
            checked = f"{t.n_checked}/{t.n_elements}" if t.n_checked < t.n_elements else f"{t.n_elements}"
            lines.append(
                f"  {name:<{width}}  {t.status.upper():<4}  rel. error {t.rel_error:9.2e}  ({checked} checked)"
            )
            if t.status != "pass":
                lines.append(wrap(t.detail, indent, indent))
        if self.where:
            lines.append(wrap(self.where, "where: ", "       "))
        lines += [wrap(n, "note: ", "      ") for n in self.notes]
        return "\n".join(lines)

    __str__ = report


# ----------------------------------------------------------------------- the check


class LossProbe:
    """The loss as a function of the parameters, evaluated the same way every time.

    Wraps the user's ``loss_fn``: hands it their own kind of container (through
    :class:`~steadynet.diagnostics.userparams.UserParams`), and resets NumPy's global random
    state before each call, so that a dropout mask drawn with ``np.random`` is the same mask
    at every evaluation. ``random`` is True when the loss still differs between two calls at
    the same point (a mask from a generator the check cannot reach).
    """

    def __init__(self, loss_fn, layout):
        self.loss_fn, self.layout = loss_fn, layout
        self.rng_state = np.random.get_state()
        self.calls = 0

    def __call__(self, P):
        np.random.set_state(self.rng_state)
        self.calls += 1
        with self.layout.bound():
            value = self.loss_fn(self.layout.rebuild(P))
        return value

    def value(self, P):
        return float(np.asarray(self(P), dtype=np.float64).reshape(-1)[0]) if np.size(self(P)) else float("nan")


def numerical_gradient(loss_fn, P, name, index, eps=1e-6, with_sides=False):
    """Central differences of ``loss_fn(P)`` with respect to ``P[name].flat[index]``.

    ``P`` is a dict of float64 arrays; each element is moved by ``+-h`` in place (``h`` scaled
    to the element's size) and restored, so ``P`` is unchanged on return.

    Returns an ndarray of shape (len(index),), float64; with ``with_sides`` also the losses
    at ``+h`` and ``-h`` and the steps ``h`` (each of that shape), to look for kinks.
    """
    flat = P[name].reshape(-1)  # a view: P[name] is contiguous float64
    out, ups, downs, hs = (np.empty(len(index)) for _ in range(4))
    for j, i in enumerate(index):
        old = flat[i]
        h = eps * max(1.0, abs(old))
        try:
            flat[i] = old + h
            up = float(loss_fn(P))
            flat[i] = old - h
            down = float(loss_fn(P))
        finally:
            flat[i] = old
        out[j], ups[j], downs[j], hs[j] = (up - down) / (2 * h), up, down, h
    return (out, ups, downs, hs) if with_sides else out


def directional_derivative(loss_fn, P, name, mask, v, eps):
    """Central difference of the loss along ``v`` (nonzero only where ``mask``) in tensor ``name``."""
    p = P[name]
    old = p.copy()
    scale = eps * max(1.0, float(np.abs(old[mask]).max()))
    try:
        p[mask] = old[mask] + scale * v
        up = float(loss_fn(P))
        p[mask] = old[mask] - scale * v
        down = float(loss_fn(P))
    finally:
        p[...] = old
    return (up - down) / (2 * scale)


def regions(shape, most=512):
    """Parts of a tensor that together cover every element: its rows and its columns (2-D),
    or up to ``most`` contiguous blocks (1-D and others). Each is a (label, boolean mask)."""
    size = int(np.prod(shape))
    if len(shape) == 2 and shape[0] + shape[1] <= most and min(shape) > 1:
        out = []
        for r in range(shape[0]):
            m = np.zeros(shape, bool)
            m[r, :] = True
            out.append((("row", r), m))
        for c in range(shape[1]):
            m = np.zeros(shape, bool)
            m[:, c] = True
            out.append((("column", c), m))
        return out
    blocks = min(most, size)
    edges = np.linspace(0, size, blocks + 1).astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            m = np.zeros(size, bool)
            m[a:b] = True
            out.append((("block", (int(a), int(b))), m.reshape(shape)))
    return out


def loss_precision(loss, P, eps):
    """Whether the loss is computed in float64 precision: the derivative along a random
    direction from a step of 1e-9 must agree with that from ``eps`` (a float32 loss rounds
    the tiny step away)."""
    rng = np.random.default_rng(12345)
    V = {n: rng.standard_normal(p.shape) * np.maximum(np.abs(p), 1.0) for n, p in P.items()}
    estimates = []
    for h in (1e-9, eps * 10):
        up = {n: p + h * V[n] for n, p in P.items()}
        down = {n: p - h * V[n] for n, p in P.items()}
        estimates.append((float(loss(up)) - float(loss(down))) / (2 * h))
    a, b = estimates
    return abs(a - b) <= 1e-3 * max(abs(a), abs(b), 1e-300) or (a == 0 and b == 0)


def check_gradients(
    loss_fn, grads, params, *, batch_size=None, max_per_tensor=1000, eps=1e-6, seed=0, shapes=None, layout=None
):
    """Check a hand-written backprop against central differences of its loss.

    Parameters
    ----------
    loss_fn : callable(params) -> float
        The loss as a function of the parameters: a **correct** cross-entropy (or other loss)
        of your forward pass, since the check differentiates it. It is called with float64
        copies of ``params``, in the same kind of container (dict, list, flat vector, or your
        layer objects), and must not modify them. NumPy's global random state is reset
        before every call, so a dropout mask drawn with ``np.random`` stays the same.
    grads : dict, list or flat vector of ndarray, or callable(params) -> one of these
        The gradients the backprop produced: by name (``W1``, or ``dW1``, ``W1_grad``,
        ``grad_W1``: matched to the parameters, and the report says how), in the parameters'
        order, or None for layer objects holding ``dW``/``grad_W`` attributes. A function is
        called once, with the parameters as given.
    params : dict of str -> ndarray, list or tuple of ndarray, flat ndarray, or layer objects
        The point at which to check, e.g. ``{"W1": (784, 30), "b1": (30,), ...}``.
    batch_size : int, optional
        Samples in the batch the loss averages over; lets a factor equal to it be named as
        "summed over the batch instead of averaged".
    max_per_tensor : int, default=1000
        Up to this many elements of each tensor are checked one by one (all of them in
        smaller tensors, a random draw in larger ones); in addition every row and every
        column (or, for 1-D tensors, every block of a partition) is checked as a whole by
        one directional derivative, so that a mistake in part of a tensor cannot hide
        between the drawn elements.
    eps : float, default=1e-6
        Step of the central differences, relative to each element's size (at least 1). A
        loss found to be computed in float32 is differenced with ``1e-3`` instead.
    seed : int, default=0
        Seeds which elements are drawn.
    shapes : sequence of tuple, optional
        For ``params`` given as one flat vector: the shapes of the tensors in it.
    layout : dict, optional
        ``{"samples": "rows" | "columns", "weights": "in_out" | "out_in"}``, how the network
        stores its arrays; the ``where`` hints write the formulas that way. Default rows and
        ``(in, out)`` weights, as in ``Z = X @ W + b``.

    Returns
    -------
    GradCheckResult
        ``.passed``, ``.failed``, ``.kinds()``, ``.report()`` and ``.to_dict()``.

    Raises
    ------
    ConfigError
        If ``params`` or ``grads`` cannot be read as arrays, one per parameter.
    """
    if params is None or (hasattr(params, "__len__") and len(params) == 0):
        raise ConfigError("check_gradients: params must be a non-empty dict of arrays, got an empty one.")
    if isinstance(params, dict):
        for name, p in params.items():
            if isinstance(p, np.ndarray) and p.dtype.kind not in "f":
                raise ConfigError(
                    f"check_gradients: params[{name!r}] must be a float array, got dtype {np.asarray(p).dtype}."
                )
    user = UserParams(params, shapes)
    raw = grads(params) if callable(grads) else grads
    G, notes = user.match_gradients(raw)
    notes = list(user.notes) + notes
    P = user.arrays
    probe = LossProbe(loss_fn, user)
    loss0 = probe(P)
    if getattr(loss0, "dtype", None) == np.float32:
        notes.append(
            "loss_fn returns float32: it casts the float64 parameters down, so the "
            "central differences carry float32 rounding; compute the loss in float64."
        )
    loss0 = float(np.asarray(loss0, dtype=np.float64))
    if not np.isfinite(loss0):
        notes.append(f"the loss is {loss0} at this point: nothing can be checked; fix the forward pass first.")
        return GradCheckResult(
            {
                name: TensorCheck(name, "fail", float("nan"), 0, P[name].size, "wrong", "the loss is not finite here")
                for name in P
            },
            "",
            notes,
        )
    again = float(np.asarray(probe(P), dtype=np.float64))
    if again != loss0:
        notes.append(
            f"the loss is random: two calls at the same point gave {loss0:.10g} and {again:.10g} "
            f"(a dropout mask or noise drawn anew with a generator other than np.random); switch "
            f"dropout off, or fix its mask, for the check: its verdicts cannot be trusted as they are."
        )
    low_precision = not loss_precision(probe, P, eps)
    if low_precision:
        notes.append(
            "the loss is computed in float32 (or lower) precision: a step of 1e-9 is rounded "
            "away. The differences use a step of 1e-3 and float32 tolerances; for a sharper check, "
            "compute the loss in float64."
        )
        eps = max(eps, 1e-3)
    # differences below this are rounding of the loss, not gradient
    noise = max(abs(loss0), 1e-3) * (1e-7 if low_precision else 1e-15) / eps
    rng = np.random.default_rng(seed)
    checks = {}
    for name, p in P.items():
        index = (
            np.arange(p.size)
            if p.size <= max_per_tensor
            else np.sort(rng.choice(p.size, max_per_tensor, replace=False))
        )
        n, ups, downs, hs = numerical_gradient(probe, P, name, index, eps, with_sides=True)
        g = G.get(name)
        tol = TOLERANCES[np.dtype("float32")] if low_precision else None
        checks[name] = check_tensor(
            name, None if g is None else np.asarray(g), n, index, p.shape, batch_size, noise=noise, tol=tol
        )
        c = checks[name]
        if g is not None and c.status == "fail" and c.kind not in ("shape", "transposed", "missing"):
            _look_for_kinks(c, probe, P, name, np.asarray(g), index, n, ups, downs, hs, loss0, batch_size, noise, tol)
        if g is not None and c.status in ("pass", "warn") and p.size > len(index):
            _check_regions(c, probe, P, name, np.asarray(g, dtype=np.float64), eps, noise, rng, tol)
    flat = [
        name
        for name, c in checks.items()
        if c.detail.startswith("saturated")
        or (c.status == "pass" and c.rel_error == 0.0 and name in G and not np.any(G[name]))
    ]
    if flat:
        notes.append(
            f"{', '.join(flat)}: the loss does not change with {'it' if len(flat) == 1 else 'them'} "
            f"here (gradient 0 or below the rounding of the loss, numerically too): the units are "
            f"saturated or dead and cannot learn; check the initialisation scale and the input scale."
        )
    return GradCheckResult(checks, locate(checks, layout), notes)


def _look_for_kinks(c, probe, P, name, g, index, n, ups, downs, hs, loss0, batch_size, noise, tol):
    """A failing tensor whose disagreeing elements sit on a kink (a ReLU at 0 within the
    difference step): the one-sided slopes differ there. Retry those with a step 1000x
    smaller; elements still on the kink are left out, and the tensor warns instead."""
    gs = g.astype(np.float64).reshape(-1)[index]
    right, left = (ups - loss0) / hs, (loss0 - downs) / hs
    jump = np.abs(right - left)
    bad = np.abs(gs - n) > 1e-2 * np.maximum(np.abs(gs), np.abs(n)) + noise
    kink = bad & (jump > 1e-3 * np.maximum(np.abs(right), np.abs(left)) + noise)
    if not kink.any():
        return
    retry = numerical_gradient(probe, P, name, index[kink], eps=1e-3 * float(hs[kink].min()))
    n = n.copy()
    n[kink] = retry
    still = np.zeros_like(kink)
    still[kink] = np.abs(gs[kink] - retry) > 1e-2 * np.maximum(np.abs(gs[kink]), np.abs(retry)) + noise
    keep = ~still
    sub = check_tensor(name, g, n[keep], index[keep], P[name].shape, batch_size, noise=noise, tol=tol)
    if sub.status in ("pass", "warn"):
        c.status, c.kind = "warn", None
        c.rel_error, c.cosine, c.factor = sub.rel_error, sub.cosine, sub.factor
        c.detail = (
            f"{int(kink.sum())} checked element(s) sit on a kink (a ReLU or max at 0 within the difference "
            f"step); {int(still.sum())} stay on it with a step 1000x smaller and are left out; the rest "
            f"match (rel. error {sub.rel_error:.1e})"
        )


def _check_regions(c, probe, P, name, g, eps, noise, rng, tol):
    """Check every row and column (or block) of a tensor as a whole, one directional
    derivative each: a passing tensor fails when a region disagrees."""
    tol_pass, tol_warn = tol or TOLERANCES.get(g.dtype, TOLERANCES[np.dtype("float32")])
    shape = P[name].shape
    if g.shape != shape:
        return
    bad = []
    norm = float(np.linalg.norm(g))
    parts = regions(shape)
    c.n_regions = len(parts)
    for label, mask in parts:
        v = rng.standard_normal(int(mask.sum()))
        num = directional_derivative(probe, P, name, mask, v, eps)
        ana = float(g[mask] @ v)
        # a region is judged against its own size and that of a typical region of the tensor, so
        # that rounding in a region of tiny gradients (float32) is not taken for a mistake
        typical = norm * np.sqrt(v.size / g.size)
        scale = max(abs(num), abs(ana), typical, noise * np.sqrt(v.size))
        if abs(num - ana) > max(tol_warn, 1e-4) * scale:
            bad.append(label)
    if not bad:
        return
    kinds = {k for k, _ in bad}
    ids = sorted(i for _, i in bad)
    what = "/".join(sorted(kinds)) + "s"
    c.status, c.kind = "fail", "partial"
    c.detail = (
        f"{KINDS['partial']}: {what} {short_list([str(i) for i in ids])} disagree as a whole "
        f"(each checked by one directional derivative), though the elements drawn one by one matched"
    )
    if kinds == {"row"}:
        c.rows = ids
    elif kinds == {"column"}:
        c.cols = ids
    else:
        c.rows = ids


def check_tensor(name, g, n, index, shape, batch_size=None, *, noise=0.0, tol=None):
    """Compare one given gradient ``g`` with the numerical ``n`` (at flat ``index`` of a
    parameter of ``shape``) and classify the difference. Returns a :class:`TensorCheck`.

    ``noise`` is the size below which a numerical derivative is rounding of the loss, not
    gradient: elements where both are below it count as agreeing (an exact zero is not
    compared on its rounding), and a tensor whose true gradient is below it everywhere is
    too flat (saturated) to check. ``tol`` overrides the (pass, warn) tolerances."""
    size = int(np.prod(shape))
    base = dict(name=name, n_checked=len(index), n_elements=size)
    if g is None:
        return TensorCheck(
            status="fail", rel_error=1.0, kind="missing", detail=f"{KINDS['missing']} (no {name!r} in grads)", **base
        )
    tol_pass, tol_warn = tol or TOLERANCES.get(g.dtype, TOLERANCES[np.dtype("float32")])
    if g.shape != tuple(shape):
        # a non-square W given as its transpose is still recognisable
        if g.ndim == 2 and g.shape == tuple(shape)[::-1] and rel_error(g.T.reshape(-1)[index], n, noise) < tol_warn:
            return TensorCheck(
                status="fail",
                rel_error=1.0,
                kind="transposed",
                detail=f"{KINDS['transposed']}; shape {g.shape}, parameter {tuple(shape)}",
                **base,
            )
        if g.size == 1 and size > 1:
            return TensorCheck(
                status="fail",
                rel_error=1.0,
                kind="shape",
                detail=f"{KINDS['shape']}: a single number for a parameter of shape {tuple(shape)}: "
                f"summed over every axis; sum over the samples' axis only (keepdims=True for a "
                f"column or row bias)",
                **base,
            )
        return TensorCheck(
            status="fail",
            rel_error=1.0,
            kind="shape",
            detail=f"{KINDS['shape']}: gradient {g.shape}, parameter {tuple(shape)}",
            **base,
        )
    gs = g.astype(np.float64).reshape(-1)[index]
    if not np.all(np.isfinite(gs)):
        return TensorCheck(
            status="fail", rel_error=float("inf"), kind="wrong", detail="the gradient holds NaN or infinity", **base
        )
    err = rel_error(gs, n, noise)
    cos, k = cosine_and_factor(gs, n)
    base.update(rel_error=err, cosine=cos, factor=k)
    flat = np.abs(n).max(initial=0.0) <= noise
    if flat and np.abs(gs).max(initial=0.0) <= max(noise, 1e-12):
        return TensorCheck(
            status="warn",
            detail=f"saturated: the true gradient is below {noise:.1e} everywhere "
            f"checked (the loss barely changes with {name}), too small to check; yours is as small. "
            f"Units this flat cannot learn: check the initialisation and input scale",
            **base,
        )
    if err < tol_pass:
        return TensorCheck(status="pass", **base)
    if err < tol_warn:
        return TensorCheck(
            status="warn",
            detail=f"relative error {err:.1e} is borderline (pass < {tol_pass:g}); "
            f"float rounding or a kink (ReLU at 0) near the checked point",
            **base,
        )
    if flat:
        return TensorCheck(
            status="fail",
            kind="wrong",
            detail=f"the loss does not change with {name} here (true "
            f"gradient below {noise:.1e}: the units are saturated), yet your gradient reaches "
            f"{np.abs(gs).max():.3g}: the formula is wrong",
            **base,
        )
    if len(index) == 1 and size == 1:
        return TensorCheck(
            status="fail",
            kind="wrong",
            detail=f"given {gs[0]:.6g}, numerically {n[0]:.6g} (a one-"
            f"element tensor: the kind of mistake cannot be read from one number)",
            **base,
        )
    return TensorCheck(status="fail", **base, **classify(gs, n, index, shape, g, tol_warn, batch_size))


def rel_error(g, n, noise=0.0):
    """``||g - n|| / max(||g||, ||n||)``, 0 when both are (near) zero; elements where both are
    below ``noise`` count as equal."""
    if noise > 0:
        both_tiny = (np.abs(g) <= noise) & (np.abs(n) <= noise)
        g, n = g[~both_tiny], n[~both_tiny]
    scale = max(np.linalg.norm(g), np.linalg.norm(n)) if g.size else 0.0
    return 0.0 if scale < 1e-300 else float(np.linalg.norm(g - n) / scale)


def cosine_and_factor(g, n):
    """Cosine between ``g`` and ``n``, and the least-squares ``k`` in ``g ~ k n``."""
    gn, nn, gg = float(g @ n), float(n @ n), float(g @ g)
    cos = gn / np.sqrt(gg * nn) if gg > 0 and nn > 0 else 0.0
    k = gn / nn if nn > 0 else 0.0
    return cos, k


def classify(g, n, index, shape, G, tol, batch_size):
    """The kind of mistake in a failing gradient: returns ``kind``, ``detail``, ``rows``, ``cols``."""
    cos, k = cosine_and_factor(g, n)
    # all zeros where the loss does depend on the tensor
    if not np.any(G):
        return dict(kind="missing", detail=f"{KINDS['missing']} (every entry is 0)")
    # the gradient of W.T, for a square W
    if G.ndim == 2 and G.shape[0] == G.shape[1] and rel_error(G.T.reshape(-1)[index], n) < tol:
        return dict(kind="transposed", detail=KINDS["transposed"])
    # a constant factor explains it: g = k n up to rounding
    if rel_error(g, k * n) < tol:
        if abs(k + 1) < 0.05:
            return dict(kind="sign", detail=f"{KINDS['sign']} (cosine {cos:.3f})")
        sign = "and wrong sign: " if k < 0 else ""
        if batch_size and batch_size > 1 and abs(abs(k) / batch_size - 1) < 1e-2:
            return dict(
                kind="batch_sum",
                detail=f"{sign}{KINDS['batch_sum']} "
                f"(factor {k:.6g} = batch size {batch_size}); divide by the batch size once",
            )
        if batch_size and batch_size > 1 and abs(abs(k) * batch_size - 1) < 1e-2:
            return dict(
                kind="batch_divided",
                detail=f"{sign}{KINDS['batch_divided']} "
                f"(factor 1/{1 / abs(k):.6g}); divide by the batch size only once",
            )
        return dict(kind="scale", detail=f"{sign}{KINDS['scale']}: given = {k:.6g} x true")
    # right in part of the tensor, wrong elsewhere
    part = partial_disagreement(g, n, index, shape)
    if part:
        return part
    return dict(kind="wrong", detail=f"{KINDS['wrong']} (cosine {cos:.2f}, best factor {k:.3g})")


def partial_disagreement(g, n, index, shape, rtol=1e-2):
    """If ``g`` matches ``n`` on some elements and not on others, say which rows, columns (2-D)
    or entries (1-D) disagree; None when it is wrong everywhere (or nowhere)."""
    a = np.maximum(np.abs(g), np.abs(n))
    signal = a > 1e-2 * a.max()  # both near zero says nothing either way
    bad = signal & (np.abs(g - n) > rtol * a)
    good = signal & ~bad
    if not bad.any() or not good.any():
        return None
    sampled = len(index) < int(np.prod(shape))
    among = " among the elements checked" if sampled else ""
    if len(shape) == 2:
        r, c = np.unravel_index(index, shape)
        for axis, ids, label in ((0, r, "rows"), (1, c, "columns")):
            bad_ids, good_ids = set(ids[bad].tolist()), set(ids[good].tolist())
            if not bad_ids & good_ids:  # these rows (columns) are wrong as a whole, the rest right
                ids_sorted = sorted(bad_ids)
                return dict(
                    kind="partial",
                    detail=f"{KINDS['partial']}: {label} {short_list(ids_sorted)} "
                    f"disagree, the other {label} match{among}",
                    rows=ids_sorted if axis == 0 else None,
                    cols=ids_sorted if axis == 1 else None,
                )
    entries = sorted(np.asarray(index)[bad].tolist())
    return dict(
        kind="partial",
        detail=f"{KINDS['partial']}: {len(entries)} of {int(signal.sum())} entries "
        f"disagree ({short_list(entries)}, flat indices){among}",
        rows=entries,
    )


def short_list(ids, most=8):
    return ", ".join(map(str, ids[:most])) + (f", ... ({len(ids)} in all)" if len(ids) > most else "")


# ----------------------------------------------------------------------- where it enters

LAYER_NAME = re.compile(r"^(.*?)(\d+)$")


def formulas(layout=None):
    """The backprop formulas written for the network's layout (see :func:`check_gradients`)."""
    samples = (layout or {}).get("samples", "rows")
    weights = (layout or {}).get("weights", "in_out" if samples == "rows" else "out_in")
    if samples == "rows":
        dW = "X.T @ dZ" if weights == "in_out" else "dZ.T @ X"
        dA = "dZ{above} @ W{above}.T" if weights == "in_out" else "dZ{above} @ W{above}"
        return {
            "dW": dW,
            "db": "dZ.sum(axis=0)",
            "dA": dA,
            "axis": "axis 1",
        }
    dW = "dZ @ X.T" if weights == "out_in" else "X @ dZ.T"
    dA = "W{above}.T @ dZ{above}" if weights == "out_in" else "W{above} @ dZ{above}"
    return {
        "dW": dW,
        "db": "dZ.sum(axis=1, keepdims=True)",
        "dA": dA,
        "axis": "axis 0 (samples are columns)",
    }


def locate(checks, layout=None):
    """Read the pattern of failures across layers and say where the mistake enters.

    Tensors named like ``W1, b1, W2, b2`` are grouped by layer number. Backprop runs from the
    last layer to the first, and each layer's gradient is built from the one above it, so:
    every layer failing the same way points at the output's ``dZ``; upper layers passing and a
    lower one failing points between them (the activation derivative, or ``dA = dZ @ W.T``);
    one tensor of a layer failing alone points at its own formula. ``layout`` says how the
    network stores its arrays, so that the formulas named are written its way.
    """
    f = formulas(layout)
    failed = {name: c for name, c in checks.items() if c.status == "fail"}
    if not failed:
        return ""
    layer_of = {name: int(m.group(2)) for name in checks if (m := LAYER_NAME.match(name))}
    kinds = {c.kind for c in failed.values()}
    if len(failed) == len(checks):
        if kinds == {"sign"}:
            return (
                "every tensor has the wrong sign: the error enters at the output, where dZ must be "
                "P - Y (not Y - P), and every layer inherits it."
            )
        if kinds == {"batch_sum"}:
            return (
                "every tensor is too large by the batch size: the output gradient dZ is not divided by "
                "the batch size (take the mean once, at the loss)."
            )
        if len(layer_of) == len(checks):
            top = max(layer_of.values())
            top_checks = [c for n, c in checks.items() if layer_of[n] == top and c.factor is not None]
            if top_checks and all(c.cosine > 0.9 and c.factor > 2.5 for c in top_checks):
                factors = ", ".join(f"{c.name} x{c.factor:.3g}" for c in top_checks)
                return (
                    f"every tensor fails, and the output layer's gradients point the right way but are "
                    f"several times too large ({factors}, cosine near 1): the output activation's "
                    f"derivative is missing from dZ{top}. For a sigmoid output with squared error, "
                    f"dZ = (A - Y) * A * (1 - A); leaving out A * (1 - A) <= 0.25 makes it >= 4x too large."
                )
            return (
                "every tensor fails, the output layer's included: the error enters at the output, in "
                f"the loss gradient dZ (check that softmax normalises over {f['axis']}, the classes of each "
                "sample; that the labels are one-hot; and that dZ = (P - Y) / n)."
            )
        return "every tensor fails."
    if len(layer_of) != len(checks):
        return ""
    layers = sorted(set(layer_of.values()))
    bad_layers = sorted({layer_of[name] for name in failed})
    top_bad = bad_layers[-1]
    layer_names = {L: [n for n in checks if layer_of[n] == L] for L in layers}
    if top_bad < layers[-1] and all(set(layer_names[L]) <= set(failed) for L in layers if L <= top_bad):
        above = top_bad + 1
        passing = span("layer", above, layers[-1]) + (" passes" if above == layers[-1] else " pass")
        failing = span("layer", layers[0], top_bad) + (" fails" if layers[0] == top_bad else " fail")
        dA = f["dA"].format(above=above)
        return (
            f"{passing} and {failing}: the error enters in the backward pass between layer {above} "
            f"and layer {top_bad}, in the derivative of layer {top_bad}'s activation (it must be "
            f"taken of the activation A, e.g. A * (1 - A) for sigmoid, not of the pre-activation Z) "
            f"or in dA{top_bad} = {dA}."
        )
    alone = sorted(name for name in failed if not set(layer_names[layer_of[name]]) <= set(failed))
    if alone:
        one = len(alone) == 1
        return (
            f"{', '.join(alone)} {'fails' if one else 'fail'} while the rest of "
            f"{'its layer passes' if one else 'their layers pass'}: the error is in "
            f"{'its own formula' if one else 'their own formulas'} (e.g. db = {f['db']}, "
            f"dW = {f['dW']}), not in the error propagated from above."
        )
    return ""


# ----------------------------------------------------------------------- steadynet models


def span(word, first, last):
    return f"{word} {first}" if first == last else f"{word}s {first}-{last}"


def check_model_gradients(model, X, y, *, max_per_tensor=100, label_smoothing=0.0, seed=0):
    """Gradient check of a steadynet :class:`~steadynet.MLP` on a batch.

    The analytic gradient comes from ``model.loss_and_grad`` in the model's own dtype; the
    numerical one from a float64 twin of the model. Dropout is switched off in both: its masks
    are random, so with it the loss is not a function of the weights alone.

    Parameters
    ----------
    model : MLP
    X : ndarray of shape (n_samples, n_inputs); uint8 pixels are scaled to [0, 1]
    y : ndarray of shape (n_samples,), int
    max_per_tensor, seed : see :func:`check_gradients`

    Returns
    -------
    GradCheckResult
    """
    X = check_input(X, model.n_inputs)
    y = np.asarray(y)
    config = {**model.config(), "dropout": 0.0, "input_dropout": 0.0}
    state = model.state_dict()
    analytic = MLP(**config)
    analytic.load_state_dict(state)
    twin = MLP(**{**config, "dtype": "float64"})
    twin.load_state_dict(state)
    X64 = as_float_batch(X, np.dtype("float64"))

    analytic.loss_and_grad(as_float_batch(X, analytic.dtype), y, label_smoothing=label_smoothing)
    grads = {name: to_numpy(g).copy() for name, g in analytic.grads.items()}

    def loss_fn(P):
        for name, p in P.items():
            twin.params[name][...] = p
        return softmax_cross_entropy(twin.forward(X64), y, label_smoothing)[0]

    return check_gradients(loss_fn, grads, state, batch_size=X.shape[0], max_per_tensor=max_per_tensor, seed=seed)
