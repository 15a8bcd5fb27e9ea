"""Serving the web application with uvicorn: on a socket until Ctrl+C (``kmq serve``), or in a
background thread (tests and scripts).

The library never prints: uvicorn's own logging is set to warnings, and the ``kmq serve``
command prints the address.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

#: Hosts the page answers to when it is bound to a loopback address (DNS rebinding guard).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``).

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    >>> is_loopback("[::1]"), is_loopback("example.org")
    (True, False)
    """
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: a free one).

    Connections are queued from now on, so a client may connect before the server runs.

    Raises
    ------
    OSError
        The address cannot be resolved (:class:`socket.gaierror`) or is in use.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket.

    Examples
    --------
    >>> sock = bind("127.0.0.1", 0)
    >>> url_of(sock).startswith("http://127.0.0.1:")
    True
    >>> sock.close()
    """
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_server(app, started: threading.Event | None = None):
    """A uvicorn server for ``app`` that sets ``started`` once it accepts requests."""
    from kmq.errors import require

    uvicorn = require("uvicorn", "web", "the web page (kmq serve)")

    class Server(uvicorn.Server):  # type: ignore[name-defined]
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if started is not None:
                started.set()

    return Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                 server_header=False))


def serve(sock: socket.socket, app) -> None:
    """Serve ``app`` (from :func:`kmq.web.create_app`) on a socket from :func:`bind` until
    interrupted (Ctrl+C)."""
    _uvicorn_server(app).run(sockets=[sock])


class BackgroundServer:
    """uvicorn serving an app in a background thread, for tests and scripts.

    Entering it returns once the server accepts requests (``RuntimeError`` if it cannot start
    within ``timeout`` seconds); leaving it stops the server.

    Examples
    --------
    ::

        with BackgroundServer(create_app()) as server:
            httpx.get(server.url + "/api/config")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = 60.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.timeout = timeout
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundServer:
        sock = bind(self.host, self.port)
        self.url = url_of(sock)
        ready = threading.Event()  # set when it started, or when it gave up
        self._server = _uvicorn_server(self.app, started=ready)

        def run() -> None:
            try:
                self._server.run(sockets=[sock])
            except SystemExit:  # how uvicorn says it could not start: reported below
                pass
            finally:
                ready.set()
                sock.close()

        self._thread = threading.Thread(target=run, name="kmq-web-server", daemon=True)
        self._thread.start()
        if not ready.wait(self.timeout) or not self._server.started:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the web server did not start on {self.url}")
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.timeout)


__all__ = ["LOOPBACK_HOSTS", "BackgroundServer", "bind", "is_loopback", "serve", "url_of"]
