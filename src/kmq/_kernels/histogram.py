"""Exact color histogram over 24-bit RGB keys, and the per-pixel gather through it."""

from __future__ import annotations

import numpy as np

from kmq._config import jit, prange

N_KEYS = 1 << 24
#: A red bucket of fewer pixels than this is sorted instead of counted in the 65,536-entry table
#: (whose full scan costs ~65k steps however few pixels the bucket has: small images paid ~17 ms).
SORT_BELOW = 4096


@jit(inline="always")
def _key(pixels, i):
    return (np.int64(pixels[i, 0]) << 16) | (np.int64(pixels[i, 1]) << 8) | np.int64(pixels[i, 2])


@jit
def scatter_labels(table, keys, labels):
    """Write ``labels[i]`` at ``table[keys[i]]`` (the table becomes a color -> label lookup)."""
    for i in range(keys.shape[0]):
        table[keys[i]] = labels[i]


@jit(parallel=True)
def gather_labels(pixels, table, out):
    """``out[i] = table[key(pixels[i])]``: one lookup per pixel, no distance computed."""
    for i in prange(pixels.shape[0]):
        out[i] = table[_key(pixels, i)]


@jit(inline="always")
def _put(keys, colors, counts, m, red, low, count):
    """Row ``m`` of the histogram: the color of red ``red`` and green-blue ``low``, its count."""
    keys[m] = np.int32(red << 16 | low)
    counts[m] = count
    colors[m, 0] = red
    colors[m, 1] = low >> 8
    colors[m, 2] = low & 255


@jit
def sorted_counts(pixels):
    """The distinct 24-bit keys of ``pixels`` (N, 3) uint8, ascending, with their colors (uint8)
    and counts (int64), without a dense table of 2**24.

    The pixels are first partitioned by red (256 buckets, a counting sort); each bucket's green
    and blue are then counted in a table of 65,536 that stays in cache, and read back in order
    (a bucket of few pixels is sorted and its runs counted instead).
    """
    n = pixels.shape[0]
    start = np.zeros(257, np.int64)
    for i in range(n):
        start[np.int64(pixels[i, 0]) + 1] += 1
    for b in range(256):
        start[b + 1] += start[b]
    fill = start[:256].copy()
    low = np.empty(n, np.uint16)
    for i in range(n):
        b = np.int64(pixels[i, 0])
        low[fill[b]] = np.uint16(np.int64(pixels[i, 1]) << 8 | np.int64(pixels[i, 2]))
        fill[b] += 1
    table = np.zeros(65536, np.uint32)
    m = 0  # distinct colors, counted first so that the outputs take no more than they need
    for b in range(256):
        for i in range(start[b], start[b + 1]):
            if table[low[i]] == 0:
                table[low[i]] = 1
                m += 1
        for i in range(start[b], start[b + 1]):
            table[low[i]] = 0
    keys = np.empty(m, np.int32)
    counts = np.empty(m, np.int64)
    colors = np.empty((m, 3), np.uint8)
    m = 0
    for b in range(256):
        lo, hi = start[b], start[b + 1]
        if lo == hi:
            continue
        if hi - lo < SORT_BELOW:  # few pixels: sorting them beats scanning the whole table
            run = np.sort(low[lo:hi])
            j = 0
            while j < run.shape[0]:
                v = np.int64(run[j])
                e = j + 1
                while e < run.shape[0] and run[e] == run[j]:
                    e += 1
                _put(keys, colors, counts, m, b, v, e - j)
                m += 1
                j = e
            continue
        for i in range(lo, hi):
            table[low[i]] += 1
        for v in range(65536):
            c = table[v]
            if c != 0:
                _put(keys, colors, counts, m, b, v, c)
                table[v] = 0
                m += 1
    return keys, colors, counts
