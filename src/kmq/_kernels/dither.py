"""Error diffusion with a serpentine scan, for 3 or 4 channels, and its exact nearest-color search.

One kernel does both of :mod:`kmq.dither`'s methods: classic Floyd-Steinberg is the adaptive
kernel with the same level at every pixel and no damping. The channel count is a compile-time
constant: :func:`_make_diffuse` builds one specialised kernel per count (:data:`DIFFUSE` holds
those for 3 and 4 channels), whose loops over channels LLVM unrolls, so the 3-channel path pays
nothing for the 4-channel one. Everything is inlined in one loop nest: numba helpers taking arrays,
called once per pixel, were about 100 times slower here.
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


@jit(inline="always")
def _dist2(palette, c, v, nch):
    """Squared distance from palette entry ``c`` to the color ``v`` (``nch`` channels)."""
    dist = 0.0
    for ch in range(nch):
        d = palette[c, ch] - v[ch]
        dist += d * d
    return dist


def _make_diffuse(nch: int):
    """The error-diffusion kernel for points of ``nch`` channels (a compile-time constant)."""

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
                # exactly nearest entry: walk outwards in ``order`` from the last pixel's
                # entry; a side is finished once the first-coordinate gap alone exceeds the
                # best squared distance
                best = _dist2(palette, guess, v, nch)
                c = guess
                pos = rank[guess]
                for j in range(pos + 1, k):  # upwards: first coordinates grow
                    gap = first[j] - v[0]
                    if gap > 0.0 and gap * gap > best:
                        break
                    cand = order[j]
                    dist = _dist2(palette, cand, v, nch)
                    if dist < best or (dist == best and cand < c):
                        best = dist
                        c = cand
                for j in range(pos - 1, -1, -1):  # downwards
                    gap = v[0] - first[j]
                    if gap > 0.0 and gap * gap > best:
                        break
                    cand = order[j]
                    dist = _dist2(palette, cand, v, nch)
                    if dist < best or (dist == best and cand < c):
                        best = dist
                        c = cand
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
