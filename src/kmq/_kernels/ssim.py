"""SSIM with a uniform window over one strip of rows (see :mod:`kmq.metrics`).

Two (h, w, C) uint8 strips in, the sum of the SSIM map over the pixels whose window lies inside
the strip out: rows and columns ``pad .. size - pad - 1`` with ``pad = win // 2``, every channel.
That is the part of the map scikit-image keeps after cropping ``pad`` pixels on each side, so its
border mode never matters here.

The window sums of x, y, x*x, y*y and x*y are running sums (column sums over the window's rows,
slid down the strip; then a sum over the window's columns, slid along each row), so the cost does
not depend on the window. Every sample is an integer (premultiplied RGBA is scaled by 255 to stay
one), so each sum is an exact integer held in float64 (at most 49 * 65025**2 < 2**53 for a 7x7
window): adding and removing samples never drifts, and the variances ``n*sxx - sx*sx`` are exact.
The tests compare it with scikit-image itself (``tests/test_metrics.py``), not with a twin in
``tests/naive.py``.
"""

from __future__ import annotations

import numpy as np

from kmq._config import jit


@jit(inline="always")
def _sample(img, i, j, c, premultiply):
    """Sample (i, j, c) as a float; premultiplied, (R*A, G*A, B*A, A*255), when asked."""
    v = float(img[i, j, c])
    if premultiply:
        if c == img.shape[2] - 1:
            return v * 255.0
        return v * float(img[i, j, img.shape[2] - 1])
    return v


@jit(inline="always")
def _add_row(sums, a, b, i, sign, premultiply):
    """Add (sign 1) or remove (sign -1) row ``i`` of both strips to the per-column sums."""
    for j in range(a.shape[1]):
        for c in range(a.shape[2]):
            x = _sample(a, i, j, c, premultiply)
            y = _sample(b, i, j, c, premultiply)
            s = sums[j, c]
            s[0] += sign * x
            s[1] += sign * y
            s[2] += sign * (x * x)
            s[3] += sign * (y * y)
            s[4] += sign * (x * y)


@jit(inline="always")
def _ssim(sx, sy, sxx, syy, sxy, n, c1n, c2n):
    """SSIM of one window from its exact sums (see :func:`ssim_sum`)."""
    sxsy = sx * sy
    num = (2.0 * sxsy + c1n) * (2.0 * (n * sxy - sxsy) + c2n)
    den = (sx * sx + sy * sy + c1n) * ((n * sxx - sx * sx) + (n * syy - sy * sy) + c2n)
    return num / den


@jit
def ssim_sum(a, b, win, premultiply, c1, c2):
    """Sum of the SSIM map of strips ``a`` and ``b`` (uint8, (h, w, C), C-contiguous) over rows
    and columns ``pad .. size - pad - 1`` and every channel.

    ``c1`` and ``c2`` are skimage's ``(K1 * 255) ** 2`` and ``(K2 * 255) ** 2`` in the samples'
    units (times 255**2 when ``premultiply``). With window sums ``sx, sy, sxx, syy, sxy`` of
    ``n = win * win`` samples, skimage's terms (means, sample covariance ``n / (n - 1)``) become

        SSIM = (2 sx sy + c1 n^2) (2 (n sxy - sx sy) + c2 n (n-1))
               / ((sx^2 + sy^2 + c1 n^2) ((n sxx - sx^2) + (n syy - sy^2) + c2 n (n-1)))

    whose denominator is at least ``c1 c2 n^3 (n-1) > 0``.
    """
    h, w, nc = a.shape
    pad = win // 2
    n = float(win * win)
    c1n = c1 * n * n
    c2n = c2 * n * (n - 1.0)
    sums = np.zeros((w, nc, 5))  # per column and channel: window-row sums of x, y, xx, yy, xy
    for i in range(win - 1):
        _add_row(sums, a, b, i, 1.0, premultiply)
    total = 0.0
    for i in range(pad, h - pad):
        _add_row(sums, a, b, i + pad, 1.0, premultiply)
        row = 0.0
        for c in range(nc):
            sx = sy = sxx = syy = sxy = 0.0
            for j in range(win):
                s = sums[j, c]
                sx += s[0]
                sy += s[1]
                sxx += s[2]
                syy += s[3]
                sxy += s[4]
            row += _ssim(sx, sy, sxx, syy, sxy, n, c1n, c2n)
            for j in range(pad + 1, w - pad):
                # slide the window one column: one add per sum on the dependency chain
                s = sums[j + pad, c]
                t = sums[j - pad - 1, c]
                sx += s[0] - t[0]
                sy += s[1] - t[1]
                sxx += s[2] - t[2]
                syy += s[3] - t[3]
                sxy += s[4] - t[4]
                row += _ssim(sx, sy, sxx, syy, sxy, n, c1n, c2n)
        total += row
        _add_row(sums, a, b, i - pad, -1.0, premultiply)
    return total
