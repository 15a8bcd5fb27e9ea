"""ASGI middleware of the page: the Host check and the hardening headers.

Answering only the allowed ``Host`` names puts a page bound to loopback out of reach of DNS
rebinding (a web page elsewhere whose name resolves to 127.0.0.1). The Content-Security-Policy
allows nothing from elsewhere, which the page never needs; it and the other headers are added to
every response, errors included.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse

from kmq.errors import one_line

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def error_response(status: int, message: str) -> JSONResponse:
    """The API's error answer: ``{"error": "one line"}``."""
    return JSONResponse({"error": one_line(message)}, status_code=status)


def host_name(scope) -> str:
    """The ``Host`` header's name, lower case, without port or IPv6 brackets.

    Examples
    --------
    >>> host_name({"headers": [(b"host", b"[::1]:8000")]}), host_name({"headers": []})
    ('::1', '')
    >>> host_name({"headers": [(b"host", b"LocalHost:80")]})
    'localhost'
    """
    host = ""
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: refuses (400) a ``Host`` not in ``allowed_hosts`` (``None``: any), and
    adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app, allowed_hosts: tuple[str, ...] | None = None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {
            h.strip("[]").lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        if self.allowed is not None and host_name(scope) not in self.allowed:
            response = error_response(400, "this server answers only to "
                                      + ", ".join(sorted(self.allowed)) + " (bad Host header)")
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


__all__ = ["SECURITY_HEADERS", "Guard", "error_response", "host_name"]
