"""ASGI middleware of the page: the Host and Origin checks and the hardening headers.

Answering only the allowed ``Host`` names puts a page bound to loopback out of reach of DNS
rebinding (a web page elsewhere whose name resolves to 127.0.0.1); a ``Host`` that is not
exactly a name and an optional port is refused (400). Refusing (403) a request whose ``Origin``
is not the page's own, or that the browser marks ``Sec-Fetch-Site: cross-site`` (other than
following a link to the page), keeps any other web page the user visits from making the server
work: a cross-origin "simple" POST is sent without asking first. The Content-Security-Policy
allows nothing from elsewhere, which the page never needs; it and the other headers are added to
every response, errors included.
"""

from __future__ import annotations

import re

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


#: Answers that may leave part of a request body unread (too large, stalled, busy): they close
#: the connection, or a client that went on sending would keep it open for good.
CLOSING_STATUSES = frozenset({408, 413, 503})


def error_response(status: int, message: str) -> JSONResponse:
    """The API's error answer: ``{"error": "one line"}``."""
    headers = {"Connection": "close"} if status in CLOSING_STATUSES else None
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


#: A Host header: a name (or IPv4 address), or a bracketed IPv6 address, and an optional port.
_HOST = re.compile(r"(?P<name>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?\.?|\[[0-9a-f:.]+\])"
                   r"(?::(?P<port>[0-9]{1,5}))?")


def _header(scope, name: bytes) -> str | None:
    """The header's value (latin-1, stripped); None when absent. A header sent twice: its
    values joined with a comma, which no check below accepts."""
    values = [value.decode("latin-1").strip() for key, value in scope.get("headers", ())
              if key == name]
    return ",".join(values) if values else None


def host_name(scope) -> str:
    """The ``Host`` header's name, lower case, without port or IPv6 brackets; ``""`` when it is
    absent or not exactly a host and an optional port (``a:1@b``, ``a:1, b``).

    Examples
    --------
    >>> host_name({"headers": [(b"host", b"[::1]:8000")]}), host_name({"headers": []})
    ('::1', '')
    >>> host_name({"headers": [(b"host", b"LocalHost:80")]})
    'localhost'
    >>> host_name({"headers": [(b"host", b"127.0.0.1:80@evil.example")]})
    ''
    """
    match = _HOST.fullmatch((_header(scope, b"host") or "").lower())
    return match["name"].strip("[]") if match else ""


def cross_origin(scope) -> str | None:
    """Why a request comes from another web page (a reason), or None when it does not.

    Its ``Origin`` (when sent) must be ``http://`` and its own ``Host``; ``Sec-Fetch-Site:
    cross-site`` is refused too, except for a top-level GET (a link to the page).

    Examples
    --------
    >>> page = [(b"host", b"127.0.0.1:8000")]
    >>> cross_origin({"method": "POST", "headers": page + [(b"origin", b"http://127.0.0.1:8000")]})
    >>> cross_origin({"method": "POST", "headers": page + [(b"origin", b"https://evil.example")]})
    "Origin 'https://evil.example' is not this page's"
    """
    origin = _header(scope, b"origin")
    host = (_header(scope, b"host") or "").lower()
    if origin is not None and origin.lower() != f"http://{host}":
        return f"Origin {origin[:100]!r} is not this page's"
    site = (_header(scope, b"sec-fetch-site") or "").lower()
    navigate = (scope.get("method") in {"GET", "HEAD"}
                and (_header(scope, b"sec-fetch-mode") or "").lower() == "navigate")
    if site == "cross-site" and not navigate:
        return "a request from another site (Sec-Fetch-Site: cross-site)"
    return None


class Guard:
    """ASGI middleware: refuses (400) a ``Host`` not in ``allowed_hosts`` (``None``: any, if
    well formed), refuses (403) requests from other web pages (:func:`cross_origin`), and adds
    :data:`SECURITY_HEADERS` to every response."""

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

        host = host_name(scope)
        if not host or (self.allowed is not None and host not in self.allowed):
            names = ", ".join(sorted(self.allowed)) if self.allowed else "a host name"
            response = error_response(400, f"this server answers only to {names} (bad Host "
                                           f"header)")
            await response(scope, receive, send_with_headers)
            return
        reason = cross_origin(scope)
        if reason is not None:
            response = error_response(403, f"refused: {reason}; use the page itself")
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


__all__ = ["CLOSING_STATUSES", "SECURITY_HEADERS", "Guard", "cross_origin", "error_response",
           "host_name"]
