"""``kmq serve``: a local web page to try k-means quantization on an image.

The page (``static/``: plain HTML, CSS and JavaScript, no CDN, works offline) talks to a small
FastAPI application, :func:`kmq.web.server.create_app`, served by uvicorn on the loopback
interface by default. Everything stays in memory: uploads are read into memory under a size cap,
decoded under kmq's pixel limit and kept in a bounded LRU, and results come back as JSON with the
files base64-encoded. See :mod:`kmq.web.server` for the HTTP API.

This package imports FastAPI and uvicorn; ``import kmq`` does not import it.
"""

from kmq.web.server import (
    LOOPBACK_HOSTS,
    BackgroundServer,
    ServerConfig,
    bind,
    create_app,
    is_loopback,
    serve,
    url_of,
)

__all__ = ["LOOPBACK_HOSTS", "BackgroundServer", "ServerConfig", "bind", "create_app",
           "is_loopback", "serve", "url_of"]
