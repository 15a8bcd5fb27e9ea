"""Floyd-Steinberg error diffusion with a serpentine scan, and its exact nearest-color search."""

from __future__ import annotations

import numpy as np

from kmq._config import jit

# Floyd and Steinberg's weights (all exact in binary): ahead in the row, then in the next row
# behind, below and ahead, relative to the direction of the scan.
W_AHEAD = 7.0 / 16.0
W_BEHIND_BELOW = 3.0 / 16.0
W_BELOW = 5.0 / 16.0
W_AHEAD_BELOW = 1.0 / 16.0


@jit
def _nearest(v0, v1, v2, palette, order, rank, first, start):
    """Exactly nearest palette entry to (v0, v1, v2), ties to the lower index.

    ``order`` lists the entries by their first coordinate (``first`` holds those values in that
    order, ``rank`` is the inverse permutation). The search starts at entry ``start`` and walks
    outwards in ``order``; a side is finished once the first-coordinate gap alone exceeds the best
    squared distance, so the answer equals a brute-force argmin.
    """
    k = palette.shape[0]
    d0 = palette[start, 0] - v0
    d1 = palette[start, 1] - v1
    d2 = palette[start, 2] - v2
    best = d0 * d0 + d1 * d1 + d2 * d2
    best_j = start
    pos = rank[start]
    for j in range(pos + 1, k):  # upwards: first coordinates grow
        gap = first[j] - v0
        if gap > 0.0 and gap * gap > best:
            break
        c = order[j]
        d0 = palette[c, 0] - v0
        d1 = palette[c, 1] - v1
        d2 = palette[c, 2] - v2
        d = d0 * d0 + d1 * d1 + d2 * d2
        if d < best or (d == best and c < best_j):
            best = d
            best_j = c
    for j in range(pos - 1, -1, -1):  # downwards
        gap = v0 - first[j]
        if gap > 0.0 and gap * gap > best:
            break
        c = order[j]
        d0 = palette[c, 0] - v0
        d1 = palette[c, 1] - v1
        d2 = palette[c, 2] - v2
        d = d0 * d0 + d1 * d1 + d2 * d2
        if d < best or (d == best and c < best_j):
            best = d
            best_j = c
    return best_j


@jit
def _spread(row, x, e0, e1, e2, w):
    row[x, 0] += e0 * w
    row[x, 1] += e1 * w
    row[x, 2] += e2 * w


@jit
def floyd_steinberg(image, palette, order, strength, lo, hi, out):
    """Dither ``image`` (H, W, 3) float64 onto ``palette`` (K, 3) float64; indices into ``out``.

    Rows are scanned alternately left to right and right to left (serpentine). At each pixel the
    value so far (its color plus the error received), clipped per channel to ``lo``..``hi``, is
    mapped to the nearest palette entry, and ``strength`` times the difference is added to the four
    unvisited neighbours with the weights 7, 3, 5, 1 (/16): ahead; behind-below, below,
    ahead-below. Error that would leave the image is dropped. Two rows are kept: memory is O(W).

    ``order`` is ``argsort(palette[:, 0], kind="stable")``; ``lo``, ``hi`` are (3,) float64
    (infinite for no clipping); ``out`` is (H, W) int32.
    """
    height, width = image.shape[0], image.shape[1]
    k = palette.shape[0]
    rank = np.empty(k, np.int64)
    first = np.empty(k, np.float64)
    for j in range(k):
        rank[order[j]] = j
        first[j] = palette[order[j], 0]
    rows = np.empty((2, width, 3), np.float64)  # the current row and the next, with error
    for x in range(width):
        for ch in range(3):
            rows[0, x, ch] = image[0, x, ch]
    guess = 0
    for y in range(height):
        cur = rows[y % 2]
        nxt = rows[(y + 1) % 2]
        has_next = y + 1 < height
        if has_next:
            for x in range(width):
                for ch in range(3):
                    nxt[x, ch] = image[y + 1, x, ch]
        if y % 2 == 0:
            x, step, stop = 0, 1, width
        else:
            x, step, stop = width - 1, -1, -1
        while x != stop:
            v0 = min(max(cur[x, 0], lo[0]), hi[0])
            v1 = min(max(cur[x, 1], lo[1]), hi[1])
            v2 = min(max(cur[x, 2], lo[2]), hi[2])
            c = _nearest(v0, v1, v2, palette, order, rank, first, guess)
            out[y, x] = c
            guess = c
            e0 = (v0 - palette[c, 0]) * strength
            e1 = (v1 - palette[c, 1]) * strength
            e2 = (v2 - palette[c, 2]) * strength
            ahead = x + step
            behind = x - step
            ahead_in = 0 <= ahead < width
            if ahead_in:
                _spread(cur, ahead, e0, e1, e2, W_AHEAD)
            if has_next:
                if 0 <= behind < width:
                    _spread(nxt, behind, e0, e1, e2, W_BEHIND_BELOW)
                _spread(nxt, x, e0, e1, e2, W_BELOW)
                if ahead_in:
                    _spread(nxt, ahead, e0, e1, e2, W_AHEAD_BELOW)
            x += step
    return out
