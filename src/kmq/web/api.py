"""What the page's HTTP API takes and answers, without the HTTP: parameters, results, errors.

The work itself is kmq's file layer: :func:`kmq.files.compress_image` quantizes and encodes,
:func:`kmq.files.measure_ssim` measures. The choices (K range, color spaces, formats with their
MIME types and extensions) are the library's own (:data:`kmq.files.K_MIN`,
:data:`kmq.colorspace.SPACES`, :data:`kmq.codecs.CODECS`), so the page offers what the ``kmq``
command offers. Nothing here imports FastAPI: :mod:`kmq.web.app` puts it on the web.
"""

from __future__ import annotations

import base64
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmq import codecs
from kmq.colorspace import SPACES
from kmq.errors import CancelledError
from kmq.files import K_MAX, K_MIN, OUTPUT_TAG, CompressOptions
from kmq.io import SourceImage

#: K the page starts with.
DEFAULT_K = 64


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Params:
    """What to do with an image: the page's controls."""

    k: int = DEFAULT_K
    colorspace: str = "srgb"
    dither: float = 0.0
    format: str = codecs.DEFAULT
    #: A byte budget: the most colors (up to ``k``) whose file fits; None: exactly ``k``.
    max_bytes: int | None = None

    def as_dict(self) -> dict:
        """The parameters as the JSON result echoes them."""
        return {"k": self.k, "colorspace": self.colorspace, "dither": self.dither,
                "format": self.format, "max_bytes": self.max_bytes}


def parse_params(query) -> Params:
    """:class:`Params` from a query string mapping; :class:`ApiError` 400 for a bad value.

    Examples
    --------
    >>> parse_params({"k": "16", "dither": "off", "format": "KMQ", "max_bytes": "5000"})
    Params(k=16, colorspace='srgb', dither=0.0, format='kmq', max_bytes=5000)
    """
    allowed = {"k", "colorspace", "dither", "format", "max_bytes"}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ApiError(400, f"unknown parameter {unknown[0]!r}; expected k, colorspace, dither, "
                            f"format and max_bytes")
    k_text = query.get("k", str(DEFAULT_K)).strip()
    if not re.fullmatch(r"\d{1,4}", k_text) or not K_MIN <= int(k_text) <= K_MAX:
        raise ApiError(400, f"k must be an integer in {K_MIN}..{K_MAX}; got {k_text!r}")
    space = query.get("colorspace", "srgb").strip().lower()
    if space not in SPACES:
        raise ApiError(400, f"colorspace must be one of {', '.join(SPACES)}; got {space!r}")
    text = query.get("dither", "0").strip().lower()
    try:
        dither = 0.0 if text in {"off", "none", "false", ""} else float(text)
    except ValueError:
        dither = math.nan
    if not 0.0 <= dither <= 1.0:
        raise ApiError(400, f"dither must be a strength in 0..1 (or 'off'); got {text!r}")
    fmt = query.get("format", codecs.DEFAULT)
    try:
        codec = codecs.get(fmt)
    except codecs.UnknownFormatError:
        raise ApiError(400, f"format must be one of {', '.join(codecs.names())}; got "
                            f"{fmt.strip()!r}") from None
    budget = query.get("max_bytes", "").strip()
    if budget and (not re.fullmatch(r"\d{1,12}", budget) or int(budget) < 1):
        raise ApiError(400, f"max_bytes must be a whole number of bytes >= 1 (or empty); got "
                            f"{budget!r}")
    return Params(k=int(k_text), colorspace=space, dither=dither, format=codec.name,
                  max_bytes=int(budget) if budget else None)


def page_config(max_upload_bytes: int, max_pixels: int) -> dict:
    """``GET /api/config``: the limits and the choices the page offers.

    Examples
    --------
    >>> config = page_config(1000, 2000)
    >>> config["k_min"], config["k_max"], config["colorspaces"][0], config["formats"][0]["mime"]
    (2, 256, 'srgb', 'image/png')
    """
    from kmq.samples import SAMPLES

    return {"max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels,
            "k_min": K_MIN, "k_max": K_MAX, "k_default": DEFAULT_K,
            "colorspaces": list(SPACES),
            "formats": [{"name": c.name, "title": c.title, "extension": c.extension,
                         "mime": c.mime} for c in codecs.CODECS.values()],
            "samples": list(SAMPLES)}


def describe(token: str, image: SourceImage) -> dict:
    """What an upload's answer says about the stored image (``original``: a relative URL)."""
    height, width = image.pixels.shape[:2]
    return {"token": token, "name": image.name, "width": width, "height": height,
            "input_bytes": image.n_bytes, "warnings": list(image.warnings),
            "original": f"api/images/{token}/original.png"}


def output_name(name: str, codec: codecs.Codec) -> str:
    """The download's file name: the upload's stem, sanitized, as ``kmq compress`` names it.

    Examples
    --------
    >>> output_name("../My photo (1).JPG", codecs.get("webp"))
    'My_photo_1-kmq.webp'
    """
    stem = Path(name).stem if name else "image"
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:100] or "image"
    return f"{stem}{OUTPUT_TAG}{codec.extension}"


def _finite(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _file(data: bytes, codec: codecs.Codec) -> dict:
    return {"mime": codec.mime, "base64": base64.b64encode(data).decode()}


def quantize(image: SourceImage, params: Params, *,
             cancel: threading.Event | None = None) -> dict:
    """Quantize, encode and measure one image; the JSON-ready result the page shows.

    The file is :func:`kmq.files.compress_image`'s (seed 0): the bytes ``kmq compress`` writes
    for the same image and options (``params.max_bytes``: ``kmq compress --max-size``, the
    most colors up to ``params.k`` whose file fits).

    Returns
    -------
    dict
        ``name``, ``width``, ``height``, ``params`` (echo of the request), ``k`` (colors
        used), ``distinct_colors``, ``input_bytes``, ``output_bytes``, ``size_change`` (output
        over input bytes, minus 1: -0.62 is 62% smaller), ``bits_per_pixel``, ``ratio_raw``
        and ``ratio_input`` (times smaller than raw 24-bit RGB, 32-bit with alpha, and than the
        uploaded file), ``mse``, ``psnr`` (dB; ``None`` when exact), ``ssim`` (``None`` under
        7x7 pixels), ``seconds`` (``quantize``, ``encode``, ``measure``), ``palette`` (list of
        ``{"hex", "rgb", "count", "share"}``, largest share first), ``output``
        (``{"filename", "mime", "base64"}``: the file to download), ``preview`` (``None``, or
        for a format browsers do not show, ``.kmq``, ``{"mime": "image/png", "base64"}``: the
        same pixels as an indexed PNG) and ``warnings``.

    Raises
    ------
    kmq.CancelledError
        ``cancel`` was set before or while quantizing.
    kmq.SizeBudgetError
        ``params.max_bytes`` is set and even 2 colors make a larger file.
    """
    from kmq import metrics
    from kmq.files import compress_image, measure_ssim

    if cancel is not None and cancel.is_set():
        raise CancelledError("cancelled before it started")
    height, width = image.pixels.shape[:2]
    n_pixels = height * width
    options = CompressOptions(k=params.k, format=params.format, color_space=params.colorspace,
                              dither=params.dither, max_bytes=params.max_bytes,
                              max_pixels=max(1, n_pixels))
    marks: dict[str, float] = {}

    def progress(stage: str, fraction: float) -> bool:
        if stage == "encoding":  # the file layer's last step: the quantize is done
            marks["encoding"] = time.perf_counter()
        return cancel is not None and cancel.is_set()

    start = time.perf_counter()
    compressed = compress_image(image.pixels, options, name=image.name, progress=progress)
    encoded = time.perf_counter()
    quantized = marks.get("encoding", encoded)
    ssim = measure_ssim(compressed)
    measured = time.perf_counter()

    q, codec, data = compressed.quantized, compressed.codec, compressed.data
    preview = None
    if not codec.mime.startswith("image/"):  # a browser cannot show it: the same pixels as PNG
        preview = _file(codecs.get("png").encode(q), codecs.get("png"))
    order = np.argsort(-q.counts, kind="stable")
    palette = [{"hex": "#" + "".join(f"{int(c):02x}" for c in q.palette[i]),  # RGB(A)
                "rgb": [int(c) for c in q.palette[i]], "count": int(q.counts[i]),
                "share": round(float(q.counts[i]) / n_pixels, 6)}
               for i in order if q.counts[i] > 0]
    channels = compressed.pixels.shape[2]
    return {
        "name": image.name,
        "width": width,
        "height": height,
        "params": params.as_dict(),
        "k": q.k,
        "distinct_colors": q.distinct_colors,
        "input_bytes": image.n_bytes,
        "output_bytes": len(data),
        "size_change": round(len(data) / image.n_bytes - 1.0, 6) if image.n_bytes else None,
        "bits_per_pixel": round(metrics.bits_per_pixel(len(data), n_pixels), 4),
        "ratio_raw": round(metrics.compression_ratio(len(data), channels * n_pixels), 4),
        "ratio_input": round(metrics.compression_ratio(len(data), image.n_bytes), 4),
        "mse": round(q.mse, 6),
        "psnr": _finite(q.psnr, 4),
        "ssim": _finite(ssim, 6),
        "seconds": {"quantize": round(quantized - start, 4),
                    "encode": round(encoded - quantized, 4),
                    "measure": round(measured - encoded, 4)},
        "palette": palette,
        "output": {"filename": output_name(image.name, codec), **_file(data, codec)},
        "preview": preview,
        "warnings": list(image.warnings + compressed.warnings),
    }


def warm_up() -> str | None:
    """Load (or compile) the kernels a request uses; returns numba's threading layer.

    Best effort: a step that fails is skipped (the request that needs it reports the error).
    """
    from kmq.files import compress_image, measure_ssim

    rgb = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    steps = (lambda: measure_ssim(compress_image(rgb, CompressOptions(k=4, format="kmq"))),
             lambda: compress_image(rgb, CompressOptions(k=4, dither=1.0)))
    for step in steps:
        try:
            step()
        except Exception:  # the request that needs it reports the error
            continue
    try:
        import numba

        return numba.threading_layer()
    except (ImportError, ValueError):
        return None


__all__ = ["DEFAULT_K", "ApiError", "Params", "describe", "output_name", "page_config",
           "parse_params", "quantize", "warm_up"]
