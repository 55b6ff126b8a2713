"""What a request may carry, checked before use: the body, the query, the pixels.

Every value is checked (type, size, finiteness, range) and a refusal is a
:class:`RequestError` carrying its HTTP status and a one-line message saying which field is
wrong, what was expected and what was found. A request only ever carries pixel data and a
few integers: nothing in it names a file, a model or code. The functions take Starlette's
request object where they read one, but import no web framework.
"""

import json

import numpy as np

from ..errors import DataFormatError, SteadynetError
from ..pictures import SIDE, preprocess_digit

MAX_BODY_BYTES = 2_000_000  # a 512x512 image as JSON numbers fits; anything larger is refused
MAX_IMAGE_SIDE = 512  # the page sends 112x112; larger drawings gain nothing after the 20x20 fit


class RequestError(SteadynetError):
    """A request the API refuses; ``status`` is its HTTP status (4xx)."""

    def __init__(self, message, status=422):
        super().__init__(message)
        self.status = status


def parse_pixels(payload, n_inputs=SIDE * SIDE):
    """The model input a ``/api/predict`` body asks about, validated.

    Parameters
    ----------
    payload : object
        The decoded JSON: ``{"image": [[...], ...]}``, a grey drawing of any polarity and
        range, at most :data:`MAX_IMAGE_SIDE` on a side, brought to MNIST's form by
        :func:`steadynet.pictures.preprocess_digit` (as ``steadynet predict`` does); or
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
