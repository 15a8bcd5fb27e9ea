"""How good and how small a quantized image is: MSE, PSNR, SSIM, bits per pixel, ratios.

Images are compared as 8-bit sRGB, shape (H, W, 3), dtype uint8. Images with transparency, shape (H,
W, 4), are compared as premultiplied RGBA: each color channel times alpha / 255, and alpha itself,
four channels in 8-bit units (the color as composited over any background, plus how transparent it
is; the color under a fully transparent pixel does not count). Every measure works through the image
in horizontal strips, so the extra memory stays bounded (a few MB) on 24-megapixel photos, and
the ``*_indexed`` variants rebuild each strip of the quantized image from its palette and index map
instead of materializing the whole RGB result.

SSIM is scikit-image's :func:`skimage.metrics.structural_similarity` (uniform 7x7 window,
``data_range=255``, sample covariance, mean over the channels) computed by kmq's own numba kernel
(:mod:`kmq._kernels.ssim`: exact running window sums; it needs neither scikit-image nor scipy),
strip by strip with a halo of ``(win_size - 1) // 2`` rows, two strips at a time on two cores; the
result equals skimage's whole-image value to rounding (about 1e-14).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Most pixels in one strip: bounds the temporaries (MSE's integer differences, SSIM's rebuilt
#: quantized strip) and sets how SSIM's work is cut for the threads.
_STRIP_PIXELS = 1 << 18
_DATA_RANGE = 255.0
#: SSIM's constants, as skimage's defaults: C1 = (K1 * data range)**2, C2 = (K2 * data range)**2.
_K1, _K2 = 0.01, 0.03


def _check_rgb(arr, name: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.size == 0:
        raise ValueError(f"expected {name} to be a non-empty (H, W, 3) or (H, W, 4) uint8 "
                         f"array; got shape {arr.shape} and dtype {arr.dtype}")
    return arr


def _premultiplied(strip: np.ndarray) -> np.ndarray:
    """An (h, w, 4) uint8 strip as int32 premultiplied RGBA in units of 1/255: (R*A, G*A, B*A,
    A*255), so that integer differences are exact (divide squares by 255**2)."""
    s = strip.astype(np.int32)
    a = s[:, :, 3:4]
    return np.concatenate([s[:, :, :3] * a, a * 255], axis=2)


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check_rgb(a, "a"), _check_rgb(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"expected images of the same shape; got {a.shape} and {b.shape}")
    return a, b


def _check_indexed(rgb, palette, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = _check_rgb(rgb, "rgb")
    palette = np.asarray(palette)
    indices = np.asarray(indices)
    if palette.dtype != np.uint8 or palette.ndim != 2 or palette.shape[1] != rgb.shape[2] or (
            len(palette) == 0):
        raise ValueError(f"expected palette to be a (K, {rgb.shape[2]}) uint8 array with K >= 1 "
                         f"(as many channels as the image); got shape {palette.shape} and "
                         f"dtype {palette.dtype}")
    if indices.shape != rgb.shape[:2] or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"expected indices to be an integer array of shape {rgb.shape[:2]}; "
                         f"got shape {indices.shape} and dtype {indices.dtype}")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= len(palette)):
        raise ValueError(f"expected indices in 0..{len(palette) - 1}; "
                         f"got values in {int(indices.min())}..{int(indices.max())}")
    return rgb, palette, indices


def _rows_per_strip(width: int, minimum: int = 1) -> int:
    return max(minimum, _STRIP_PIXELS // max(width, 1))


def _sse(a: np.ndarray, get_b: Callable[[int, int], np.ndarray]) -> float:
    """Exact sum of squared differences, in integers, strip by strip (premultiplied for RGBA)."""
    rows = _rows_per_strip(a.shape[1])
    total = 0
    alpha = a.shape[2] == 4
    for r0 in range(0, a.shape[0], rows):
        r1 = min(r0 + rows, a.shape[0])
        if alpha:
            d = (_premultiplied(a[r0:r1]) - _premultiplied(get_b(r0, r1))).astype(np.int64)
        else:
            d = a[r0:r1].astype(np.int32) - get_b(r0, r1)
        total += int(np.einsum("ijk,ijk->", d, d, dtype=np.int64))
    return total / 255.0**2 if alpha else total


def mse(a, b) -> float:
    """Mean squared error over every pixel and channel, in 8-bit units.

    Parameters
    ----------
    a, b : ndarray of uint8, shape (H, W, 3)

    Returns
    -------
    float
        ``mean((a - b) ** 2)``, computed exactly in integers then divided.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.metrics import mse
    >>> a = np.zeros((2, 2, 3), np.uint8)
    >>> b = a.copy(); b[0, 0, 0] = 6
    >>> mse(a, b)
    3.0
    """
    a, b = _check_pair(a, b)
    return _sse(a, lambda r0, r1: b[r0:r1]) / a.size


def mse_indexed(rgb, palette, indices) -> float:
    """:func:`mse` between ``rgb`` and the image ``palette[indices]``, without building the latter.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.metrics import mse_indexed
    >>> rgb = np.array([[[0, 0, 0], [10, 10, 10]]], np.uint8)
    >>> mse_indexed(rgb, np.array([[0, 0, 0], [8, 10, 10]], np.uint8), np.array([[0, 1]]))
    0.6666666666666666
    """
    rgb, palette, indices = _check_indexed(rgb, palette, indices)
    return _sse(rgb, lambda r0, r1: palette[indices[r0:r1]]) / rgb.size


def psnr_from_mse(value: float) -> float:
    """PSNR in dB for 8-bit data, ``10 log10(255**2 / mse)``; ``inf`` when ``mse`` is 0.

    Examples
    --------
    >>> from kmq.metrics import psnr_from_mse
    >>> round(psnr_from_mse(255.0 ** 2 / 100), 6), psnr_from_mse(0.0)
    (20.0, inf)
    """
    if value < 0 or math.isnan(value):
        raise ValueError(f"expected a mean squared error >= 0; got {value!r}")
    return math.inf if value == 0 else 10.0 * math.log10(_DATA_RANGE**2 / value)


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB of 8-bit sRGB images (data range 255).

    Returns ``inf`` for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.metrics import psnr
    >>> a = np.zeros((4, 4, 3), np.uint8)
    >>> round(psnr(a, a + 1), 4), psnr(a, a)
    (48.1308, inf)
    """
    return psnr_from_mse(mse(a, b))


def _ssim_strips(shape: tuple[int, ...], get_a: Callable[[int, int], np.ndarray],
                 get_b: Callable[[int, int], np.ndarray], win_size: int) -> float:
    """Mean SSIM as skimage computes it, evaluated over strips of rows with a halo.

    SSIM at a pixel depends only on the ``win_size`` x ``win_size`` window around it, and skimage
    averages the map after cropping ``pad = (win_size - 1) // 2`` pixels off every side, so every
    pixel it keeps has its whole window inside the image (its border mode never matters). A strip
    of those rows read with ``pad`` rows of halo above and below therefore yields their exact
    SSIM. ``get_a(lo, hi)`` and ``get_b(lo, hi)`` return image rows ``lo:hi`` as uint8.
    """
    from kmq._kernels.ssim import ssim_sum

    if not isinstance(win_size, (int, np.integer)) or win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"expected win_size to be an odd int >= 3; got {win_size!r}")
    height, width, channels = shape
    if min(height, width) < win_size:
        raise ValueError(f"SSIM needs an image of at least {win_size}x{win_size} pixels "
                         f"(win_size); got {width}x{height}")
    pad = (win_size - 1) // 2
    # Premultiplied RGBA is passed to the kernel as integers in units of 1/255 (see
    # _premultiplied): the same SSIM with the constants scaled by 255**2.
    scale = _DATA_RANGE**2 if channels == 4 else 1.0
    c1 = (_K1 * _DATA_RANGE) ** 2 * scale
    c2 = (_K2 * _DATA_RANGE) ** 2 * scale
    # Counted rows pad..height-pad, cut into strips of equal height (within one row) of at most
    # _STRIP_PIXELS: the cut depends on the image only, so the sum does not depend on the threads.
    first, stop = pad, height - pad
    n_strips = -(-(stop - first) * width // _STRIP_PIXELS)
    bounds = [first + (stop - first) * s // n_strips for s in range(n_strips + 1)]

    def strip_sum(s: int) -> float:
        lo, hi = bounds[s] - pad, bounds[s + 1] + pad  # the halo is always inside the image
        return ssim_sum(_frozen(get_a(lo, hi)), _frozen(get_b(lo, hi)), int(win_size),
                        channels == 4, c1, c2)

    threads = min(_threads(), n_strips)
    if threads > 1:  # the kernel releases the GIL
        with ThreadPoolExecutor(max_workers=threads) as pool:
            sums = list(pool.map(strip_sum, range(n_strips)))
    else:
        sums = [strip_sum(s) for s in range(n_strips)]
    total = math.fsum(sums)  # in strip order: the same value for any number of threads
    return total / ((stop - first) * (width - 2 * pad) * channels)


def _frozen(strip: np.ndarray) -> np.ndarray:
    """A C-contiguous read-only view of a strip: numba compiles (and caches, and loads) one
    version of a kernel per writeable flag of each argument, so the SSIM kernel always gets
    read-only arrays and has a single version."""
    view = np.ascontiguousarray(strip).view()
    view.flags.writeable = False
    return view


def _threads() -> int:
    """Threads for SSIM's strips: numba's count (kmq.batch pins it to one per worker process)."""
    import numba

    return int(numba.get_num_threads())


def ssim(a, b, *, win_size: int = 7) -> float:
    """Mean structural similarity of two 8-bit sRGB images, in strips of bounded memory.

    Equals ``skimage.metrics.structural_similarity(a, b, channel_axis=2, data_range=255,
    win_size=win_size)`` (to rounding), but never holds more than one strip's temporaries.

    Parameters
    ----------
    a, b : ndarray of uint8, shape (H, W, 3)
        Both sides at least ``win_size`` pixels.
    win_size : int
        Side of the uniform window, odd.

    Returns
    -------
    float
        1.0 for identical images; lower is less similar.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.metrics import ssim
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    >>> ssim(a, a)
    1.0
    >>> bool(ssim(a, 255 - a) < 0)
    True
    """
    a, b = _check_pair(a, b)
    return _ssim_strips(a.shape, lambda lo, hi: a[lo:hi], lambda lo, hi: b[lo:hi], win_size)


def ssim_indexed(rgb, palette, indices, *, win_size: int = 7, fast: bool = False) -> float:
    """:func:`ssim` between ``rgb`` and ``palette[indices]``, rebuilding the latter strip by strip.

    ``fast`` is accepted for compatibility and ignored: it chose float32 filters when SSIM was
    scikit-image's; kmq's kernel is exact and quicker than those were.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        The original image.
    palette : ndarray of uint8, shape (K, 3)
    indices : ndarray of integers, shape (H, W), values in 0..K-1

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.metrics import ssim, ssim_indexed
    >>> rng = np.random.default_rng(0)
    >>> palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    >>> indices = rng.integers(0, 4, (16, 16))
    >>> rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    >>> ssim_indexed(rgb, palette, indices) == ssim(rgb, palette[indices])
    True
    """
    rgb, palette, indices = _check_indexed(rgb, palette, indices)
    # np.take: the same as palette[indices[lo:hi]], several times faster for small index types
    return _ssim_strips(rgb.shape, lambda lo, hi: rgb[lo:hi],
                        lambda lo, hi: np.take(palette, indices[lo:hi], axis=0), win_size)


def bits_per_pixel(n_bytes: int, n_pixels: int) -> float:
    """Bits of a file per image pixel, ``8 * n_bytes / n_pixels``.

    Examples
    --------
    >>> from kmq.metrics import bits_per_pixel
    >>> bits_per_pixel(3 * 100, 100)  # raw 24-bit RGB
    24.0
    """
    if n_bytes < 0 or n_pixels <= 0:
        raise ValueError(f"expected n_bytes >= 0 and n_pixels > 0; got {n_bytes}, {n_pixels}")
    return 8.0 * n_bytes / n_pixels


def compression_ratio(n_bytes: int, reference_bytes: int) -> float:
    """How many times smaller a file of ``n_bytes`` is than ``reference_bytes``.

    For the ratio against raw 24-bit RGB pass ``reference_bytes = 3 * n_pixels``; against the
    input file, its size.

    Examples
    --------
    >>> from kmq.metrics import compression_ratio
    >>> compression_ratio(1000, 3 * 4000)
    12.0
    """
    if n_bytes <= 0 or reference_bytes < 0:
        raise ValueError(f"expected n_bytes > 0 and reference_bytes >= 0; "
                         f"got {n_bytes}, {reference_bytes}")
    return reference_bytes / n_bytes


__all__ = ["bits_per_pixel", "compression_ratio", "mse", "mse_indexed", "psnr",
           "psnr_from_mse", "ssim", "ssim_indexed"]
