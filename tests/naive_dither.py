"""Error diffusion from its definition: slow, plain, obviously correct; any channel count.

Floyd & Steinberg (1976), "An adaptive algorithm for spatial greyscale", in the usual pseudocode,
with the error kept in a separate array (``received``) so that each pixel's value is its color
plus ``level`` times what it received::

    for each y from top to bottom:
        for each x along the row (serpentine: left to right on even rows, right to left on odd):
            if transparent[y][x]: index = transparent_index; continue     # nothing passed on
            value = clip(pixel[y][x] + level[y][x] * received[y][x], low, high)   # per channel
            index = nearest palette color to value    # squared Euclidean distance, first minimum
            error = value - palette[index]
            if |error|^2 > max_err2: error = error * damp
            received[y    ][x + d] += error * 7/16    # d = +1 or -1: the direction of the scan
            received[y + 1][x - d] += error * 3/16
            received[y + 1][x    ] += error * 5/16
            received[y + 1][x + d] += error * 1/16

Neighbours outside the image get nothing. Classic Floyd-Steinberg is ``level = strength``
everywhere and no damping. kmq's adaptive method (:mod:`kmq.dither`) first maps every pixel to
its nearest color with no error at all, then sets ``level = strength * 15/16 * f**2`` with ``f``
the share of the 8 neighbours (edges replicated) with the same nearest color, and damps by 1/2
the errors whose squared norm exceeds 4 times the mean squared error of that nearest-color map.
Here it is written with brute-force nearest colors and explicit loops over pixels and
neighbours.
"""

from __future__ import annotations

import numpy as np


def nearest_color(value: np.ndarray, palette: np.ndarray) -> int:
    """Index of the palette color nearest to ``value``; ties go to the lowest index."""
    best, best_i = np.inf, -1
    for i in range(len(palette)):
        d = 0.0
        for ch in range(len(value)):  # in channel order, as a sum of squares is written
            diff = palette[i, ch] - value[ch]
            d += diff * diff
        if d < best:
            best, best_i = d, i
    return best_i


def error_diffusion(points, palette, level, bounds=None, max_err2=np.inf, damp=1.0,
                    transparent=None, transparent_index=0) -> np.ndarray:
    """(H, W) int indices of ``points`` (H, W, C) dithered onto ``palette`` (K, C).

    ``level`` is a number or an (H, W) array; ``bounds`` is ``(low, high)`` per channel, or
    None; ``transparent`` an (H, W) bool mask or None."""
    points = np.asarray(points, dtype=np.float64)
    palette = np.asarray(palette, dtype=np.float64)
    height, width, nch = points.shape
    level = np.broadcast_to(np.asarray(level, dtype=np.float64), (height, width))
    received = np.zeros((height, width, nch))
    out = np.zeros((height, width), np.int64)
    for y in range(height):
        d = 1 if y % 2 == 0 else -1
        xs = range(width) if d == 1 else range(width - 1, -1, -1)
        for x in xs:
            if transparent is not None and transparent[y, x]:
                out[y, x] = transparent_index
                continue
            value = points[y, x] + level[y, x] * received[y, x]
            if bounds is not None:
                value = np.minimum(np.maximum(value, bounds[0]), bounds[1])
            c = nearest_color(value, palette)
            out[y, x] = c
            error = value - palette[c]
            norm2 = 0.0
            for ch in range(nch):
                norm2 += error[ch] * error[ch]
            if norm2 > max_err2:
                error = error * damp
            for dy, dx, weight in ((0, d, 7 / 16), (1, -d, 3 / 16), (1, 0, 5 / 16),
                                   (1, d, 1 / 16)):
                yy, xx = y + dy, x + dx
                if yy < height and 0 <= xx < width:
                    received[yy, xx] += error * weight
    return out


def floyd_steinberg(points, palette, strength: float = 1.0, bounds=None, transparent=None,
                    transparent_index=0) -> np.ndarray:
    """Classic serpentine Floyd-Steinberg of the given strength."""
    return error_diffusion(points, palette, strength, bounds, transparent=transparent,
                           transparent_index=transparent_index)


def flatness(indices: np.ndarray) -> np.ndarray:
    """Share of the 8 neighbours with the same index, neighbours outside taken from the nearest
    pixel inside (edge replication)."""
    height, width = indices.shape
    out = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            same = 0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy == 0 and dx == 0:
                        continue
                    yy = min(max(y + dy, 0), height - 1)
                    xx = min(max(x + dx, 0), width - 1)
                    same += int(indices[yy, xx] == indices[y, x])
            out[y, x] = same / 8
    return out


def adaptive(points, palette, strength: float = 1.0, bounds=None, transparent=None,
             transparent_index=0) -> np.ndarray:
    """kmq's adaptive dithering (see the module docstring)."""
    points = np.asarray(points, dtype=np.float64)
    palette = np.asarray(palette, dtype=np.float64)
    height, width = points.shape[:2]
    if strength == 0:
        return error_diffusion(points, palette, 0.0, bounds, transparent=transparent,
                               transparent_index=transparent_index)
    plain = error_diffusion(points, palette, 0.0, bounds, transparent=transparent,
                            transparent_index=transparent_index)
    clipped = points if bounds is None else np.clip(points, bounds[0], bounds[1])
    opaque = np.ones((height, width), bool) if transparent is None else ~transparent
    diff = clipped[opaque] - palette[plain[opaque]]
    mse = float(np.mean(np.sum(diff * diff, axis=1))) if len(diff) else 0.0
    f = flatness(plain)
    level = (strength * (15 / 16)) * (f * f)
    return error_diffusion(points, palette, level, bounds, max_err2=4.0 * mse, damp=0.5,
                           transparent=transparent, transparent_index=transparent_index)
