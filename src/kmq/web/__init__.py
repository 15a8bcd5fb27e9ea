"""``kmq serve``: a local web page to try k-means quantization on an image.

The page (``static/``: plain HTML, CSS and JavaScript, no CDN, works offline) talks to a small
FastAPI application served by uvicorn on the loopback interface by default. Everything stays in
memory: uploads are read under a size cap, decoded by kmq's file layer under its pixel limit
and kept in a bounded LRU, and results come back as JSON with the files base64-encoded.

Modules: :mod:`~kmq.web.app` (the application, its routes and the HTTP API),
:mod:`~kmq.web.api` (parameters and results, without HTTP), :mod:`~kmq.web.store` (the images),
:mod:`~kmq.web.guard` (Host check and security headers), :mod:`~kmq.web.server` (running it).

FastAPI and uvicorn are the optional extra ``kmq[web]``: without FastAPI, importing this package
raises :class:`kmq.MissingExtraError` naming ``pip install 'kmq[web]'``; ``import kmq`` never
imports it.
"""

from kmq.errors import require

require("fastapi", "web", "the web page (kmq serve)")

from kmq.web.app import ServerConfig, create_app  # noqa: E402  (after the check above)
from kmq.web.server import (  # noqa: E402
    LOOPBACK_HOSTS,
    BackgroundServer,
    bind,
    is_loopback,
    serve,
    url_of,
)

__all__ = ["LOOPBACK_HOSTS", "BackgroundServer", "ServerConfig", "bind", "create_app",
           "is_loopback", "serve", "url_of"]
