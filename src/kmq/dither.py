"""Floyd-Steinberg dithering: index maps whose local averages follow the image, not just each
pixel's nearest color.

Error diffusion trades per-pixel error for error that averages out over a neighbourhood: each
pixel is mapped to its nearest palette color and the difference is passed on to the pixels not
yet visited (7/16 ahead, 3/16, 5/16 and 1/16 in the next row), so flat areas and gradients come
out as fine patterns of palette colors whose mean is the original color. kmq scans rows in
serpentine order (alternately left to right and right to left), which avoids the diagonal
"worms" of a one-way scan, and does it in a working space (:mod:`kmq.colorspace`): in ``"linear"``
the patterns mix light as the eye does, in ``"oklab"`` the nearest color is the perceptually
nearest one.

``strength`` scales the error passed on: 0 is plain nearest-color remapping, 1 is classic
Floyd-Steinberg. :func:`dither` clips each pixel's value plus received error to the range of sRGB
colors in the working space (as Pillow clips to 0..255): without it (the textbook algorithm, and
:func:`floyd_steinberg` without ``bounds``), error piles up wherever the image leaves the
palette's gamut and shows as streaks.

The result is deterministic: the same image, palette, space and strength give the same indices
on every machine (no fast-math, no threads).
"""

from __future__ import annotations

import numbers

import numpy as np

from kmq import colorspace
from kmq._kernels import dither as _kd
from kmq.io import DEFAULT_MAX_PIXELS, as_rgb
from kmq.remapping import check_palette

#: Most palette entries an index map holds (uint16 indices).
MAX_COLORS = 65536


def _check_finite(arr: np.ndarray, what: str) -> np.ndarray:
    """A real-valued array as contiguous float64 with only finite values, or a ValueError."""
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"expected {what} of a float or integer dtype; got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"expected finite {what}; got NaN or infinite values")
    return arr


def _check_points(points) -> np.ndarray:
    arr = np.asarray(points)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"expected points to be a non-empty (H, W, 3) image in a working "
                         f"space; got shape {arr.shape}")
    return _check_finite(arr, "points")


def _check_working_palette(palette) -> np.ndarray:
    arr = np.asarray(palette)
    if arr.ndim != 2 or arr.shape[1] != 3 or not 1 <= len(arr) <= MAX_COLORS:
        raise ValueError(f"expected a palette of shape (K, 3) with 1 <= K <= {MAX_COLORS}; "
                         f"got shape {arr.shape}")
    return _check_finite(arr, "palette values")


def _check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not (
            0.0 <= float(strength) <= 1.0):
        raise ValueError(f"expected strength to be a number in 0..1; got {strength!r}")
    return float(strength)


def _check_bounds(bounds) -> tuple[np.ndarray, np.ndarray]:
    if bounds is None:
        return np.full(3, -np.inf), np.full(3, np.inf)
    try:
        lo, hi = (np.array(b, dtype=np.float64).reshape(3) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"expected bounds to be (low, high), each 3 numbers; got {bounds!r}"
                         ) from None
    if np.isnan(lo).any() or np.isnan(hi).any() or (lo > hi).any():
        raise ValueError(f"expected bounds with low <= high in every channel; got {bounds!r}")
    return lo, hi


def floyd_steinberg(points, palette, *, strength: float = 1.0, bounds=None) -> np.ndarray:
    """Dither an image given in a working space onto a palette in the same space.

    Parameters
    ----------
    points : array_like, shape (H, W, 3)
        The image, e.g. ``colorspace.to_working(rgb, "oklab")``.
    palette : array_like, shape (K, 3), 1 <= K <= 65536
        Palette colors in the same space.
    strength : float in 0..1
        Fraction of each pixel's error passed on; 0 gives the nearest color of every pixel.
    bounds : (low, high), each a 3-sequence, optional
        Per-channel limits to which a pixel's value plus the error it received is clipped before
        its color is chosen, e.g. :func:`kmq.colorspace.gamut_bounds`. Without them (the
        textbook algorithm) error can pile up without limit where the image leaves the
        palette's gamut. Points are not clipped where no error reached them, so with
        ``strength=0`` the bounds must hold the points for the result to be the nearest colors.

    Returns
    -------
    ndarray of uint8 (K <= 256) or uint16, shape (H, W)
        Palette indices. The nearest color is exact (ties go to the lower index).

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.dither import floyd_steinberg
    >>> gray = np.full((4, 8, 3), 127.5)                  # mid-gray in sRGB units
    >>> idx = floyd_steinberg(gray, [[0, 0, 0], [255, 255, 255]])
    >>> float(idx.mean())                                 # half the pixels are white
    0.5
    >>> floyd_steinberg(gray, [[0, 0, 0], [255, 255, 255]], strength=0).max()  # nearest: black
    np.uint8(0)
    """
    pts = _check_points(points)
    pal = _check_working_palette(palette)
    s = _check_strength(strength)
    order = np.argsort(pal[:, 0], kind="stable").astype(np.int64)
    lo, hi = _check_bounds(bounds)
    out = np.empty(pts.shape[:2], np.int32)
    _kd.floyd_steinberg(pts, pal, order, s, lo, hi, out)
    return out.astype(np.uint8 if len(pal) <= 256 else np.uint16)


def dither(image, palette, *, space: str = "srgb", strength: float = 1.0,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Index map of ``image`` onto an sRGB ``palette`` by Floyd-Steinberg dithering in ``space``.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8, PIL.Image.Image or path
    palette : array_like (K, 3) of integers in 0..255, 1 <= K <= 65536
        E.g. ``kmq.quantize(image, k).palette``.
    space : {"srgb", "linear", "oklab"}
        Where colors are compared and errors added (see :mod:`kmq.colorspace`). Values plus
        error are clipped to the range of sRGB colors in that space
        (:func:`kmq.colorspace.gamut_bounds`), as Pillow clips to 0..255.
    strength : float in 0..1
        1 is classic Floyd-Steinberg, 0 is plain nearest-color remapping.
    max_pixels : int
        Larger images are refused (:class:`kmq.ImageTooLargeError`).

    Returns
    -------
    ndarray of uint8 (K <= 256) or uint16, shape (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.dither import dither
    >>> ramp = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], 3, 2)
    >>> ramp = np.repeat(ramp, 16, axis=0)                     # a 16 x 64 gray ramp
    >>> bw = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    >>> idx = dither(ramp, bw)
    >>> idx.shape, idx.dtype
    ((16, 64), dtype('uint8'))
    >>> means = bw[idx][..., 0].mean(axis=0)                    # column means follow the ramp
    >>> bool(np.abs(means - ramp[0, :, 0]).mean() < 20)
    True
    """
    colorspace.check_space(space)
    rgb = as_rgb(image, max_pixels=max_pixels)
    pal = check_palette(palette)
    return floyd_steinberg(colorspace.to_working(rgb, space), colorspace.to_working(pal, space),
                           strength=strength, bounds=colorspace.gamut_bounds(space))


__all__ = ["MAX_COLORS", "dither", "floyd_steinberg"]
