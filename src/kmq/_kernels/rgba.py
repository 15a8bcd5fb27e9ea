"""Weighted k-means kernels for four-channel points (premultiplied RGBA, see :mod:`kmq.alpha`).

Points are float64 (N, 4), weights float64 (N,), centers float64 (K, 4), labels int32 (N,). The
first ``n_fixed`` centers never move (the fully transparent entry). The assignment is a brute-force
scan of all K centers (skipped where Hamerly's bounds allow); each comes serial and parallel over
points (``*_parallel``, worth it on large inputs only: a parallel region costs more than the work on
small ones, and much more on a loaded machine). Every floating-point reduction runs serially in a
fixed order, so results are identical whatever the number of threads.
"""

from __future__ import annotations

import numpy as np

from kmq._config import jit, prange


@jit(inline="always")
def _d2(a, i, b, j):
    """Squared distance between row ``i`` of ``a`` and row ``j`` of ``b`` (four channels)."""
    e0 = a[i, 0] - b[j, 0]
    e1 = a[i, 1] - b[j, 1]
    e2 = a[i, 2] - b[j, 2]
    e3 = a[i, 3] - b[j, 3]
    return e0 * e0 + e1 * e1 + e2 * e2 + e3 * e3


def _nearest(points, centers, labels):
    """Index of the nearest center for every point, ties to the lower index (exact ``argmin``).

    Returns the number of labels that changed.
    """
    k = centers.shape[0]
    changed = 0
    for i in prange(points.shape[0]):
        best = 0
        best2 = np.inf
        for j in range(k):
            dist = _d2(points, i, centers, j)
            if dist < best2:
                best2 = dist
                best = j
        if labels[i] != best:
            labels[i] = best
            changed += 1
    return changed


@jit
def accumulate(points, weights, labels, k):
    """Per-cluster weighted sums of the points and of the weights (serial, fixed order)."""
    sums = np.zeros((k, 4), np.float64)
    totals = np.zeros(k, np.float64)
    for i in range(points.shape[0]):
        j = labels[i]
        w = weights[i]
        for c in range(4):
            sums[j, c] += w * points[i, c]
        totals[j] += w
    return sums, totals


@jit
def point_costs(points, weights, centers, labels):
    """``weight * squared distance to its center`` for every point."""
    out = np.empty(points.shape[0], np.float64)
    for i in range(points.shape[0]):
        out[i] = weights[i] * _d2(points, i, centers, labels[i])
    return out


@jit
def kmeanspp(points, weights, fixed, k, uniforms):
    """Greedy weighted k-means++: indices of ``k`` points chosen as centers, in addition to the
    ``fixed`` centers (F, 4) that are already there (F may be 0).

    ``uniforms`` (k, n_trials) in [0, 1): without fixed centers row 0's first value picks the
    first center with probability proportional to weight; every other choice samples
    ``n_trials`` candidates with probability proportional to ``weight * D(x)**2`` and keeps the
    one that lowers the potential most.
    """
    n = points.shape[0]
    n_trials = uniforms.shape[1]
    chosen = np.empty(k, np.int64)
    closest = np.full(n, np.inf)
    for f in range(fixed.shape[0]):
        for i in range(n):
            a = points[i, 0] - fixed[f, 0]
            b = points[i, 1] - fixed[f, 1]
            c = points[i, 2] - fixed[f, 2]
            d = points[i, 3] - fixed[f, 3]
            dist = a * a + b * b + c * c + d * d
            if dist < closest[i]:
                closest[i] = dist
    start = 0
    if fixed.shape[0] == 0:
        cum = np.cumsum(weights)
        chosen[0] = min(np.searchsorted(cum, (1.0 - uniforms[0, 0]) * cum[-1]), n - 1)
        for i in range(n):
            a = points[i, 0] - points[chosen[0], 0]
            b = points[i, 1] - points[chosen[0], 1]
            c = points[i, 2] - points[chosen[0], 2]
            d = points[i, 3] - points[chosen[0], 3]
            closest[i] = a * a + b * b + c * c + d * d
        start = 1
    trial = np.empty(n, np.float64)
    best_closest = np.empty(n, np.float64)
    for s in range(start, k):
        cum = np.cumsum(weights * closest)
        total = cum[-1]
        best_pot = np.inf
        best_cand = -1
        for t in range(n_trials):
            cand = min(np.searchsorted(cum, (1.0 - uniforms[s, t]) * total), n - 1)
            pot = 0.0
            for i in range(n):
                a = points[i, 0] - points[cand, 0]
                b = points[i, 1] - points[cand, 1]
                c = points[i, 2] - points[cand, 2]
                d = points[i, 3] - points[cand, 3]
                dist = a * a + b * b + c * c + d * d
                trial[i] = dist if dist < closest[i] else closest[i]
                pot += weights[i] * trial[i]
            if pot < best_pot:
                best_pot = pot
                best_cand = cand
                best_closest[:] = trial
        chosen[s] = best_cand
        closest[:] = best_closest
    return chosen


@jit
def half_min_distance(centers):
    """Half the distance from each center to its nearest other center (inf with one center)."""
    k = centers.shape[0]
    out = np.full(k, np.inf)
    for a in range(k):
        m = np.inf
        for b in range(k):
            if b != a:
                d = _d2(centers, a, centers, b)
                if d < m:
                    m = d
        out[a] = 0.5 * np.sqrt(m)
    return out


def _assign_bounded(points, centers, labels, upper, lower, drift, half_min):
    """Hamerly's assignment: move every point to its nearest center, skipping the points whose
    bounds prove that it stays.

    ``upper[i]`` bounds the distance to the point's own center from above and ``lower[i]`` the
    distance to every other center from below; both are first moved by the centers' ``drift``
    (how far each moved). A point that fails the test is compared with all K centers, exactly as
    :func:`nearest` does (ties to the lower index). Start with ``upper`` inf and ``lower`` 0 to
    search every point. Returns the number of labels that changed.
    """
    k = centers.shape[0]
    max_drift = 0.0
    for j in range(k):
        if drift[j] > max_drift:
            max_drift = drift[j]
    changed = 0
    for i in prange(points.shape[0]):
        a = labels[i]
        upper[i] += drift[a]
        lower[i] -= max_drift
        bound = max(half_min[a], lower[i])
        if upper[i] < bound:
            continue
        best = 0
        best2 = np.inf
        second2 = np.inf
        for j in range(k):
            dist = _d2(points, i, centers, j)
            if dist < best2:
                second2 = best2
                best2 = dist
                best = j
            elif dist < second2:
                second2 = dist
        upper[i] = np.sqrt(best2)
        lower[i] = np.sqrt(second2)
        if best != a:
            labels[i] = best
            changed += 1
    return changed


nearest = jit(_nearest)
nearest_parallel = jit(parallel=True)(_nearest)
assign_bounded = jit(_assign_bounded)
assign_bounded_parallel = jit(parallel=True)(_assign_bounded)
