"""Images with transparency: RGBA palettes fitted by k-means on premultiplied colors.

A pixel with alpha ``a`` (0..255) is the point ``(c1 * a/255, c2 * a/255, c3 * a/255, a)``, where
``c1..c3`` are its color in the working space (sRGB by default): its color as it would be composited
over any background, plus its alpha. Distances between such points are what a viewer sees: the
color of a nearly transparent pixel hardly matters, that of an opaque one fully. Every fully
transparent pixel is the same point (0, 0, 0, 0) and they all share one palette entry, fixed at
transparent black; k-means moves the other K - 1 (any pixel, translucent ones included, may still
take the transparent entry when it is the nearest).

Images whose alpha is only 0 or 255 (cut-outs, most icons) do not come here: the opaque pixels are
quantized by the RGB engine with K - 1 colors (:func:`kmq.pipeline.quantize`), which searches
harder. Images with translucent pixels use this module: greedy k-means++ seedings, Lloyd to
convergence on the distinct RGBA colors (on the means of small RGBA cells first when there are
more than 65,536 of them), the best of ``n_init`` kept.

The error of an RGBA result (``Quantized.mse``, PSNR) is measured the same way: over the four
channels of premultiplied sRGB, in 8-bit units (:mod:`kmq.metrics`).
"""

from __future__ import annotations

import numpy as np

from kmq._kernels import rgba as _kr
from kmq.colorspace import from_working, to_working
from kmq.errors import CancelledError
from kmq.seeding import as_rng

#: From this many points on, assignments run in parallel threads.
PARALLEL_MIN_POINTS = 100_000
#: Above this many distinct RGBA colors the search runs on the weighted means of RGBA cells.
REDUCE_MIN_COLORS = 65536
_MAX_CELLS = 131072
TRANSPARENT = np.zeros(4, np.uint8)


def normalize(rgba: np.ndarray) -> np.ndarray:
    """A copy of an (..., 4) uint8 array whose fully transparent pixels are (0, 0, 0, 0).

    The color under alpha 0 is invisible; making it one value lets every transparent pixel share
    one palette entry.
    """
    out = np.array(rgba, np.uint8, copy=True)
    out[out[..., 3] == 0] = 0
    return out


def histogram(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct RGBA colors (N, 4) uint8, their pixel counts (N,) int64 and every pixel's color
    index (H * W,) int32, of an (H, W, 4) uint8 image (normalized, see :func:`normalize`)."""
    flat = np.ascontiguousarray(rgba.reshape(-1, 4)).view(np.uint32).ravel()
    keys, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    colors = keys.view(np.uint8).reshape(-1, 4)
    return colors, counts.astype(np.int64), inverse.astype(np.int32).ravel()


def to_points(colors: np.ndarray, color_space: str = "srgb") -> np.ndarray:
    """Premultiplied points (N, 4) float64 of RGBA colors (N, 4) uint8, color in ``color_space``.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.alpha import to_points
    >>> to_points(np.array([[200, 100, 0, 255], [200, 100, 0, 51], [9, 9, 9, 0]], np.uint8))
    array([[200., 100.,   0., 255.],
           [ 40.,  20.,   0.,  51.],
           [  0.,   0.,   0.,   0.]])
    """
    colors = np.asarray(colors, np.uint8)
    a = colors[:, 3:4].astype(np.float64)
    rgb = colors[:, :3]
    work = rgb.astype(np.float64) if color_space == "srgb" else to_working(rgb, color_space)
    return np.ascontiguousarray(np.concatenate([work * (a / 255.0), a], axis=1))


def to_colors(points: np.ndarray, color_space: str = "srgb") -> np.ndarray:
    """RGBA colors (K, 4) uint8 of premultiplied points (K, 4): alpha rounded, color divided by
    alpha and converted to sRGB; points with alpha below 0.5 become transparent black.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.alpha import to_colors
    >>> to_colors(np.array([[40.0, 20.0, 0.0, 51.0], [1.0, 1.0, 1.0, 0.2]]))
    array([[200, 100,   0,  51],
           [  0,   0,   0,   0]], dtype=uint8)
    """
    points = np.asarray(points, np.float64)
    alpha = points[:, 3]
    out = np.zeros((len(points), 4), np.uint8)
    visible = alpha >= 0.5
    work = points[visible, :3] / (alpha[visible, None] / 255.0)
    rgb = work if color_space == "srgb" else from_working(work, color_space)
    out[visible, :3] = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    out[visible, 3] = np.clip(np.rint(alpha[visible]), 1, 255).astype(np.uint8)
    return out


def nearest(points: np.ndarray, palette_points: np.ndarray) -> np.ndarray:
    """Index of the nearest palette point for every point (ties to the lower index)."""
    labels = np.zeros(len(points), np.int32)
    kernel = _kr.nearest_parallel if len(points) >= PARALLEL_MIN_POINTS else _kr.nearest
    kernel(np.ascontiguousarray(points, np.float64),
           np.ascontiguousarray(palette_points, np.float64), labels)
    return labels


def _lloyd(points, weights, centers, n_fixed, *, tol, max_iter, labels=None, opaque=None):
    """Weighted Lloyd from ``centers``; the first ``n_fixed`` never move, and those marked in
    ``opaque`` keep alpha 255 (their color is still the mean). An emptied cluster is moved onto the
    point that costs most. Returns (centers, labels, objective, iterations, converged). The
    assignment is exact (Hamerly's bounds only skip provably settled points)."""
    centers = centers.copy()
    if opaque is not None:
        centers[opaque, 3] = 255.0
    k, n = len(centers), len(points)
    labels = np.zeros(n, np.int32) if labels is None else labels.copy()
    upper, lower = np.full(n, np.inf), np.zeros(n)
    drift = np.zeros(k)
    assign = _kr.assign_bounded_parallel if n >= PARALLEL_MIN_POINTS else _kr.assign_bounded
    assign(points, centers, labels, upper, lower, drift, _kr.half_min_distance(centers))
    costs = _kr.point_costs(points, weights, centers, labels)
    objective = float(costs.sum())
    for it in range(1, max_iter + 1):
        sums, totals = _kr.accumulate(points, weights, labels, k)
        old = centers.copy()
        for j in range(n_fixed, k):
            if totals[j] > 0:
                centers[j] = sums[j] / totals[j]
        empty = [j for j in range(n_fixed, k) if totals[j] == 0]
        for j in empty:  # the costliest point becomes a center of its own
            worst = int(np.argmax(costs))
            centers[j] = points[worst]
            costs[worst] = 0.0
        if opaque is not None:
            centers[opaque, 3] = 255.0
        drift = np.sqrt(((centers - old) ** 2).sum(axis=1))
        assign(points, centers, labels, upper, lower, drift, _kr.half_min_distance(centers))
        costs = _kr.point_costs(points, weights, centers, labels)
        new = float(costs.sum())
        if not empty and objective - new <= tol * new:
            return centers, labels, new, it, True
        objective = new
    return centers, labels, objective, max_iter, False


def _swaps(points, weights, state, n_fixed, *, tol, max_iter, opaque=None, patience=4):
    """Move a center from where it helps least to where the error is largest, keep the move when
    Lloyd from there ends lower; stop after ``patience`` moves in a row that did not help.

    The center moved is the one whose cluster costs least (ties: lowest index), among those not
    tried since the last improvement; it goes to the costliest point of the costliest cluster.
    ``state`` is what :func:`_lloyd` returns; so is the result.
    """
    k = len(state[0])
    if k - n_fixed < 2:
        return state
    failures, tried = 0, set()
    while failures < patience:
        centers, labels, objective = state[0], state[1], state[2]
        costs = _kr.point_costs(points, weights, centers, labels)
        per_cluster = np.bincount(labels, weights=costs, minlength=k)
        movable = [j for j in np.argsort(per_cluster, kind="stable")
                   if j >= n_fixed and j not in tried]
        if not movable:
            break
        source = int(movable[0])
        target = int(np.argmax(per_cluster))
        members = np.flatnonzero(labels == target)
        worst = int(members[np.argmax(costs[members])])
        trial = centers.copy()
        trial[source] = points[worst]
        mask = None
        if opaque is not None:  # a moved center is free until the clusters are judged again
            mask = opaque.copy()
            mask[source] = points[worst, 3] == 255.0
        candidate = _lloyd(points, weights, trial, n_fixed, tol=tol, max_iter=max_iter,
                           opaque=mask)
        tried.add(source)
        if candidate[2] < objective * (1.0 - 1e-9):
            state, failures, tried, opaque = candidate, 0, set(), mask
        else:
            failures += 1
    return state


def _cells(colors: np.ndarray, points: np.ndarray, weights: np.ndarray):
    """Weighted means of the points in RGBA cubes of side 2, 4, 8... (the finest with at most
    ``_MAX_CELLS`` cells): (means, weights, cell of every color)."""
    c = colors.astype(np.int64)
    for shift in (1, 2, 3, 4):
        key = (((c[:, 0] >> shift) << 24) | ((c[:, 1] >> shift) << 16)
               | ((c[:, 2] >> shift) << 8) | (c[:, 3] >> shift))
        uniq, member = np.unique(key, return_inverse=True)
        if len(uniq) <= _MAX_CELLS:
            break
    member = member.ravel().astype(np.int32)
    totals = np.bincount(member, weights=weights, minlength=len(uniq))
    means = np.stack([np.bincount(member, weights=weights * points[:, d], minlength=len(uniq))
                      for d in range(4)], axis=1) / totals[:, None]
    return np.ascontiguousarray(means), totals, member


def fit(colors: np.ndarray, counts: np.ndarray, k: int, *, seed=0, tol: float = 1e-4,
        max_iter: int = 300, n_init: int = 3, color_space: str = "srgb", progress=None):
    """An RGBA palette of at most ``k`` entries for distinct colors and their counts.

    Returns (palette (K', 4) uint8, label of every color (N,) int32). With any fully transparent
    color, entry 0 is transparent black. Colors must be normalized (:func:`normalize`).

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.alpha import fit
    >>> colors = np.array([[0, 0, 0, 0], [250, 0, 0, 255], [240, 0, 0, 255], [0, 0, 250, 128]],
    ...                   np.uint8)
    >>> pal, labels = fit(colors, np.array([10, 5, 5, 3]), 3)
    >>> pal.tolist(), labels.tolist()
    ([[0, 0, 0, 0], [0, 0, 250, 128], [245, 0, 0, 255]], [0, 2, 2, 1])
    """
    rng = as_rng(seed)
    points = to_points(colors, color_space)
    weights = counts.astype(np.float64)
    has_clear = bool((colors[:, 3] == 0).any())
    fixed = np.zeros((1 if has_clear else 0, 4))
    free = k - len(fixed)
    n_visible = len(colors) - int(has_clear)
    if n_visible <= free:  # every color gets its own entry
        visible = colors[colors[:, 3] > 0]
        palette = np.concatenate([fixed.astype(np.uint8), visible])
        return palette, nearest(points, to_points(palette, color_space))
    work_points, work_weights, member = points, weights, None
    if len(colors) > REDUCE_MIN_COLORS:
        work_points, work_weights, member = _cells(colors, points, weights)
        if len(work_points) <= 4 * k:
            work_points, work_weights, member = points, weights, None
    n_trials = 2 + int(np.log(max(free, 1)))
    best = None
    for run in range(n_init):
        uniforms = rng.random((free, n_trials))
        chosen = _kr.kmeanspp(work_points, work_weights, fixed, free, uniforms)
        init = np.concatenate([fixed, work_points[chosen]])
        result = _lloyd(work_points, work_weights, init, len(fixed), tol=tol, max_iter=max_iter)
        if best is None or result[2] < best[2]:
            best = result
        if progress is not None and progress("k-means", (run + 1) / n_init):
            raise CancelledError("cancelled during k-means")
    best = _swaps(work_points, work_weights, best, len(fixed), tol=tol, max_iter=max_iter)
    centers, labels = best[0], best[1]
    if member is not None:
        centers, labels, *_ = _lloyd(points, weights, centers, len(fixed), tol=tol,
                                     max_iter=max_iter, labels=labels[member])
    # A cluster of mostly opaque pixels keeps alpha 255: an opaque region must not turn slightly
    # see-through because a few edge pixels share its entry. Lloyd then goes on with those
    # centers' alpha held (still a descent, on the constrained problem).
    solid = np.bincount(labels, weights=weights * (points[:, 3] == 255.0), minlength=len(centers))
    mass = np.bincount(labels, weights=weights, minlength=len(centers))
    opaque = solid > 0.5 * mass
    opaque[:len(fixed)] = False
    if opaque.any():
        state = _lloyd(points, weights, centers, len(fixed), tol=tol, max_iter=max_iter,
                       labels=labels, opaque=opaque)
        centers, labels = _swaps(points, weights, state, len(fixed), tol=tol, max_iter=max_iter,
                                 opaque=opaque)[:2]
    palette = to_colors(centers, color_space)
    palette = np.unique(palette, axis=0)  # rounding may merge entries
    if has_clear and not (palette == 0).all(axis=1).any():
        palette = np.concatenate([fixed.astype(np.uint8), palette])
    return palette, nearest(points, to_points(palette, color_space))


def order(palette: np.ndarray, labels: np.ndarray, weights: np.ndarray):
    """Drop unused entries; translucent entries first (a PNG ``tRNS`` chunk then stops early),
    each group by pixel count, descending (ties by color). Returns (palette, labels, counts)."""
    counts = np.bincount(labels, weights=weights, minlength=len(palette))
    used = np.flatnonzero(counts > 0)
    p = palette[used].astype(np.int64)
    key = (p[:, 0] << 24) | (p[:, 1] << 16) | (p[:, 2] << 8) | p[:, 3]
    opaque = palette[used, 3] == 255
    ordering = used[np.lexsort((key, -counts[used], opaque))]
    renumber = np.full(len(palette), -1, np.int32)
    renumber[ordering] = np.arange(len(ordering), dtype=np.int32)
    return palette[ordering], renumber[labels], counts[ordering].astype(np.int64)


def dither(rgba: np.ndarray, palette: np.ndarray, *, color_space: str = "srgb",
           strength: float = 1.0) -> np.ndarray:
    """Index map (H, W) of a normalized RGBA image onto an RGBA palette by error diffusion of
    premultiplied points (:func:`kmq.dither.diffuse`, its default adaptive method).

    Fully transparent pixels take the palette's transparent entry and neither receive nor pass
    on error, so transparency does not bleed into the picture. Values plus error are clipped to
    the premultiplied range of sRGB colors in ``color_space``.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.alpha import dither
    >>> px = np.zeros((4, 8, 4), np.uint8); px[:, :, :] = [128, 128, 128, 255]; px[0] = 0
    >>> pal = np.array([[0, 0, 0, 0], [0, 0, 0, 255], [255, 255, 255, 255]], np.uint8)
    >>> idx = dither(px, pal)
    >>> idx[0].tolist() == [0] * 8, sorted(set(idx[1:].ravel().tolist()))
    (True, [1, 2])
    """
    from kmq.colorspace import gamut_bounds
    from kmq.dither import diffuse

    height, width = rgba.shape[:2]
    points = to_points(rgba.reshape(-1, 4), color_space).reshape(height, width, 4)
    low, high = gamut_bounds(color_space)
    bounds = (np.append(np.minimum(low, 0.0), 0.0), np.append(np.maximum(high, 0.0), 255.0))
    clear = rgba[:, :, 3] == 0
    zero = np.flatnonzero(palette[:, 3] == 0)
    return diffuse(points, to_points(palette, color_space), strength=strength, bounds=bounds,
                   transparent=clear if len(zero) and clear.any() else None,
                   transparent_index=int(zero[0]) if len(zero) and clear.any() else None)


def sse(points: np.ndarray, weights: np.ndarray, palette: np.ndarray, labels: np.ndarray) -> float:
    """Weighted squared error of colors (as premultiplied sRGB points) against their entries."""
    pal_points = to_points(palette)
    return float(_kr.point_costs(points, weights, pal_points, labels).sum())


__all__ = ["dither", "fit", "histogram", "nearest", "normalize", "order", "to_colors", "to_points"]
