"""From converged centers to the palette that is written: sRGB uint8, duplicates merged, unused
entries dropped, most used first."""

from __future__ import annotations

import numpy as np


def to_srgb8(centers: np.ndarray) -> np.ndarray:
    """Centers in sRGB (float, 0..255) rounded and clipped to uint8."""
    return np.clip(np.rint(centers), 0, 255).astype(np.uint8)


def merge_duplicates(palette: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated palette rows; labels are renumbered to the first occurrence's new index."""
    uniq, first, inverse = np.unique(palette, axis=0, return_index=True, return_inverse=True)
    keep = np.sort(first)
    renumber = np.empty(len(uniq), np.int32)
    renumber[np.argsort(first)] = np.arange(len(keep))
    mapping = renumber[inverse.ravel()]
    return palette[keep], mapping[labels]


def use_order(palette: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The entries by pixel count ``counts``, descending (ties by color), unused ones last: the
    order :func:`order_by_use` gives the used ones."""
    p = palette.astype(np.int64)
    key = (p[:, 0] << 16) | (p[:, 1] << 8) | p[:, 2]
    return np.lexsort((key, -counts))


def order_by_use(palette: np.ndarray, labels: np.ndarray,
                 weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop entries no color uses and sort the rest by pixel count, descending (ties by color).

    Returns the new palette, the renumbered labels and each entry's pixel count.
    """
    counts = np.bincount(labels, weights=weights, minlength=len(palette))
    order = use_order(palette, counts)
    order = order[counts[order] > 0]
    renumber = np.full(len(palette), -1, np.int32)
    renumber[order] = np.arange(len(order), dtype=np.int32)
    return palette[order], renumber[labels], counts[order].astype(np.int64)


#: At most this many rounds for the colors at a tie (see :func:`break_ties_by_use`).
_TIE_ROUNDS = 4
#: Colors at a tie measured at a time (their distances to every entry: 2 MB at K = 256).
_TIE_CHUNK = 1024


def break_ties_by_use(points, pal, pal_working, labels, weights, upper, lower) -> None:
    """Give each color at a tie the entry of lowest index in the palette's final order (by use,
    :func:`order_by_use`), as :func:`kmq.remap` on that palette does; in place.

    ``labels`` are the nearest entries of ``points`` with ties broken in ``pal``'s order, and
    ``upper`` and ``lower`` the bounds that search left: a color whose distance to its entry is
    not below its distance to every other may be at a tie, the others are not (most colors).
    Those few are compared with every entry, and given the first of the nearest in the order by
    use, until that order no longer changes (moving a tie changes the counts; at most
    ``_TIE_ROUNDS`` rounds).
    """
    ties = np.flatnonzero(~(upper < lower))
    if not len(ties):
        return
    # every entry at each such color's least distance (the sums the search makes, exactly); a
    # few thousand colors (0.4% of them on a 2.5 MP photo at K = 256)
    k = len(pal)
    entries = np.ascontiguousarray(pal_working.T)
    found = []  # (tie, entry) pairs, by tie
    for start in range(0, len(ties), _TIE_CHUNK):
        near = np.ascontiguousarray(points[ties[start:start + _TIE_CHUNK]].T)
        d = (near[0, :, None] - entries[0]) ** 2  # summed in the search's order
        d += (near[1, :, None] - entries[1]) ** 2
        d += (near[2, :, None] - entries[2]) ** 2
        rows, cols = np.nonzero(d == d.min(axis=1, keepdims=True))
        found.append((rows + start, cols))
    rows = np.concatenate([r for r, _ in found])
    cols = np.concatenate([c for _, c in found])
    first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])  # every tie has its entry
    counts = np.bincount(labels, weights=weights, minlength=k)
    tie_weights, tie_labels = weights[ties], labels[ties]
    rank = np.empty(k, np.int64)
    for _ in range(_TIE_ROUNDS):
        order = use_order(pal, counts)
        rank[order] = np.arange(k)
        moved = order[np.minimum.reduceat(rank[cols], first)].astype(labels.dtype)
        if np.array_equal(moved, tie_labels):
            break
        np.subtract.at(counts, tie_labels, tie_weights)
        np.add.at(counts, moved, tie_weights)
        tie_labels = moved
    labels[ties] = tie_labels
