"""The web application behind ``kmq serve``: the page, its HTTP API and the worker threads.

HTTP API (every error is JSON ``{"error": "one line"}``; 400 for a bad parameter or a file that
is not a decodable image, 403 for a request from another web page, 404 for an unknown or
expired token, 408 for an upload that stalls, 413 for an upload over the size cap or an image
over the pixel cap, 422 for a byte budget even 2 colors miss, 503 when the uploads in flight or
the images being worked on fill their budget):

``GET /``
    The page (``static/index.html``, ``app.js``, ``style.css``).
``GET /api/config``
    The limits and choices (:func:`kmq.web.api.page_config`): ``max_upload_bytes``,
    ``max_pixels``, ``k_min``, ``k_max``, ``k_default``, ``colorspaces``, ``formats`` (``name``,
    ``title``, ``extension``, ``mime`` of each), ``samples``.
``POST /api/images``
    Body: the image file's bytes, as they are on disk (any format Pillow reads); header
    ``X-Filename``: its name, percent-encoded (optional). The image is decoded
    (:func:`kmq.io.load_image`) and kept in memory under a random token. Returns 201 ``{"token",
    "name", "width", "height", "input_bytes", "warnings", "original"}``, ``original`` the
    (relative) URL of the decoded image as PNG.
``POST /api/samples/{name}``
    One of the sample photographs shipped with kmq, stored as an upload is.
``GET /api/images/{token}/original.png``
    The decoded image (EXIF orientation applied, sRGB, alpha kept: what kmq quantizes) as a PNG.
``GET /api/images/{token}/quantize?k=64&colorspace=srgb&dither=0&format=png&max_bytes=N``
    Quantize the stored image (:func:`kmq.web.api.parse_params` says what the values may be);
    returns the result of :func:`kmq.web.api.quantize`. With ``max_bytes``, K is the most
    colors (up to ``k``) whose file fits in that many bytes.
``POST /api/quantize?k=...&colorspace=...&dither=...&format=...``
    The same in one request, with the image file's bytes as the body; nothing is stored.

Design choices:

* **Uploads are the raw request body**, not a multipart form: the size cap is enforced while the
  body streams in (before it is, when ``Content-Length`` states it), and nothing touches the
  disk (multipart files over 1 MB would be spooled to a temporary file).
* **An image is uploaded once and referred to by a token** (:class:`kmq.web.store.ImageStore`).
* **No state is shared between requests** other than that store (guarded by a lock, holding
  read-only arrays): each result is computed from local values in a worker thread
  (``workers`` threads; kmq's numba kernels release the GIL) and returned in full.
* **A request whose client went away is cancelled** through the file layer's ``progress``
  callback, so a slider dragged across many values does not queue work nobody will see.
* **What a request may hold is bounded** (:mod:`kmq.web.limits`): a body that sends nothing
  for ``upload_idle_seconds`` is dropped (408); the bodies being received hold at most
  ``max_upload_bytes_in_flight``; the images being decoded or quantized at most
  ``max_work_bytes`` of working memory, estimated from the image header before decoding. A
  request that does not fit gets 503 at once.
* Results are JSON with the files base64-encoded: simple, and nothing to clean up afterwards.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from kmq.errors import (
    ArgumentError,
    CancelledError,
    ImageReadError,
    ImageTooLargeError,
    SizeBudgetError,
)
from kmq.io import DEFAULT_MAX_PIXELS, SourceImage, load_image
from kmq.web import api
from kmq.web.api import ApiError
from kmq.web.guard import Guard, error_response
from kmq.web.limits import (
    DECODE_BYTES_PER_PIXEL,
    QUANTIZE_BYTES_PER_PIXEL,
    Budget,
    give_back_memory,
    image_pixels,
    read_limited,
)
from kmq.web.store import ImageStore

#: Folder of the page's files.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Default cap on an upload's bytes (25 MB).
DEFAULT_MAX_UPLOAD_BYTES = 25_000_000
#: Seconds between checks that a waiting client is still connected.
_POLL_SECONDS = 0.1
#: Working memory (bytes) over which a finished request gives freed memory back to the system.
_TRIM_BYTES = 64 * 2**20
#: Status sent (to nobody) when the client disconnected and its work was cancelled.
STATUS_CLIENT_GONE = 499


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
        Bytes of decoded pixels (3 or 4 per pixel) kept in memory; the most recent image is
        always kept, even alone over this.
    upload_idle_seconds : float
        An upload whose body sends nothing for this long is dropped (408).
    max_upload_bytes_in_flight : int
        Bytes of upload bodies being received at once (declared lengths count in full from the
        start); an upload that would go over gets 503.
    max_work_bytes : int
        Estimated working memory of the images being decoded, quantized or encoded at once; a
        request that would go over gets 503 (a request alone is always let in).
    workers : int
        Threads quantizing at the same time (more requests wait their turn).
    allowed_hosts : tuple of str, optional
        Host names the server answers to (others get 400); ``None`` answers any. ``kmq serve``
        sets :data:`kmq.web.LOOPBACK_HOSTS` when it listens on a loopback address.
    warm_up : bool
        Load kmq's compiled kernels in the background at startup so the first request is
        quick (requests wait for it to finish).
    """

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_images: int = 16
    max_cache_bytes: int = 256_000_000
    upload_idle_seconds: float = 5.0
    max_upload_bytes_in_flight: int = 4 * DEFAULT_MAX_UPLOAD_BYTES
    max_work_bytes: int = 2_000_000_000
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    allowed_hosts: tuple[str, ...] | None = None
    warm_up: bool = True

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_images", "max_cache_bytes",
                     "workers", "max_upload_bytes_in_flight", "max_work_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ArgumentError(f"expected {name} to be an int >= 1; got {value!r}")
        idle = self.upload_idle_seconds
        if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not idle > 0:
            raise ArgumentError(f"expected upload_idle_seconds > 0; got {idle!r}")


async def read_body(request: Request, limit: int, *, idle: float,
                    budget: Budget) -> tuple[bytes, int]:
    """The request body, refused (413) as soon as it is known to exceed ``limit`` bytes, or
    (408) after ``idle`` seconds without a byte; its bytes reserved in ``budget`` (503 when it is
    full). Returns the body and the bytes reserved, for the caller to release."""
    too_big = (f"the upload is over the limit of {limit:,} bytes ({limit / 1e6:g} MB; "
               f"kmq serve --max-upload-mb raises it)")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, f"bad Content-Length header {declared!r}")
        if int(declared) > limit:
            raise ApiError(413, f"{int(declared):,} bytes: {too_big}")
    try:
        body, reserved = await read_limited(
            request.stream(), limit=limit, declared=None if declared is None else int(declared),
            idle=idle, budget=budget)
    except ApiError as exc:
        raise ApiError(413, too_big) if exc.status == 413 else exc from None
    if not body:
        budget.release(reserved)
        raise ApiError(400, "empty request body: send the image file's bytes as the body")
    return body, reserved


def upload_name(request: Request) -> str:
    """The upload's file name from ``X-Filename`` (percent-decoded, no folders), or
    ``upload``."""
    raw = request.headers.get("x-filename", "")
    name = urllib.parse.unquote(raw).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "".join(ch for ch in name if ch.isprintable())[:200] or "upload"


def _png(image: SourceImage) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image.pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The web application: the page, its API and an in-memory image store.

    Parameters
    ----------
    config : ServerConfig, optional
        Limits and resources; the defaults when omitted.

    Returns
    -------
    fastapi.FastAPI
        ``app.state.config`` and ``app.state.store`` (:class:`~kmq.web.store.ImageStore`) are
        its configuration and images. Its worker threads are shut down and its images dropped
        when it shuts down (the ASGI lifespan; ``with TestClient(app)`` runs it too).
    """
    config = config or ServerConfig()
    store = ImageStore(config.max_images, config.max_cache_bytes, on_evict=give_back_memory)
    uploads = Budget(config.max_upload_bytes_in_flight, "uploads being received")
    working = Budget(config.max_work_bytes, "images being worked on")
    pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="kmq-web")
    # numba's "workqueue" threading layer must not be entered from two threads at once: with it
    # (no OpenMP or TBB on the machine) requests are computed one at a time. Which layer numba
    # picked is known after the warm-up, the pool's first job; until then jobs take turns.
    startup = threading.Lock()
    turns: dict[str, object] = {"lock": startup if config.warm_up else nullcontext()}

    def warm_up() -> None:
        with startup:
            layer = api.warm_up()
            turns["lock"] = threading.Lock() if layer == "workqueue" else nullcontext()

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
    app.state.budgets = {"uploads": uploads, "work": working}

    async def in_pool(request: Request, work: Callable[[threading.Event], object]):
        """Run ``work(cancel)`` in the pool; set ``cancel`` if the client disconnects."""
        cancel = threading.Event()

        def job():
            with turns["lock"]:
                return work(cancel)

        future = asyncio.get_running_loop().run_in_executor(pool, job)
        while True:
            done, _ = await asyncio.wait({future}, timeout=_POLL_SECONDS)
            if done:
                return future.result()
            if not cancel.is_set() and await request.is_disconnected():
                cancel.set()

    async def answer(handler) -> Response:
        """``handler()``'s response, or its error as one JSON line with its status."""
        try:
            return await handler()
        except ApiError as exc:
            return error_response(exc.status, exc.message)
        except CancelledError:
            return error_response(STATUS_CLIENT_GONE, "cancelled: the client went away")
        except ImageTooLargeError as exc:
            return error_response(413, str(exc))
        except SizeBudgetError as exc:
            return error_response(422, f"{exc}: no file this small at any K; raise Max size")
        except (ImageReadError, ValueError) as exc:
            return error_response(400, str(exc))
        except Exception as exc:  # a bug: still one JSON line, never a traceback page
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    def stored(token: str) -> SourceImage:
        image = store.get(token)
        if image is None:
            raise ApiError(404, "unknown or expired image token: upload the image again")
        return image

    def decode(data: bytes, name: str) -> SourceImage:
        return load_image(data, max_pixels=config.max_pixels, name=name)

    @asynccontextmanager
    async def received(request: Request):
        """The request's body, its bytes counted in the uploads' budget while it is held."""
        data, reserved = await read_body(request, config.max_upload_bytes,
                                         idle=config.upload_idle_seconds, budget=uploads)
        try:
            yield data
        finally:
            uploads.release(reserved)

    async def worked(request: Request, pixels: int, per_pixel: int,
                     job: Callable[[threading.Event], object]):
        """``job`` in the pool, its working memory (``pixels`` times ``per_pixel`` bytes)
        counted in the work budget from before it starts."""
        estimate = min(pixels, config.max_pixels) * per_pixel
        try:
            with working.hold(estimate):
                return await in_pool(request, job)
        finally:
            if estimate >= _TRIM_BYTES:  # a large image's arrays were just freed
                give_back_memory()

    def created(image: SourceImage) -> JSONResponse:
        return JSONResponse(api.describe(store.put(image), image), status_code=201)

    @app.get("/api/config")
    async def get_config() -> dict:
        return api.page_config(config.max_upload_bytes, config.max_pixels)

    @app.post("/api/images", status_code=201)
    async def upload(request: Request) -> Response:
        async def handler():
            name = upload_name(request)
            async with received(request) as data:
                return created(await worked(request, image_pixels(data),
                                            DECODE_BYTES_PER_PIXEL,
                                            lambda cancel: decode(data, name)))

        return await answer(handler)

    @app.post("/api/samples/{name}", status_code=201)
    async def sample(request: Request, name: str) -> Response:
        async def handler():
            from PIL import Image

            from kmq import samples

            if name not in samples.SAMPLES:
                raise ApiError(404, f"no sample named {name!r}; expected one of "
                                    f"{', '.join(samples.SAMPLES)}")

            def load(cancel):  # as an upload of the PNG file would be
                buf = io.BytesIO()
                Image.fromarray(samples.load(name)).save(buf, format="PNG")
                return decode(buf.getvalue(), f"{name}.png")

            return created(await worked(request, 512 * 512, DECODE_BYTES_PER_PIXEL, load))

        return await answer(handler)

    @app.get("/api/images/{token}/original.png")
    async def original(request: Request, token: str) -> Response:
        async def handler():
            image = stored(token)
            height, width = image.pixels.shape[:2]
            data = await worked(request, height * width, DECODE_BYTES_PER_PIXEL,
                                lambda cancel: _png(image))
            return Response(data, media_type="image/png",
                            headers={"cache-control": "private, max-age=3600"})

        return await answer(handler)

    @app.get("/api/images/{token}/quantize")
    async def quantize_stored(request: Request, token: str) -> Response:
        async def handler():
            params = api.parse_params(request.query_params)
            image = stored(token)
            height, width = image.pixels.shape[:2]
            return JSONResponse(await worked(
                request, height * width, QUANTIZE_BYTES_PER_PIXEL,
                lambda cancel: api.quantize(image, params, cancel=cancel)))

        return await answer(handler)

    @app.post("/api/quantize")
    async def quantize_once(request: Request) -> Response:
        async def handler():
            params = api.parse_params(request.query_params)
            name = upload_name(request)
            async with received(request) as data:
                return JSONResponse(await worked(
                    request, image_pixels(data), DECODE_BYTES_PER_PIXEL + QUANTIZE_BYTES_PER_PIXEL,
                    lambda cancel: api.quantize(decode(data, name), params, cancel=cancel)))

        return await answer(handler)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, exc.detail if isinstance(exc.detail, str)
                              else "request failed")

    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    app.add_middleware(Guard, allowed_hosts=config.allowed_hosts)
    return app


__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "STATIC_DIR", "STATUS_CLIENT_GONE", "ServerConfig",
           "create_app", "read_body", "upload_name"]
