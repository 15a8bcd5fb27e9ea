"""The quantizer, top to bottom: histogram -> seeding -> kmeans -> palette -> remap."""

from __future__ import annotations

import math
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kmq import alpha as _alpha
from kmq import palette as _palette
from kmq import seeding
from kmq._kernels import kmeans as _kk
from kmq.color_histogram import ColorHistogram, gather, histogram
from kmq.colorspace import check_space, from_working, gamut_bounds, to_working
from kmq.errors import ArgumentError, CancelledError
from kmq.io import DEFAULT_MAX_PIXELS, as_pixels
from kmq.kmeans import Progress, kmeans, refine_by_moves, refine_by_swaps
from kmq.metrics import psnr_from_mse
from kmq.nearest import check_palette, nearest, remap_array
from kmq.quantized import Quantized
from kmq.seeding import as_rng

K_MIN, K_MAX = 2, 256

#: Above this many distinct colors the search runs on the weighted means of small sRGB cells:
#: cubes of side 2, or 4 or 8 when the finer cells are still too many (``_MAX_CELLS``). Moving
#: whole cells changes the objective by a constant (the spread inside the cells), so that search
#: optimizes nearly the same objective far faster; Lloyd on the exact histogram then finishes
#: from its answer. The seedings and their Lloyd runs (the best of which is kept) run on the next
#: coarser cells, six times fewer; the swaps and Hartigan's moves on the finer ones.
#: 16384 and 65536: fastest on 0.1-0.4 MP photos with the error still below scikit-learn's
#: (benchmarks/README.md, "Settings chosen by measurement").
_REDUCE_MIN_COLORS = 16384
_MAX_CELLS = 65536
_CELL_SHIFTS = (1, 2, 3, 4)
#: The coarser search cells must be at least this many per center, or the search runs on the
#: work cells.
_SEARCH_CELLS_PER_CENTER = 16
#: (seedings below K, K, seedings from K on): two seedings are one round on two cores, four
#: are two; below K = 64 four keep the error below scikit-learn's (benchmarks/README.md).
_SEEDINGS = (4, 64, 2)


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not K_MIN <= k <= K_MAX:
        raise ArgumentError(f"expected k, the number of colors, to be an int in {K_MIN}..{K_MAX}; "
                            f"got {k!r}")
    return int(k)


def _cells(hist: ColorHistogram, points: np.ndarray, weights: np.ndarray, k: int):
    """The levels to search on, or None to use the exact histogram alone.

    Returns ``(work, search)``: ``work`` is (means, weights, cell of every color) of the finest
    sRGB cells with at most ``_MAX_CELLS`` cells; ``search`` is (means, weights, cell of every
    work cell) of the next coarser cells, or None when those are too few for ``k`` centers.
    """
    if len(hist) <= _REDUCE_MIN_COLORS:
        return None
    for shift in _CELL_SHIFTS:
        work = _kk.coarse_bins(hist.colors, points, weights, shift)
        if len(work[0]) <= _MAX_CELLS:
            break
    if len(work[0]) <= 4 * k:
        return None
    means, totals, color_cell = _kk.coarse_bins(hist.colors, points, weights, shift + 1)
    if len(means) < _SEARCH_CELLS_PER_CENTER * k:
        return work, None
    up = np.empty(len(work[0]), np.int32)
    up[work[2]] = color_cell  # every color of a work cell lies in the same search cell
    return work, (means, totals, up)


def fit(hist: ColorHistogram, k: int, *, seed=0, tol: float = 1e-4, max_iter: int = 300,
        n_init: int | None = None, progress: Progress | None = None,
        points: np.ndarray | None = None, weights: np.ndarray | None = None):
    """Fit ``k`` centers to a color histogram; returns the k-means result on its distinct colors.

    Lloyd's algorithm stops in a local minimum that depends on its seeds, so: ``n_init`` greedy
    k-means++ seedings (by default 4 below K = 64, and 2 from there on, where the swaps matter
    more than the seeds: see ``_SEEDINGS``) are each run to convergence and the best is kept;
    then useless centers are moved into crowded clusters while that lowers the objective
    (:func:`refine_by_swaps`), then Hartigan's single-color moves finish
    (:func:`refine_by_moves`). On large histograms this search runs on coarse sRGB cells, Lloyd
    and Hartigan's moves then continue on finer cells and Lloyd on the exact histogram ends it
    (see ``_REDUCE_MIN_COLORS``). Needs ``len(hist) > k``. ``points`` and ``weights``, when
    given, are ``hist.points`` and ``hist.weights`` already made by the caller.
    """
    rng = as_rng(seed)
    points = hist.points if points is None else points
    weights = hist.weights if weights is None else weights
    # coarsest first: (points, weights, cell of every point in the next coarser level)
    levels = [(points, weights, None)]
    cells = _cells(hist, points, weights, k)
    if cells is not None:
        levels.insert(0, cells[0])
        if cells[1] is not None:
            levels.insert(0, cells[1])
    search_points, search_weights = levels[0][0], levels[0][1]
    if n_init is None:
        n_init = _SEEDINGS[0] if k < _SEEDINGS[1] else _SEEDINGS[2]
    uniforms = [seeding.draws(k, rng) for _ in range(n_init)]  # in order: reproducible

    def run(draws: np.ndarray):
        init = seeding.from_draws(search_points, search_weights, draws)
        return kmeans(search_points, search_weights, init, tol=tol, max_iter=max_iter,
                      progress=progress, parallel=False)

    # the seedings and runs are independent and the kernels release the GIL: a thread per numba
    # thread (one per core, unless fewer were asked for: kmq.batch pins one per worker process)
    import numba

    with ThreadPoolExecutor(max_workers=max(1, min(n_init, numba.get_num_threads()))) as pool:
        runs = list(pool.map(run, uniforms))
    best = min(runs, key=lambda r: r.objective)  # ties: the first seed's run
    # the seeds' quality is judged on the coarse cells, but swaps need the finer ones: on coarse
    # cells alone they lose up to 4% at K = 256 on smooth gradients
    swap_level = 1 if len(levels) == 3 else 0
    for level in range(len(levels)):
        level_points, level_weights, _ = levels[level]
        if level:
            up = levels[level - 1][2]  # cell of every point of this level in the coarser one
            best = kmeans(level_points, level_weights, best.centers, labels=best.labels[up],
                          tol=tol, max_iter=max_iter, progress=progress, order=best.order)
        if level == len(levels) - 1 and level:
            break
        if level == swap_level:
            best = refine_by_swaps(level_points, level_weights, best, tol=tol,
                                   max_iter=max_iter, progress=progress)
        if level >= swap_level:
            best = refine_by_moves(level_points, level_weights, best, tol=tol,
                                   max_iter=max_iter)
    return best


def quantize(image, k: int = 256, *, seed=0, tol: float = 1e-4, max_iter: int = 300,
             color_space: str = "srgb", dither: float = 0.0,
             max_pixels: int = DEFAULT_MAX_PIXELS,
             progress: Progress | None = None) -> Quantized:
    """Quantize an image to at most ``k`` colors by k-means on its color histogram.

    Parameters
    ----------
    image : ndarray (H, W, 3|4) uint8, PIL.Image.Image or path
        An image with transparency (some alpha below 255) gets an RGBA palette (see
        :mod:`kmq.alpha`); an opaque one an RGB palette.
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
    _check_dither(dither)
    pixels = as_pixels(image, max_pixels=max_pixels)
    fitted = _fit_pixels(pixels, _check_k(k), seed=seed, tol=tol, max_iter=max_iter,
                         color_space=check_space(color_space), progress=progress)
    return fitted._remap(pixels, dither=dither, max_pixels=max_pixels)


def _check_dither(dither) -> float:
    if isinstance(dither, bool) or not (isinstance(dither, (int, float, np.floating))
                                        and 0.0 <= dither <= 1.0):
        raise ArgumentError(f"expected dither, a strength in 0..1; got {dither!r}")
    return float(dither)


@dataclass
class _Fitted:
    """What a fit knows of the colors it was fitted to, so that remapping them is a lookup:
    the histogram (or the transparent image) and each distinct color's entry."""

    labels: np.ndarray
    hist: ColorHistogram | None = None
    source: _Transparent | None = None
    pixels: weakref.ref | None = None  # the array fitted, while it lives

    def fitted(self, pixels: np.ndarray) -> bool:
        return self.pixels is not None and self.pixels() is pixels


@dataclass(frozen=True, repr=False)
class PaletteFit:
    """A palette fitted to an image or a color histogram (:func:`fit_palette`), ready to map
    images onto (:meth:`remap`): the first of the two phases :func:`quantize` runs.

    Attributes
    ----------
    palette : ndarray of uint8, shape (K, 3), or (K, 4) when fitted to an image with
        transparency; most used first.
    color_space : str
        The working space the palette was fitted in, and in which :meth:`remap` measures
        "nearest".
    counts : ndarray of int64, shape (K,)
        Pixels of the fitted image (or histogram) nearest to each entry.
    mse : float
        Mean squared error of the fitted pixels, each mapped to its nearest entry (8-bit sRGB;
        premultiplied RGBA with transparency); ``psnr`` the same in dB.
    distinct_colors : int
        Distinct colors fitted.
    n_iter, converged : int, bool
        k-means iterations on the exact histogram, and whether it met its tolerance.
    k_requested : int
        The K asked for (``k``, the entries used, may be fewer).
    seconds : float
        Time the fit took (after reading).

    Examples
    --------
    >>> import numpy as np, kmq
    >>> rng = np.random.default_rng(0)
    >>> img = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    >>> fit = kmq.fit_palette(img, 8)
    >>> fit.k, fit.color_space
    (8, 'srgb')
    >>> q = fit.remap(img)
    >>> bool(np.array_equal(q.indices, kmq.quantize(img, 8).indices)), q.mse == fit.mse
    (True, True)
    >>> fit.remap(img[::-1]).indices.shape  # any image maps onto it
    (24, 24)
    """

    palette: np.ndarray
    color_space: str
    counts: np.ndarray
    mse: float
    distinct_colors: int
    n_iter: int = 0
    converged: bool = True
    k_requested: int = 0
    seconds: float = 0.0
    _fitted: _Fitted | None = field(default=None, compare=False)

    @property
    def k(self) -> int:
        """Palette entries."""
        return len(self.palette)

    @property
    def psnr(self) -> float:
        """:attr:`mse` as PSNR in dB; ``inf`` when exact."""
        return psnr_from_mse(self.mse) if math.isfinite(self.mse) else math.nan

    def __repr__(self) -> str:
        return (f"PaletteFit(k={self.k}, color_space={self.color_space!r}, "
                f"mse={self.mse:.4g}, psnr={self.psnr:.2f} dB)")

    def remap(self, image, *, dither: float = 0.0,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> Quantized:
        """Map ``image`` onto the palette: each pixel's exactly nearest entry in
        :attr:`color_space` (ties to the lower index), or error diffusion of strength
        ``dither`` (0..1). The palette keeps its order and its unused entries.

        ``image`` is anything :func:`quantize` takes. With an RGB palette an image's
        transparency is dropped with a warning; with an RGBA one, nearest is measured in
        premultiplied RGBA (:mod:`kmq.alpha`). Remapping the image (or histogram) that was
        fitted reuses what the fit found: ``fit_palette(image, k).remap(image)`` is
        ``quantize(image, k)``, at its cost.
        """
        _check_dither(dither)
        if self.palette.shape[1] == 3:
            pixels = as_pixels(image, max_pixels=max_pixels, alpha=False)
        else:
            pixels = as_pixels(image, max_pixels=max_pixels)
            if pixels.shape[2] == 3:
                pixels = np.concatenate(
                    [pixels, np.full((*pixels.shape[:2], 1), 255, np.uint8)], axis=2)
        return self._remap(pixels, dither=dither, max_pixels=max_pixels)

    def _remap(self, pixels: np.ndarray, *, dither: float, max_pixels: int) -> Quantized:
        start = time.perf_counter() - self.seconds
        pal, space, fitted = self.palette, self.color_space, self._fitted
        mine = fitted is not None and fitted.fitted(pixels)
        if pal.shape[1] == 4:  # reuse the fit's labels when these are the fitted colors
            known = fitted.source if fitted is not None else None
            source = known if mine and known is not None else _Transparent(pixels, space)
            if fitted is not None and known is not None and (
                    source is known or (np.array_equal(source.colors, known.colors)
                                        and np.array_equal(source.counts, known.counts))):
                labels, counts, mse = fitted.labels, self.counts, self.mse
            else:
                labels = _alpha.nearest(source.points(space), _alpha.to_points(pal, space))
                counts = np.bincount(labels, weights=source.counts,
                                     minlength=len(pal)).astype(np.int64)
                mse = _alpha.sse(source.points(), source.weights, pal, labels) / (
                    4.0 * source.n_pixels)
            return source.finish((pal, labels, counts, mse, self.n_iter, self.converged),
                                 dither=dither, start=start, k_requested=self.k_requested,
                                 max_pixels=max_pixels)
        known_hist = fitted.hist if fitted is not None else None
        known_labels, reuse = None, False
        hist = known_hist if mine and known_hist is not None else histogram(pixels)
        if fitted is not None and known_hist is not None and (
                hist is known_hist or np.array_equal(hist.keys, known_hist.keys)):
            known_labels = fitted.labels
            reuse = hist is known_hist or np.array_equal(hist.counts, known_hist.counts)
        if reuse and known_labels is not None:
            labels, counts, mse = known_labels, self.counts, self.mse
        else:
            labels = known_labels if known_labels is not None else nearest(
                to_working(hist.colors, space), to_working(pal, space))
            counts = np.bincount(labels, weights=hist.counts, minlength=len(pal)).astype(np.int64)
            sse = _kk.weighted_sse(hist.points, hist.weights, pal.astype(np.float64), labels)
            mse = float(sse) / (3.0 * hist.n_pixels)
        return _finish(pixels, hist, pal, labels, counts, mse, n_iter=self.n_iter,
                       converged=self.converged, color_space=space, dither=dither,
                       max_pixels=max_pixels, start=start, k_requested=self.k_requested)


def fit_palette(image, k: int = 256, *, seed=0, tol: float = 1e-4, max_iter: int = 300,
                color_space: str = "srgb", max_pixels: int = DEFAULT_MAX_PIXELS,
                progress: Progress | None = None) -> PaletteFit:
    """Fit a palette of at most ``k`` colors to an image or a color histogram by k-means.

    The first phase of :func:`quantize`; :meth:`PaletteFit.remap` is the second. One palette
    can serve many images (fit it to their summed histograms, :func:`kmq.color_histogram.merge`).

    Parameters
    ----------
    image : image or ColorHistogram
        Anything :func:`quantize` takes, or a :class:`kmq.color_histogram.ColorHistogram`
        (:func:`kmq.histogram`). An image with transparency gets an RGBA palette.
    k, seed, tol, max_iter, color_space, max_pixels, progress
        As for :func:`quantize`.

    Returns
    -------
    PaletteFit
    """
    k, color_space = _check_k(k), check_space(color_space)
    options = {"seed": seed, "tol": tol, "max_iter": max_iter, "color_space": color_space,
               "progress": progress}
    if isinstance(image, ColorHistogram):
        return _fit_histogram(image, k, start=time.perf_counter(), **options)
    return _fit_pixels(as_pixels(image, max_pixels=max_pixels), k, **options)


def _fit_pixels(pixels: np.ndarray, k: int, *, progress, **options) -> PaletteFit:
    start = time.perf_counter()
    if pixels.shape[2] == 4:
        return _fit_transparent(_Transparent(pixels, options["color_space"]), k, pixels=pixels,
                                start=start, progress=progress, **options)
    hist = histogram(pixels)
    if progress is not None and progress("histogram", 1.0):
        raise CancelledError("cancelled after the histogram")
    return _fit_histogram(hist, k, pixels=pixels, start=start, progress=progress, **options)


def _fit_histogram(hist: ColorHistogram, k: int, *, start: float, color_space: str,
                   pixels: np.ndarray | None = None, **options) -> PaletteFit:
    pal, labels, counts, mse, n_iter, converged = _fit_palette(hist, k, color_space=color_space,
                                                               **options)
    return PaletteFit(pal, color_space, counts, mse, len(hist), n_iter, converged, k,
                      time.perf_counter() - start,
                      _Fitted(labels, hist=hist, pixels=None if pixels is None
                              else weakref.ref(pixels)))


def _fit_transparent(source: _Transparent, k: int, *, pixels: np.ndarray, start: float,
                     color_space: str, **options) -> PaletteFit:
    pal, labels, counts, mse, n_iter, converged = source.fit(k, **options)
    return PaletteFit(pal, color_space, counts, float(mse), len(source.colors), n_iter,
                      converged, k, time.perf_counter() - start,
                      _Fitted(labels, source=source, pixels=weakref.ref(pixels)))


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
        pal_working = to_working(pal, color_space)
        upper = lower = None
        if result.bounds is not None and len(pal) == len(result.centers):
            # Lloyd's bounds, worn in place (nothing else reads them: no copies of a
            # color-sized array) by how far rounding moved each center, and a hair more for
            # their own rounding: most colors keep their center without a search
            shift = np.sqrt(((pal_working - result.centers) ** 2).sum(axis=1)) + _kk.BOUND_SLACK
            upper, second, lower, rest = result.bounds
            top = int(np.argmax(shift))
            _kk.settle_bounds(labels, upper, second, lower, rest, shift, float(shift[top]),
                              float(np.max(np.delete(shift, top), initial=0.0)), np.int64(top))
            np.minimum(lower, rest, out=lower)
        if upper is None:  # every color is searched
            upper, lower = np.full(len(points), np.inf), np.full(len(points), -1.0)
        labels = nearest(points, pal_working, labels, upper=upper, lower=lower)
        _palette.break_ties_by_use(points, pal, pal_working, labels, weights, upper, lower)
    pal, labels, counts = _palette.order_by_use(pal, labels, weights)
    if color_space != "srgb":
        points = hist.points  # the error is measured in sRGB
    sse = _kk.weighted_sse(points, weights, pal.astype(np.float64), labels)
    return pal, labels, counts, float(sse) / (3.0 * hist.n_pixels), n_iter, converged


#: Working spaces converted channel by channel: an 8-bit color's point is the same in any array.
_CHANNELWISE_SPACES = ("srgb", "wsrgb", "linear")
def _finish(rgb, hist, pal, labels, counts, mse, *, n_iter, converged, color_space, dither,
            max_pixels, start, k_requested) -> Quantized:
    """Index every pixel (one lookup per pixel, or dithering) and wrap up the result."""
    if dither > 0:
        from kmq.dither import diffuse_from_nearest
        from kmq.dither import dither as error_diffusion
        from kmq.metrics import mse_indexed

        if color_space in _CHANNELWISE_SPACES:  # dithering's first pass is known: the labels
            # (ties to the lower index of this palette, as dithering breaks them); in sRGB their
            # error too, exactly (a sum of integers)
            nearest_mse = (float(_kk.weighted_sse(hist.points, hist.weights,
                                                  pal.astype(np.float64), labels)) / hist.n_pixels
                           if color_space == "srgb" else None)
            indices = diffuse_from_nearest(to_working(rgb, color_space),
                                           to_working(pal, color_space),
                                           gather(rgb, hist, labels, len(pal)), strength=dither,
                                           bounds=gamut_bounds(color_space),
                                           nearest_mse=nearest_mse)
        else:  # OKLab's matrix products may round a color differently in another array
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


class Fitter:
    """Palettes at any K for one image, its color histogram made once: what searches over K
    (:func:`kmq.quantize_to_quality`, a byte budget) use.

    ``Fitter(image, ...).quantize(k)`` equals ``quantize(image, k, ...)``; fits are kept, so
    asking for a K again costs only the remap.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.pipeline import Fitter, quantize
    >>> img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    >>> fitter = Fitter(img)
    >>> [fitter.fit(k).k for k in (2, 8)]
    [2, 8]
    >>> bool((fitter.quantize(8).indices == quantize(img, 8).indices).all())
    True
    """

    def __init__(self, image, *, seed=0, tol: float = 1e-4, max_iter: int = 300,
                 color_space: str = "srgb", max_pixels: int = DEFAULT_MAX_PIXELS,
                 progress: Progress | None = None) -> None:
        self.options = {"seed": seed, "tol": tol, "max_iter": max_iter,
                        "color_space": check_space(color_space), "progress": progress}
        self.max_pixels = max_pixels
        self.pixels = as_pixels(image, max_pixels=max_pixels)
        self._start = time.perf_counter()
        self._source = _Transparent(self.pixels, self.options["color_space"]) \
            if self.pixels.shape[2] == 4 else None
        self._hist = histogram(self.pixels) if self._source is None else None
        self._fits: dict[int, PaletteFit] = {}

    def fit(self, k: int, *, progress: Progress | None = None) -> PaletteFit:
        """The palette of at most ``k`` colors, as :func:`fit_palette` fits it (``progress``,
        when given, instead of the one the fitter was made with)."""
        k = _check_k(k)
        if k not in self._fits:
            options = dict(self.options)
            if progress is not None:
                options["progress"] = progress
            if self._source is not None:
                self._fits[k] = _fit_transparent(self._source, k, pixels=self.pixels,
                                                 start=self._start, **options)
            elif self._hist is not None:
                self._fits[k] = _fit_histogram(self._hist, k, pixels=self.pixels,
                                               start=self._start, **options)
        return self._fits[k]

    @property
    def distinct_colors(self) -> int:
        """Distinct colors of the image."""
        if self._source is not None:
            return len(self._source.colors)
        return len(self._hist) if self._hist is not None else 0

    def quantize(self, k: int, *, dither: float = 0.0,
                 progress: Progress | None = None) -> Quantized:
        """The image mapped onto :meth:`fit`'s palette (``dither`` as for :func:`quantize`)."""
        return self.fit(k, progress=progress)._remap(self.pixels, dither=_check_dither(dither),
                                                     max_pixels=self.max_pixels)


def apply_palette(image, palette, *, color_space: str = "srgb", dither: float = 0.0,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Quantized:
    """Map ``image`` onto a given ``palette`` (no fitting) and measure it, as :func:`quantize`
    reports a fitted one. The palette keeps its order; entries no pixel uses stay in it.

    An RGBA palette (K, 4) maps an image's transparency too (nearest in premultiplied RGBA, see
    :mod:`kmq.alpha`); with an RGB palette an image's transparency is dropped with a warning.

    Examples
    --------
    >>> import numpy as np, kmq
    >>> from kmq.pipeline import apply_palette
    >>> img = np.array([[[10, 10, 10], [250, 240, 230]]], dtype=np.uint8)
    >>> q = apply_palette(img, [[255, 255, 255], [0, 0, 0]])
    >>> q.indices.tolist(), q.counts.tolist(), round(q.mse, 3)
    ([[1, 0]], [1, 1], 195.833)
    """
    pal = check_palette(palette, alpha=True)
    if len(pal) > K_MAX:
        raise ArgumentError(f"expected a palette of at most {K_MAX} colors; got {len(pal)}")
    given = PaletteFit(pal, check_space(color_space), np.zeros(len(pal), np.int64), math.nan,
                       0, k_requested=len(pal))
    return given.remap(image, dither=dither, max_pixels=max_pixels)


def remap(image, palette, *, color_space: str = "srgb",
          max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Index map (H, W) of ``image`` onto a given ``palette``: each pixel's exactly nearest color.

    Parameters
    ----------
    image : ndarray (H, W, 3|4) uint8, PIL.Image.Image or path
    palette : array-like (K, 3) or (K, 4) of integers in 0..255, 1 <= K <= 65536
        With an RGBA palette, nearest is measured in premultiplied RGBA (:mod:`kmq.alpha`);
        with an RGB one an image's transparency is dropped with a warning.
    color_space : {"srgb", "linear", "oklab"}
        Where "nearest" is measured.

    Examples
    --------
    >>> import numpy as np, kmq
    >>> img = np.array([[[10, 10, 10], [250, 240, 230]]], dtype=np.uint8)
    >>> kmq.remap(img, [[255, 255, 255], [0, 0, 0]]).tolist()
    [[1, 0]]
    """
    color_space = check_space(color_space)
    pal = check_palette(palette, alpha=True)  # 1..65536 entries
    if pal.shape[1] == 3:
        return remap_array(as_pixels(image, max_pixels=max_pixels, alpha=False), pal,
                           color_space)
    pixels = as_pixels(image, max_pixels=max_pixels)
    if pixels.shape[2] == 3:
        pixels = np.concatenate([pixels, np.full((*pixels.shape[:2], 1), 255, np.uint8)], axis=2)
    source = _Transparent(pixels, color_space)
    labels = _alpha.nearest(source.points(color_space), _alpha.to_points(pal, color_space))
    dtype = np.uint8 if len(pal) <= 256 else np.uint16
    return labels.astype(dtype)[source.inverse].reshape(source.shape)


class _Transparent:
    """An image with transparency on its way through the pipeline (see :mod:`kmq.alpha`).

    Alpha only 0 or 255: the opaque pixels go through the RGB engine with K - 1 colors and the
    transparent ones take entry 0, (0, 0, 0, 0). Otherwise: k-means on premultiplied RGBA.
    """

    def __init__(self, rgba: np.ndarray, color_space: str):
        rgba = _alpha.normalize(rgba)
        self.rgba = rgba
        self.shape = rgba.shape[:2]
        self.n_pixels = self.shape[0] * self.shape[1]
        self.color_space = color_space
        alpha = rgba[:, :, 3]
        self.clear = alpha == 0
        self.binary = bool(((alpha == 0) | (alpha == 255)).all())
        self.colors, self.counts, self.inverse = _alpha.histogram(rgba)
        self.weights = self.counts.astype(np.float64)
        self._points: dict[str, np.ndarray] = {}
        if self.binary:
            self.opaque = np.ascontiguousarray(rgba[~self.clear][None, :, :3])
            self.hist = histogram(self.opaque) if self.opaque.size else None

    def points(self, color_space: str = "srgb") -> np.ndarray:
        if color_space not in self._points:
            self._points[color_space] = _alpha.to_points(self.colors, color_space)
        return self._points[color_space]

    def fit(self, k: int, *, seed, tol, max_iter, progress) -> tuple:
        """(palette (K', 4), label per distinct RGBA color, counts, MSE, iterations, converged)."""
        n_iter, converged, labels = 0, True, None
        if self.binary and self.hist is not None:
            pal3, _, _, _, n_iter, converged = _fit_palette(
                self.hist, k - 1, seed=seed, tol=tol, max_iter=max_iter,
                color_space=self.color_space, progress=progress)
            opaque = np.concatenate([pal3, np.full((len(pal3), 1), 255, np.uint8)], axis=1)
            has_clear = bool(self.clear.any())
            pal = np.concatenate([np.zeros((1, 4), np.uint8), opaque]) if has_clear else opaque
        elif self.binary:  # nothing but transparent pixels
            pal = np.zeros((1, 4), np.uint8)
        else:
            pal, labels = _alpha.fit(self.colors, self.counts, k, seed=seed, tol=tol,
                                     max_iter=max_iter, color_space=self.color_space,
                                     progress=progress)  # labels: nearest entry of each color
        if labels is None:
            labels = _alpha.nearest(self.points(self.color_space),
                                    _alpha.to_points(pal, self.color_space))
        pal, labels, counts = _alpha.order(pal, labels, self.weights)
        mse = _alpha.sse(self.points(), self.weights, pal, labels) / (4.0 * self.n_pixels)
        return pal, labels, counts, mse, n_iter, converged

    def finish(self, fitted: tuple, *, dither: float, start: float, k_requested: int,
               max_pixels: int) -> Quantized:
        """Index every pixel (one lookup per pixel, or dithering) and wrap up the result."""
        pal, labels, counts, mse, n_iter, converged = fitted
        dtype = np.uint8 if len(pal) <= 256 else np.uint16
        if dither > 0:
            from kmq.metrics import mse_indexed

            indices = _alpha.dither(self.rgba, pal, color_space=self.color_space,
                                    strength=dither).astype(dtype, copy=False)
            counts = np.bincount(indices.ravel(), minlength=len(pal)).astype(np.int64)
            mse = mse_indexed(self.rgba, pal, indices)
        else:
            indices = labels.astype(dtype)[self.inverse].reshape(self.shape)
        return Quantized(palette=pal, indices=indices, counts=counts, mse=float(mse),
                         distinct_colors=len(self.colors), n_iter=n_iter, converged=converged,
                         seconds=time.perf_counter() - start, k_requested=k_requested)


def warm_up() -> None:
    """Load the compiled kernels of :func:`quantize` ahead of a first real call.

    A new process pays numba's start-up and the loading of each cached kernel before its first
    quantize. This quantizes a tiny image, so that the cost can be paid on a background thread
    while the caller does work that releases the GIL, such as decoding the image. Kernels that
    only large images use still load on their first call (:func:`kmq.kernel_cache.compile_all`
    loads every one). Thread-safe, but the caller should not run kernels of its own until it
    returns.

    Examples
    --------
    >>> import threading
    >>> from kmq.pipeline import warm_up
    >>> loading = threading.Thread(target=warm_up)
    >>> loading.start()
    >>> # ... read the image here ...
    >>> loading.join()
    """
    rng = np.random.default_rng(0)
    # random colors: more distinct colors than K, so seeding, Lloyd, the swaps, Hartigan's
    # moves and the final mapping all run (the arrays writable and C-ordered, as read_image's)
    quantize(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), 8)


__all__ = ["Fitter", "PaletteFit", "Quantized", "apply_palette", "fit", "fit_palette",
           "quantize", "remap", "warm_up"]
