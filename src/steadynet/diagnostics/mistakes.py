"""The known mistakes of a hand-written MLP, each a switch, and the search for the ones a
user's numbers show.

A network written by hand is an MLP ``Z_l = A_{l-1} @ W_l + b_l``, ``A_l = f(Z_l)``, with a
softmax (or sigmoid) output. Given its weights and its inputs, :func:`read_network` finds how
it is stored (samples in rows or columns, weights ``(in, out)`` or ``(out, in)``) and which
activation it uses, by reproducing the user's own forward output. Then:

- :func:`match_loss` writes the loss with each known formula mistake (picking rows ``v[y]``,
  dividing by the classes, summing) and says which one reproduces the user's number;
- :func:`match_backprop` rebuilds the backward pass from the network's own forward values with
  each known mistake and their combinations (integer labels for one-hot, the batch-axis
  softmax, a sign flip, an extra or missing derivative factor at the output, the derivative
  taken of ``Z`` instead of ``A``, a missing derivative, a summed or twice-averaged batch), layer
  by layer from the output down, and keeps the combination that reproduces the user's
  gradients to rounding.

Everything here works in one *canonical* layout, samples in rows and weights ``(in, out)``;
:class:`Network` converts the user's arrays to it and back.
"""

import itertools
from dataclasses import dataclass, field

import numpy as np

from .userparams import bias_like

ACTIVATIONS = {
    "sigmoid": lambda Z: 0.5 * (1 + np.tanh(0.5 * Z)),
    "tanh": np.tanh,
    "relu": lambda Z: np.maximum(Z, 0),
    "leaky_relu": lambda Z: np.where(Z > 0, Z, 0.01 * Z),
    "identity": lambda Z: Z,
}
# the derivative of each activation written, as it should be, in terms of its output A
DERIVATIVE_OF_OUTPUT = {
    "sigmoid": lambda A: A * (1 - A),
    "tanh": lambda A: 1 - A * A,
    "relu": lambda A: (A > 0).astype(A.dtype),
    "leaky_relu": lambda A: np.where(A > 0, 1.0, 0.01),
    "identity": lambda A: np.ones_like(A),
}
DERIVATIVE_TEXT = {
    "sigmoid": "A * (1 - A)",
    "tanh": "1 - A**2",
    "relu": "(A > 0)",
    "leaky_relu": "where(A > 0, 1, a)",
    "identity": "1",
}


def softmax_rows(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def softmax_batch_axis(Z):
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


OUTPUTS = {"softmax": softmax_rows, "softmax_batch_axis": softmax_batch_axis, "sigmoid": ACTIVATIONS["sigmoid"]}


def close(a, b, rtol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0))
    return scale == 0 or np.abs(a - b).max() <= rtol * scale


def rel_error(a, b):
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


# ------------------------------------------------------------------ the network's layout


@dataclass
class Network:
    """A user's MLP as stored, read in the canonical layout.

    ``layers`` holds ``(W name, b name or None)`` from the input up; ``samples`` is "rows" or
    "columns"; ``weights`` "in_out" or "out_in"; ``activation`` the hidden layers' activation;
    ``output`` one of :data:`OUTPUTS` (what the user's forward computes at the end).
    """

    layers: list
    samples: str
    weights: str
    activation: str
    output: str

    @property
    def layout(self):
        return {"samples": self.samples, "weights": self.weights}

    def weight(self, P, name):
        W = np.asarray(P[name], np.float64)
        return W.T if self.weights == "out_in" else W

    def bias(self, P, name, width):
        return np.zeros(width) if name is None else np.asarray(P[name], np.float64).reshape(-1)

    def inputs(self, X):
        X = np.asarray(X, np.float64)
        return X.T if self.samples == "columns" else X

    def outputs(self, P_user):
        P_user = np.asarray(P_user, np.float64)
        return P_user.T if self.samples == "columns" else P_user

    def forward(self, P, X):
        """Canonical forward values: ``Zs[l]`` and ``As[l]`` (``As[0]`` is the input), the
        logits ``Zs[-1]``."""
        A = self.inputs(X)
        As, Zs = [A], []
        f = ACTIVATIONS[self.activation]
        for i, (wn, bn) in enumerate(self.layers):
            W = self.weight(P, wn)
            Z = A @ W + self.bias(P, bn, W.shape[1])
            Zs.append(Z)
            A = f(Z) if i < len(self.layers) - 1 else Z
            As.append(A)
        return Zs, As

    def gradient_canonical(self, name, G):
        """The user's gradient of parameter ``name`` in the canonical layout."""
        g = np.asarray(G, np.float64)
        if any(name == wn for wn, _ in self.layers):
            return g.T if self.weights == "out_in" else g
        return g.reshape(-1)


def pair_layers(names, arrays):
    """``[(W name, b name or None), ...]`` in layer order, from the parameters' names and shapes."""
    layers, pending = [], None
    for name in names:
        a = arrays[name]
        if a.ndim == 2 and not bias_like(a.shape):
            if pending is not None:
                layers.append((pending, None))
            pending = name
        elif pending is not None and bias_like(a.shape):
            layers.append((pending, name))
            pending = None
        else:
            return None
    if pending is not None:
        layers.append((pending, None))
    return layers or None


def read_network(names, arrays, X, P_user, forward_at=None, rtol=1e-4):
    """Find how the user's MLP is stored and which activation it uses, by reproducing their
    forward output ``P_user``; None when no MLP reading reproduces it.

    ``forward_at(P)`` runs the user's forward at other parameters (a dict like ``arrays``):
    with saturated units, sigmoid and tanh give the same output, so a second point with every
    layer scaled down tells them apart.
    """
    layers = pair_layers(names, arrays)
    if layers is None or np.ndim(X) != 2 or np.ndim(P_user) != 2:
        return None
    first = arrays[layers[0][0]].shape
    a, b = np.shape(X)
    options = []
    if b == first[0]:
        options.append(("rows", "in_out"))
    if b == first[1]:
        options.append(("rows", "out_in"))
    if a == first[1]:
        options.append(("columns", "out_in"))
    if a == first[0]:
        options.append(("columns", "in_out"))
    candidates = []
    for samples, weights in options:
        for activation in ACTIVATIONS:
            for output in OUTPUTS:
                net = Network(layers, samples, weights, activation, output)
                try:
                    Zs, _ = net.forward(arrays, X)
                    P_c = net.outputs(P_user)
                except ValueError:
                    break
                with np.errstate(all="ignore"):
                    if P_c.shape == Zs[-1].shape and close(OUTPUTS[output](Zs[-1]), P_c, rtol):
                        candidates.append(net)
    if len(candidates) > 1 and forward_at is not None:
        shrunk = shrink(candidates[0], arrays, X)
        try:
            P2 = np.asarray(forward_at(shrunk), np.float64)
        except Exception:  # the user's forward at another point: anything may happen
            P2 = None
        if P2 is not None:
            with np.errstate(all="ignore"):
                kept = [
                    n for n in candidates if close(OUTPUTS[n.output](n.forward(shrunk, X)[0][-1]), n.outputs(P2), rtol)
                ]
            candidates = kept or candidates
    # prefer the reading where the output is a proper softmax, then the first
    candidates.sort(key=lambda n: list(OUTPUTS).index(n.output))
    return candidates[0] if candidates else None


def shrink(net, arrays, X, spread=2.0):
    """Parameters at which no unit is saturated and the samples differ: every layer's
    pre-activations standardised over the batch (mean 0, standard deviation ``spread``)."""
    P = {k: np.array(v, np.float64) for k, v in arrays.items()}
    A = net.inputs(X)
    for i, (wn, bn) in enumerate(net.layers):
        W = net.weight(P, wn)
        b = net.bias(P, bn, W.shape[1])
        Z = A @ W + b
        s = spread / np.maximum(Z.std(axis=0), 1e-12)
        W, b = W * s, (b - Z.mean(axis=0)) * s
        P[wn] = W.T if net.weights == "out_in" else W
        if bn is not None:
            P[bn] = b.reshape(np.shape(arrays[bn]))
        Z = A @ W + b
        A = ACTIVATIONS[net.activation](Z) if i < len(net.layers) - 1 else Z
    return P


# ------------------------------------------------------------------------------ the loss

LOSS_TERMS = {
    # name: (per-element value from P (n, k), Y (n, k), y (n,)), description, correct?
    "cross_entropy": "-log P[i, y_i] for each sample",
    "rows_v_y": "-log P[y_i, :]: P indexed by the label values (rows v[y]), not each sample's own class",
    "binary_cross_entropy": "-(Y log P + (1 - Y) log(1 - P)) summed over the classes",
    "squared_error": "(P - Y)**2 summed over the classes",
    "half_squared_error": "(P - Y)**2 / 2 summed over the classes",
}
CORRECT_TERMS = {"cross_entropy", "binary_cross_entropy", "squared_error", "half_squared_error"}
NORMALISERS = {
    "samples": "divided by the number of samples n",
    "classes": "divided by the number of classes k",
    "none": "summed, not averaged",
    "elements": "averaged over all n * k entries",
}


def loss_terms(P, y):
    """Total of each loss term over the batch; P (n, k) canonical, y (n,) int."""
    n, k = P.shape
    Y = np.eye(k)[y]
    with np.errstate(all="ignore"):
        logP = np.log(P)
        out = {
            "cross_entropy": -logP[np.arange(n), y].sum(),
            "binary_cross_entropy": -(Y * logP + (1 - Y) * np.log1p(-P)).sum(),
            "squared_error": ((P - Y) ** 2).sum(),
            "half_squared_error": 0.5 * ((P - Y) ** 2).sum(),
        }
        if y.max() < n:
            out["rows_v_y"] = -logP[y].sum()
    return out


def match_loss(points, y, rtol=1e-5):
    """Which formula reproduces the user's loss: ``(term, normaliser, l2)`` or None.

    ``points`` is a list of ``(P, value, sum_w2)``: the user's probabilities (n, k), their
    loss, and the sum of the squared weights, at one set of weights each. A formula must
    reproduce every point; at weights where every sample gets the same probabilities
    (saturated units), several formulas agree, and a second point tells them apart. When no
    formula does, a correct one plus an L2 penalty ``l2 / 2 * sum_w2`` with the same ``l2`` at
    every point is tried.
    """
    found = None
    for P, value, _ in points:
        n, k = P.shape
        divide = {"samples": n, "classes": k, "none": 1, "elements": n * k}
        here = set()
        for term, total in loss_terms(P, y).items():
            for norm, d in divide.items():
                guess = total / d
                if np.isfinite(guess) and abs(guess - value) <= rtol * max(abs(value), 1e-300):
                    here.add((term, norm))
        found = here if found is None else found & here
    if found:
        term, norm = min(found, key=lambda tn: ((tn[0] not in CORRECT_TERMS) + (tn[1] != "samples"), tn))
        return term, norm, 0.0
    fits = []
    for term in LOSS_TERMS:
        for norm in NORMALISERS:
            lams = []
            for P, value, sum_w2 in points:
                n, k = P.shape
                d = {"samples": n, "classes": k, "none": 1, "elements": n * k}[norm]
                total = loss_terms(P, y).get(term, float("nan")) / d
                lams.append(2 * (value - total) / sum_w2 if sum_w2 > 0 else float("nan"))
            if all(np.isfinite(lams)) and min(lams) > 0 and max(lams) - min(lams) <= max(rtol, 1e-4) * max(lams):
                fits.append(((term not in CORRECT_TERMS) + (norm != "samples"), term, norm, float(np.mean(lams))))
    if fits:
        _, term, norm, lam = min(fits)
        return term, norm, lam
    return None


def reference_loss(term, P, y, l2=0.0, sum_w2=0.0):
    """The mean over samples of a correct loss term, plus ``l2 / 2 * sum_w2`` (the reference a
    gradient is checked on)."""
    total = loss_terms(P, y)[term if term in CORRECT_TERMS else "cross_entropy"]
    return total / P.shape[0] + 0.5 * l2 * sum_w2


# -------------------------------------------------------------------------- the backprop


@dataclass
class Reading:
    """The combination of switches that reproduces the user's gradients.

    ``switches`` maps each switch to its value; ``correct`` the correct value of each;
    ``errors[name]`` the relative error between the user's gradient and the rebuilt one;
    ``matched`` whether every tensor is reproduced to rounding; ``unexplained`` lists the
    tensors no combination reproduces.
    """

    switches: dict
    correct: dict
    errors: dict
    matched: bool
    unexplained: list = field(default_factory=list)
    correct_grads: dict = field(default_factory=dict)
    decay: dict = field(default_factory=dict)  # weight name -> the lambda of a lambda * W term found

    @property
    def mistakes(self):
        return {k: v for k, v in self.switches.items() if v != self.correct.get(k)}


def output_options(output, term):
    """The switches of the output layer's dZ, and the correct value of each."""
    correct_factor = "none"
    if output == "sigmoid" and term in ("squared_error", "half_squared_error"):
        correct_factor = "A(1-A)"
    options = {
        "labels": ["one_hot", "integer_column"],
        "probabilities": ["correct", "theirs"],
        "sign": [1, -1],
        "output_factor": ["none", "A(1-A)", "Z(1-Z)"],
        "batch": ["mean", "sum", "mean_twice", "fixed_count"],
        "scale2": [1, 2],
    }
    correct = {
        "labels": "one_hot",
        "probabilities": "correct",
        "sign": 1,
        "output_factor": correct_factor,
        "batch": "mean",
        "scale2": 2 if term == "squared_error" else 1,
    }
    return options, correct


def output_dZ(sw, P_correct, P_theirs, Z, y, n_full):
    n, k = P_correct.shape
    P = P_theirs if sw["probabilities"] == "theirs" else P_correct
    T = np.eye(k)[y] if sw["labels"] == "one_hot" else y[:, None].astype(np.float64)
    dZ = sw["sign"] * sw["scale2"] * (P - T)
    if sw["output_factor"] == "A(1-A)":
        dZ = dZ * P * (1 - P)
    elif sw["output_factor"] == "Z(1-Z)":
        dZ = dZ * Z * (1 - Z)
    divide = {"mean": n, "sum": 1, "mean_twice": n * n, "fixed_count": n_full}[sw["batch"]]
    return dZ / divide


def hidden_dZ(derivative, activation, dA, Z, A):
    """``dZ`` of a hidden layer from ``dA`` with the chosen derivative: ``of_A`` (right),
    ``of_Z`` (the output-form formula applied to Z), ``missing``, ``of_f_of_A`` (the activation
    applied again), or ``other:NAME`` (another activation's derivative)."""
    f_out = DERIVATIVE_OF_OUTPUT[activation]
    if derivative == "of_A":
        return dA * f_out(A)
    if derivative == "of_Z":
        return dA * f_out(Z)
    if derivative == "of_f_of_A":
        return dA * f_out(ACTIVATIONS[activation](A))
    if derivative.startswith("other:"):
        return dA * DERIVATIVE_OF_OUTPUT[derivative[6:]](A)
    return dA  # "missing"


def hidden_options(activation):
    same_on_Z = activation in ("relu", "leaky_relu", "identity")  # of_Z is the same function there
    options = ["of_A"] + ([] if same_on_Z else ["of_Z"]) + ["missing", "of_f_of_A"]
    return options + [f"other:{a}" for a in ("sigmoid", "tanh", "relu") if a != activation]


def fit_weight(rebuilt, g, W, l2):
    """How well ``rebuilt`` (+ a weight-decay term) reproduces the user's ``g`` of weights ``W``.

    Returns ``(error without decay, error with decay, lambda)``: ``l2`` when the loss's L2
    coefficient is known, else the one that fits best (0 when none helps)."""
    if g is None:
        return 0.0, 0.0, 0.0
    if np.shape(g) != rebuilt.shape and np.shape(g) == rebuilt.T.shape:
        g = np.asarray(g).T  # a transposed gradient (named on its own): the rest can still be read
    err0 = rel_error(rebuilt, g)
    lam = l2
    if lam is None:
        with np.errstate(all="ignore"):
            d = np.asarray(g, np.float64) - rebuilt
            ww = float((W * W).sum())
            lam = float((d * W).sum() / ww) if ww > 0 and np.all(np.isfinite(d)) else 0.0
        lam = lam if lam > 0 else 0.0
    err1 = rel_error(rebuilt + lam * W, g) if lam else err0
    return err0, err1, lam


def match_backprop(net, P, X, y, G, P_theirs, term, n_full, rtol=1e-6, l2=None):
    """Rebuild the user's backprop with every combination of known mistakes and keep the one
    that reproduces their gradients ``G`` (a dict by parameter name, the user's layout).

    Parameters
    ----------
    net : Network
    P : dict of str -> ndarray
        The parameters.
    X : ndarray
        The inputs, the user's layout.
    y : ndarray of shape (n_samples,), int
        The true labels.
    G : dict of str -> ndarray
    P_theirs : ndarray
        The user's forward output, canonical (n_samples, n_classes).
    term : str
        The (correct) loss the network is meant to minimise: a key of :data:`LOSS_TERMS`.
    n_full : int
        Samples of the whole set, for "divided by a fixed count".
    rtol : float
        Relative error to count as reproduced (rounding of the user's dtype).
    l2 : float, optional
        The L2 coefficient of the user's loss (``lambda / 2 * sum(W**2)`` over the weight
        matrices), when the loss was found to carry one; the gradient must then hold
        ``lambda * W``.

    Returns
    -------
    Reading
    """
    Zs, As = net.forward(P, X)
    L = len(net.layers)
    P_correct = OUTPUTS["sigmoid" if net.output == "sigmoid" else "softmax"](Zs[-1])
    options, correct = output_options(net.output, term)
    if close(P_theirs, P_correct, 1e-9) or net.output == "sigmoid":
        options["probabilities"] = ["correct"]
    if n_full == P_correct.shape[0]:
        options["batch"] = ["mean", "sum", "mean_twice"]
    errors, switches, unexplained, correct_grads = {}, {}, [], {}
    decay = {}  # weight name -> lambda found in the user's gradient

    def settle(wn, bn, rebuilt_W, rebuilt_b, g_W, g_b, correct_W, correct_b, W):
        transposed = g_W is not None and np.shape(g_W) != rebuilt_W.shape
        switches[f"shape_{wn}"], correct[f"shape_{wn}"] = "transposed" if transposed else "as_parameter", "as_parameter"
        err0, err1, lam = fit_weight(rebuilt_W, g_W, W, l2)
        with_decay = err1 < err0 and err1 <= rtol
        errors[wn] = err1 if with_decay else err0
        if with_decay:
            decay[wn] = lam
        switches[f"decay_{wn}"] = "included" if with_decay else "none"
        correct[f"decay_{wn}"] = "included" if l2 else switches[f"decay_{wn}"]
        if g_W is not None and errors[wn] > rtol:
            unexplained.append(wn)
        correct_grads[wn] = correct_W + (l2 or 0.0) * W
        if bn is not None:
            errors[bn] = rel_error(rebuilt_b, g_b) if g_b is not None else 0.0
            correct_grads[bn] = correct_b
            if g_b is not None and errors[bn] > rtol:
                unexplained.append(bn)

    wn, bn = net.layers[-1]
    W = net.weight(P, wn)
    g_W = net.gradient_canonical(wn, G[wn]) if wn in G else None
    g_b = net.gradient_canonical(bn, G[bn]) if bn is not None and bn in G else None
    keys = list(options)
    best = None
    for values in itertools.product(*(options[k] for k in keys)):
        sw = dict(zip(keys, values))
        with np.errstate(all="ignore"):
            dZ = output_dZ(sw, P_correct, P_theirs, Zs[-1], y, n_full)
            err0, err1, _ = fit_weight(As[-2].T @ dZ, g_W, W, l2)
            err_W = min(err0, err1)
            err_b = rel_error(dZ.sum(axis=0), g_b) if g_b is not None else 0.0
        mistakes = sum(v != correct[k] for k, v in sw.items())
        score = (err_W > rtol, err_W if err_W > rtol else 0.0, mistakes, err_b)
        if best is None or score < best[0]:
            best = (score, sw, dZ)
    score, sw, dZ = best
    if score[0]:  # no combination reproduces the output layer: claim none of its switches
        sw = {k: correct[k] for k in sw}
    switches.update(sw)
    correct_dZ = output_dZ(correct, P_correct, P_theirs, Zs[-1], y, n_full)
    settle(wn, bn, As[-2].T @ dZ, dZ.sum(axis=0), g_W, g_b, As[-2].T @ correct_dZ, correct_dZ.sum(axis=0), W)
    # hidden layers, from the top down: the user's own (possibly wrong) dZ flows down
    for l in range(L - 2, -1, -1):
        W_up = net.weight(P, net.layers[l + 1][0])
        wn, bn = net.layers[l]
        W = net.weight(P, wn)
        dA, dA_correct = dZ @ W_up.T, correct_dZ @ W_up.T
        g_W = net.gradient_canonical(wn, G[wn]) if wn in G else None
        g_b = net.gradient_canonical(bn, G[bn]) if bn is not None and bn in G else None
        best = None
        for derivative in hidden_options(net.activation):
            with np.errstate(all="ignore"):
                dZl = hidden_dZ(derivative, net.activation, dA, Zs[l], As[l + 1])
                err0, err1, _ = fit_weight(As[l].T @ dZl, g_W, W, l2)
                err_W = min(err0, err1)
            score = (err_W > rtol, err_W if err_W > rtol else 0.0, derivative != "of_A")
            if best is None or score < best[0]:
                best = (score, derivative, dZl)
        score, derivative, dZ = best
        switches[f"derivative_{l + 1}"] = "of_A" if score[0] else derivative
        correct[f"derivative_{l + 1}"] = "of_A"
        correct_dZ = hidden_dZ("of_A", net.activation, dA_correct, Zs[l], As[l + 1])
        settle(wn, bn, As[l].T @ dZ, dZ.sum(axis=0), g_W, g_b, As[l].T @ correct_dZ, correct_dZ.sum(axis=0), W)
    return Reading(switches, correct, errors, not unexplained, unexplained, correct_grads, decay)
