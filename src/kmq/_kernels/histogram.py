"""Exact color histogram over 24-bit RGB keys, and the per-pixel gather through it."""

from __future__ import annotations

import numpy as np

from kmq._config import jit, prange

N_KEYS = 1 << 24


@jit(inline="always")
def _key(pixels, i):
    return (np.int64(pixels[i, 0]) << 16) | (np.int64(pixels[i, 1]) << 8) | np.int64(pixels[i, 2])


@jit
def dense_counts(pixels):
    """Count every 24-bit color of ``pixels`` (N, 3) uint8 into a dense uint32 table of 2**24."""
    counts = np.zeros(N_KEYS, np.uint32)
    for i in range(pixels.shape[0]):
        counts[_key(pixels, i)] += 1
    return counts


@jit
def nonzero_keys(counts):
    """The keys with a non-zero count, ascending, their colors (uint8) and counts (int64)."""
    n = 0
    for key in range(counts.shape[0]):
        if counts[key] != 0:
            n += 1
    keys = np.empty(n, np.int32)
    colors = np.empty((n, 3), np.uint8)
    weights = np.empty(n, np.int64)
    j = 0
    for key in range(counts.shape[0]):
        c = counts[key]
        if c != 0:
            keys[j] = key
            colors[j, 0] = (key >> 16) & 255
            colors[j, 1] = (key >> 8) & 255
            colors[j, 2] = key & 255
            weights[j] = c
            j += 1
    return keys, colors, weights


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
