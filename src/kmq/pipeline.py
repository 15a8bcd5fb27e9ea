"""The quantizer, top to bottom: histogram -> seeding -> kmeans -> palette -> remap."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from kmq import palette as _palette
from kmq._kernels import kmeans as _kk
from kmq.colorspace import check_space, from_working, to_working
from kmq.errors import CancelledError, QualityTooLowError
from kmq.histogram import ColorHistogram, gather, histogram
from kmq.io import DEFAULT_MAX_PIXELS, as_rgb
from kmq.kmeans import Progress, kmeans, refine_by_moves, refine_by_swaps
from kmq.metrics import psnr_from_mse
from kmq.remapping import check_palette, nearest, remap_array
from kmq.seeding import as_rng, kmeans_plus_plus

K_MIN, K_MAX = 2, 256

#: Above this many distinct colors the search runs on the weighted means of small sRGB cells:
#: cubes of side 2, or 4 or 8 when the finer cells are still too many (``_MAX_CELLS``). Moving
#: whole cells changes the objective by a constant (the spread inside the cells), so that search
#: optimizes nearly the same objective far faster; Lloyd on the exact histogram then finishes
#: from its answer. Seeds are drawn from the next coarser cells.
_REDUCE_MIN_COLORS = 65536
_MAX_CELLS = 131072
_CELL_SHIFTS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Quantized:
    """A quantized image: the palette, every pixel's index, and the error.

    Attributes
    ----------
    palette : ndarray of uint8, shape (K, 3)
        sRGB colors, most used first.
    indices : ndarray of uint8 (K <= 256) or uint16, shape (H, W)
    counts : ndarray of int64, shape (K,)
        Pixels per palette entry.
    mse : float
        Mean squared error over all pixels and channels, in 8-bit sRGB units.
    distinct_colors : int
        Distinct colors in the input.
    n_iter, converged : int, bool
        k-means iterations on the exact histogram and whether it met its tolerance.
    seconds : float
        Time spent quantizing and remapping (not reading).
    """

    palette: np.ndarray
    indices: np.ndarray
    counts: np.ndarray
    mse: float
    distinct_colors: int
    n_iter: int = 0
    converged: bool = True
    seconds: float = 0.0
    k_requested: int = field(default=0, repr=False)

    @property
    def k(self) -> int:
        """Number of palette entries actually used."""
        return len(self.palette)

    @property
    def psnr(self) -> float:
        """Peak signal-to-noise ratio in dB (8-bit sRGB); ``inf`` for an exact result."""
        return psnr_from_mse(self.mse)

    @property
    def index_bits(self) -> int:
        """Bits one index needs, ``ceil(log2 K)`` (at least 1)."""
        return max(1, math.ceil(math.log2(self.k)))

    def to_rgb(self) -> np.ndarray:
        """The quantized image as an (H, W, 3) uint8 array."""
        return self.palette[self.indices]

    def to_image(self) -> Image.Image:
        """The quantized image as a Pillow palette (mode ``P``) image (K <= 256)."""
        if self.k > 256:
            raise ValueError(f"a Pillow palette image holds at most 256 colors; this has {self.k}")
        im = Image.fromarray(self.indices.astype(np.uint8, copy=False), mode="P")
        im.putpalette(self.palette.tobytes(), rawmode="RGB")
        return im


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not K_MIN <= k <= K_MAX:
        raise ValueError(f"expected k, the number of colors, to be an int in {K_MIN}..{K_MAX}; "
                         f"got {k!r}")
    return int(k)


def _cells(hist: ColorHistogram, points: np.ndarray, weights: np.ndarray, k: int):
    """The cells to search on and the cells to seed from, or None to use the exact histogram."""
    if len(hist) <= _REDUCE_MIN_COLORS:
        return None
    for shift in _CELL_SHIFTS:
        work = _kk.coarse_bins(hist.colors, points, weights, shift)
        if len(work[0]) <= _MAX_CELLS:
            break
    if len(work[0]) <= 4 * k:
        return None
    seeds = _kk.coarse_bins(hist.colors, points, weights, shift + 1)
    return work, (seeds if len(seeds[0]) >= 4 * k else work)


def fit(hist: ColorHistogram, k: int, *, seed=0, tol: float = 1e-4, max_iter: int = 300,
        n_init: int = 4, progress: Progress | None = None, points: np.ndarray | None = None,
        weights: np.ndarray | None = None):
    """Fit ``k`` centers to a color histogram; returns the k-means result on its distinct colors.

    Lloyd's algorithm stops in a local minimum that depends on its seeds, so: ``n_init`` greedy
    k-means++ seedings are each run to convergence and the best is kept; then useless centers are
    moved into crowded clusters while that lowers the objective (:func:`refine_by_swaps`), then
    Hartigan's single-color moves finish (:func:`refine_by_moves`). On large histograms this
    search runs on sRGB cells (see ``_REDUCE_MIN_COLORS``) and Lloyd on the exact histogram ends
    it. Needs ``len(hist) > k``. ``points`` and ``weights``, when given, are ``hist.points`` and
    ``hist.weights`` already made by the caller.
    """
    rng = as_rng(seed)
    points = hist.points if points is None else points
    weights = hist.weights if weights is None else weights
    work_points, work_weights, member = points, weights, None
    seed_points, seed_weights = points, weights
    cells = _cells(hist, points, weights, k)
    if cells is not None:
        (work_points, work_weights, member), (seed_points, seed_weights, _) = cells
    seeds = [kmeans_plus_plus(seed_points, seed_weights, k, rng) for _ in range(n_init)]

    def run(init: np.ndarray):
        return kmeans(work_points, work_weights, init, tol=tol, max_iter=max_iter,
                      progress=progress, parallel=False)

    # the runs are independent and the kernels release the GIL: one thread per core
    with ThreadPoolExecutor(max_workers=max(1, min(n_init, os.cpu_count() or 1))) as pool:
        runs = list(pool.map(run, seeds))
    best = min(runs, key=lambda r: r.objective)  # ties: the first seed's run
    best = refine_by_swaps(work_points, work_weights, best, tol=tol, max_iter=max_iter,
                           progress=progress)
    best = refine_by_moves(work_points, work_weights, best, tol=tol, max_iter=max_iter)
    if member is None:
        return best
    return kmeans(points, weights, best.centers, labels=best.labels[member], tol=tol,
                  max_iter=max_iter, progress=progress)


def quantize(image, k: int = 256, *, seed=0, tol: float = 1e-4, max_iter: int = 300,
             color_space: str = "srgb", dither: float = 0.0,
             max_pixels: int = DEFAULT_MAX_PIXELS,
             progress: Progress | None = None) -> Quantized:
    """Quantize an image to at most ``k`` colors by k-means on its color histogram.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8, PIL.Image.Image or path
    k : int
        Palette size, 2..256. Fewer entries are used when the image has fewer distinct colors.
    seed : int or numpy.random.Generator
        The same image, ``k`` and seed give the same result, bit for bit.
    tol : float
        Relative drop of the k-means objective below which iterations stop.
    max_iter : int
        Iteration cap of each k-means run.
    color_space : {"srgb", "linear", "oklab"}
        Where distances are measured while clustering and mapping pixels to colors; the
        palette is always 8-bit sRGB and ``mse`` is always measured in sRGB.
    dither : float
        Floyd-Steinberg error diffusion strength, 0 (off: every pixel takes its nearest color)
        to 1 (full), in ``color_space``. Dithering trades MSE for smoother-looking gradients.
    max_pixels : int
        Larger images are refused (:class:`kmq.ImageTooLargeError`).
    progress : callable(stage, fraction) -> bool, optional
        Called as work advances; a truthy return cancels (:class:`kmq.CancelledError`).

    Returns
    -------
    Quantized

    Examples
    --------
    >>> import numpy as np, kmq
    >>> rng = np.random.default_rng(1)
    >>> img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> q = kmq.quantize(img, 16, seed=0)
    >>> q.palette.shape, q.indices.shape, bool(q.psnr > 15)
    ((16, 3), (32, 32), True)
    >>> bool(np.array_equal(kmq.quantize(img, 16, seed=0).indices, q.indices))
    True
    """
    k = _check_k(k)
    color_space = check_space(color_space)
    if not (isinstance(dither, (int, float)) and 0.0 <= dither <= 1.0):
        raise ValueError(f"expected dither, a strength in 0..1; got {dither!r}")
    rgb = as_rgb(image, max_pixels=max_pixels)
    start = time.perf_counter()
    hist = histogram(rgb)
    if progress is not None and progress("histogram", 1.0):
        raise CancelledError("cancelled after the histogram")
    pal, labels, counts, mse, n_iter, converged = _fit_palette(
        hist, k, seed=seed, tol=tol, max_iter=max_iter, color_space=color_space,
        progress=progress)
    return _finish(rgb, hist, pal, labels, counts, mse, n_iter=n_iter, converged=converged,
                   color_space=color_space, dither=dither, max_pixels=max_pixels, start=start,
                   k_requested=k)


def _fit_palette(hist: ColorHistogram, k: int, *, seed, tol, max_iter, color_space, progress):
    """The palette for ``hist`` at ``k``: (palette, label per color, counts, sRGB MSE, k-means
    iterations, converged)."""
    weights = hist.weights
    points = hist.points if color_space == "srgb" else to_working(hist.colors, color_space)
    n_iter, converged = 0, True
    if len(hist) <= k:
        pal = hist.colors.copy()
        labels = np.arange(len(hist), dtype=np.int32)
    else:
        result = fit(hist, k, seed=seed, tol=tol, max_iter=max_iter, progress=progress,
                     points=points, weights=weights)
        n_iter, converged = result.n_iter, result.converged
        srgb = from_working(result.centers, color_space)
        pal, labels = _palette.merge_duplicates(_palette.to_srgb8(srgb), result.labels)
        labels = nearest(points, to_working(pal, color_space), labels)
    pal, labels, counts = _palette.order_by_use(pal, labels, weights)
    if color_space != "srgb":
        points = hist.points  # the error is measured in sRGB
    sse = _kk.weighted_sse(points, weights, pal.astype(np.float64), labels)
    return pal, labels, counts, float(sse) / (3.0 * hist.n_pixels), n_iter, converged


def _finish(rgb, hist, pal, labels, counts, mse, *, n_iter, converged, color_space, dither,
            max_pixels, start, k_requested) -> Quantized:
    """Index every pixel (one lookup per pixel, or dithering) and wrap up the result."""
    if dither > 0:
        from kmq.dither import dither as error_diffusion
        from kmq.metrics import mse_indexed

        indices = error_diffusion(rgb, pal, space=color_space, strength=dither,
                                  max_pixels=max_pixels)
        counts = np.bincount(indices.ravel(), minlength=len(pal)).astype(np.int64)
        mse = mse_indexed(rgb, pal, indices)
    else:
        indices = gather(rgb, hist, labels, len(pal))
    return Quantized(palette=pal, indices=indices, counts=counts,
                     mse=mse, distinct_colors=len(hist),
                     n_iter=n_iter, converged=converged, seconds=time.perf_counter() - start,
                     k_requested=k_requested)


def quantize_to_quality(image, min_psnr: float, max_psnr: float, *, max_colors: int = K_MAX,
                        seed=0, tol: float = 1e-4, max_iter: int = 300,
                        color_space: str = "srgb", dither: float = 0.0,
                        max_pixels: int = DEFAULT_MAX_PIXELS,
                        progress: Progress | None = None) -> Quantized:
    """The smallest K (2..``max_colors``) whose quantization reaches ``max_psnr`` dB, as
    pngquant's ``--quality min-max`` does but on the PSNR scale (dB, 8-bit sRGB).

    The histogram is made once and every K tried reuses it; K is found by bisection (the error
    falls as K grows). When even ``max_colors`` misses ``max_psnr`` its result is returned if it
    reaches ``min_psnr``, and :class:`kmq.QualityTooLowError` is raised otherwise. Quality is
    judged before dithering.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.pipeline import quantize_to_quality
    >>> img = np.zeros((8, 8, 3), np.uint8); img[:, 4:] = [200, 30, 30]; img[4:, :2] = 90
    >>> q = quantize_to_quality(img, 30, 60)
    >>> q.k, q.psnr
    (3, inf)
    """
    if not 0 <= min_psnr <= max_psnr:
        raise ValueError(f"expected 0 <= min_psnr <= max_psnr (dB); got {min_psnr}, {max_psnr}")
    max_colors = _check_k(max_colors)
    color_space = check_space(color_space)
    rgb = as_rgb(image, max_pixels=max_pixels)
    start = time.perf_counter()
    hist = histogram(rgb)
    tried: dict[int, tuple] = {}

    def at(k: int) -> tuple:
        if k not in tried:
            tried[k] = _fit_palette(hist, k, seed=seed, tol=tol, max_iter=max_iter,
                                    color_space=color_space, progress=progress)
        return tried[k]

    def good(k: int) -> bool:
        return psnr_from_mse(at(k)[3]) >= max_psnr

    if good(max_colors):
        lo, hi = K_MIN, max_colors
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if good(mid) else (mid + 1, hi)
        k = hi
    elif psnr_from_mse(at(max_colors)[3]) >= min_psnr:
        k = max_colors
    else:
        raise QualityTooLowError(
            f"{max_colors} colors reach {psnr_from_mse(at(max_colors)[3]):.2f} dB PSNR, below "
            f"the minimum of {min_psnr:g} dB")
    pal, labels, counts, mse, n_iter, converged = at(k)
    return _finish(rgb, hist, pal, labels, counts, mse, n_iter=n_iter, converged=converged,
                   color_space=color_space, dither=dither, max_pixels=max_pixels, start=start,
                   k_requested=k)


def apply_palette(image, palette, *, color_space: str = "srgb", dither: float = 0.0,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Quantized:
    """Map ``image`` onto a given ``palette`` (no fitting) and measure it, as :func:`quantize`
    reports a fitted one. The palette keeps its order; entries no pixel uses stay in it.

    Examples
    --------
    >>> import numpy as np, kmq
    >>> from kmq.pipeline import apply_palette
    >>> img = np.array([[[10, 10, 10], [250, 240, 230]]], dtype=np.uint8)
    >>> q = apply_palette(img, [[255, 255, 255], [0, 0, 0]])
    >>> q.indices.tolist(), q.counts.tolist(), round(q.mse, 3)
    ([[1, 0]], [1, 1], 195.833)
    """
    pal = check_palette(palette)
    if len(pal) > K_MAX:
        raise ValueError(f"expected a palette of at most {K_MAX} colors; got {len(pal)}")
    color_space = check_space(color_space)
    rgb = as_rgb(image, max_pixels=max_pixels)
    start = time.perf_counter()
    hist = histogram(rgb)
    labels = nearest(to_working(hist.colors, color_space), to_working(pal, color_space))
    counts = np.bincount(labels, weights=hist.counts, minlength=len(pal)).astype(np.int64)
    sse = _kk.weighted_sse(hist.points, hist.weights, pal.astype(np.float64), labels)
    return _finish(rgb, hist, pal, labels, counts, float(sse) / (3.0 * hist.n_pixels), n_iter=0,
                   converged=True, color_space=color_space, dither=dither,
                   max_pixels=max_pixels, start=start, k_requested=len(pal))


def remap(image, palette, *, color_space: str = "srgb",
          max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Index map (H, W) of ``image`` onto a given ``palette``: each pixel's exactly nearest color.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8, PIL.Image.Image or path
    palette : array-like (K, 3) of integers in 0..255, 1 <= K <= 65536
    color_space : {"srgb", "linear", "oklab"}
        Where "nearest" is measured.

    Examples
    --------
    >>> import numpy as np, kmq
    >>> img = np.array([[[10, 10, 10], [250, 240, 230]]], dtype=np.uint8)
    >>> kmq.remap(img, [[255, 255, 255], [0, 0, 0]]).tolist()
    [[1, 0]]
    """
    pal = check_palette(palette)
    return remap_array(as_rgb(image, max_pixels=max_pixels), pal, check_space(color_space))


__all__ = ["Quantized", "apply_palette", "fit", "quantize", "quantize_to_quality", "remap"]
