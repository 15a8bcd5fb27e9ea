"""Weighted k-means kernels: k-means++ seeding, Hamerly-bounded assignment, accumulation.

Points are float64 (N, 3), weights float64 (N,), centers float64 (K, 3), labels int32 (N,).
Parallel loops only write per-point results; every floating-point reduction runs serially in a
fixed order, so results are identical whatever the number of threads.
"""

from __future__ import annotations

import numpy as np

from kmq._config import jit, prange
from kmq._kernels.radix import counts_to_starts


@jit(inline="always")
def _d2(points, i, centers, j):
    a = points[i, 0] - centers[j, 0]
    b = points[i, 1] - centers[j, 1]
    c = points[i, 2] - centers[j, 2]
    return a * a + b * b + c * c


#: Rows at least this long are sorted by :func:`_radix_argsort`; shorter ones by an insertion
#: sort. Both are stable: the same permutation.
RADIX_MIN = 128


@jit
def _radix_argsort(keys, out, tmp, counts):
    """Stable argsort of non-negative float64 ``keys`` (no -0.0 or NaN) into ``out`` (int32, as
    long as ``keys``); ``tmp`` is scratch of the same shape and ``counts`` (int64) of length 256.
    Ties keep index order, as ``np.argsort(kind="mergesort")`` does: the permutation is the
    same, without the comparisons' mispredicted branches. A least significant digit radix sort
    on the high 32 bits of the keys' bit patterns (which order like the values) puts them in
    order up to their last 20 bits of mantissa; an insertion pass on the values then settles
    the few that share those bits (stable too)."""
    k = keys.shape[0]
    bits = keys.view(np.uint64)
    src = out
    dst = tmp
    for t in range(k):
        src[t] = t
    for shift in range(32, 64, 8):
        counts[:] = 0
        for t in range(k):
            counts[(bits[src[t]] >> shift) & 255] += 1
        if counts[(bits[src[0]] >> shift) & 255] == k:
            continue  # one digit for all: nothing to move
        counts_to_starts(counts)
        for t in range(k):
            j = src[t]
            b = (bits[j] >> shift) & 255
            dst[counts[b]] = j
            counts[b] += 1
        src, dst = dst, src
    if src is tmp:
        out[:] = tmp
    _insertion_pass(keys, out)


@jit(inline="always")
def _insertion_pass(keys, out):
    """Sort the permutation ``out`` by ``keys[out]`` in place, by insertion (stable: ties keep
    their order in ``out``); about one pass when it is nearly sorted already."""
    for t in range(1, out.shape[0]):
        j = out[t]
        v = keys[j]
        u = t - 1
        while u >= 0 and keys[out[u]] > v:
            out[u + 1] = out[u]
            u -= 1
        out[u + 1] = j


@jit(inline="always")
def _insertion_argsort(keys, out):
    """``out[:] = np.argsort(keys, kind="stable")`` by insertion sort, for short rows (NumPy's
    merge sort costs seconds of compiling for no gain at these lengths)."""
    for t in range(keys.shape[0]):
        out[t] = t
    _insertion_pass(keys, out)


@jit
def _sort_row(keys, out, tmp, counts):
    """``out[:] = np.argsort(keys, kind="mergesort")``, by radix sort for long rows."""
    if keys.shape[0] >= RADIX_MIN:
        _radix_argsort(keys, out, tmp, counts)
    else:
        _insertion_argsort(keys, out)


@jit
def center_geometry(centers, order):
    """Squared center-center distances and half the distance from each center to its nearest
    other center; sorts each row of ``order`` (K, K) in place by increasing distance (see
    :func:`ranked_geometry`)."""
    return ranked_geometry(centers, order, np.empty((centers.shape[0], 0), np.float64))


@jit
def ranked_geometry(centers, order, ranked):
    """:func:`center_geometry`, which also leaves in ``ranked`` (K, K) each row's squared
    distances in the order of ``order`` (``ranked[a, t] = cc2[a, order[a, t]]``): the sort's own
    working values, so that a search walking a row reads them one after the other (less CPU
    than reading ``cc2``, see benchmarks/README.md). A (K, 0) ``ranked`` asks for none.

    ``order`` keeps its previous content between iterations: centers move little, so most rows
    are still sorted (one pass over the row's distances in its order checks that) and the others
    nearly so, and insertion sort costs about one pass. A row that needs many more shifts than
    that (centers that moved far) is sorted afresh instead (stable: ties in index order), as
    :func:`new_order` sorts.
    """
    k = centers.shape[0]
    cc2 = np.empty((k, k), np.float64)
    half_min = np.empty(k, np.float64)
    budget = 8 * k
    tmp = np.empty(k, np.int32)
    counts = np.empty(256, np.int64)
    keep = ranked.shape[1] == k
    buffer = np.empty(k, np.float64)
    x = centers[:, 0].copy()  # one contiguous array per axis: the row's distances vectorize
    y = centers[:, 1].copy()
    z = centers[:, 2].copy()
    for a in range(k):
        dist = cc2[a]
        for j in range(k):
            dx = x[j] - x[a]
            dy = y[j] - y[a]
            dz = z[j] - z[a]
            dist[j] = dx * dx + dy * dy + dz * dz
        m = np.inf
        for j in range(k):
            if j != a and dist[j] < m:
                m = dist[j]
        half_min[a] = 0.5 * np.sqrt(m)
        row = order[a]
        vals = ranked[a] if keep else buffer  # the row's distances, in its current order
        still_sorted = True
        for t in range(k):
            vals[t] = dist[row[t]]
            if t and vals[t] < vals[t - 1]:
                still_sorted = False
        if still_sorted:
            continue
        shifts = 0
        for t in range(1, k):
            dj = vals[t]
            j = row[t]
            u = t - 1
            while u >= 0 and vals[u] > dj:
                vals[u + 1] = vals[u]
                row[u + 1] = row[u]
                u -= 1
            vals[u + 1] = dj
            row[u + 1] = j
            shifts += t - 1 - u
            if shifts > budget:  # a fresh sort
                _sort_row(dist, row, tmp, counts)
                for q in range(k):
                    vals[q] = dist[row[q]]
                break
    return cc2, half_min


@jit
def new_order(centers):
    """Each center's neighbours by increasing distance (the start for :func:`center_geometry`);
    ties keep index order (a stable sort)."""
    k = centers.shape[0]
    order = np.empty((k, k), np.int32)
    row = np.empty(k, np.float64)
    tmp = np.empty(k, np.int32)
    counts = np.empty(256, np.int64)
    for a in range(k):
        for b in range(k):
            row[b] = _d2(centers, a, centers, b)
        _sort_row(row, order[a], tmp, counts)
    return order


@jit
def grid_labels(points, low, step, cells, best):
    """``best[cell of each point]`` in a ``cells``-cubed grid from ``low`` with ``step``."""
    n = points.shape[0]
    out = np.empty(n, np.int32)
    for i in range(n):
        key = 0
        for c in range(3):
            q = np.int64((points[i, c] - low[c]) / step[c])
            q = min(max(q, 0), cells - 1)
            key = key * cells + q
        out[i] = best[key]
    return out


@jit(parallel=True)
def assign(points, centers, cc2, order, half_min, labels, upper, lower, drift, max_drift,
           second_drift, argmax_drift):
    """Move every point to its nearest center, skipping points whose bounds prove it stays.

    ``upper[i]`` bounds the distance to the point's own center from above and ``lower[i]`` the
    distance to any other center from below (Hamerly). They are first moved by the centers' drift.
    A point that must be checked scans the centers in order of distance from its current center
    and stops once a center is more than twice its distance away (triangle inequality). Ties go to
    the lower index, and a point is skipped only when its bounds leave no other center as near
    (no tie either), so the result equals a brute-force ``argmin`` exactly. Returns the number
    of points whose label changed.
    """
    k = centers.shape[0]
    changed = 0
    for i in prange(points.shape[0]):
        a = labels[i]
        upper[i] += drift[a]
        lower[i] -= second_drift if a == argmax_drift else max_drift
        m = max(half_min[a], lower[i])
        if upper[i] < m:
            continue
        u2 = _d2(points, i, centers, a)
        u = np.sqrt(u2)
        upper[i] = u
        if u < m:
            continue
        limit2 = 4.0 * u2
        best = a
        best2 = u2
        second2 = np.inf
        unscanned = np.inf
        for t in range(k):
            j = order[a, t]
            if j == a:
                continue
            if cc2[a, j] > limit2:
                unscanned = np.sqrt(cc2[a, j]) - u
                break
            dj = _d2(points, i, centers, j)
            if dj < best2 or (dj == best2 and j < best):
                second2 = best2
                best = j
                best2 = dj
            elif dj < second2:
                second2 = dj
        upper[i] = np.sqrt(best2)
        lower[i] = min(np.sqrt(second2), unscanned)
        if best != a:
            labels[i] = best
            changed += 1
    return changed


#: How many of each center's nearest centers :func:`near_drift` looks at.
NEAR_CENTERS = 16


@jit
def near_drift(order, ranked, drift, count, stale):
    """For each center ``a``: the largest ``drift`` among its first ``count`` other centers in
    ``order`` and a lower bound on the distance to every center beyond them (inf when there is
    none): the ``near_drift`` and ``near_far`` arguments of :func:`assign_tracked`.

    ``order``/``ranked`` may be sorted for the centers as they stood a while ago (see
    :func:`stale_half_min`): the bound is the distance then less ``stale[a]``. Freshly sorted
    (``stale`` 0), it is the distance to the nearest center beyond the ``count`` nearest."""
    k = order.shape[0]
    most = np.zeros(k, np.float64)
    beyond = np.full(k, np.inf)
    for a in range(k):
        seen = 0
        m = 0.0
        for t in range(k):
            j = order[a, t]
            if j == a:
                continue
            if seen == count:
                beyond[a] = np.sqrt(ranked[a, t]) - stale[a]
                break
            if drift[j] > m:
                m = drift[j]
            seen += 1
        most[a] = m
    return most, beyond


@jit
def stale_half_min(centers, order, ranked, stale, half_min):
    """Half the distance from each center to its nearest other one, exactly, into ``half_min``,
    from rows sorted for the centers as they stood a while ago: ``ranked`` holds the squared
    distances then, in the order of ``order``, and ``stale[a]`` bounds how much nearer than
    that any center can now be to center ``a`` (its own move plus the largest other, and a
    hair for rounding). A row is walked only until the distances then, less ``stale[a]``,
    exceed the nearest found: usually a center or two."""
    k = centers.shape[0]
    for a in range(k):
        best2 = np.inf
        best = np.inf
        for t in range(k):
            j = order[a, t]
            if j == a:
                continue
            if np.sqrt(ranked[a, t]) - stale[a] > best:
                break
            d2 = _d2(centers, a, centers, j)
            if d2 < best2:
                best2 = d2
                best = np.sqrt(d2)
        half_min[a] = 0.5 * best


@jit(inline="always")
def _rank(dj, j, best, best2, runner, runner2, third2):
    """The three nearest squared distances so far after seeing center ``j`` at ``dj``: returns
    (best, best2, runner, runner2, third2); a tie for the nearest goes to the lower index."""
    if dj < best2 or (dj == best2 and j < best):
        return j, dj, best, best2, runner2
    if dj < runner2:
        return best, best2, j, dj, runner2
    if dj < third2:
        return best, best2, runner, runner2, dj
    return best, best2, runner, runner2, third2


@jit(inline="always")
def _nearer_of(points, i, centers, a, u2, s):
    """Point ``i``'s own center ``a`` (at squared distance ``u2``) and center ``s`` ranked:
    (nearest, its squared distance, the other or -1 when ``s == a``, its squared distance);
    a tie goes to the lower index."""
    if s == a:
        return a, u2, -1, np.inf
    ds2 = _d2(points, i, centers, s)
    if ds2 < u2 or (ds2 == u2 and s < a):
        return s, ds2, a, u2
    return a, u2, s, ds2


#: How far beyond twice its own distance a full search in :func:`assign_tracked` looks, in units
#: of the half distance from its center to the nearest other one: centers found in that margin
#: are ruled out with room to spare, so the point's bounds survive a few iterations of drift.
SCAN_MARGIN = 0.5


@jit(parallel=True)
def assign_tracked(points, centers, ranked, order, half_min, labels, upper, second, lower_second,
                   lower_rest, drift, rest_drift, second_drift, argmax_drift, far, near_drift,
                   near_far, jump_order, jump_d2, stale):
    """Move every point to its nearest center, with a separate bound for its runner-up.

    Like :func:`assign` (the result is the same: ties go to the lower index among the centers a
    search compares), with three bounds per point instead of two: ``upper[i]`` on the distance
    to its own center, ``lower_second[i]`` on the distance to center ``second[i]`` (the runner-up
    when it was last searched) and ``lower_rest[i]`` on the distance to every other center. Most
    points near a boundary lie between just two centers, so only those two centers' drift wears
    their bounds down; the rest bound loses the largest drift of any other center
    (``rest_drift``, or ``second_drift`` for the points of center ``argmax_drift``).

    ``far[a]``, when finite, is a lower bound on the distance from center ``a`` to any center
    whose drift ``rest_drift`` leaves out (centers that jumped, as in a swap): the rest bound of
    a point of ``a`` is then also at least ``far[a] - upper[i]``.

    A few centers drifting far wear every rest bound down, so a second rest bound is kept in
    view (:func:`near_drift`): the rest bound less the largest drift among the centers nearest
    to ``a`` (``near_drift[a]``), or the distance from ``a`` to the centers beyond those
    (``near_far[a]``) less ``upper[i]``, whichever is smaller. The larger rest bound is used.

    A point whose own bounds fail gets its distance to ``second[i]`` checked first; only when
    the rest bound fails too is it searched: the centers in order of distance from the nearer
    of its center and ``second[i]``, until one is more than twice the point's distance to that
    one plus a margin away (``SCAN_MARGIN``). (Around its own center, a point whose center a
    swap moved far away would compare most centers.) ``ranked`` holds the squared distances
    between centers in the order of ``order`` (:func:`ranked_geometry`), measured when the rows
    were sorted: since then no center can have come nearer to center ``b`` than by ``stale[b]``
    (0 for rows sorted for ``centers``; see :func:`stale_half_min`), so the search goes that
    much farther along the row. Returns the number of points whose label changed.

    ``jump_order``/``jump_d2`` (K, J), when J > 0, list the centers that jumped (those ``far``
    is about) by increasing squared distance from each center (:func:`jump_lists`), and say that
    the others have not moved by more than ``rest_drift`` since the bounds were made. A point
    whose bounds fail then first compares its own center, its runner-up (unless that jumped)
    and the jumped centers near the nearer of the two only: the rest bound still holds for the
    other centers, so when the nearest found is within it, the search is complete.
    """
    k = centers.shape[0]
    changed = 0
    for i in prange(points.shape[0]):
        a = labels[i]
        s = second[i]
        u = upper[i] + drift[a]
        ls = lower_second[i] - drift[s]
        kept = lower_rest[i] - (second_drift if a == argmax_drift else rest_drift)
        lr = kept
        if far[a] - u < lr:
            lr = far[a] - u
        near = min(lower_rest[i] - near_drift[a], near_far[a] - u)
        if near > lr:
            lr = near
        lower_second[i] = ls
        lower_rest[i] = lr
        hm = half_min[a]
        m = max(hm, min(ls, lr))
        if u <= m:
            upper[i] = u
            continue
        u2 = _d2(points, i, centers, a)
        u = np.sqrt(u2)
        upper[i] = u
        if u <= m:
            continue
        if u <= max(hm, lr) and s != a:
            # no center but a and s can be the nearest
            ds = np.sqrt(_d2(points, i, centers, s))
            lower_second[i] = ds
            if u < ds or (u == ds and a < s):
                continue
            labels[i] = s
            second[i] = a
            upper[i] = ds
            lower_second[i] = u
            changed += 1
            continue
        # a and s ranked: both searches below look around the nearer of them, b, as far as
        # twice the point's distance to it and a margin
        b, b2, r, r2 = _nearer_of(points, i, centers, a, u2, s)
        db = np.sqrt(b2)
        lim = 2.0 * db + SCAN_MARGIN * half_min[b]
        limit2 = lim * lim
        reach = lim + stale[b]  # along the row: the distances it holds are as they stood
        reach2 = reach * reach
        if jump_order.shape[1] > 0:
            # a, s and the jumped centers near b; every other center is at least ``kept`` away
            best, best2, runner, runner2 = b, b2, r, r2
            third2 = np.inf
            unscanned = np.inf
            for t in range(jump_order.shape[1]):
                if jump_d2[b, t] > limit2:
                    unscanned = np.sqrt(jump_d2[b, t]) - db
                    break
                j = jump_order[b, t]
                if j == a or j == s:
                    continue
                best, best2, runner, runner2, third2 = _rank(
                    _d2(points, i, centers, j), j, best, best2, runner, runner2, third2)
            nearest = np.sqrt(best2)
            kept = max(kept, near)
            if nearest <= kept:
                upper[i] = nearest
                if runner >= 0:
                    second[i] = runner
                    lower_second[i] = np.sqrt(runner2)
                else:
                    second[i] = best
                    lower_second[i] = np.inf
                lower_rest[i] = min(np.sqrt(third2), kept, unscanned)
                if best != a:
                    labels[i] = best
                    changed += 1
                continue
        # the full search, around b: a point whose center jumped away (a swap's donor) is far
        # from it, and a scan around it would reach most centers
        best, best2, runner, runner2 = b, b2, r, r2
        third2 = np.inf
        unscanned = np.inf
        first_out = -1
        for t in range(k):
            j = order[b, t]
            if j == b:
                continue
            if ranked[b, t] > reach2:
                unscanned = np.sqrt(ranked[b, t]) - stale[b] - db
                first_out = j
                break
            if j == a or j == s:  # ranked above
                continue
            best, best2, runner, runner2, third2 = _rank(
                _d2(points, i, centers, j), j, best, best2, runner, runner2, third2)
        upper[i] = np.sqrt(best2)
        if runner >= 0:
            second[i] = runner
            lower_second[i] = np.sqrt(runner2)
        elif first_out >= 0:
            second[i] = first_out
            lower_second[i] = unscanned
        else:  # a single center
            second[i] = best
            lower_second[i] = np.inf
        lower_rest[i] = min(np.sqrt(third2), unscanned)
        if best != a:
            labels[i] = best
            changed += 1
    return changed


@jit
def _move_sums(points, weights, labels, previous, sums, totals):
    """Take the points whose label changed since ``previous`` out of their old cluster's sums
    and into their new one's; ``previous`` becomes ``labels``."""
    for i in range(labels.shape[0]):
        b = labels[i]
        a = previous[i]
        if a != b:
            w = weights[i]
            for c in range(3):
                sums[a, c] -= w * points[i, c]
                sums[b, c] += w * points[i, c]
            totals[a] -= w
            totals[b] += w
            previous[i] = b


@jit
def all_integral(points, weights):
    """Whether every coordinate and weight is a whole number and the sums stay below 2**53, so
    that float64 sums of ``weight * coordinate`` are exact whatever their order (8-bit sRGB
    colors and pixel counts: the exact histogram in sRGB)."""
    total = 0.0
    largest = 0.0
    for i in range(points.shape[0]):
        w = weights[i]
        if w != np.floor(w):
            return False
        total += abs(w)
        for c in range(3):
            x = points[i, c]
            if x != np.floor(x):
                return False
            largest = max(largest, abs(x))
    return total * max(largest, 1.0) < 2.0 ** 53


@jit
def accumulate(points, weights, labels, k):
    """Per-cluster weighted sums of the points and of the weights (serial, fixed order)."""
    sums = np.zeros((k, 3), np.float64)
    totals = np.zeros(k, np.float64)
    for i in range(points.shape[0]):
        j = labels[i]
        w = weights[i]
        sums[j, 0] += w * points[i, 0]
        sums[j, 1] += w * points[i, 1]
        sums[j, 2] += w * points[i, 2]
        totals[j] += w
    return sums, totals


@jit
def weighted_sse(points, weights, centers, labels):
    """Sum over points of ``weight * squared distance to its center`` (serial, fixed order)."""
    total = 0.0
    for i in range(points.shape[0]):
        total += weights[i] * _d2(points, i, centers, labels[i])
    return total


@jit
def _exact_potential(points, weights, closest, cand):
    """``sum(weights * min(closest, |points - points[cand]|^2))``, in index order."""
    pot = 0.0
    for i in range(points.shape[0]):
        d = _d2(points, i, points, cand)
        pot += weights[i] * (d if d < closest[i] else closest[i])
    return pot


@jit
def _kmeanspp_plain(points, weights, k, uniforms):
    """:func:`kmeanspp` by the textbook loop: every candidate scored by a pass over all points
    (faster than the lists for few centers)."""
    n = points.shape[0]
    n_trials = uniforms.shape[1]
    chosen = np.empty(k, np.int64)
    cum = np.cumsum(weights)
    first = np.searchsorted(cum, (1.0 - uniforms[0, 0]) * cum[-1])
    chosen[0] = min(first, n - 1)
    closest = np.empty(n, np.float64)
    for i in range(n):
        closest[i] = _d2(points, i, points, chosen[0])
    trial = np.empty(n, np.float64)
    best_closest = np.empty(n, np.float64)
    for c in range(1, k):
        cum = np.cumsum(weights * closest)
        total = cum[-1]
        best_pot = np.inf
        best_cand = -1
        for t in range(n_trials):
            cand = min(np.searchsorted(cum, (1.0 - uniforms[c, t]) * total), n - 1)
            pot = 0.0
            for i in range(n):
                d = _d2(points, i, points, cand)
                trial[i] = d if d < closest[i] else closest[i]
                pot += weights[i] * trial[i]
            if pot < best_pot:
                best_pot = pot
                best_cand = cand
                best_closest[:] = trial
        chosen[c] = best_cand
        closest[:] = best_closest
    return chosen


#: :func:`kmeanspp` seeds up to this many centers by the textbook loop (``_kmeanspp_plain``):
#: with few centers its lists would hold most of the points anyway.
PLAIN_SEEDING_MAX_K = 32

#: :func:`kmeanspp` compares two candidates' potentials exactly (in index order) when its fast
#: estimates lie within this fraction of the current potential of each other; the estimates'
#: rounding errors are orders of magnitude below it.
POTENTIAL_TIE = 1e-8


@jit(inline="always")
def _out_of_reach(d2, r2):
    """Whether a candidate at squared distance ``d2`` from a chosen center takes none of the
    points of that center, all within squared distance ``r2`` of it (``d2 >= 4 r2``, with a
    margin for rounding)."""
    return d2 >= 4.0 * r2 * (1.0 + 1e-9) + 1e-9


@jit
def kmeanspp(points, weights, k, uniforms):
    """Greedy weighted k-means++ seeding; returns the indices of the ``k`` chosen points.

    ``uniforms`` (k, n_trials) holds draws in [0, 1): row 0's first value picks the first center
    with probability proportional to weight; each later row's values sample ``n_trials``
    candidates with probability proportional to ``weight * D(x)**2`` and the candidate that
    lowers the potential most is kept (as scikit-learn does). Points must be distinct and at
    least ``k``.

    The choices are those of the textbook loop, which scores every candidate by a pass over all
    points, but the work is far less: the points are kept in lists per nearest chosen center,
    with each list's largest squared distance ``R2``; a candidate at distance ``D`` from a
    center with ``D >= 2 sqrt(R2)`` (plus a safety margin) can take none of its points (triangle
    inequality), so only the lists of nearby centers are visited, and a candidate's potential
    is the current one minus its gains. Candidates whose potentials come out within
    ``POTENTIAL_TIE`` of each other are compared on potentials summed in index order, as the
    textbook loop sums them; the distances, and so the sampling sums, are the same numbers.
    Up to ``PLAIN_SEEDING_MAX_K`` centers the textbook loop runs.
    """
    if k <= PLAIN_SEEDING_MAX_K:
        return _kmeanspp_plain(points, weights, k, uniforms)
    n = points.shape[0]
    n_trials = uniforms.shape[1]
    chosen = np.empty(k, np.int64)
    cum = np.empty(n, np.float64)
    acc = 0.0
    for i in range(n):
        acc += weights[i]
        cum[i] = acc
    first = np.searchsorted(cum, (1.0 - uniforms[0, 0]) * cum[-1])
    chosen[0] = min(first, n - 1)
    closest = np.empty(n, np.float64)
    # points in doubly linked lists per nearest chosen center (head, nxt, prv), and each
    # list's largest squared distance to its center
    head = np.full(k, -1, np.int64)
    nxt = np.empty(n, np.int64)
    prv = np.empty(n, np.int64)
    r2 = np.zeros(k, np.float64)
    cpts = np.empty((k, 3), np.float64)
    for c in range(3):
        cpts[0, c] = points[chosen[0], c]
    for i in range(n):
        d = _d2(points, i, points, chosen[0])
        closest[i] = d
        if d > r2[0]:
            r2[0] = d
        nxt[i] = i + 1 if i + 1 < n else -1
        prv[i] = i - 1
    head[0] = 0
    for c in range(1, k):
        acc = 0.0
        for i in range(n):
            acc += weights[i] * closest[i]
            cum[i] = acc
        total = cum[-1]
        tie = POTENTIAL_TIE * total
        best_cand = -1
        best_pot = np.inf
        best_exact = np.nan
        for t in range(n_trials):
            cand = min(np.searchsorted(cum, (1.0 - uniforms[c, t]) * total), n - 1)
            if cand == best_cand:
                continue  # the same potential: the first stays
            gain = 0.0
            for j in range(c):
                dj = _d2(cpts, j, points, cand)
                if _out_of_reach(dj, r2[j]):
                    continue
                i = head[j]
                while i >= 0:
                    d = _d2(points, i, points, cand)
                    if d < closest[i]:
                        gain += weights[i] * (closest[i] - d)
                    i = nxt[i]
            pot = total - gain
            exact = np.nan
            if best_cand < 0 or pot < best_pot - tie:
                better = True
            elif pot > best_pot + tie:
                better = False
            else:  # too close to call on the estimates
                if np.isnan(best_exact):
                    # int64 both: one compiled specialization, not one for a literal too
                    best_exact = _exact_potential(points, weights, closest,
                                                  np.int64(best_cand))
                exact = _exact_potential(points, weights, closest, np.int64(cand))
                better = exact < best_exact
            if better:
                best_cand = cand
                best_pot = pot
                best_exact = exact
        chosen[c] = best_cand
        for q in range(3):
            cpts[c, q] = points[best_cand, q]
        # move the points the new center takes into its list
        for j in range(c):
            dj = _d2(cpts, j, points, best_cand)
            if _out_of_reach(dj, r2[j]):
                continue
            rest = 0.0
            i = head[j]
            while i >= 0:
                after = nxt[i]
                d = _d2(points, i, points, best_cand)
                if d < closest[i]:
                    closest[i] = d
                    if d > r2[c]:
                        r2[c] = d
                    if prv[i] >= 0:
                        nxt[prv[i]] = after
                    else:
                        head[j] = after
                    if after >= 0:
                        prv[after] = prv[i]
                    nxt[i] = head[c]
                    prv[i] = -1
                    if head[c] >= 0:
                        prv[head[c]] = i
                    head[c] = i
                elif closest[i] > rest:
                    rest = closest[i]
                i = after
            r2[j] = rest
    return chosen


@jit(inline="always")
def _cell(colors, i, shift, bits):
    return ((np.int64(colors[i, 0]) >> shift) << (2 * bits)) | (
        (np.int64(colors[i, 1]) >> shift) << bits) | (np.int64(colors[i, 2]) >> shift)


@jit(inline="always")
def _popcount(x):
    """Set bits of a uint64 (SWAR; LLVM emits one instruction where the CPU has it)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@jit
def coarse_bins(colors, points, weights, shift):
    """Group colors into sRGB cubes of side ``2**shift``: each occupied cube's weighted mean of
    ``points`` (the colors in the working space) and total weight, in cube order, and every
    color's cube index. The occupied cubes are bits of a bitmap (256 KB for cubes of side 2,
    where a slot per cube would take 8 MB); a cube's index is the number of occupied cubes
    before it, from per-word prefix counts. Sums are kept per occupied cube."""
    bits = 8 - shift
    words = max(1, (1 << (3 * bits)) >> 6)
    occupied = np.zeros(words, np.uint64)
    n = colors.shape[0]
    for i in range(n):
        key = _cell(colors, i, shift, bits)
        occupied[key >> 6] |= np.uint64(1) << np.uint64(key & 63)
    before = np.empty(words, np.int64)  # occupied cubes in the words before each
    m = 0
    for q in range(words):
        before[q] = m
        m += _popcount(occupied[q])
    totals = np.zeros(m, np.float64)
    sums = np.zeros((m, 3), np.float64)
    member = np.empty(n, np.int32)
    for i in range(n):
        key = _cell(colors, i, shift, bits)
        below = (np.uint64(1) << np.uint64(key & 63)) - np.uint64(1)
        s = before[key >> 6] + _popcount(occupied[key >> 6] & below)
        member[i] = s
        w = weights[i]
        totals[s] += w
        sums[s, 0] += w * points[i, 0]
        sums[s, 1] += w * points[i, 1]
        sums[s, 2] += w * points[i, 2]
    for s in range(m):
        for c in range(3):
            sums[s, c] /= totals[s]
    return sums, totals, member


#: Absorbs the rounding in a distance bound before it rules a point out (colors are 0..255).
BOUND_SLACK = 1e-6


@jit
def hartigan_pass(points, weights, sums, totals, labels, cc2, order, lower, wear):
    """One pass of Hartigan's single-point moves; returns (points moved, objective decrease,
    the farthest any center moved during the pass).

    A color of weight ``w`` leaves its cluster ``a`` for ``b`` when that lowers the objective:
    ``W_b w / (W_b + w) |x - c_b|^2 < W_a w / (W_a - w) |x - c_a|^2``; both means are updated
    at once. Candidates are the centers near ``a`` (``cc2``/``order`` computed at the start of
    the pass), within the radius where the move can pay given the lightest cluster's weight and
    how far centers have moved since (none farther can). Every move lowers the objective, so the
    pass only improves on Lloyd's fixed point. ``sums``/``totals`` are updated.

    ``lower[i] - wear`` is a lower bound on the distance from color ``i`` to every center but
    its own at the start of the pass (0 or less: none). A color whose bound, less how far the
    centers have moved since, puts every other center beyond paying is skipped without a
    search; the colors searched get a fresh bound. Pass ``wear`` plus the distance this pass
    returns to the next pass.
    """
    n = points.shape[0]
    k = sums.shape[0]
    centers = np.empty((k, 3), np.float64)
    for j in range(k):
        for c in range(3):
            centers[j, c] = sums[j, c] / totals[j]
    moved = 0
    gain = 0.0
    start = centers.copy()  # where ``cc2`` was measured
    shifted = 0.0  # the farthest any center has moved since
    smallest = np.inf  # no cluster weighs less, now or later in the pass (updated on moves)
    for j in range(k):
        smallest = min(smallest, totals[j])
    for i in range(n):
        a = labels[i]
        w = weights[i]
        wa = totals[a]
        if wa <= w:
            continue
        da2 = _d2(points, i, centers, a)
        remove = wa * w / (wa - w) * da2
        if remove <= 0.0:
            continue
        floor = smallest * w / (smallest + w)  # no cluster's factor is below, now or later
        gap = lower[i] - wear - shifted - BOUND_SLACK
        if gap > 0.0 and floor * gap * gap >= remove:
            continue
        da = np.sqrt(da2)
        # a move to b pays only if W_b w / (W_b + w) |x - c_b|^2 < remove, where the factor is
        # at least ``floor``; c_a and c_b are within ``shifted`` of where ``cc2`` saw them:
        # centers farther than ``reach`` from c_a cannot pay
        reach = np.sqrt(remove / floor) + da + 2.0 * shifted
        reach2 = reach * reach
        best = -1
        best_add = remove
        near2 = np.inf  # the nearest other center searched
        beyond = np.inf  # from the start of ``order[a]`` beyond ``reach``: a bound, as it stood
        for t in range(k):
            b = order[a, t]
            if b == a:
                continue
            if cc2[a, b] > reach2:
                beyond = np.sqrt(cc2[a, b]) - da - 2.0 * shifted
                break
            db2 = _d2(points, i, centers, b)
            if db2 < near2:
                near2 = db2
            wb = totals[b]
            add = wb * w / (wb + w) * db2
            if add < best_add:
                best_add = add
                best = b
        if best >= 0 and remove - best_add > 1e-9 * remove:
            b = best
            for c in range(3):
                sums[a, c] -= w * points[i, c]
                sums[b, c] += w * points[i, c]
            totals[a] -= w
            totals[b] += w
            smallest = min(smallest, totals[a])
            for c in range(3):
                centers[a, c] = sums[a, c] / totals[a]
                centers[b, c] = sums[b, c] / totals[b]
            shifted = max(shifted, np.sqrt(_d2(centers, a, start, a)),
                          np.sqrt(_d2(centers, b, start, b)))
            labels[i] = b
            lower[i] = 0.0  # its old center is now a rival: no bound
            moved += 1
            gain += remove - best_add
        else:
            # every other center is at least this far now; centers move at most ``shifted``
            # from the pass start, so it holds for them as they stood then, less ``shifted``
            lower[i] = min(np.sqrt(near2), beyond) - shifted + wear
    return moved, gain, shifted


@jit(parallel=True)
def own_and_second(points, centers, labels, cc2, order, own, second, runner, rest):
    """Squared distance of every point to its own center and to the nearest other one: the
    other centers in order of distance from its own, until one is too far to be nearer than the
    best found (``d(x, j) >= d(a, j) - d(x, a)``).

    ``runner``/``rest`` (n,), when not empty, are bounds of :func:`assign_tracked` for
    ``centers``: a point's likely runner-up and a lower bound on its distance to every center
    but its own and that one. A runner-up nearer than that bound is the nearest other center,
    with no search."""
    n = points.shape[0]
    k = centers.shape[0]
    hinted = runner.shape[0] == n
    for i in prange(n):
        a = labels[i]
        u2 = _d2(points, i, centers, a)
        own[i] = u2
        u = np.sqrt(u2)
        best2 = np.inf
        limit2 = np.inf
        if hinted and runner[i] != a:
            best2 = _d2(points, i, centers, runner[i])
            if np.sqrt(best2) + BOUND_SLACK <= rest[i]:
                second[i] = best2
                continue
            reach = u + np.sqrt(best2)  # the search need only look this far
            limit2 = reach * reach
        for t in range(k):
            j = order[a, t]
            if j == a:
                continue
            if cc2[a, j] > limit2:
                break
            d2 = _d2(points, i, centers, j)
            if d2 < best2:
                best2 = d2
                reach = u + np.sqrt(d2)
                limit2 = reach * reach
        second[i] = best2


@jit
def cluster_costs(points, weights, centers, labels, cc2, order, runner, rest):
    """Per cluster: its share of the objective along each axis (K, 3), and its utility (how much
    the objective would grow if its center were deleted and its points went to their
    second-nearest center). A cluster's share of the objective is the sum of its row.
    ``runner``/``rest``: as :func:`own_and_second` takes them (or empty)."""
    n = points.shape[0]
    k = centers.shape[0]
    own = np.empty(n, np.float64)
    second = np.empty(n, np.float64)
    own_and_second(points, centers, labels, cc2, order, own, second, runner, rest)
    axis_sse = np.zeros((k, 3), np.float64)
    utility = np.zeros(k, np.float64)
    for i in range(n):
        a = labels[i]
        w = weights[i]
        for c in range(3):
            e = points[i, c] - centers[a, c]
            axis_sse[a, c] += w * e * e
        utility[a] += w * (second[i] - own[i])
    return axis_sse, utility


#: :func:`lloyd_steps` re-sorts each center's neighbours once a center has moved farther than
#: this fraction of the mean half distance from a center to its nearest other one since they
#: were last sorted; until then the searches allow for the moves (see :func:`stale_half_min`).
STALE_FRACTION = 1.0

#: Why :func:`lloyd_steps` returned.
PAUSED, CONVERGED, GAVE_UP, MAX_ITER, EMPTY = 0, 1, 2, 3, 4


@jit
def lloyd_steps(points, weights, centers, labels, upper, second, lower_second, lower_rest, drift,
                far, jump_order, jump_d2, order, state, sums, totals, steps, max_iter, tol,
                total_sq, give_up_above, give_up_factor, incremental):
    """Up to ``steps`` Lloyd iterations in one call (see :func:`kmq.kmeans.kmeans`).

    With ``incremental`` (only for integer points and weights, see :func:`all_integral`: the
    sums are then exact in any order) the cluster sums are recomputed in the first iteration
    only, and after that changed by the points that moved, a pass over the labels instead of
    over the points.

    ``centers``, ``labels``, the bounds (see :func:`assign_tracked`), ``drift``, ``order`` and
    ``state`` = [iterations done, previous objective, largest drift, second largest drift,
    index of the largest] are updated in place; ``far`` and the jump lists (see
    :func:`assign_tracked`) apply to the first assignment only: ``far`` is then set to infinity
    and the lists are dropped. Returns (status, labels changed in the last assignment). On
    ``EMPTY`` the last iteration stopped after accumulating ``sums``/``totals`` (the caller
    re-seeds the empty clusters and finishes it). Reductions run serially in a fixed order.
    """
    k = centers.shape[0]
    changed = 0
    ranked = np.empty((k, k), np.float64)
    half_min = np.empty(k, np.float64)
    anchor = np.empty((k, 3), np.float64)  # the centers ``order`` and ``ranked`` are sorted for
    stale = np.zeros(k, np.float64)
    resort_above = -1.0  # sort on the first iteration
    previous_labels = np.empty(labels.shape[0] if incremental else 0, np.int32)
    summed = False  # sums/totals hold the current labels' sums (incremental only)
    for _ in range(steps):
        if state[0] >= max_iter:
            return MAX_ITER, changed
        # the rows stay sorted for ``anchor`` until some center has moved more than a fraction
        # of the typical half distance between centers: the searches then go a little farther
        # along them (``stale``) instead of every row being checked and re-sorted each time
        most = 0.0
        for j in range(k):
            stale[j] = np.sqrt(_d2(centers, j, anchor, j)) if resort_above >= 0.0 else 0.0
            most = max(most, stale[j])
        if resort_above < 0.0 or most > resort_above:
            _cc2, fresh = ranked_geometry(centers, order, ranked)
            half_min[:] = fresh
            anchor[:] = centers
            stale[:] = 0.0
            resort_above = STALE_FRACTION * np.mean(half_min) if k > 1 else 0.0
        else:
            for j in range(k):
                stale[j] += most + BOUND_SLACK
            stale_half_min(centers, order, ranked, stale, half_min)
        nd, nf = near_drift(order, ranked, drift, NEAR_CENTERS, stale)
        if k - 1 <= NEAR_CENTERS:  # the near centers are all of them: no second rest bound
            nd[:] = np.inf
        changed = assign_tracked(points, centers, ranked, order, half_min, labels, upper, second,
                                 lower_second, lower_rest, drift, state[2], state[3],
                                 np.int64(state[4]), far, nd, nf, jump_order, jump_d2, stale)
        if jump_order.shape[1]:  # the jumps concern the first assignment only
            far[:] = np.inf
            # new empty arrays rather than slices, which would make a second, non-contiguous
            # compiled specialization of assign_tracked
            jump_order = np.empty((jump_order.shape[0], 0), np.int32)
            jump_d2 = np.empty((jump_d2.shape[0], 0), np.float64)
        if summed:
            if changed:
                _move_sums(points, weights, labels, previous_labels, sums, totals)
        else:
            s, t = accumulate(points, weights, labels, k)
            sums[:] = s
            totals[:] = t
            if incremental:
                previous_labels[:] = labels
                summed = True
        for j in range(k):
            if totals[j] == 0:
                return EMPTY, changed
        fit = 0.0
        top = 0
        for j in range(k):
            d = 0.0
            norm = 0.0
            for c in range(3):
                m = sums[j, c] / totals[j]
                e = m - centers[j, c]
                d += e * e
                norm += m * m
                centers[j, c] = m
            fit += totals[j] * norm
            drift[j] = np.sqrt(d)
            if drift[j] > drift[top]:
                top = j
        second_drift = 0.0
        for j in range(k):
            if j != top and drift[j] > second_drift:
                second_drift = drift[j]
        state[2] = drift[top]
        state[3] = second_drift
        state[4] = top
        objective = max(total_sq - fit, 0.0)
        state[0] += 1
        previous = state[1]
        # no label changed since the last update: the means are already these (not so on the
        # first iteration, whose centers were the caller's, not means)
        if (changed == 0 and state[0] > 1) or (
                np.isfinite(previous) and previous - objective <= tol * previous):
            return CONVERGED, changed
        if objective - give_up_factor * (previous - objective) > give_up_above:
            return GAVE_UP, changed
        state[1] = objective
    if state[0] >= max_iter:
        return MAX_ITER, changed
    return PAUSED, changed


@jit
def settle_bounds(labels, upper, second, lower_second, lower_rest, drift, rest_drift,
                  second_drift, argmax_drift):
    """Carry the bounds of :func:`assign_tracked` over the last center update (``drift``), so
    that they hold for the centers as they are now."""
    for i in range(labels.shape[0]):
        a = labels[i]
        upper[i] += drift[a]
        lower_second[i] -= drift[second[i]]
        lower_rest[i] -= second_drift if a == argmax_drift else rest_drift


@jit
def jump_lists(centers, moved):
    """For every center, the ``moved`` centers by increasing squared distance from it (ties in
    the order of ``moved``): ``(order, d2)``, each (K, len(moved)), the ``jump_order`` and
    ``jump_d2`` arguments of :func:`assign_tracked`."""
    k = centers.shape[0]
    m = moved.shape[0]
    order = np.empty((k, m), np.int32)
    d2 = np.empty((k, m), np.float64)
    row = np.empty(m, np.float64)
    idx = np.empty(m, np.int32)
    for a in range(k):
        for q in range(m):
            row[q] = _d2(centers, a, centers, moved[q])
        _insertion_argsort(row, idx)
        for q in range(m):
            order[a, q] = moved[idx[q]]
            d2[a, q] = row[idx[q]]
    return order, d2


@jit
def merge_jumps(centers, order, jump_order, jump_d2):
    """``order`` (each center's neighbours sorted by distance before the centers of the jump
    lists (:func:`jump_lists`) jumped to their place in ``centers``) made sorted for
    ``centers``, in place, and returned: a row of a center that stayed keeps its other
    entries' order (their distances did not change) and gets the jumped ones merged in (ties:
    the stayed one first); the row of a jumped center is sorted afresh."""
    k = centers.shape[0]
    m = jump_order.shape[1]
    jumped = np.zeros(k, np.bool_)
    for q in range(m):
        jumped[jump_order[0, q]] = True
    keys = np.empty(k, np.float64)
    merged = np.empty(k, np.int32)
    tmp = np.empty(k, np.int32)
    counts = np.empty(256, np.int64)
    for a in range(k):
        row = order[a]
        if jumped[a]:
            for b in range(k):
                keys[b] = _d2(centers, a, centers, b)
            _sort_row(keys, row, tmp, counts)
            continue
        o = 0
        q = 0
        for t in range(k):
            j = row[t]
            if jumped[j]:
                continue
            dj = _d2(centers, a, centers, j)
            while q < m and jump_d2[a, q] < dj:
                merged[o] = jump_order[a, q]
                o += 1
                q += 1
            merged[o] = j
            o += 1
        while q < m:
            merged[o] = jump_order[a, q]
            o += 1
            q += 1
        row[:] = merged
    return order


@jit
def jump_distances(centers, moved):
    """For every center, the distance to the nearest other center of the ``moved`` ones (inf
    when there is none): the ``far`` argument of :func:`assign_tracked` after those jumped."""
    k = centers.shape[0]
    far = np.full(k, np.inf)
    for a in range(k):
        m = np.inf
        for j in moved:
            if j != a:
                d = _d2(centers, a, centers, j)
                if d < m:
                    m = d
        far[a] = np.sqrt(m)
    return far
