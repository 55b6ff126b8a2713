"""The page on a socket: :func:`make_server` (``steadynet serve``) and the uvicorn :class:`Server`.

:func:`make_server` builds the :class:`~steadynet.web.state.Inspector` for a model file or
run folder, the app (:func:`steadynet.web.app.create_app`) with the Host names its address
answers to, and a :class:`Server` bound here, so that port 0 gives a free port known before
the first request. The server binds to loopback unless told otherwise, and bounds its
connections: :data:`REQUEST_TIMEOUT` for a whole request to arrive, :data:`KEEP_ALIVE_TIMEOUT`
idle, :data:`MAX_CONNECTIONS` at once (see :func:`timed_h11_protocol`). uvicorn is imported
only when a server is built.
"""

import ipaddress
import json
import socket
import threading
import time

from ..errors import ConfigError, SteadynetError
from .app import LOOPBACK_HOSTS, WEB_EXTRA_MISSING, create_app
from .state import Inspector

REQUEST_TIMEOUT = 10.0  # seconds for a whole request (headers and body) to arrive
KEEP_ALIVE_TIMEOUT = 5  # seconds a connection may stay idle between requests
MAX_CONNECTIONS = 512  # connections open at once (half of a usual 1024 file descriptors); 503 beyond


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

    Parameters
    ----------
    app : ASGI application
        What answers the requests, e.g. :func:`~steadynet.web.app.create_app`'s.
    host : str, default="127.0.0.1"
    port : int, default=0
        0 picks a free port.
    inspector : Inspector or None, default=None
        The state behind ``app``, kept as :attr:`inspector` for the caller (tests, a
        program that serves and also asks directly).

    Raises
    ------
    ConfigError
        If the address cannot be bound (port in use, unknown host).
    """

    def __init__(self, app, host="127.0.0.1", port=0, inspector=None):
        try:
            import uvicorn
        except ImportError:
            raise SteadynetError(WEB_EXTRA_MISSING) from None
        if not 0 <= int(port) <= 65535:
            raise ConfigError("{port} must be 0 (any free port) to 65535, got {value}.", field="port", value=port)
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
        self.inspector = inspector

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
    return Server(create_app(inspector, allowed_hosts=hosts), host, port, inspector=inspector)
