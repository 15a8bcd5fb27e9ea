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
colors (its median). On flat graphics pngquant keeps far more colors than its target needs, and
kmq fewer.

The minimum is judged as pngquant judges it, on the error of the result itself, so it has its
own scale, :data:`MIN_MSE_SCALE`: kmq's MSE of a pngquant output over the MSE pngquant reports
for it (its units weigh channels and gamma its own way; the ratio is 1.9-2.4 on photos, median
2.09). With it kmq refuses what pngquant refuses: a photo pngquant rates Q = 62 at 256 colors is
written by both at ``--quality 50-80`` and by neither at ``65-80``.
``python benchmarks/bench_quality.py`` measures both scales, and how close the K come.

Examples
--------
>>> from kmq.quality import psnr_for_quality, quality_for_psnr
>>> round(psnr_for_quality(80), 1), round(psnr_for_quality(65), 1)
(39.2, 36.5)
>>> quality_for_psnr(psnr_for_quality(72)), psnr_for_quality(100)
(72, inf)
>>> [round(p, 1) for p in psnr_range(65, 80)]  # the minimum on its own scale
[34.4, 39.2]
"""

from __future__ import annotations

import math

#: kmq's MSE (8-bit sRGB, per channel) at the K pngquant chooses for a quality, over that
#: quality's MSE in libimagequant's standard units (median over photos).
MSE_SCALE = 1.27

#: kmq's MSE of a pngquant output over the MSE pngquant reports for it (median over photos):
#: the scale of ``--quality``'s minimum, which pngquant checks on the result's own error.
MIN_MSE_SCALE = 2.09


def _unit_mse(quality: int) -> float:
    fudge = max(0.0, 0.016 / (0.001 + quality) - 0.001)
    return fudge + 2.5 / (210.0 + quality) ** 1.2 * (100.1 - quality) / 100.0


def _check(quality) -> int:
    from kmq.errors import ArgumentError

    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise ArgumentError(f"expected a quality, an int in 0..100; got {quality!r}")
    return quality


def mse_for_quality(quality: int, *, scale: float = MSE_SCALE) -> float:
    """The largest MSE (8-bit sRGB, per channel) that reaches pngquant's ``quality``
    (``inf`` for 0, 0 for 100); ``scale`` kmq's units over libimagequant's."""
    quality = _check(quality)
    if quality == 0:
        return math.inf
    if quality == 100:
        return 0.0
    return scale * _unit_mse(quality) * 65536.0 / 6.0


def psnr_for_quality(quality: int, *, scale: float = MSE_SCALE) -> float:
    """The PSNR (dB) that reaches pngquant's ``quality``: ``inf`` for 100, 0 for 0."""
    mse = mse_for_quality(quality, scale=scale)
    if mse == 0:
        return math.inf
    return max(0.0, 10.0 * math.log10(255.0**2 / mse)) if math.isfinite(mse) else 0.0


def quality_for_psnr(psnr: float) -> int:
    """pngquant's quality of a result of ``psnr`` dB: the highest quality it reaches."""
    return next((q for q in range(100, 0, -1) if psnr >= psnr_for_quality(q) - 1e-9), 0)


def psnr_range(min_quality: int, max_quality: int) -> tuple[float, float]:
    """``--quality MIN-MAX`` as (min, max) PSNR in dB: MAX chooses K (:data:`MSE_SCALE`), MIN
    refuses a result (:data:`MIN_MSE_SCALE`), each as pngquant does."""
    from kmq.errors import ArgumentError

    if _check(min_quality) > _check(max_quality):
        raise ArgumentError(f"expected MIN <= MAX; got {min_quality}-{max_quality}")
    return (psnr_for_quality(min_quality, scale=MIN_MSE_SCALE),
            psnr_for_quality(max_quality))


__all__ = ["MIN_MSE_SCALE", "MSE_SCALE", "mse_for_quality", "psnr_for_quality", "psnr_range",
           "quality_for_psnr"]
