"""The server behind ``kmq serve``: a FastAPI application, its in-memory image store and helpers.

HTTP API (every error is JSON ``{"error": "one line"}``; 400 for a bad parameter or a file that
is not a decodable image, 404 for an unknown or expired token, 413 for an upload over the size
cap or an image over the pixel cap):

``GET /``
    The page (``static/index.html``, ``app.js``, ``style.css``).
``GET /api/config``
    The limits and choices: ``max_upload_bytes``, ``max_pixels``, ``k_min``, ``k_max``,
    ``colorspaces``, ``formats``, ``samples``.
``POST /api/images``
    Body: the image file's bytes, as they are on disk (any format Pillow reads); header
    ``X-Filename``: its name, percent-encoded (optional). The image is decoded and kept in memory
    under a random token. Returns 201 ``{"token", "name", "width", "height", "input_bytes",
    "warnings", "original"}``, ``original`` the (relative) URL of the decoded image as PNG.
``POST /api/samples/{name}``
    One of the sample photographs bundled with scikit-image, stored as an upload is.
``GET /api/images/{token}/original.png``
    The decoded image (EXIF orientation applied, sRGB, alpha kept: what kmq quantizes) as a PNG.
``GET /api/images/{token}/quantize?k=64&colorspace=srgb&dither=0&format=png``
    Quantize the stored image. ``k`` 2..256, ``colorspace`` srgb|wsrgb|linear|oklab, ``dither`` 0..1
    (0 is off), ``format`` png|webp|gif|kmq. Returns the result (see :func:`quantize_image`).
``POST /api/quantize?k=...&colorspace=...&dither=...&format=...``
    The same in one request, with the image file's bytes as the body; nothing is stored.

Design choices:

* **Uploads are the raw request body**, not a multipart form: the size cap is enforced while the
  body streams in (before it is, when ``Content-Length`` states it), and nothing touches the disk
  (Starlette spools multipart files over 1 MB to the system's temporary folder).
* **An image is uploaded once and referred to by a token**, so moving the K slider sends a few
  bytes, not the file, and the file is not decoded again. Decoded images live in a bounded LRU
  in memory (:class:`ImageStore`: at most ``max_images`` images and ``max_cache_bytes`` of
  pixels); an evicted token answers 404 and the page uploads the file again.
* **No state is shared between requests** other than that store (guarded by a lock, holding
  read-only arrays): each result is computed from local values in a worker thread
  (``workers`` threads; kmq's numba kernels release the GIL) and returned in full.
* **A request whose client went away is cancelled** through kmq's ``progress`` callback, so a
  slider dragged across many values does not queue work nobody will see.
* Results are JSON with the files base64-encoded: simple, and nothing to clean up afterwards.

The library never prints: :func:`serve` runs uvicorn with its own logging set to warnings, and
the ``kmq serve`` command prints the address.
"""

from __future__ import annotations

import asyncio
import base64
import io
import ipaddress
import math
import os
import re
import secrets
import socket
import threading
import time
import urllib.parse
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from kmq.errors import CancelledError, ImageReadError, ImageTooLargeError, one_line
from kmq.io import DEFAULT_MAX_PIXELS, binary_alpha, read_image

#: Folder of the page's files.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Default cap on an upload's bytes (25 MB).
DEFAULT_MAX_UPLOAD_BYTES = 25_000_000
K_MIN, K_MAX, DEFAULT_K = 2, 256, 64
COLORSPACES = ("srgb", "wsrgb", "linear", "oklab")
#: Output formats: extension -> MIME type.
FORMATS = {"png": "image/png", "webp": "image/webp", "gif": "image/gif",
           "kmq": "application/octet-stream"}
#: Hosts the page answers to when it is bound to a loopback address (DNS rebinding guard).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Seconds between checks that a waiting client is still connected.
_POLL_SECONDS = 0.1
#: Status sent (to nobody) when the client disconnected and its work was cancelled.
_STATUS_CLIENT_GONE = 499
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
#: ``warnings.catch_warnings`` changes process-wide state: decoding is serialized around it.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ServerConfig:
    """Limits and resources of the web application.

    Attributes
    ----------
    max_upload_bytes : int
        Larger uploads are refused with 413.
    max_pixels : int
        Images with more pixels are refused with 413 (checked before their pixels are decoded).
    max_images : int
        Uploaded images kept in memory, least recently used evicted first.
    max_cache_bytes : int
        Bytes of decoded pixels (3 per pixel) kept in memory; the most recent image is always
        kept, even alone over this.
    workers : int
        Threads quantizing at the same time (more requests wait their turn).
    allowed_hosts : tuple of str, optional
        Host names the server answers to (others get 400); ``None`` answers any. ``kmq serve``
        sets :data:`LOOPBACK_HOSTS` when it listens on a loopback address.
    warm_up : bool
        Load kmq's compiled kernels in the background at startup so the first request is
        quick (requests wait for it to finish).
    """

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_images: int = 16
    max_cache_bytes: int = 512 * 2**20
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    allowed_hosts: tuple[str, ...] | None = None
    warm_up: bool = True

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_images", "max_cache_bytes",
                     "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be an int >= 1; got {value!r}")


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------
# Decoding and storing images


@dataclass(frozen=True)
class StoredImage:
    """A decoded upload: read-only RGB or RGBA pixels and what the page shows about the file."""

    name: str
    rgb: np.ndarray
    input_bytes: int
    warnings: tuple[str, ...] = ()


def decode_image(data: bytes, name: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> StoredImage:
    """Decode an image file's bytes as kmq reads files (:func:`kmq.io.read_image`), in memory.

    EXIF orientation is applied, an ICC profile converted to sRGB, any mode becomes 8-bit RGB,
    or RGBA when the image has transparency; the size is checked against ``max_pixels`` before
    the pixels are decoded.

    Raises
    ------
    kmq.ImageTooLargeError
        Over ``max_pixels``.
    kmq.ImageReadError
        Not an image, or damaged.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.fromarray(np.zeros((2, 3), np.uint8)).save(buf, "PNG")
    >>> decode_image(buf.getvalue(), "gray.png").rgb.shape
    (2, 3, 3)
    """
    if not data:
        raise ImageReadError(f"{name}: empty file")
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = read_image(io.BytesIO(data), max_pixels=max_pixels, name=name)
    rgb.flags.writeable = False
    messages = tuple(dict.fromkeys(one_line(w.message) for w in caught))
    return StoredImage(name=name, rgb=rgb, input_bytes=len(data), warnings=messages)


class ImageStore:
    """Decoded images by random token, least recently used evicted first; thread-safe.

    Examples
    --------
    >>> import numpy as np
    >>> store = ImageStore(max_images=1, max_bytes=100)
    >>> a = store.put(StoredImage("a", np.zeros((2, 2, 3), np.uint8), 10))
    >>> b = store.put(StoredImage("b", np.zeros((2, 2, 3), np.uint8), 10))
    >>> store.get(a) is None, store.get(b).name, len(store)
    (True, 'b', 1)
    """

    def __init__(self, max_images: int, max_bytes: int) -> None:
        self.max_images = max_images
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, StoredImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, image: StoredImage) -> str:
        """Store ``image``; returns its new token."""
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._items[token] = image
            self._bytes += image.rgb.nbytes
            while len(self._items) > 1 and (len(self._items) > self.max_images
                                            or self._bytes > self.max_bytes):
                _, old = self._items.popitem(last=False)
                self._bytes -= old.rgb.nbytes
        return token

    def get(self, token: str) -> StoredImage | None:
        """The image of ``token`` (now the most recently used), or None if unknown/evicted."""
        with self._lock:
            image = self._items.get(token)
            if image is not None:
                self._items.move_to_end(token)
            return image

    def clear(self) -> None:
        """Forget every image."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


# ---------------------------------------------------------------------------------------------
# Quantizing


@dataclass(frozen=True)
class Params:
    """What to do with an image: the page's controls."""

    k: int = DEFAULT_K
    colorspace: str = "srgb"
    dither: float = 0.0
    format: str = "png"

    def as_dict(self) -> dict:
        """The parameters as the JSON result echoes them."""
        return {"k": self.k, "colorspace": self.colorspace, "dither": self.dither,
                "format": self.format}


def parse_params(query) -> Params:
    """:class:`Params` from a query string mapping; :class:`ApiError` 400 for a bad value.

    Examples
    --------
    >>> parse_params({"k": "16", "dither": "off", "format": "KMQ"})
    Params(k=16, colorspace='srgb', dither=0.0, format='kmq')
    """
    allowed = {"k", "colorspace", "dither", "format"}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ApiError(400, f"unknown parameter {unknown[0]!r}; expected k, colorspace, dither "
                            f"and format")
    k_text = query.get("k", str(DEFAULT_K)).strip()
    if not re.fullmatch(r"\d{1,4}", k_text) or not K_MIN <= int(k_text) <= K_MAX:
        raise ApiError(400, f"k must be an integer in {K_MIN}..{K_MAX}; got {k_text!r}")
    space = query.get("colorspace", "srgb").strip().lower()
    if space not in COLORSPACES:
        raise ApiError(400, f"colorspace must be one of {', '.join(COLORSPACES)}; got {space!r}")
    text = query.get("dither", "0").strip().lower()
    try:
        dither = 0.0 if text in {"off", "none", "false", ""} else float(text)
    except ValueError:
        dither = math.nan
    if not 0.0 <= dither <= 1.0:
        raise ApiError(400, f"dither must be a strength in 0..1 (or 'off'); got {text!r}")
    fmt = query.get("format", "png").strip().lower().lstrip(".")
    if fmt not in FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return Params(k=int(k_text), colorspace=space, dither=dither, format=fmt)


def _encode(fmt: str, palette: np.ndarray, indices: np.ndarray) -> bytes:
    if fmt == "kmq":
        from kmq.codecs.container import encode
    elif fmt == "webp":
        from kmq.codecs.webp import encode_webp as encode
    elif fmt == "gif":
        from kmq.codecs.gif import encode_gif as encode
    else:
        from kmq.codecs.png import encode_png as encode
    return encode(palette, indices)


def _finite(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _output_name(name: str, fmt: str) -> str:
    stem = Path(name).stem if name else "image"
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:100] or "image"
    return f"{stem}-kmq.{fmt}"


def quantize_image(image: StoredImage, params: Params, *,
                   cancel: threading.Event | None = None) -> dict:
    """Quantize, encode and measure one image; the JSON-ready result the page shows.

    Returns
    -------
    dict
        ``name``, ``width``, ``height``, ``params`` (echo of the request), ``k`` (colors
        used), ``distinct_colors``, ``input_bytes``, ``output_bytes``, ``bits_per_pixel``,
        ``ratio_raw`` and ``ratio_input`` (times smaller than raw 24-bit RGB and than the
        uploaded file), ``mse``, ``psnr`` (dB; ``None`` when exact), ``ssim`` (``None`` under
        7x7 pixels), ``seconds`` (``quantize``, ``encode``, ``measure``), ``palette`` (list of
        ``{"hex", "rgb", "count", "share"}``, largest share first), ``output``
        (``{"filename", "mime", "base64"}``: the file to download) and ``preview`` (``None``,
        or for ``.kmq`` ``{"mime": "image/png", "base64"}``: the same pixels as an indexed PNG
        for display), and ``warnings``.

    Raises
    ------
    kmq.CancelledError
        ``cancel`` was set before or while quantizing.
    """
    from kmq import metrics
    from kmq.pipeline import quantize

    if cancel is not None and cancel.is_set():
        raise CancelledError("cancelled before it started")
    rgb = image.rgb
    if params.format == "gif":  # one transparent color and no translucency in a GIF
        rgb = binary_alpha(rgb)
    height, width = rgb.shape[:2]
    progress = None if cancel is None else (lambda stage, fraction: cancel.is_set())
    start = time.perf_counter()
    q = quantize(rgb, params.k, seed=0, color_space=params.colorspace, dither=params.dither,
                 max_pixels=max(1, height * width), progress=progress)
    quantized = time.perf_counter()
    data = _encode(params.format, q.palette, q.indices)
    preview = None
    if params.format == "kmq":
        from kmq.codecs.png import encode_png

        preview = {"mime": "image/png",
                   "base64": base64.b64encode(encode_png(q.palette, q.indices)).decode()}
    encoded = time.perf_counter()
    ssim = (metrics.ssim_indexed(rgb, q.palette, q.indices, fast=True)
            if min(height, width) >= 7 else math.nan)
    measured = time.perf_counter()
    n_pixels = height * width
    order = np.argsort(-q.counts, kind="stable")
    palette = [{"hex": "#" + "".join(f"{int(c):02x}" for c in q.palette[i]),  # RGB(A)
                "rgb": [int(c) for c in q.palette[i]], "count": int(q.counts[i]),
                "share": round(float(q.counts[i]) / n_pixels, 6)}
               for i in order if q.counts[i] > 0]
    return {
        "name": image.name,
        "width": width,
        "height": height,
        "params": params.as_dict(),
        "k": q.k,
        "distinct_colors": q.distinct_colors,
        "input_bytes": image.input_bytes,
        "output_bytes": len(data),
        "bits_per_pixel": round(metrics.bits_per_pixel(len(data), n_pixels), 4),
        "ratio_raw": round(metrics.compression_ratio(len(data), rgb.shape[2] * n_pixels), 4),
        "ratio_input": round(metrics.compression_ratio(len(data), image.input_bytes), 4),
        "mse": round(q.mse, 6),
        "psnr": _finite(q.psnr, 4),
        "ssim": _finite(ssim, 6),
        "seconds": {"quantize": round(quantized - start, 4),
                    "encode": round(encoded - quantized, 4),
                    "measure": round(measured - encoded, 4)},
        "palette": palette,
        "output": {"filename": _output_name(image.name, params.format),
                   "mime": FORMATS[params.format], "base64": base64.b64encode(data).decode()},
        "preview": preview,
        "warnings": list(image.warnings),
    }


def _warm_up() -> str | None:
    """Load (or compile) the kernels a request uses; returns numba's threading layer.

    Best effort: a step that fails is skipped (the request that needs it reports the error).
    """
    from kmq.codecs.container import encode
    from kmq.metrics import ssim_indexed
    from kmq.pipeline import quantize

    rgb = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)

    def fitted() -> None:
        q = quantize(rgb, 4)
        ssim_indexed(rgb, q.palette, q.indices, fast=True)
        encode(q.palette, q.indices)

    for step in (fitted, lambda: quantize(rgb, 4, dither=1.0)):
        try:
            step()
        except Exception:  # the request that needs it reports the error
            continue
    try:
        import numba

        return numba.threading_layer()
    except (ImportError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# The application


class _Guard:
    """ASGI middleware: answers only the allowed ``Host`` names (a page bound to loopback is then
    out of reach of DNS rebinding), and adds a strict Content-Security-Policy (the page loads
    nothing from elsewhere) and a few hardening headers to every response."""

    def __init__(self, app, allowed_hosts: tuple[str, ...] | None = None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {
            h.strip("[]").lower() for h in allowed_hosts}

    @staticmethod
    def _host_name(scope) -> str:
        host = ""
        for key, value in scope.get("headers", ()):
            if key == b"host":
                host = value.decode("latin-1").strip().lower()
        if host.startswith("["):  # [::1]:8000
            return host[1:host.find("]")] if "]" in host else host
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in _SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        if self.allowed is not None and self._host_name(scope) not in self.allowed:
            response = _error(400, "this server answers only to "
                                   + ", ".join(sorted(self.allowed)) + " (bad Host header)")
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes."""
    too_big = (f"the upload is over the limit of {limit:,} bytes ({limit / 1e6:g} MB; "
               f"kmq serve --max-upload-mb raises it)")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, f"bad Content-Length header {declared!r}")
        if int(declared) > limit:
            raise ApiError(413, f"{int(declared):,} bytes: {too_big}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, too_big)
    if not body:
        raise ApiError(400, "empty request body: send the image file's bytes as the body")
    return bytes(body)


def _upload_name(request: Request) -> str:
    raw = request.headers.get("x-filename", "")
    name = urllib.parse.unquote(raw).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "".join(ch for ch in name if ch.isprintable())[:200] or "upload"


def _status_of(exc: Exception) -> int:
    if isinstance(exc, ImageTooLargeError):
        return 413
    if isinstance(exc, (ImageReadError, ValueError)):
        return 400
    return 500


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The web application: the page, its API and an in-memory image store.

    Parameters
    ----------
    config : ServerConfig, optional
        Limits and resources; the defaults when omitted.

    Returns
    -------
    fastapi.FastAPI
        Its worker threads are shut down and its images dropped when it shuts down (the ASGI
        lifespan; ``with TestClient(app)`` runs it too).
    """
    config = config or ServerConfig()
    store = ImageStore(config.max_images, config.max_cache_bytes)
    pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="kmq-web")
    # numba's "workqueue" threading layer must not be entered from two threads at once: with it
    # (no OpenMP or TBB on the machine) requests are computed one at a time. Which layer numba
    # picked is known after the warm-up, the pool's first job; until then jobs take turns.
    startup = threading.Lock()
    guard: dict[str, object] = {"lock": startup if config.warm_up else nullcontext()}

    def warm_up() -> None:
        with startup:
            layer = _warm_up()
            guard["lock"] = threading.Lock() if layer == "workqueue" else nullcontext()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if config.warm_up:  # in the background: the page is served at once
            pool.submit(warm_up)
        try:
            yield
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            store.clear()

    app = FastAPI(title="kmq", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.config = config
    app.state.store = store

    async def in_pool(request: Request, work: Callable[[threading.Event], object]):
        """Run ``work(cancel)`` in the pool; set ``cancel`` if the client disconnects."""
        cancel = threading.Event()

        def job():
            with guard["lock"]:
                return work(cancel)

        future = asyncio.get_running_loop().run_in_executor(pool, job)
        while True:
            done, _ = await asyncio.wait({future}, timeout=_POLL_SECONDS)
            if done:
                return future.result()
            if not cancel.is_set() and await request.is_disconnected():
                cancel.set()

    async def guarded(request: Request, handler) -> Response:
        try:
            return await handler()
        except ApiError as exc:
            return _error(exc.status, exc.message)
        except CancelledError:
            return _error(_STATUS_CLIENT_GONE, "cancelled: the client went away")
        except (ImageReadError, ValueError) as exc:
            return _error(_status_of(exc), str(exc))
        except Exception as exc:  # a bug: still one JSON line, never a traceback page
            return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    def stored(token: str) -> StoredImage:
        image = store.get(token)
        if image is None:
            raise ApiError(404, "unknown or expired image token: upload the image again")
        return image

    def describe(token: str, image: StoredImage) -> dict:
        height, width = image.rgb.shape[:2]
        return {"token": token, "name": image.name, "width": width, "height": height,
                "input_bytes": image.input_bytes, "warnings": list(image.warnings),
                "original": f"api/images/{token}/original.png"}

    @app.get("/api/config")
    async def get_config() -> dict:
        from kmq.samples import SAMPLES

        return {"max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels,
                "k_min": K_MIN, "k_max": K_MAX, "k_default": DEFAULT_K,
                "colorspaces": list(COLORSPACES), "formats": list(FORMATS),
                "samples": list(SAMPLES)}

    @app.post("/api/images", status_code=201)
    async def upload(request: Request) -> Response:
        async def handler():
            data = await _read_body(request, config.max_upload_bytes)
            name = _upload_name(request)
            image = await in_pool(request, lambda cancel: decode_image(
                data, name, max_pixels=config.max_pixels))
            return JSONResponse(describe(store.put(image), image), status_code=201)

        return await guarded(request, handler)

    @app.post("/api/samples/{name}", status_code=201)
    async def sample(request: Request, name: str) -> Response:
        async def handler():
            from kmq import samples

            if name not in samples.SAMPLES:
                raise ApiError(404, f"no sample named {name!r}; expected one of "
                                    f"{', '.join(samples.SAMPLES)}")

            def load(cancel):
                buf = io.BytesIO()
                Image.fromarray(samples.load(name)).save(buf, format="PNG")
                return decode_image(buf.getvalue(), f"{name}.png",
                                    max_pixels=config.max_pixels)

            image = await in_pool(request, load)
            return JSONResponse(describe(store.put(image), image), status_code=201)

        return await guarded(request, handler)

    @app.get("/api/images/{token}/original.png")
    async def original(request: Request, token: str) -> Response:
        async def handler():
            image = stored(token)

            def encode(cancel):
                buf = io.BytesIO()
                Image.fromarray(image.rgb).save(buf, format="PNG", compress_level=1)
                return buf.getvalue()

            data = await in_pool(request, encode)
            return Response(data, media_type="image/png",
                            headers={"cache-control": "private, max-age=3600"})

        return await guarded(request, handler)

    @app.get("/api/images/{token}/quantize")
    async def quantize_stored(request: Request, token: str) -> Response:
        async def handler():
            params = parse_params(request.query_params)
            image = stored(token)
            result = await in_pool(request, lambda cancel: quantize_image(image, params,
                                                                          cancel=cancel))
            return JSONResponse(result)

        return await guarded(request, handler)

    @app.post("/api/quantize")
    async def quantize_once(request: Request) -> Response:
        async def handler():
            params = parse_params(request.query_params)
            data = await _read_body(request, config.max_upload_bytes)
            name = _upload_name(request)

            def work(cancel):
                image = decode_image(data, name, max_pixels=config.max_pixels)
                return quantize_image(image, params, cancel=cancel)

            return JSONResponse(await in_pool(request, work))

        return await guarded(request, handler)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, exc.detail if isinstance(exc.detail, str)
                      else "request failed")

    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    app.add_middleware(_Guard, allowed_hosts=config.allowed_hosts)
    return app


# ---------------------------------------------------------------------------------------------
# Running it


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``).

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
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
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_server(app: FastAPI):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                         access_log=False, server_header=False))


def serve(sock: socket.socket, app: FastAPI) -> None:
    """Serve ``app`` on a socket from :func:`bind` until interrupted (Ctrl+C)."""
    _uvicorn_server(app).run(sockets=[sock])


class BackgroundServer:
    """uvicorn serving an app in a background thread, for tests and scripts.

    Examples
    --------
    ::

        with BackgroundServer(create_app()) as server:
            httpx.get(server.url + "/api/config")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = 60.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.timeout = timeout
        self.url = ""
        self._server = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundServer:
        sock = bind(self.host, self.port)
        self.url = url_of(sock)
        self._server = _uvicorn_server(self.app)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="kmq-web-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"the web server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.timeout)


__all__ = ["COLORSPACES", "DEFAULT_MAX_UPLOAD_BYTES", "FORMATS", "LOOPBACK_HOSTS", "STATIC_DIR",
           "ApiError", "BackgroundServer", "ImageStore", "Params", "ServerConfig", "StoredImage",
           "bind", "create_app", "decode_image", "is_loopback", "parse_params",
           "quantize_image", "serve", "url_of"]
