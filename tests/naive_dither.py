"""Floyd-Steinberg dithering from the textbook definition: slow, plain, obviously correct.

Floyd & Steinberg (1976), "An adaptive algorithm for spatial greyscale", in the usual pseudocode::

    for each y from top to bottom:
        for each x along the row (serpentine: left to right on even rows, right to left on odd):
            old = clip(pixel[y][x], low, high)    # the image is modified in place; the clip
                                                   # (per channel) is optional, as in Pillow
            new = nearest palette color to old    # squared Euclidean distance, first minimum
            pixel[y][x] = new
            error = (old - new) * strength
            pixel[y    ][x + d] += error * 7/16    # d = +1 or -1: the direction of the scan
            pixel[y + 1][x - d] += error * 3/16
            pixel[y + 1][x    ] += error * 5/16
            pixel[y + 1][x + d] += error * 1/16

Neighbours outside the image get nothing. Here it is written with a full copy of the image and a
brute-force nearest color, in the same floating-point operations as the definition.
"""

from __future__ import annotations

import numpy as np


def nearest_color(value: np.ndarray, palette: np.ndarray) -> int:
    """Index of the palette color nearest to ``value``; ties go to the lowest index."""
    diff = value[None, :] - palette
    d = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
    return int(np.argmin(d))


def floyd_steinberg(points: np.ndarray, palette: np.ndarray, strength: float = 1.0,
                    bounds=None) -> np.ndarray:
    """(H, W) int indices of ``points`` (H, W, 3) dithered onto ``palette`` (K, 3); ``bounds``
    is ``(low, high)`` per channel, or None for no clipping."""
    work = np.array(points, dtype=np.float64)  # modified in place, like the textbook's image
    palette = np.asarray(palette, dtype=np.float64)
    height, width = work.shape[:2]
    out = np.zeros((height, width), np.int64)
    for y in range(height):
        d = 1 if y % 2 == 0 else -1
        xs = range(width) if d == 1 else range(width - 1, -1, -1)
        for x in xs:
            old = work[y, x].copy()
            if bounds is not None:
                old = np.clip(old, bounds[0], bounds[1])
            c = nearest_color(old, palette)
            out[y, x] = c
            error = (old - palette[c]) * strength
            for dy, dx, weight in ((0, d, 7 / 16), (1, -d, 3 / 16), (1, 0, 5 / 16),
                                   (1, d, 1 / 16)):
                yy, xx = y + dy, x + dx
                if yy < height and 0 <= xx < width:
                    work[yy, xx] += error * weight
    return out
