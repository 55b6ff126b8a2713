"""The served state: one model (reloaded when its run folder writes a newer one), the test set
and its mistakes, and the run's progress, as the JSON answers of ``docs/serve.md``.

:class:`Inspector` is plain NumPy and usable without a server: each method is one endpoint's
answer, built from the pure functions of :mod:`steadynet.web.inspect` and
:func:`steadynet.metrics.confident_mistakes`, with the request's values checked by
:mod:`steadynet.web.requests`. :func:`model_file_of` and :func:`read_model` pick and load the
file a path serves. The HTTP side is :mod:`steadynet.web.app`.
"""

import json
import os
import threading
import time

import numpy as np

from ..backend import to_numpy
from ..data import Dataset, load_data
from ..data.dataset import as_float_batch
from ..errors import ConfigError, DataFormatError, SteadynetError
from ..layers import Dense
from ..metrics import confident_mistakes
from ..persistence import load_arrays, model_from, run_data_spec
from ..pictures import SIDE
from ..runs import RunFolder
from .inspect import inspect_input
from .requests import RequestError, parse_pixels

MAX_MISTAKES = 500  # how many of the most confident mistakes are kept
RELOAD_INTERVAL = 1.0  # seconds between checks of a run folder for a newer model


def model_file_of(path):
    """The file to serve for ``path``: a model file, or a run folder's model following the run as
    it trains (``prefer="latest"`` of :meth:`steadynet.runs.RunFolder.model_file`: ``model.npz``,
    else the last checkpoint). Returns ``(file, format)``."""
    return RunFolder(path).model_file("latest")


def read_model(path):
    """Load the model :func:`model_file_of` picks. Returns ``(model, file, mtime)``."""
    file, fmt = model_file_of(path)
    mtime = os.stat(file).st_mtime_ns  # before reading: a newer file is then never missed
    arrays, meta = load_arrays(file, fmt)
    return model_from(arrays, meta, file), file, mtime


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
                P = self.model.predict_proba(data.x_test)  # (n_test, n_classes), in chunks
                mistakes = confident_mistakes(P, data.y_test, MAX_MISTAKES)
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
