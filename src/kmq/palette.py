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
