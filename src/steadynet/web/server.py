"""The page behind ``steadynet serve``: draw a digit, watch the model read it, look inside.

Three layers, from pure to stateful:

- pure functions of a model and arrays: :func:`inspect_input` (probabilities, hidden
  activations and the input gradient of one image), :func:`confident_mistakes`,
  :func:`parse_pixels` (a request's pixels, validated);
- :class:`Inspector`: the served model (reloaded when its run folder writes a newer one), the
  test set and its mistakes, and the run's metrics; plain NumPy, usable without a server;
- :func:`create_app` (the Starlette app: the page and the JSON API documented in
  ``docs/serve.md``) and :class:`Server` (uvicorn on a socket bound here, so that port 0
  gives a free port known before the first request).

Safety: the server binds to loopback unless told otherwise and then only answers requests
addressed to a loopback name (no DNS rebinding); request bodies are capped at
:data:`MAX_BODY_BYTES`; POSTs must be JSON (so another site's page cannot post to it without
a CORS preflight, which is never granted); every value is checked (type, size, finiteness,
range) before use, and a request only ever carries pixel data: nothing in it names a file,
a model or code.
"""

import ipaddress
import json
import os
import socket
import threading
import time

import numpy as np

from ..backend import to_numpy
from ..data.dataset import as_float_batch
from ..errors import ConfigError, DataFormatError, SteadynetError
from ..functional import softmax
from ..layers import Activation, Dense
from ..persistence import run_data_spec
from ..pictures import SIDE, preprocess_digit

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_BODY_BYTES = 2_000_000  # a 512x512 image as JSON numbers fits; anything larger is refused
MAX_IMAGE_SIDE = 512  # the page sends 112x112; larger drawings gain nothing after the 20x20 fit
MAX_MISTAKES = 500  # how many of the most confident mistakes are kept
RELOAD_INTERVAL = 1.0  # seconds between checks of a run folder for a newer model
REQUEST_TIMEOUT = 10.0  # seconds for a whole request (headers and body) to arrive
KEEP_ALIVE_TIMEOUT = 5  # seconds a connection may stay idle between requests
MAX_CONNECTIONS = 512  # connections open at once (half of a usual 1024 file descriptors); 503 beyond
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
SECURITY_HEADERS = [
    # everything comes from this server: no script, style, image or connection elsewhere
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
        b"base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class RequestError(SteadynetError):
    """A request the API refuses; ``status`` is its HTTP status (4xx)."""

    def __init__(self, message, status=422):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------- pure functions


def inspect_input(model, x):
    """Everything the page shows about one input: one forward and one backward pass.

    The gradient is that of the top class's logit ``z_k``, not of its probability: when the
    model is sure, ``p_k (1 - p_k)`` is nearly 0 and the probability's gradient vanishes
    with it, while the logit's still says which pixels raise or lower the class's score.

    The layers cache their inputs during ``forward`` and ``Dense.backward`` writes into the
    model's gradient buffer, so calls on one model must not overlap (:class:`Inspector`
    holds a lock); the buffer is otherwise unused by a model that is only served.

    Parameters
    ----------
    model : MLP
    x : ndarray of shape (n_inputs,), float, values in [0, 1]

    Returns
    -------
    P : ndarray of shape (n_classes,), the model's dtype
        Class probabilities.
    hidden : list of ndarray of shape (n_units,)
        Each hidden layer's activations ``A``, input side first.
    G : ndarray of shape (n_inputs,)
        ``d z_k / d x`` for the most probable class ``k = argmax P``.
    """
    X = as_float_batch(np.asarray(x)[None, :], model.dtype, model.xp)  # (1, n_inputs)
    Z = model.forward(X)  # (1, n_classes); each layer keeps what its backward needs
    P = to_numpy(softmax(Z))[0]
    hidden = [to_numpy(layer.A)[0].copy() for layer in model.layers if isinstance(layer, Activation)]
    dZ = model.xp.zeros_like(Z)
    dZ[0, int(P.argmax())] = 1.0  # d z_k / d Z: one-hot at the top class
    for layer in reversed(model.layers):
        dZ = layer.backward(dZ, need_dX=True)
    return P, hidden, to_numpy(dZ)[0]


def confident_mistakes(model, X, y, limit=MAX_MISTAKES):
    """The test images the model gets wrong, the most confident first.

    Parameters
    ----------
    model : MLP
    X : ndarray of shape (n_samples, n_inputs), uint8 or float
    y : ndarray of shape (n_samples,), integer labels
    limit : int
        Keep at most this many.

    Returns
    -------
    order : ndarray of shape (n_kept,), int64
        Indices into ``X``, by decreasing probability of the (wrong) predicted class.
    predicted : ndarray of shape (n_samples,), int64
        The predicted class of every image.
    confidence : ndarray of shape (n_samples,)
        The probability of the predicted class of every image.
    """
    P = model.predict_proba(X)  # (n_samples, n_classes), in chunks
    predicted = P.argmax(axis=1)
    confidence = P[np.arange(len(P)), predicted]
    wrong = np.nonzero(predicted != y)[0]
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
    return order, predicted, confidence


def parse_pixels(payload, n_inputs=SIDE * SIDE):
    """The model input a ``/api/predict`` body asks about, validated.

    Parameters
    ----------
    payload : object
        The decoded JSON: ``{"image": [[...], ...]}``, a grey drawing of any polarity and
        range, at most :data:`MAX_IMAGE_SIDE` on a side, brought to MNIST's form by
        :func:`steadynet.images.preprocess_digit` (as ``steadynet predict`` does); or
        ``{"input": [...]}``, ``n_inputs`` values in [0, 1] given to the model as they are.
    n_inputs : int

    Returns
    -------
    x : ndarray of shape (n_inputs,), float32, values in [0, 1]

    Raises
    ------
    RequestError
        422, saying which field is wrong, what was expected and what was found.
    """
    if not isinstance(payload, dict):
        raise RequestError(f'the body must be a JSON object with "image" or "input", got {type(payload).__name__}.')
    keys = sorted(set(payload) & {"image", "input"})
    if len(keys) != 1:
        raise RequestError(
            'the body must hold exactly one of "image" (a 2-D grey drawing) or '
            f'"input" ({n_inputs} values in [0, 1]), got keys {sorted(payload)}.'
        )
    if keys == ["input"]:
        x = numbers_array(payload["input"], "input", ndim=1)
        if x.shape != (n_inputs,):
            raise RequestError(
                f'"input" must hold {n_inputs} values (a {SIDE}x{SIDE} image, row by row), got {x.shape[0]}.'
            )
        if x.min() < 0 or x.max() > 1:
            raise RequestError(f'"input" values must lie in [0, 1], got values from {x.min():g} to {x.max():g}.')
        return x.astype(np.float32)
    G = numbers_array(payload["image"], "image", ndim=2)
    if not (1 <= G.shape[0] <= MAX_IMAGE_SIDE and 1 <= G.shape[1] <= MAX_IMAGE_SIDE):
        raise RequestError(
            f'"image" must be at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels, got {G.shape[0]}x{G.shape[1]}.'
        )
    try:
        return preprocess_digit(G)
    except DataFormatError as exc:
        raise RequestError(f'"image": {exc}') from None


def numbers_array(value, name, ndim):
    """A JSON list (of lists) of finite numbers as a float64 array of ``ndim`` dimensions."""
    expected = "a list of numbers" if ndim == 1 else "a list of rows, each a list of numbers"
    rows = value if ndim == 2 else [value]
    if not isinstance(value, list) or not value or not all(isinstance(r, list) and r for r in rows):
        raise RequestError(f'"{name}" must be {expected}, non-empty.')
    if len({len(r) for r in rows}) != 1:
        raise RequestError(
            f'"{name}" rows must all have the same length, got lengths {sorted({len(r) for r in rows})[:5]}.'
        )
    # bool is an int in Python, and a string would be parsed by NumPy: both refused here
    if not all(type(v) in (int, float) for r in rows for v in r):
        raise RequestError(
            f'"{name}" must be {expected}; it holds something else (a string, null, true/false or a nested list).'
        )
    try:
        A = np.array(value, dtype=np.float64)
    except OverflowError:  # an integer of hundreds of digits: no float holds it
        raise RequestError(f'"{name}" must hold finite numbers; it holds an integer too large for a float.') from None
    if not np.isfinite(A).all():
        raise RequestError(f'"{name}" must hold finite numbers; it holds a value too large for a float.')
    return A


def model_file_of(path):
    """The file to serve for ``path``: a model file, a run folder's ``model.npz``, or, while
    the run has not finished, its last checkpoint. Returns ``(file, format)``."""
    from ..persistence import CHECKPOINT_FORMAT, MODEL_FILE, MODEL_FORMAT, resolve_model_path

    path = os.fspath(path)
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, MODEL_FILE)):
        last = os.path.join(path, "checkpoints", "last.npz")
        if os.path.isfile(last):
            return last, CHECKPOINT_FORMAT
    return resolve_model_path(path), MODEL_FORMAT


def read_model(path):
    """Load the model :func:`model_file_of` picks. Returns ``(model, file, mtime)``."""
    from ..persistence import load_arrays, model_from

    file, fmt = model_file_of(path)
    mtime = os.stat(file).st_mtime_ns  # before reading: a newer file is then never missed
    arrays, meta = load_arrays(file, fmt)
    return model_from(arrays, meta, file), file, mtime


# ---------------------------------------------------------------------------- state


class Inspector:
    """The served model, its test-set mistakes and its run's progress.

    Parameters
    ----------
    path : str or os.PathLike
        A model file or a run folder. A run folder that is still training is served from its
        last checkpoint, and the model is reloaded whenever a newer file appears.
    data : Dataset, str or None, default=None
        The test set whose mistakes are shown: a loaded :class:`~steadynet.data.Dataset`, a
        data spec for :func:`steadynet.data.load_data`, or None for the run's own data set
        (from its ``config.json``), else ``"mnist"``. A default data set that cannot be
        loaded only disables the mistakes (see :attr:`data_error`); one given explicitly
        raises.
    log : callable(str), optional
        Receives notices (model reloads, data problems).

    Raises
    ------
    ModelFileError
        If ``path`` holds no readable model.
    ConfigError
        If the model does not take 28x28 inputs.
    DataFormatError
        If an explicitly given data set does not fit the model.
    """

    def __init__(self, path, data=None, log=None):
        self.path = os.fspath(path)
        self.log = log or (lambda line: None)
        self.lock = threading.RLock()
        self.model, self.file, self.mtime = read_model(self.path)
        if self.model.n_inputs != SIDE * SIDE:
            raise ConfigError(
                f"{self.path}: the model takes {self.model.n_inputs} inputs; the page "
                f"draws {SIDE}x{SIDE} digits and needs a model of {SIDE * SIDE} inputs."
            )
        self.version = 1  # bumped on every reload, so the page knows to ask again
        self.checked = time.monotonic()
        self.run_dir = self.path if os.path.isdir(self.path) else None
        self.data, self.data_error = self.load_test_set(data)
        self.mistakes = None  # (order, predicted, confidence) for self.version, made on demand

    def load_test_set(self, data):
        """``(dataset, None)``, or ``(None, message)`` when a default data set cannot be used."""
        from ..data import Dataset, load_data

        explicit = data is not None
        if not explicit:
            data = (run_data_spec(self.path) if self.run_dir else None) or "mnist"
        try:
            dataset = data if isinstance(data, Dataset) else load_data(data)
            if dataset.n_features != self.model.n_inputs:
                raise DataFormatError(
                    f"{getattr(dataset, 'source', data)}: images have {dataset.n_features} "
                    f"pixels, but the model {self.path} expects {self.model.n_inputs}."
                )
            if not len(dataset.y_test):
                raise DataFormatError(f"{getattr(dataset, 'source', data)}: the test split is empty.")
        except SteadynetError as exc:
            if explicit:
                raise
            self.log(f"no test-set mistakes: {exc}")
            return None, str(exc)
        return dataset, None

    # ------------------------------------------------------------------ model

    def refresh(self, force=False):
        """Reload the model if its run folder has a newer file (checked at most once a second).

        Returns True when a new model was loaded.
        """
        with self.lock:
            now = time.monotonic()
            if not force and (self.run_dir is None or now - self.checked < RELOAD_INTERVAL):
                return False
            self.checked = now
            try:
                file, _ = model_file_of(self.path)
                if file == self.file and os.stat(file).st_mtime_ns == self.mtime:
                    return False
                model, file, mtime = read_model(self.path)
            except (OSError, SteadynetError) as exc:  # mid-write or removed: keep serving the old one
                self.log(f"keeping the current model: {exc}")
                return False
            if model.layer_sizes != self.model.layer_sizes:
                self.log(f"{file}: layer sizes changed to {model.layer_sizes}; keeping the current model")
                return False
            self.model, self.file, self.mtime = model, file, mtime
            self.version += 1
            self.mistakes = None
            self.log(f"reloaded the model from {file}")
            return True

    def model_info(self):
        """The ``/api/model`` answer: the architecture, where it came from, the test set."""
        self.refresh()
        m = self.model
        data = None
        if self.data is not None:
            data = {"source": self.data.source, "n_test": int(len(self.data.y_test))}
        return {
            "path": self.path,
            "file": self.file,
            "version": self.version,
            "layer_sizes": list(m.layer_sizes),
            "activation": m.activation,
            "dtype": m.dtype.name,
            "n_params": m.n_params,
            "image_shape": [SIDE, SIDE],
            "classes": list(range(m.n_classes)),
            "run": self.run_dir is not None,
            "data": data,
            "data_error": self.data_error,
        }

    def predict(self, payload):
        """The ``/api/predict`` answer for a request body (see :func:`parse_pixels`)."""
        x = parse_pixels(payload, self.model.n_inputs)
        self.refresh()
        with self.lock:
            P, hidden, G = inspect_input(self.model, x)
            version = self.version
        if not (np.isfinite(P).all() and np.isfinite(G).all() and all(np.isfinite(A).all() for A in hidden)):
            raise self.non_finite()
        label = int(P.argmax())
        return {
            "label": label,
            "probabilities": P.tolist(),
            "input": np.round(x, 4).tolist(),
            "hidden": [A.tolist() for A in hidden],
            "saliency": G.tolist(),
            "saliency_class": label,
            "version": version,
        }

    def non_finite(self):
        """The refusal for a model whose outputs overflow (weights finite but huge)."""
        largest = float(np.abs(to_numpy(self.model.theta)).max())
        return RequestError(
            f"the model {self.file} produces non-finite outputs (NaN or infinity): its weights are "
            f"too large to compute with (largest |w| {largest:.3g}); retrain or load another model.",
            status=409,
        )

    def unit(self, layer, unit):
        """The ``/api/unit`` answer: the incoming weights and bias of one unit of a Dense layer."""
        with self.lock:
            dense = [lay for lay in self.model.layers if isinstance(lay, Dense)]
            if not 1 <= layer <= len(dense):
                raise RequestError(f"layer must be 1 to {len(dense)} (a weight layer), got {layer}.")
            W, b = dense[layer - 1].W, dense[layer - 1].b  # (n_in, n_out), (n_out,)
            if not 0 <= unit < W.shape[1]:
                raise RequestError(f"unit must be 0 to {W.shape[1] - 1} for layer {layer}, got {unit}.")
            w = to_numpy(W[:, unit]).copy()
            bias = float(b[unit])
        shape = [SIDE, SIDE] if w.size == SIDE * SIDE else [1, int(w.size)]
        return {
            "layer": layer,
            "unit": unit,
            "weights": w.tolist(),
            "bias": bias,
            "shape": shape,
            "version": self.version,
        }

    # ------------------------------------------------------------------ test set

    def require_data(self):
        if self.data is None:
            raise RequestError(
                f"no test set is loaded ({self.data_error}); start the server with --data PATH|NAME.", status=404
            )
        return self.data

    def mistakes_page(self, offset=0, limit=30):
        """The ``/api/mistakes`` answer: the most confident wrong predictions on the test set."""
        data = self.require_data()
        if not 1 <= limit <= MAX_MISTAKES or not 0 <= offset:
            raise RequestError(
                f"limit must be 1 to {MAX_MISTAKES} and offset >= 0, got limit={limit}, offset={offset}."
            )
        self.refresh()
        with self.lock:
            if self.mistakes is None:
                mistakes = confident_mistakes(self.model, data.x_test, data.y_test)
                if not np.isfinite(mistakes[2]).all():
                    raise self.non_finite()
                self.mistakes = mistakes
            (order, predicted, confidence), version = self.mistakes, self.version
        n_test = len(data.y_test)
        n_wrong = int((predicted != data.y_test).sum())
        items = [
            {
                "index": int(i),
                "label": int(data.y_test[i]),
                "predicted": int(predicted[i]),
                "confidence": float(confidence[i]),
                "pixels": self.test_pixels_uint8(i).tolist(),
            }
            for i in order[offset : offset + limit]
        ]
        return {
            "n_test": n_test,
            "n_wrong": n_wrong,
            "accuracy": 1.0 - n_wrong / n_test,
            "total": int(len(order)),
            "offset": offset,
            "mistakes": items,
            "version": version,
        }

    def test_image(self, index):
        """The ``/api/test/{index}`` answer: one test image as a model input, and its label."""
        data = self.require_data()
        if not 0 <= index < len(data.y_test):
            raise RequestError(f"index must be 0 to {len(data.y_test) - 1}, got {index}.", status=404)
        x = as_float_batch(data.x_test[index : index + 1], np.dtype(np.float32))[0]
        return {"index": index, "label": int(data.y_test[index]), "input": np.round(x, 4).tolist()}

    def test_pixels_uint8(self, index):
        """One test image as 784 integers 0-255 (compact, for thumbnails)."""
        x = self.data.x_test[index]
        return x if x.dtype == np.uint8 else np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)

    # ------------------------------------------------------------------ run

    def run_info(self):
        """The ``/api/run`` answer: the run folder's ``metrics.json`` as it is now."""
        self.refresh()
        if self.run_dir is None:
            return {"run": None, "version": self.version}
        path = os.path.join(self.run_dir, "metrics.json")
        answer = {
            "run": self.run_dir,
            "version": self.version,
            "model_file": self.file,
            "status": "starting",
            "epochs": [],
            "epochs_planned": None,
        }
        try:
            if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block this thread
                raise OSError("not a regular file")
            with open(path) as f:
                metrics = json.load(f)
        except FileNotFoundError:  # the first epoch has not ended yet
            return answer
        except (OSError, ValueError, RecursionError) as exc:
            answer.update(status="unreadable", error=f"{path}: {exc}")
            return answer
        if not isinstance(metrics, dict) or not isinstance(metrics.get("config") or {}, dict):
            answer.update(
                status="unreadable",
                error=f'{path}: expected a JSON object with a "config" object, found {type(metrics).__name__}.',
            )
            return answer
        config = metrics.get("config") or {}
        answer.update(
            {
                k: metrics.get(k)
                for k in ("status", "epochs", "best_epoch", "test_accuracy", "test_loss", "train_seconds")
            }
        )
        answer["epochs_planned"] = config.get("epochs")
        return answer


# ---------------------------------------------------------------------------- the app


def create_app(inspector, allowed_hosts=LOOPBACK_HOSTS):
    """The Starlette app: the page at ``/`` and the JSON API under ``/api``.

    Parameters
    ----------
    inspector : Inspector
    allowed_hosts : sequence of str, default=LOOPBACK_HOSTS
        Host names the server answers to; ``("*",)`` for any (when bound to a public address).
    """
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.middleware import Middleware
        from starlette.responses import FileResponse, JSONResponse
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles
    except ImportError:
        raise SteadynetError(
            "the web page needs Starlette and uvicorn, which are not installed; "
            "install them with `pip install steadynet[web]`."
        ) from None

    def answer(obj):
        try:
            return JSONResponse(obj)
        except ValueError:  # NaN or infinity (a diverged run's metrics): JSON has no such numbers
            return JSONResponse(finite_only(obj))

    async def index(request):
        return FileResponse(os.path.join(STATIC_DIR, "index.html"))

    async def model(request):
        return answer(inspector.model_info())

    async def predict(request):
        return answer(inspector.predict(await read_json(request)))

    async def unit(request):
        return answer(inspector.unit(int_param(request, "layer", 1), int_param(request, "unit")))

    async def mistakes(request):
        return answer(inspector.mistakes_page(int_param(request, "offset", 0), int_param(request, "limit", 30)))

    async def test_image(request):
        return answer(inspector.test_image(int_param(request, "index")))

    async def run(request):
        return answer(inspector.run_info())

    async def refused(request, exc):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def http_error(request, exc):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def bug(request, exc):  # a bug in steadynet, still answered in JSON, never as a traceback
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); please report it."}, status_code=500)

    routes = [
        Route("/", index),
        Route("/api/model", model),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/unit", unit),
        Route("/api/mistakes", mistakes),
        Route("/api/test/{index}", test_image),
        Route("/api/run", run),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders), Middleware(HostCheck, allowed_hosts=allowed_hosts)]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={RequestError: refused, HTTPException: http_error, Exception: bug},
    )


async def read_json(request, limit=MAX_BODY_BYTES):
    """The request's JSON body, at most ``limit`` bytes, with NaN and Infinity refused."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise RequestError(
            f"the body must be JSON sent as Content-Type: application/json, got {kind or 'no content type'!r}.",
            status=415,
        )
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise RequestError(f"the body must be at most {limit} bytes, the request declares {declared}.", status=413)
    body = bytearray()
    async for chunk in request.stream():  # counted as it arrives: a missing length is no way round
        body += chunk
        if len(body) > limit:
            raise RequestError(f"the body must be at most {limit} bytes.", status=413)

    def no_constants(name):  # Python's json reads NaN and Infinity, which JSON does not have
        raise ValueError(f"{name} is not a finite number")

    try:
        return json.loads(body.decode("utf-8"), parse_constant=no_constants)
    except RecursionError:
        raise RequestError("the body is not valid JSON: nested too deeply.", status=400) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(f"the body is not valid JSON: {exc}.", status=400) from None


def int_param(request, name, default=None):
    """An integer from the query string or the path."""
    value = request.path_params.get(name, request.query_params.get(name))
    if value is None:
        if default is None:
            raise RequestError(f"{name} is required.", status=400)
        return default
    try:
        return int(value)
    except ValueError:
        raise RequestError(f"{name} must be an integer, got {value[:40]!r}.", status=400) from None


def finite_only(obj):
    """``obj`` (JSON-ready) with every NaN or infinite float replaced by None."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_only(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_only(v) for v in obj]
    return obj


def host_of(header):
    """The host name of a ``Host`` header, lower case, without its port: ``[::1]:8000`` -> ``::1``,
    ``localhost:8000`` -> ``localhost``; None when it is malformed."""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 literal
        end = header.find("]")
        rest = header[end + 1 :]
        if end < 0 or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        return header[1:end]
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


class HostCheck:
    """ASGI middleware answering only requests whose ``Host`` names one of ``allowed_hosts``
    (``"*"``: any); others get a 400 JSON answer. This is what stops DNS rebinding: another
    site's page may resolve its own name to 127.0.0.1, but its requests then carry that name."""

    def __init__(self, app, allowed_hosts=LOOPBACK_HOSTS):
        self.app = app
        self.any = "*" in allowed_hosts
        self.allowed = {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.any:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if host_of(header) in self.allowed:
            return await self.app(scope, receive, send)
        body = json.dumps(
            {
                "error": f"the Host header must name this machine ({', '.join(sorted(self.allowed))}), "
                f"got {header[:80]!r}; open the URL the server printed."
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                + SECURITY_HEADERS,
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---------------------------------------------------------------------------- the server


def loopback_names(host):
    """The ``Host`` names a server bound to loopback address ``host`` answers to."""
    return tuple(sorted({*LOOPBACK_HOSTS, "::1", host.strip("[]").lower()}))


def is_loopback(host):
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def timed_h11_protocol(timeout=None, max_connections=None):
    """uvicorn's h11 protocol with a deadline for each request to arrive whole, and a cap on
    open connections.

    uvicorn times out idle keep-alive connections only: a client that sends its headers, or
    its body, a byte at a time (or connects and sends nothing) holds its connection for ever.
    Here a connection is closed when a request has not fully arrived ``timeout`` seconds
    (default :data:`REQUEST_TIMEOUT`) after the connection opened or the previous response
    ended, and one opened beyond ``max_connections`` (default :data:`MAX_CONNECTIONS`) gets a
    503 JSON answer and is closed (uvicorn's own ``limit_concurrency`` answers in plain text).
    Returns the protocol class, for ``uvicorn.Config(http=...)``.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    limit = REQUEST_TIMEOUT if timeout is None else timeout
    most = MAX_CONNECTIONS if max_connections is None else max_connections
    body = json.dumps({"error": f"the server has {most} connections open, its limit; try again."}).encode()
    busy = (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )

    class TimedH11Protocol(H11Protocol):
        deadline = None

        def arm(self):
            self.disarm()
            self.deadline = self.loop.call_later(limit, self.too_slow)

        def disarm(self):
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def too_slow(self):
            self.deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport):
            super().connection_made(transport)
            if len(self.connections) > most:
                transport.write(busy)
                transport.close()
                return
            self.arm()

        def data_received(self, data):
            super().data_received(data)
            if self.conn.their_state is h11.DONE:  # the whole request is in: the app takes over
                self.disarm()

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is not h11.DONE:
                self.arm()  # waiting for the next request

        def connection_lost(self, exc):
            self.disarm()
            super().connection_lost(exc)

    return TimedH11Protocol


class Server:
    """uvicorn serving ``app`` on a socket bound at construction.

    Binding here, not inside uvicorn, means ``port=0`` picks a free port and :attr:`url` is
    known before the server runs. Use :meth:`run` (blocks; Ctrl-C stops it) or
    :meth:`start` / :meth:`stop` (a background thread), or ``with Server(...) as s:``.

    Raises
    ------
    ConfigError
        If the address cannot be bound (port in use, unknown host).
    """

    def __init__(self, app, host="127.0.0.1", port=0):
        try:
            import uvicorn
        except ImportError:
            raise SteadynetError(
                "the web page needs Starlette and uvicorn, which are not installed; "
                "install them with `pip install steadynet[web]`."
            ) from None
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"--port must be 0 (any free port) to 65535, got {port}.")
        try:
            self.sock = socket.create_server(
                (host, int(port)), family=socket.AF_INET6 if ":" in host else socket.AF_INET
            )
        except (OSError, OverflowError) as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({getattr(exc, 'strerror', None) or exc}).") from None
        self.host, self.port = host, self.sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        # h11 and asyncio: the pure-Python choices, so nothing beyond uvicorn itself is needed.
        # Connections are bounded: REQUEST_TIMEOUT for a whole request to arrive (slow headers,
        # slow bodies), KEEP_ALIVE_TIMEOUT idle between requests, MAX_CONNECTIONS at once (503
        # JSON beyond it), so a local client cannot hold every file descriptor
        config = uvicorn.Config(
            app,
            loop="asyncio",
            http=timed_h11_protocol(),
            ws="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        )
        self.server = uvicorn.Server(config)
        self.thread = None

    def run(self):
        """Serve until Ctrl-C (or :meth:`stop` from another thread)."""
        self.server.run(sockets=[self.sock])

    def start(self, timeout=10.0):
        """Serve in a daemon thread; return once it accepts connections."""
        self.thread = threading.Thread(target=self.run, name="steadynet-serve", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise SteadynetError(f"the server at {self.url} did not start.")
            time.sleep(0.01)
        return self

    def stop(self, timeout=10.0):
        """Ask the server to finish and wait for its thread."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def make_server(path, data=None, host="127.0.0.1", port=0, log=None):
    """The page for a model file or run folder, on a bound socket, not yet serving.

    Parameters
    ----------
    path : str or os.PathLike
        A model file or a run folder (a run still training is followed live).
    data : Dataset, str or None, default=None
        The test set for the mistakes (see :class:`Inspector`).
    host : str, default="127.0.0.1"
        Address to bind; anything but loopback makes the page reachable from other machines.
    port : int, default=0
        0 picks a free port.
    log : callable(str), optional
        Receives notices.

    Returns
    -------
    Server
        Call ``run()`` (blocks) or ``start()`` / ``stop()``; its ``url`` is known already and
        its ``inspector`` is the :class:`Inspector` behind the API.
    """
    inspector = Inspector(path, data=data, log=log)
    # a Host check stops DNS rebinding; on a loopback address the page is reached by its
    # loopback names and by the address itself (127.0.0.2, ::1, as the printed URL has it)
    hosts = loopback_names(host) if is_loopback(host) else ("*",)
    server = Server(create_app(inspector, allowed_hosts=hosts), host, port)
    server.inspector = inspector
    return server
