"""Quantizing to a target instead of a K: the fewest colors that reach a quality, or the most
whose file fits a byte budget. Both fit every K they try on one color histogram
(:class:`kmq.pipeline.Fitter`) and find K by bisection."""

from __future__ import annotations

from collections.abc import Callable

from kmq.errors import ArgumentError, QualityTooLowError, SizeBudgetError
from kmq.io import DEFAULT_MAX_PIXELS
from kmq.kmeans import Progress
from kmq.pipeline import K_MAX, K_MIN, Fitter
from kmq.quantized import Quantized


def quantize_to_quality(image, min_psnr: float, max_psnr: float, *, max_colors: int = K_MAX,
                        seed=0, tol: float = 1e-4, max_iter: int = 300,
                        color_space: str = "srgb", dither: float = 0.0,
                        max_pixels: int = DEFAULT_MAX_PIXELS,
                        progress: Progress | None = None) -> Quantized:
    """The fewest colors (2..``max_colors``) whose quantization reaches ``max_psnr`` dB, as
    pngquant's ``--quality min-max`` does, on the PSNR scale (dB, 8-bit sRGB; see
    :mod:`kmq.quality` for pngquant's 0-100 scale).

    K is found by bisection (the error falls as K grows). When even ``max_colors`` misses
    ``max_psnr`` its result is returned if it reaches ``min_psnr``, and
    :class:`kmq.QualityTooLowError` is raised otherwise. Quality is judged before dithering.
    Images with transparency are judged by the PSNR of premultiplied RGBA (:mod:`kmq.alpha`).

    Examples
    --------
    >>> import numpy as np
    >>> from kmq import quantize_to_quality
    >>> img = np.zeros((8, 8, 3), np.uint8); img[:, 4:] = [200, 30, 30]; img[4:, :2] = 90
    >>> q = quantize_to_quality(img, 30, 60)
    >>> q.k, q.psnr
    (3, inf)
    """
    if not 0 <= min_psnr <= max_psnr:
        raise ArgumentError(f"expected 0 <= min_psnr <= max_psnr (dB); got {min_psnr}, "
                            f"{max_psnr}")
    fitter = Fitter(image, seed=seed, tol=tol, max_iter=max_iter, color_space=color_space,
                    max_pixels=max_pixels, progress=progress)
    top = fitter.fit(max_colors)
    if top.psnr >= max_psnr:
        k = _first(lambda k: fitter.fit(k).psnr >= max_psnr, K_MIN, top.k_requested)
    elif top.psnr >= min_psnr:
        k = top.k_requested
    else:
        raise QualityTooLowError(f"{top.k_requested} colors reach {top.psnr:.2f} dB PSNR, below "
                                 f"the minimum of {min_psnr:g} dB")
    return fitter.quantize(k, dither=dither)


def quantize_to_size(image, max_bytes: int, encode: Callable[[Quantized], bytes], *,
                     max_colors: int = K_MAX, seed=0, tol: float = 1e-4, max_iter: int = 300,
                     color_space: str = "srgb", dither: float = 0.0,
                     max_pixels: int = DEFAULT_MAX_PIXELS,
                     progress: Progress | None = None) -> tuple[Quantized, bytes]:
    """The most colors (2..``max_colors``) whose file, ``encode(quantized)``, is at most
    ``max_bytes`` long: the lowest error that fits the budget.

    Files grow with K (nearly always), so K is found by bisection on their sizes; the answer
    fits whatever they do. Returns the quantized image and its file.

    Raises
    ------
    SizeBudgetError
        Even 2 colors make a larger file.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq import codecs
    >>> from kmq.targets import quantize_to_size
    >>> img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> q, data = quantize_to_size(img, 700, codecs.get("png").encode)
    >>> len(data) <= 700 < len(codecs.get("png").encode(quantize_to_size(img, 10**6,
    ...     codecs.get("png").encode)[0]))
    True
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ArgumentError(f"expected max_bytes, an int >= 1; got {max_bytes!r}")
    fitter = Fitter(image, seed=seed, tol=tol, max_iter=max_iter, color_space=color_space,
                    max_pixels=max_pixels, progress=progress)
    files: dict[int, tuple[Quantized, bytes]] = {}

    def made(k: int) -> tuple[Quantized, bytes]:
        if k not in files:
            q = fitter.quantize(k, dither=dither)
            files[k] = (q, encode(q))
        return files[k]

    def fits(k: int) -> bool:
        return len(made(k)[1]) <= max_bytes

    top = fitter.fit(max_colors).k_requested
    if fits(top):
        return made(top)
    if not fits(K_MIN):
        raise SizeBudgetError(f"even {K_MIN} colors make a file of {len(made(K_MIN)[1]):,} bytes, "
                              f"over the budget of {max_bytes:,}")
    # the largest K that fits: the first that does not, less one
    return made(_first(lambda k: not fits(k), K_MIN + 1, top) - 1)


def _first(good: Callable[[int], bool], lo: int, hi: int) -> int:
    """The least k in lo..hi with ``good(k)``, given ``good(hi)`` and that ``good`` only turns
    from false to true as k grows."""
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if good(mid) else (mid + 1, hi)
    return hi


__all__ = ["quantize_to_quality", "quantize_to_size"]
