"""Exact color histogram over 24-bit RGB keys, and the per-pixel gather through it."""

from __future__ import annotations

import numpy as np

from kmq._config import jit, prange
from kmq._kernels.radix import counts_to_starts

N_KEYS = 1 << 24
#: A red bucket of at least this many pixels is counting-sorted through a 65,536-entry table (one
#: scan of the table, ~65k steps, however many pixels); a smaller one is radix-sorted by its two
#: bytes, at a cost that follows its size (small images paid ~17 ms for table scans before).
TABLE_FROM = 32768
#: Buckets of fewer pixels than this are insertion-sorted (no 256-entry counts to clear).
INSERTION_BELOW = 32
#: Pixel chunks of the first pass, partitioned by red in parallel; the partition is stable and
#: the same for any number of threads.
CHUNKS = 16


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


@jit
def _sort_low(seg):
    """Sort ``seg`` (uint16) in place: insertion sort, radix sort by the two bytes, or a counting
    sort through a table, by size (see ``INSERTION_BELOW``, ``TABLE_FROM``)."""
    n = seg.shape[0]
    if n < INSERTION_BELOW:
        for t in range(1, n):
            v = seg[t]
            u = t - 1
            while u >= 0 and seg[u] > v:
                seg[u + 1] = seg[u]
                u -= 1
            seg[u + 1] = v
        return
    if n >= TABLE_FROM:
        table = np.zeros(65536, np.int64)
        for i in range(n):
            table[seg[i]] += 1
        p = 0
        for v in range(65536):
            for _ in range(table[v]):
                seg[p] = v
                p += 1
        return
    tmp = np.empty(n, np.uint16)
    counts = np.empty(256, np.int64)
    for shift in (0, 8):  # least significant byte first; each pass is stable
        src, dst = (seg, tmp) if shift == 0 else (tmp, seg)
        counts[:] = 0
        for i in range(n):
            counts[(src[i] >> shift) & 255] += 1
        counts_to_starts(counts)
        for i in range(n):
            b = (src[i] >> shift) & 255
            dst[counts[b]] = src[i]
            counts[b] += 1


@jit
def _runs(seg):
    """Number of distinct values in the sorted ``seg``."""
    m = 1 if seg.shape[0] else 0
    for i in range(1, seg.shape[0]):
        if seg[i] != seg[i - 1]:
            m += 1
    return m


@jit(parallel=True)
def sorted_counts(pixels):
    """The distinct 24-bit keys of ``pixels`` (N, 3) uint8, ascending, with their colors (uint8)
    and counts (int64), without a dense table of 2**24.

    The pixels are first partitioned by red (256 buckets; a stable counting sort, its chunks in
    parallel); each bucket's green-blue values are then sorted (see :func:`_sort_low`) and their
    runs counted, the buckets in parallel. The output is the same for any number of threads.
    """
    n = pixels.shape[0]
    size = (n + CHUNKS - 1) // CHUNKS
    part = np.zeros((CHUNKS, 256), np.int64)  # pixels per chunk and red, then where they go
    for t in prange(CHUNKS):
        for i in range(t * size, min(n, (t + 1) * size)):
            part[t, pixels[i, 0]] += 1
    start = np.zeros(257, np.int64)
    total = 0
    for b in range(256):
        start[b] = total
        for t in range(CHUNKS):
            c = part[t, b]
            part[t, b] = total
            total += c
    start[256] = total
    low = np.empty(n, np.uint16)
    for t in prange(CHUNKS):
        fill = part[t]
        for i in range(t * size, min(n, (t + 1) * size)):
            b = np.int64(pixels[i, 0])
            low[fill[b]] = np.uint16(np.int64(pixels[i, 1]) << 8 | np.int64(pixels[i, 2]))
            fill[b] += 1
    first = np.zeros(257, np.int64)  # the first output row of each bucket
    for b in prange(256):
        seg = low[start[b]:start[b + 1]]
        _sort_low(seg)
        first[b + 1] = _runs(seg)
    for b in range(256):
        first[b + 1] += first[b]
    m = first[256]
    keys = np.empty(m, np.int32)
    counts = np.empty(m, np.int64)
    colors = np.empty((m, 3), np.uint8)
    for b in prange(256):
        r = first[b]
        j, hi = start[b], start[b + 1]
        while j < hi:
            v = np.int64(low[j])
            e = j + 1
            while e < hi and low[e] == low[j]:
                e += 1
            keys[r] = np.int32(b << 16 | v)
            counts[r] = e - j
            colors[r, 0] = b
            colors[r, 1] = v >> 8
            colors[r, 2] = v & 255
            r += 1
            j = e
    return keys, colors, counts
