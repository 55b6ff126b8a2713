"""The HTTP side of the page: the Starlette app (routes, error answers) and its middleware.

:func:`create_app` maps the page at ``/`` and the JSON API of ``docs/serve.md`` onto an
:class:`~steadynet.web.state.Inspector` it is given, reading each request's values with
:mod:`steadynet.web.requests`; every answer, refusals and bugs included, is JSON. Two ASGI
middlewares guard it: :class:`HostCheck` (only requests addressed to an allowed name, which
stops DNS rebinding) and :class:`SecurityHeaders`. A POST must be JSON, so another site's
page cannot post to it without a CORS preflight, which is never granted. Serving it on a
socket is :mod:`steadynet.web.server`'s job. Starlette is imported only when an app is built.
"""

import json
import os

import numpy as np

from ..errors import SteadynetError
from .requests import RequestError, int_param, read_json

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
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
WEB_EXTRA_MISSING = (
    "the web page needs Starlette and uvicorn, which are not installed; install them with `pip install steadynet[web]`."
)


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
        raise SteadynetError(WEB_EXTRA_MISSING) from None

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
