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
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError

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
    kind: str = None
    detail: str = ""
    cosine: float = None  # cosine between g and n
    factor: float = None  # least-squares k in g ~ k n
    rows: list = None  # for "partial": the disagreeing rows / columns / entries
    cols: list = None

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
        return {"passed": self.passed, "failed": self.failed, "where": self.where, "notes": self.notes,
                "tensors": {name: t.to_dict() for name, t in self.tensors.items()}}

    def report(self):
        """A readable report: one line per tensor, then the diagnosis."""
        width = max(len(n) for n in self.tensors)
        lines = [f"gradient check: {'PASSED' if self.passed else 'FAILED'} "
                 f"({len(self.failed)} of {len(self.tensors)} tensors fail)"]
        for name, t in self.tensors.items():
            checked = f"{t.n_checked}/{t.n_elements}" if t.n_checked < t.n_elements else f"{t.n_elements}"
            line = f"  {name:<{width}}  {t.status.upper():<4}  rel. error {t.rel_error:9.2e}  ({checked} checked)"
            if t.status != "pass":
                line += f"\n  {'':<{width}}        {t.detail}"
            lines.append(line)
        if self.where:
            lines.append(f"where: {self.where}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = report


# ----------------------------------------------------------------------- the check


def numerical_gradient(loss_fn, P, name, index, eps=1e-6):
    """Central differences of ``loss_fn(P)`` with respect to ``P[name].flat[index]``.

    ``P`` is a dict of float64 arrays; each element is moved by ``+-h`` in place (``h`` scaled
    to the element's size) and restored, so ``P`` is unchanged on return.

    Returns an ndarray of shape (len(index),), float64.
    """
    flat = P[name].reshape(-1)  # a view: P[name] is contiguous float64
    out = np.empty(len(index))
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
        out[j] = (up - down) / (2 * h)
    return out


def check_gradients(loss_fn, grads, params, *, batch_size=None, max_per_tensor=100, eps=1e-6, seed=0):
    """Check a hand-written backprop against central differences of its loss.

    Parameters
    ----------
    loss_fn : callable(dict of str -> ndarray) -> float
        The loss as a function of the parameters. It is called with float64 copies of
        ``params`` (so that the differences are accurate whatever the model's dtype) and must
        not modify them.
    grads : dict of str -> ndarray, or callable(params) -> dict
        The gradients the backprop produced, one per parameter name, each shaped like the
        parameter; or a function computing them from ``params`` (called once, with the
        arrays as given).
    params : dict of str -> ndarray
        The point at which to check, e.g. ``{"W1": (784, 30), "b1": (30,), ...}``.
    batch_size : int, optional
        Samples in the batch the loss averages over; lets a factor equal to it be named as
        "summed over the batch instead of averaged".
    max_per_tensor : int, default=100
        Larger tensors are checked on this many elements drawn at random (two loss
        evaluations each).
    eps : float, default=1e-6
        Step of the central differences, relative to each element's size (at least 1).
    seed : int, default=0
        Seeds which elements are drawn.

    Returns
    -------
    GradCheckResult
        ``.passed``, ``.failed``, ``.kinds()``, ``.report()`` and ``.to_dict()``.

    Raises
    ------
    ConfigError
        If ``params`` is empty or holds something other than float arrays.
    """
    if not params:
        raise ConfigError("check_gradients: params must be a non-empty dict of arrays, got an empty one.")
    for name, p in params.items():
        if np.asarray(p).dtype.kind != "f":
            raise ConfigError(f"check_gradients: params[{name!r}] must be a float array, "
                              f"got dtype {np.asarray(p).dtype}.")
    G = grads(params) if callable(grads) else grads
    if not isinstance(G, dict):
        raise ConfigError(f"check_gradients: grads must be a dict of arrays (or a function returning "
                          f"one), got {type(G).__name__}.")
    P = {name: np.array(p, dtype=np.float64) for name, p in params.items()}  # copies, contiguous
    notes = []
    loss0 = loss_fn(P)
    if getattr(loss0, "dtype", None) == np.float32:
        notes.append("loss_fn returns float32: it casts the float64 parameters down, so the "
                     "central differences carry float32 rounding; compute the loss in float64.")
    rng = np.random.default_rng(seed)
    checks = {}
    for name, p in P.items():
        index = (np.arange(p.size) if p.size <= max_per_tensor
                 else np.sort(rng.choice(p.size, max_per_tensor, replace=False)))
        n = numerical_gradient(loss_fn, P, name, index, eps)
        g = G.get(name)
        checks[name] = check_tensor(name, None if g is None else np.asarray(g), n, index, p.shape, batch_size)
    flat = [name for name, c in checks.items() if c.status == "pass" and c.rel_error == 0.0
            and name in G and not np.any(G[name])]
    if flat:
        notes.append(f"{', '.join(flat)}: the loss does not change with {'it' if len(flat) == 1 else 'them'} "
                     f"at all here (gradient exactly 0, numerically too): the units are saturated or dead "
                     f"and cannot learn; check the initialisation scale and the input scale.")
    return GradCheckResult(checks, locate(checks), notes)


def check_tensor(name, g, n, index, shape, batch_size=None):
    """Compare one given gradient ``g`` with the numerical ``n`` (at flat ``index`` of a
    parameter of ``shape``) and classify the difference. Returns a :class:`TensorCheck`."""
    size = int(np.prod(shape))
    base = dict(name=name, n_checked=len(index), n_elements=size)
    if g is None:
        return TensorCheck(status="fail", rel_error=1.0, kind="missing",
                           detail=f"{KINDS['missing']} (no {name!r} in grads)", **base)
    tol_pass, tol_warn = TOLERANCES.get(g.dtype, TOLERANCES[np.dtype("float32")])
    if g.shape != tuple(shape):
        # a non-square W given as its transpose is still recognisable
        if g.ndim == 2 and g.shape == tuple(shape)[::-1] and rel_error(g.T.reshape(-1)[index], n) < tol_warn:
            return TensorCheck(status="fail", rel_error=1.0, kind="transposed",
                               detail=f"{KINDS['transposed']}; shape {g.shape}, parameter {tuple(shape)}", **base)
        return TensorCheck(status="fail", rel_error=1.0, kind="shape",
                           detail=f"{KINDS['shape']}: gradient {g.shape}, parameter {tuple(shape)}", **base)
    gs = g.astype(np.float64).reshape(-1)[index]
    err = rel_error(gs, n)
    cos, k = cosine_and_factor(gs, n)
    base.update(rel_error=err, cosine=cos, factor=k)
    if err < tol_pass:
        return TensorCheck(status="pass", **base)
    if err < tol_warn:
        return TensorCheck(status="warn", detail=f"relative error {err:.1e} is borderline (pass < {tol_pass:g}); "
                           f"float rounding or a kink (ReLU at 0) near the checked point", **base)
    return TensorCheck(status="fail", **base, **classify(gs, n, index, shape, g, tol_warn, batch_size))


def rel_error(g, n):
    """``||g - n|| / max(||g||, ||n||)``, 0 when both are (near) zero."""
    scale = max(np.linalg.norm(g), np.linalg.norm(n))
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
            return dict(kind="batch_sum", detail=f"{sign}{KINDS['batch_sum']} "
                        f"(factor {k:.6g} = batch size {batch_size}); divide by the batch size once")
        if batch_size and batch_size > 1 and abs(abs(k) * batch_size - 1) < 1e-2:
            return dict(kind="batch_divided", detail=f"{sign}{KINDS['batch_divided']} "
                        f"(factor 1/{1 / abs(k):.6g}); divide by the batch size only once")
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
                return dict(kind="partial", detail=f"{KINDS['partial']}: {label} {short_list(ids_sorted)} "
                            f"disagree, the other {label} match{among}",
                            rows=ids_sorted if axis == 0 else None, cols=ids_sorted if axis == 1 else None)
    entries = sorted(np.asarray(index)[bad].tolist())
    return dict(kind="partial", detail=f"{KINDS['partial']}: {len(entries)} of {int(signal.sum())} entries "
                f"disagree ({short_list(entries)}, flat indices){among}", rows=entries)


def short_list(ids, most=8):
    return ", ".join(map(str, ids[:most])) + (f", ... ({len(ids)} in all)" if len(ids) > most else "")


# ----------------------------------------------------------------------- where it enters

LAYER_NAME = re.compile(r"^(.*?)(\d+)$")


def locate(checks):
    """Read the pattern of failures across layers and say where the mistake enters.

    Tensors named like ``W1, b1, W2, b2`` are grouped by layer number. Backprop runs from the
    last layer to the first, and each layer's gradient is built from the one above it, so:
    every layer failing the same way points at the output's ``dZ``; upper layers passing and a
    lower one failing points between them (the activation derivative, or ``dA = dZ @ W.T``);
    one tensor of a layer failing alone points at its own formula.
    """
    failed = {name: c for name, c in checks.items() if c.status == "fail"}
    if not failed:
        return ""
    layer_of = {name: int(m.group(2)) for name in checks if (m := LAYER_NAME.match(name))}
    kinds = {c.kind for c in failed.values()}
    if len(failed) == len(checks):
        if kinds == {"sign"}:
            return ("every tensor has the wrong sign: the error enters at the output, where dZ must be "
                    "P - Y (not Y - P), and every layer inherits it.")
        if kinds == {"batch_sum"}:
            return ("every tensor is too large by the batch size: the output gradient dZ is not divided by "
                    "the batch size (take the mean once, at the loss).")
        if len(layer_of) == len(checks):
            return ("every tensor fails, the output layer's included: the error enters at the output, in "
                    "the loss gradient dZ (check that softmax normalises over axis 1, the classes of each "
                    "sample; that the labels are one-hot; and that dZ = (P - Y) / n).")
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
        return (f"{passing} and {failing}: the error enters in the backward pass between layer {above} "
                f"and layer {top_bad}, in the derivative of layer {top_bad}'s activation (it must be "
                f"taken of the activation A, e.g. A * (1 - A) for sigmoid, not of the pre-activation Z) "
                f"or in dA{top_bad} = dZ{above} @ W{above}.T.")
    alone = sorted(name for name in failed if not set(layer_names[layer_of[name]]) <= set(failed))
    if alone:
        one = len(alone) == 1
        return (f"{', '.join(alone)} {'fails' if one else 'fail'} while the rest of "
                f"{'its layer passes' if one else 'their layers pass'}: the error is in "
                f"{'its own formula' if one else 'their own formulas'} (e.g. db = dZ.sum(axis=0), "
                f"dW = X.T @ dZ), not in the error propagated from above.")
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
    from ..backend import to_numpy
    from ..functional import softmax_cross_entropy
    from ..model import MLP, as_float_batch, check_input

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

    return check_gradients(loss_fn, grads, state, batch_size=X.shape[0],
                           max_per_tensor=max_per_tensor, seed=seed)
