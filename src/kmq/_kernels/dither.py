"""Error diffusion with a serpentine scan, for 3 or 4 channels, and its exact nearest-color search.

One kernel does both of :mod:`kmq.dither`'s methods: classic Floyd-Steinberg is the adaptive
kernel with the same level at every pixel and no damping. The channel count is a compile-time
constant: :func:`_make_diffuse` builds one specialised kernel per count (:data:`DIFFUSE` holds
those for 3 and 4 channels), whose loops over channels LLVM unrolls, so the 3-channel path pays
nothing for the 4-channel one. Everything is inlined in one loop nest: numba helpers taking arrays,
called once per pixel, were about 100 times slower here.

The nearest palette entry of each value is exact (ties to the lower index). Palettes of up to
``GRID_MAX_COLORS`` entries are searched through a grid of cells over the clipping box: a cell's
candidate list (the entries that can be nearest anywhere in it) is made the first time a value
falls in it, and a value is compared with those alone (at K = 256 on photos, 1.3-2.8 times faster
than the walk). Larger palettes are walked along the first coordinate from the last pixel's entry.
"""

from __future__ import annotations

import numpy as np

from kmq._config import jit

# Floyd and Steinberg's weights (all exact in binary): ahead in the row, then in the next row
# behind, below and ahead, relative to the direction of the scan.
W_AHEAD = 7.0 / 16.0
W_BEHIND_BELOW = 3.0 / 16.0
W_BELOW = 5.0 / 16.0
W_AHEAD_BELOW = 1.0 / 16.0

#: Palettes of at most this many entries are searched through a grid of cells over the clipping
#: box (see :func:`_cell_candidates`); larger ones by the walk along the first coordinate, whose
#: set-up costs nothing per cell.
GRID_MAX_COLORS = 1024
#: Cells per channel of that grid: 16**3 or 8**4 cells.
GRID_CELLS = {3: 16, 4: 8}


@jit
def _cell_candidates(palette, cell, cells, box_lo, step, open_lo, open_hi, pool, used):
    """The palette entries that can be nearest to (or tie for) some point of grid cell ``cell``,
    appended in index order to ``pool`` (grown when full) at ``used``; returns (pool, count).

    The cell is a box (its index's digits in base ``cells``, the first channel most significant),
    widened by a hair against rounding, open towards -inf/+inf on the sides where ``open_lo`` /
    ``open_hi`` say values may leave the grid. Let T be the smallest, over the entries, of the
    largest squared distance from an entry to the box: every point of the box has an entry
    within T, so its nearest entry (and any tie) is no farther than T from the box. The entries
    whose smallest squared distance to the box is at most T (plus a margin far above rounding)
    are kept.
    """
    k, nch = palette.shape
    lo = np.empty(nch, np.float64)
    hi = np.empty(nch, np.float64)
    rest = cell
    for ch in range(nch - 1, -1, -1):
        digit = rest % cells
        rest //= cells
        hair = 1e-7 * step[ch]
        lo[ch] = -np.inf if (digit == 0 and open_lo[ch]) else box_lo[ch] + digit * step[ch] - hair
        hi[ch] = (np.inf if (digit == cells - 1 and open_hi[ch])
                  else box_lo[ch] + (digit + 1) * step[ch] + hair)
    reach = np.inf
    for j in range(k):
        far = 0.0
        for ch in range(nch):
            d = max(abs(palette[j, ch] - lo[ch]), abs(palette[j, ch] - hi[ch]))
            far += d * d
        reach = min(reach, far)
    limit = reach * (1.0 + 1e-9) + 1e-9
    if used + k > pool.shape[0]:
        grown = np.empty(max(2 * pool.shape[0], used + k), np.int32)
        grown[:used] = pool[:used]
        pool = grown
    count = 0
    for j in range(k):
        near = 0.0
        for ch in range(nch):
            d = max(lo[ch] - palette[j, ch], 0.0, palette[j, ch] - hi[ch])
            near += d * d
        if near <= limit:
            pool[used + count] = j
            count += 1
    return pool, count


@jit(inline="always")
def _dist2(palette, c, v, nch):
    """Squared distance from palette entry ``c`` to the color ``v`` (``nch`` channels)."""
    dist = 0.0
    for ch in range(nch):
        d = palette[c, ch] - v[ch]
        dist += d * d
    return dist


@jit(inline="always")
def _walk(palette, order, rank, first, guess, v, nch, k):
    """The exactly nearest entry to ``v``, walking outwards in ``order`` (the entries by first
    coordinate, ``first`` theirs, ``rank`` the inverse) from entry ``guess``; a side is finished
    once the first-coordinate gap alone exceeds the best squared distance."""
    best = _dist2(palette, guess, v, nch)
    c = guess
    for direction in (1, -1):  # upwards (first coordinates grow), then downwards
        j = rank[guess] + direction
        while 0 <= j < k:
            gap = (first[j] - v[0]) * direction
            if gap > 0.0 and gap * gap > best:
                break
            cand = order[j]
            dist = _dist2(palette, cand, v, nch)
            if dist < best or (dist == best and cand < c):
                best = dist
                c = cand
            j += direction
    return c


def _make_diffuse(nch: int):
    """The error-diffusion kernel for points of ``nch`` channels (a compile-time constant)."""
    cells = GRID_CELLS[nch]  # a compile-time constant too

    @jit
    def diffuse(image, palette, order, level, lo, hi, max_err2, damp, transparent,
                transparent_index, out):
        """Dither ``image`` (H, W, C) onto ``palette`` (K, C), both float64; indices into ``out``.

        Rows are scanned alternately left to right and right to left (serpentine). Each pixel
        receives error from its visited neighbours; its value is its color plus ``level[y, x]``
        times that error, clipped per channel to ``lo``..``hi``, and is mapped to the exactly
        nearest palette entry (squared Euclidean distance, ties to the lower index). The
        difference between the value and that entry is the pixel's error: if its squared norm
        exceeds ``max_err2`` it is multiplied by ``damp``; it is then passed on with the
        weights 7, 3, 5, 1 (/16): ahead; behind-below, below, ahead-below. Error that would
        leave the image is dropped. Pixels where ``transparent`` is nonzero get
        ``transparent_index`` and pass on no error (what they received is dropped).

        ``order`` is ``argsort(palette[:, 0], kind="stable")``; ``level`` is (H, W) float64;
        ``lo``, ``hi`` are (C,) float64 (infinite for no clipping); ``transparent`` is (H, W)
        uint8; ``out`` is (H, W) int32. Memory is O(W): two rows of error.
        """
        height, width = image.shape[0], image.shape[1]
        k = palette.shape[0]
        rank = np.empty(k, np.int64)
        first = np.empty(k, np.float64)
        for j in range(k):
            rank[order[j]] = j
            first[j] = palette[order[j], 0]
        # the grid of cells over the clipping box (over the palette's and image's range on the
        # sides without clipping, where edge cells are open)
        grid = k <= GRID_MAX_COLORS
        box_lo = np.empty(nch, np.float64)
        cell_step = np.empty(nch, np.float64)
        open_lo = np.zeros(nch, np.bool_)
        open_hi = np.zeros(nch, np.bool_)
        for ch in range(nch):
            a, b = lo[ch], hi[ch]
            if not np.isfinite(a):
                open_lo[ch] = True
                a = min(palette[:, ch].min(), image[:, :, ch].min()) if image.size else 0.0
            if not np.isfinite(b):
                open_hi[ch] = True
                b = max(palette[:, ch].max(), image[:, :, ch].max()) if image.size else 1.0
            box_lo[ch] = a
            cell_step[ch] = (b - a) / cells if b > a else 1.0
        first_of = np.full(cells ** nch if grid else 1, -1, np.int64)
        count_of = np.zeros(cells ** nch if grid else 1, np.int64)
        pool = np.empty(4 * k if grid else 1, np.int32)
        used = 0
        # error received by the current row and the next, with a margin of one pixel each side
        err = np.zeros((2, width + 2, nch), np.float64)
        v = np.empty(nch, np.float64)
        e = np.empty(nch, np.float64)
        guess = 0
        for y in range(height):
            cur = err[y % 2]
            nxt = err[(y + 1) % 2]
            for x in range(width + 2):
                for ch in range(nch):
                    nxt[x, ch] = 0.0
            if y % 2 == 0:
                x, step, stop = 0, 1, width
            else:
                x, step, stop = width - 1, -1, -1
            while x != stop:
                if transparent[y, x]:
                    out[y, x] = transparent_index
                    x += step
                    continue
                lv = level[y, x]
                for ch in range(nch):
                    v[ch] = min(max(image[y, x, ch] + cur[x + 1, ch] * lv, lo[ch]), hi[ch])
                if grid:
                    # exactly nearest entry among its cell's candidates (ascending indices:
                    # the first of equals wins)
                    cell = 0
                    for ch in range(nch):
                        q = (v[ch] - box_lo[ch]) / cell_step[ch]
                        digit = 0 if q < 0.0 else (cells - 1 if q >= cells - 1 else int(q))
                        cell = cell * cells + digit
                    if first_of[cell] < 0:
                        pool, n_cand = _cell_candidates(palette, cell, cells, box_lo,
                                                        cell_step, open_lo, open_hi, pool, used)
                        first_of[cell] = used
                        count_of[cell] = n_cand
                        used += n_cand
                    best = np.inf
                    c = -1
                    for t in range(first_of[cell], first_of[cell] + count_of[cell]):
                        cand = pool[t]
                        dist = _dist2(palette, cand, v, nch)
                        if dist < best:
                            best = dist
                            c = cand
                else:  # exactly nearest entry, walking from the last pixel's
                    c = _walk(palette, order, rank, first, guess, v, nch, k)
                out[y, x] = c
                guess = c
                norm2 = 0.0
                for ch in range(nch):
                    e[ch] = v[ch] - palette[c, ch]
                    norm2 += e[ch] * e[ch]
                if norm2 > max_err2:
                    for ch in range(nch):
                        e[ch] *= damp
                ahead = x + 1 + step  # positions in the error rows (margin of one)
                behind = x + 1 - step
                for ch in range(nch):
                    cur[ahead, ch] += e[ch] * W_AHEAD
                    nxt[behind, ch] += e[ch] * W_BEHIND_BELOW
                    nxt[x + 1, ch] += e[ch] * W_BELOW
                    nxt[ahead, ch] += e[ch] * W_AHEAD_BELOW
                x += step
        return out

    return diffuse


#: The kernels by channel count.
DIFFUSE = {3: _make_diffuse(3), 4: _make_diffuse(4)}
