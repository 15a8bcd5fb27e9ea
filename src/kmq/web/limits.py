"""The page's resource limits: bytes held by requests in flight, reading a body under an idle
timeout, the working memory an image will take, and giving freed memory back to the system.

Two budgets (:class:`Budget`) bound what hostile or merely unlucky clients can make the server
hold at once: the bytes of upload bodies being received, and the estimated working memory of
the images being decoded and quantized. A request that does not fit is answered 503 at once,
before the heavy work, instead of being let in to grow the process.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import io
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from kmq.web.api import ApiError

#: Peak working bytes per decoded pixel (RGB) while an upload is decoded: Pillow's image, the
#: array kmq makes of it and the conversions between (see docs/reliability.md).
DECODE_BYTES_PER_PIXEL = 10
#: Peak working bytes per pixel while an image is quantized, encoded and measured.
QUANTIZE_BYTES_PER_PIXEL = 24


class Budget:
    """A count of bytes reserved by requests in flight, at most ``limit``; thread-safe.

    Examples
    --------
    >>> budget = Budget(100, "uploads")
    >>> with budget.hold(60):
    ...     budget.try_reserve(60), budget.in_use
    (False, 60)
    >>> budget.in_use
    0
    """

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.in_use = 0
        self._lock = threading.Lock()

    def try_reserve(self, n: int) -> bool:
        """Reserve ``n`` bytes if they fit (a lone request always fits); whether it did."""
        with self._lock:
            if self.in_use and self.in_use + n > self.limit:
                return False
            self.in_use += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.in_use = max(0, self.in_use - n)

    @contextmanager
    def hold(self, n: int) -> Iterator[None]:
        """Reserve ``n`` bytes for the block; :class:`ApiError` 503 when they do not fit."""
        if not self.try_reserve(n):
            raise ApiError(503, f"the server is busy: {self.what} in progress hold "
                                f"{self.in_use / 1e6:.0f} MB of its {self.limit / 1e6:.0f} MB; "
                                f"try again in a moment")
        try:
            yield
        finally:
            self.release(n)


async def _next(chunks: AsyncIterator[bytes], idle: float) -> bytes | None:
    try:
        return await asyncio.wait_for(chunks.__anext__(), idle)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise ApiError(408, f"the upload stalled: no bytes for {idle:g} s") from None


async def read_limited(stream: AsyncIterator[bytes], *, limit: int, declared: int | None,
                       idle: float, budget: Budget) -> tuple[bytes, int]:
    """Read a request body of at most ``limit`` bytes, each chunk within ``idle`` seconds.

    The bytes are reserved in ``budget`` before they are held: the declared length at once, or
    chunk by chunk without one. Returns the body and the bytes still reserved (the caller
    releases them when it no longer holds the body).

    Raises
    ------
    ApiError
        413 over ``limit``, 408 after ``idle`` seconds of silence, 503 when ``budget`` is full.
    """
    reserved = 0
    try:
        if declared is not None:
            if not budget.try_reserve(declared):
                raise ApiError(503, f"the server is busy receiving other uploads "
                                    f"({budget.in_use / 1e6:.0f} MB of its "
                                    f"{budget.limit / 1e6:.0f} MB); try again in a moment")
            reserved = declared
        body = bytearray()
        chunks = stream.__aiter__()
        while (chunk := await _next(chunks, idle)) is not None:
            body += chunk
            if len(body) > limit:
                raise ApiError(413, f"the upload is over the limit of {limit:,} bytes")
            if len(body) > reserved:
                if not budget.try_reserve(len(body) - reserved):
                    raise ApiError(503, "the server is busy receiving other uploads; try "
                                        "again in a moment")
                reserved = len(body)
        return bytes(body), reserved
    except BaseException:
        budget.release(reserved)
        raise


def image_pixels(data: bytes) -> int:
    """Pixels of an encoded image from its header (Pillow reads no pixel data); 0 when it is not
    an image Pillow knows (decoding then says why).

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (300, 20)).save(buf, "PNG")
    >>> image_pixels(buf.getvalue()), image_pixels(b"not an image")
    (6000, 0)
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            frames = 1  # kmq reads the first frame only
    except Exception:  # not an image: load_image reports it
        return 0
    return int(width) * int(height) * frames


def _libc_trim():
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _libc_trim()


def give_back_memory() -> None:
    """Return the C heap's free memory to the system (glibc ``malloc_trim``; a no-op
    elsewhere): large images freed in the middle of the heap otherwise stay in the process."""
    if _TRIM is not None:
        _TRIM(0)


__all__ = ["DECODE_BYTES_PER_PIXEL", "QUANTIZE_BYTES_PER_PIXEL", "Budget", "give_back_memory",
           "image_pixels", "read_limited"]
