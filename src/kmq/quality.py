"""pngquant's quality scale (0-100, "roughly like JPEG") as kmq's error targets.

``pngquant --quality 65-80`` asks for the fewest colors whose quality reaches 80, and for nothing
to be written below 65. libimagequant maps a quality ``q`` to a mean squared error by a curve
fitted to look like libjpeg's qualities::

    unit(q) = max(0, 0.016 / (0.001 + q) - 0.001) + 2.5 / (210 + q) ** 1.2 * (100.1 - q) / 100

which pngquant reports (``--verbose``: ``MSE=...``) in "standard" units, ``unit(q) * 65536 / 6``.
kmq's error is the mean squared difference per 8-bit sRGB channel, so quality ``q`` means an MSE
of at most ``MSE_SCALE * unit(q) * 65536 / 6`` and a PSNR of at least ``10 log10(255**2 / that)``:
65 is 36.5 dB, 80 is 39.2 dB, 90 is 42.4 dB. 100 asks for an exact image, 0 accepts any.

:data:`MSE_SCALE` makes kmq choose the K pngquant chooses: pngquant stops adding colors well past
its target (asked for 60, its outputs measure about 70), so the scale is fitted to the error of
kmq's quantization at the K pngquant chose, over the photos where pngquant chose fewer than 256
colors (its median; ``python benchmarks/bench_quality.py`` measures it, and how close the K
come). On flat graphics pngquant keeps far more colors than its target needs, and kmq fewer.

Examples
--------
>>> from kmq.quality import psnr_for_quality, quality_for_psnr
>>> round(psnr_for_quality(80), 1), round(psnr_for_quality(65), 1)
(39.2, 36.5)
>>> quality_for_psnr(psnr_for_quality(72)), psnr_for_quality(100)
(72, inf)
"""

from __future__ import annotations

import math

#: kmq's MSE (8-bit sRGB, per channel) at the K pngquant chooses for a quality, over that
#: quality's MSE in libimagequant's standard units (median over photos).
MSE_SCALE = 1.27


def _unit_mse(quality: int) -> float:
    fudge = max(0.0, 0.016 / (0.001 + quality) - 0.001)
    return fudge + 2.5 / (210.0 + quality) ** 1.2 * (100.1 - quality) / 100.0


def _check(quality) -> int:
    from kmq.errors import ArgumentError

    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise ArgumentError(f"expected a quality, an int in 0..100; got {quality!r}")
    return quality


def mse_for_quality(quality: int) -> float:
    """The largest MSE (8-bit sRGB, per channel) that reaches pngquant's ``quality``
    (``inf`` for 0, 0 for 100)."""
    quality = _check(quality)
    if quality == 0:
        return math.inf
    if quality == 100:
        return 0.0
    return MSE_SCALE * _unit_mse(quality) * 65536.0 / 6.0


def psnr_for_quality(quality: int) -> float:
    """The PSNR (dB) that reaches pngquant's ``quality``: ``inf`` for 100, 0 for 0."""
    mse = mse_for_quality(quality)
    if mse == 0:
        return math.inf
    return max(0.0, 10.0 * math.log10(255.0**2 / mse)) if math.isfinite(mse) else 0.0


def quality_for_psnr(psnr: float) -> int:
    """pngquant's quality of a result of ``psnr`` dB: the highest quality it reaches."""
    return next((q for q in range(100, 0, -1) if psnr >= psnr_for_quality(q) - 1e-9), 0)


def psnr_range(min_quality: int, max_quality: int) -> tuple[float, float]:
    """``--quality MIN-MAX`` as (min, max) PSNR in dB."""
    from kmq.errors import ArgumentError

    if _check(min_quality) > _check(max_quality):
        raise ArgumentError(f"expected MIN <= MAX; got {min_quality}-{max_quality}")
    return psnr_for_quality(min_quality), psnr_for_quality(max_quality)


__all__ = ["MSE_SCALE", "mse_for_quality", "psnr_for_quality", "psnr_range",
           "quality_for_psnr"]
