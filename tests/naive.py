"""Slow, obviously correct pure-NumPy references for kmq's compiled kernels.

Each function here is the textbook definition of what a kernel computes, written for clarity, not
speed. Tests compare the kernels with these on random and real data.
"""

from __future__ import annotations

import numpy as np


def histogram(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct colors (sorted by R, G, B) and their pixel counts."""
    colors, counts = np.unique(rgb.reshape(-1, 3), axis=0, return_counts=True)
    return colors.astype(np.uint8), counts.astype(np.int64)


def sq_distances(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(N, K) squared Euclidean distances."""
    diff = points[:, None, :].astype(np.float64) - centers[None, :, :].astype(np.float64)
    return (diff**2).sum(axis=2)


def nearest(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center; ties go to the lowest index (``np.argmin``)."""
    out = np.empty(len(points), np.int32)
    for start in range(0, len(points), 4096):  # in chunks, to keep memory small
        chunk = points[start:start + 4096]
        out[start:start + 4096] = np.argmin(sq_distances(chunk, centers), axis=1)
    return out


def weighted_means(points, weights, labels, k):
    """Per-cluster weighted means (rows of empty clusters are NaN) and weight totals."""
    totals = np.bincount(labels, weights=weights, minlength=k)
    sums = np.stack([np.bincount(labels, weights=weights * points[:, c], minlength=k)
                     for c in range(3)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / totals[:, None], totals


def objective(points, weights, centers, labels) -> float:
    """Weighted sum of squared distances of each point to its own center."""
    return float(np.sum(weights * ((points - centers[labels]) ** 2).sum(axis=1)))


def lloyd(points, weights, centers, *, tol=1e-4, max_iter=300):
    """Plain weighted Lloyd with kmq's stopping rule (no empty cluster may occur).

    Returns centers, labels, objective, iterations.
    """
    points = points.astype(np.float64)
    centers = centers.astype(np.float64)
    previous = np.inf
    labels = None
    for it in range(1, max_iter + 1):
        new_labels = nearest(points, centers)
        changed = labels is None or np.any(new_labels != labels)
        labels = new_labels
        centers, totals = weighted_means(points, weights, labels, len(centers))
        assert np.all(totals > 0), "the reference does not handle empty clusters"
        obj = objective(points, weights, centers, labels)
        if not changed or (np.isfinite(previous) and previous - obj <= tol * previous):
            return centers, labels, obj, it
        previous = obj
    return centers, labels, obj, max_iter


def kmeanspp(points, weights, k, uniforms) -> np.ndarray:
    """Greedy weighted k-means++ driven by the given uniform draws (see the kernel's doc)."""
    n = len(points)
    cum = np.cumsum(weights)
    chosen = [min(int(np.searchsorted(cum, (1.0 - uniforms[0, 0]) * cum[-1])), n - 1)]
    closest = sq_distances(points, points[chosen[0]][None])[:, 0]
    for c in range(1, k):
        cum = np.cumsum(weights * closest)
        best = None
        for t in range(uniforms.shape[1]):
            cand = min(int(np.searchsorted(cum, (1.0 - uniforms[c, t]) * cum[-1])), n - 1)
            trial = np.minimum(closest, sq_distances(points, points[cand][None])[:, 0])
            pot = float(np.sum(weights * trial))
            if best is None or pot < best[0]:
                best = (pot, cand, trial)
        chosen.append(best[1])
        closest = best[2]
    return np.array(chosen)


def cell_means(colors, points, weights, shift):
    """Weighted means and totals of the occupied sRGB cubes of side 2**shift, in key order,
    and each color's cube index."""
    bits = 8 - shift
    c = colors.astype(np.int64) >> shift
    keys = (c[:, 0] << (2 * bits)) | (c[:, 1] << bits) | c[:, 2]
    uniq, member = np.unique(keys, return_inverse=True)
    means, totals = weighted_means(points, weights, member.ravel(), len(uniq))
    return means, totals, member.ravel()


def cluster_costs(points, weights, centers, labels):
    """Per cluster: weighted SSE along each axis (K, 3), and the increase if its points moved to
    their second-nearest center."""
    d = sq_distances(points, centers)
    own = d[np.arange(len(points)), labels]
    d[np.arange(len(points)), labels] = np.inf
    second = d.min(axis=1)
    k = len(centers)
    err = weights[:, None] * (points - centers[labels]) ** 2
    axis_sse = np.stack([np.bincount(labels, weights=err[:, c], minlength=k) for c in range(3)],
                        axis=1)
    return axis_sse, np.bincount(labels, weights=weights * (second - own), minlength=k)


def grid_labels(points, low, step, cells, best) -> np.ndarray:
    """``best`` looked up at each point's cell of a ``cells``-cubed grid (cells clipped)."""
    cell = np.clip(((points - low) / step).astype(np.int64), 0, cells - 1)
    return best[(cell[:, 0] * cells + cell[:, 1]) * cells + cell[:, 2]]


def neighbour_order(centers) -> np.ndarray:
    """Each center's neighbours by increasing squared distance, ties in index order."""
    return np.argsort(sq_distances(centers, centers), axis=1, kind="stable")


def jump_distances(centers, moved) -> np.ndarray:
    """Distance from every center to the nearest other center among ``moved`` (inf if none)."""
    d = np.sqrt(sq_distances(centers, centers[moved]))
    d[np.asarray(moved)[None, :] == np.arange(len(centers))[:, None]] = np.inf
    return d.min(axis=1, initial=np.inf)


def jump_lists(centers, moved):
    """For every center, the ``moved`` centers by increasing squared distance (ties in the
    order of ``moved``) and those squared distances."""
    d = sq_distances(centers, centers[moved])
    idx = np.argsort(d, axis=1, kind="stable")
    return np.asarray(moved)[idx], np.take_along_axis(d, idx, axis=1)


def near_drift(centers, drift, count):
    """For each center: the largest drift among its ``count`` nearest other centers (ties in
    index order) and the distance to the nearest center beyond them (inf if none)."""
    d = sq_distances(centers, centers)
    k = len(centers)
    most, beyond = np.zeros(k), np.full(k, np.inf)
    for a in range(k):
        others = [j for j in np.argsort(d[a], kind="stable") if j != a]
        most[a] = max((drift[j] for j in others[:count]), default=0.0)
        if len(others) > count:
            beyond[a] = np.sqrt(d[a, others[count]])
    return most, beyond


def hartigan_pass(points, weights, sums, totals, labels):
    """One pass of Hartigan's single-point moves over every point in order, each compared with
    every other center as the means stand at that moment: (labels, sums, totals, moved, gain)."""
    sums, totals, labels = sums.copy(), totals.copy(), labels.copy()
    moved, gain = 0, 0.0
    for i in range(len(points)):
        a, w = labels[i], weights[i]
        if totals[a] <= w:
            continue
        remove = totals[a] * w / (totals[a] - w) * np.sum((points[i] - sums[a] / totals[a]) ** 2)
        if remove <= 0:
            continue
        add = totals * w / (totals + w) * np.sum((points[i] - sums / totals[:, None]) ** 2, axis=1)
        add[a] = np.inf
        b = int(np.argmin(add))
        if add[b] < remove and remove - add[b] > 1e-9 * remove:
            sums[a] -= w * points[i]
            sums[b] += w * points[i]
            totals[a] -= w
            totals[b] += w
            labels[i] = b
            moved += 1
            gain += remove - add[b]
    return labels, sums, totals, moved, gain
