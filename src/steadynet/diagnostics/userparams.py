"""The user's parameters and gradients as they wrote them, seen as named float64 arrays.

People keep a hand-written network's parameters in many shapes of container: a dict
``{"W1": ..., "b1": ...}``, a list ``[W1, b1, W2, b2]``, one flat vector with a list of
shapes, one pair per layer ``[(W1, b1), (W2, b2)]``, or layer objects with ``W`` and ``b``
attributes. Their gradients come back named ``dW1``, ``W1_grad`` or ``grad_W1``, as a list in
the parameters' order (or grouped as they are), and a bias gradient often has shape ``(30,)``
for a ``(1, 30)`` bias. :class:`UserParams` reads all of these, and gives the user's own
functions back a container of the same kind, so that their code runs unchanged while the
checks move one element at a time.
"""

import re
from contextlib import contextmanager

import numpy as np

from ..errors import ConfigError

# prefixes and suffixes people put on a gradient's name, tried longest first
GRAD_PREFIXES = ("dldelta", "dloss", "delta", "grad", "dl", "d", "g")
GRAD_SUFFIXES = ("gradient", "grad", "delta", "g")


def _plain(name):
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _float_array(value):
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size > 0


def bias_like(shape):
    """True for the shapes a bias has: ``(h,)``, ``(1, h)`` or ``(h, 1)``."""
    return len(shape) == 1 or (len(shape) == 2 and 1 in shape)


def layer_names(shapes):
    """Names ``W1, b1, W2, b2, ...`` for a sequence of parameter shapes in layer order."""
    names, layer = [], 0
    for shape in shapes:
        if bias_like(shape) and layer > 0 and f"b{layer}" not in names:
            names.append(f"b{layer}")
        else:
            layer += 1
            names.append(f"W{layer}")
    return names


class UserParams:
    """The user's parameter container, read as ``{name: float64 array}``.

    Parameters
    ----------
    params : dict, list or tuple of ndarray (or of per-layer lists or tuples of them), 1-D ndarray, or list of layer objects
        The parameters as the user's code holds them. A flat vector needs ``shapes``.
    shapes : sequence of tuple, optional
        For a flat vector: the shapes of the tensors in it, in order.

    Attributes
    ----------
    kind : str
        "dict", "sequence", "nested" (one list or tuple per layer), "flat" or "layers".
    names : list of str
    arrays : dict of str -> ndarray
        float64 copies (the point every check starts from).
    dtypes : dict of str -> numpy.dtype
        The dtype of each parameter as given.
    """

    def __init__(self, params, shapes=None):
        self.original = params
        self.kind, named = self._read(params, shapes)
        if not named:
            raise ConfigError(
                "params: expected a dict, list or flat vector of float arrays (or layer objects "
                "with array attributes), found none in the object given."
            )
        self.names = list(named)
        self.dtypes = {name: a.dtype for name, a in named.items()}
        # C-contiguous copies: the checks move elements through flat views
        self.arrays = {name: np.ascontiguousarray(a, dtype=np.float64).copy() for name, a in named.items()}
        self.notes = []
        if self.kind in ("sequence", "nested"):
            self.notes.append(f"params given as a {type(params).__name__}: read as {', '.join(self.names)}")

    # ---------------------------------------------------------------- reading

    def _read(self, params, shapes):
        if isinstance(params, dict):
            named = {str(k): np.asarray(v) for k, v in params.items() if _float_array(np.asarray(v))}
            bad = [
                k for k, v in params.items() if isinstance(v, np.ndarray) and v.dtype.kind not in "fc" and v.size > 1
            ]
            if bad:
                raise ConfigError(
                    f"params[{bad[0]!r}]: expected a float array, found dtype "
                    f"{np.asarray(params[bad[0]]).dtype}; use .astype(np.float64)."
                )
            return "dict", named
        if isinstance(params, np.ndarray) and params.ndim == 1:
            if shapes is None:
                raise ConfigError(
                    "params: a flat vector needs shapes=[(784, 30), (30,), ...] to say which tensors "
                    "it holds, in order."
                )
            sizes = [int(np.prod(s)) for s in shapes]
            if sum(sizes) != params.size:
                raise ConfigError(f"shapes: they hold {sum(sizes)} values, the flat params vector {params.size}.")
            names = layer_names([tuple(s) for s in shapes])
            offsets = np.cumsum([0] + sizes)
            self._flat_slices = {
                n: (int(a), int(b), tuple(s)) for n, a, b, s in zip(names, offsets[:-1], offsets[1:], shapes)
            }
            return "flat", {n: params[a:b].reshape(s) for n, (a, b, s) in self._flat_slices.items()}
        if isinstance(params, (list, tuple)):
            if params and all(_float_array(p) for p in params):
                names = layer_names([p.shape for p in params])
                return "sequence", dict(zip(names, params))
            if params and all(
                isinstance(group, (list, tuple)) and group and all(_float_array(p) for p in group) for group in params
            ):  # one group per layer: [(W1, b1), (W2, b2), ...]
                self._groups = [(type(group), len(group)) for group in params]
                flat = [p for group in params for p in group]
                return "nested", dict(zip(layer_names([p.shape for p in flat]), flat))
            if params and all(not isinstance(p, (np.ndarray, list, tuple, dict)) for p in params):
                return "layers", self._read_layers(params)
            raise ConfigError(
                "params: a list must hold float arrays [W1, b1, ...], one list or tuple of them per "
                "layer [(W1, b1), (W2, b2), ...], or layer objects with array attributes (e.g. .W "
                "and .b); found a mix."
            )
        if hasattr(params, "__dict__"):
            return "layers", self._read_layers([params])
        raise ConfigError(
            f"params: expected a dict, list, tuple or flat vector of float arrays, found {type(params).__name__}."
        )

    def _read_layers(self, layers):
        self._attrs = {}  # name -> (object, attribute)
        named = {}
        for i, layer in enumerate(layers, 1):
            attrs = [(a, v) for a, v in vars(layer).items() if _float_array(v)] if hasattr(layer, "__dict__") else []
            names = {a for a, _ in attrs}
            attrs = [(a, v) for a, v in attrs if not _is_gradient_of(a, names)]
            for attr, value in attrs:
                short = {"weight": "W", "weights": "W", "w": "W", "bias": "b", "biases": "b"}.get(attr.lower(), attr)
                name = f"{short}{i}" if len(layers) > 1 else short
                named[name] = value
                self._attrs[name] = (layer, attr)
        return named

    # ---------------------------------------------------------------- handing back

    @contextmanager
    def bound(self):
        """A context in which :meth:`rebuild` may put arrays into the user's layer objects;
        their own arrays are put back on exit."""
        saved = {n: getattr(o, a) for n, (o, a) in getattr(self, "_attrs", {}).items()}
        try:
            yield self
        finally:
            for name, (obj, attr) in getattr(self, "_attrs", {}).items():
                setattr(obj, attr, saved[name])

    def rebuild(self, P):
        """The user's kind of container holding the arrays of ``P`` (a dict by name)."""
        if self.kind == "dict":
            out = dict(self.original)
            out.update({n: P[n] for n in self.names})
            return out
        if self.kind == "sequence":
            return type(self.original)(P[n] for n in self.names)
        if self.kind == "flat":
            return np.concatenate([P[n].reshape(-1) for n in self.names])
        if self.kind == "nested":
            arrays = iter([P[n] for n in self.names])
            groups = [kind(next(arrays) for _ in range(size)) for kind, size in self._groups]
            return type(self.original)(groups)
        for name, (obj, attr) in self._attrs.items():
            setattr(obj, attr, P[name])
        return self.original

    def named(self, container):
        """The arrays of a container of the user's kind (as :meth:`rebuild` makes), by name."""
        if self.kind == "dict":
            return {n: np.asarray(container[n]) for n in self.names}
        if self.kind == "sequence":
            return dict(zip(self.names, container))
        if self.kind == "nested":
            return dict(zip(self.names, (p for group in container for p in group)))
        if self.kind == "flat":
            return {n: container[a:b].reshape(s) for n, (a, b, s) in self._flat_slices.items()}
        return {n: getattr(o, a) for n, (o, a) in self._attrs.items()}

    # ---------------------------------------------------------------- gradients

    def match_gradients(self, grads):
        """The user's gradients by parameter name, and notes on how they were matched.

        ``grads`` may be a dict with names like the parameters' (``W1``) or decorated
        (``dW1``, ``W1_grad``, ``grad_W1``, ``dL_dW1``), a list or tuple in the parameters'
        order, a flat vector (for flat params), or None when the params are layer objects
        holding their gradients as attributes (``dW``, ``grad_W``, ``W_grad``). Gradients whose shape only broadcasts to the parameter's (``(30,)`` for
        ``(1, 30)``) are reshaped, and a note says so.

        Returns
        -------
        G : dict of str -> ndarray
            One entry per parameter that has a gradient.
        notes : list of str
        """
        notes = []
        if isinstance(grads, np.ndarray) and grads.ndim == 1 and self.kind == "flat":
            G = {n: grads[a:b].reshape(s) for n, (a, b, s) in self._flat_slices.items()}
        elif isinstance(grads, (list, tuple)) and grads and all(isinstance(g, (list, tuple)) for g in grads):
            # one group per layer, as the parameters may be: [(dW1, db1), (dW2, db2), ...]
            flat = [g for group in grads for g in group]
            if [len(group) for group in grads] != [size for _, size in getattr(self, "_groups", [])] or not all(
                isinstance(g, np.ndarray) for g in flat
            ):
                raise ConfigError(
                    f"grads: groups of {[len(group) for group in grads]} gradients; give one group per "
                    "layer as the parameters are grouped, one array per parameter, or a flat list "
                    f"in the parameters' order ({', '.join(self.names)})."
                )
            G = dict(zip(self.names, flat))
        elif isinstance(grads, (list, tuple)) and all(isinstance(g, np.ndarray) for g in grads):
            if len(grads) != len(self.names):
                raise ConfigError(
                    f"grads: a list of {len(grads)} arrays for {len(self.names)} parameters "
                    f"({', '.join(self.names)}); give one gradient per parameter, in order."
                )
            G = dict(zip(self.names, grads))
        elif isinstance(grads, dict):
            G, mapping = self._match_names(grads)
            if mapping:
                notes.append(
                    "gradient names matched to parameters: " + ", ".join(f"{k} -> {n}" for n, k in mapping.items())
                )
        elif grads is None and self.kind == "layers":
            G = self._grads_from_layers()
        else:
            raise ConfigError(
                f"grads: expected a dict of arrays (or a list in the parameters' order), found {type(grads).__name__}."
            )
        for name in list(G):
            g = np.asarray(G[name])
            shape = self.arrays[name].shape
            if g.shape != shape and g.size == self.arrays[name].size and _broadcasts_to(g.shape, shape):
                notes.append(
                    f"{name}: gradient of shape {g.shape} for a parameter of shape {shape}: the same "
                    f"values, and NumPy broadcasts it in the update, so it is checked as {shape}"
                )
                g = g.reshape(shape)
            G[name] = g
        return G, notes

    def _match_names(self, grads):
        by_plain = {_plain(n): n for n in self.names}
        G, mapping = {}, {}
        for key, value in grads.items():
            if key in self.arrays:
                G[key] = value
                continue
            plain = _plain(key)
            target = by_plain.get(plain)
            for pre in GRAD_PREFIXES:
                if target is None and plain.startswith(pre):
                    target = by_plain.get(plain[len(pre) :])
            for suf in GRAD_SUFFIXES:
                if target is None and plain.endswith(suf):
                    target = by_plain.get(plain[: -len(suf)])
            if target is not None and target not in G:
                G[target] = value
                mapping[target] = key
        return G, mapping

    def _grads_from_layers(self):
        G = {}
        for name, (obj, attr) in self._attrs.items():
            for cand in (f"d{attr}", f"grad_{attr}", f"{attr}_grad", f"d_{attr}"):
                if hasattr(obj, cand):
                    G[name] = np.asarray(getattr(obj, cand))
                    break
        return G


def _is_gradient_of(attr, others):
    """True when attribute ``attr`` names the gradient of another attribute (``dW`` of ``W``)."""
    plain = _plain(attr)
    rest = [plain[len(p) :] for p in GRAD_PREFIXES if plain.startswith(p)]
    rest += [plain[: -len(s)] for s in GRAD_SUFFIXES if plain.endswith(s)]
    return any(r and r in {_plain(o) for o in others if o != attr} for r in rest)


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False
