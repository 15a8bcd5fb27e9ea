"""Error diffusion: index maps whose local averages follow the image, not just each pixel's
nearest color.

Error diffusion trades per-pixel error for error that averages out over a neighbourhood: each
pixel is mapped to its nearest palette color and the difference is passed on to the pixels not
yet visited (7/16 ahead, 3/16, 5/16 and 1/16 in the next row), so flat areas and gradients come
out as fine patterns of palette colors whose mean is the original color. kmq scans rows in
serpentine order (alternately left to right and right to left), which avoids the diagonal
"worms" of a one-way scan, and does it in a working space (:mod:`kmq.colorspace`): in ``"linear"``
the patterns mix light as the eye does, in ``"oklab"`` the nearest color is the perceptually
nearest one. Values plus received error are clipped to the range of sRGB colors in the working
space (as Pillow clips to 0..255): without it error piles up wherever the image leaves the
palette's gamut and shows as streaks.

Two methods:

``"adaptive"`` (the default, what ``kmq.quantize(..., dither=S)`` and ``kmq compress --dither S``
use)
    Floyd-Steinberg that dithers where it helps and holds back where it only adds noise:

    1. *Flatness map.* Every pixel's exactly nearest palette entry is found first (no
       dithering). A pixel's dithering level is ``strength * 15/16 * f**2``, where ``f`` is the
       share of its 8 neighbours (edges replicated) with the same nearest entry. Inside a flat
       band of one color (a posterized gradient, where dithering is needed) ``f`` is 1; on edges
       and in texture or noise, where the image's own detail hides the banding and dithering
       only adds noise (and jagged edges), it is small. The level scales the error a pixel
       *receives*, so error is not carried across edges into busy areas.
    2. *Damped error.* A pixel's error whose squared norm exceeds 4 times (``DAMP_THRESHOLD``)
       the mean squared error of the nearest-color mapping is halved (``DAMP``) before it is
       passed on: large errors, which at few colors would flip neighbours to distant palette
       entries ("sparkles"), are damped, and the small ones, which make gradients smooth, are
       not. The threshold follows the palette: dense palettes damp at small errors.
    3. The 15/16 keeps tiny errors from accumulating over long flat runs.

    Measured on 12 photos against libimagequant's dithering (which does the same kinds of things
    with its own maps): higher SSIM and lower mean CIEDE2000 at K = 16, 64, 256; see the
    README's perceptual results.

``"floyd-steinberg"``
    Classic serpentine Floyd-Steinberg: every pixel passes on ``strength`` times its full error.
    It keeps local means best (lowest low-pass error) but adds the most noise.

4 channels: the points may have a fourth channel (premultiplied RGBA: ``(r*a/255, g*a/255,
b*a/255, a)``); the nearest-color search is exact in all C channels and error diffuses in all of
them. Pixels marked ``transparent`` (e.g. ``a == 0``) take the palette's transparent entry, pass
on no error and drop what they receive.

The result is deterministic: the same image, palette, space, method and strength give the same
indices on every machine (no fast-math, no threads).
"""

from __future__ import annotations

import numbers

import numpy as np

from kmq import colorspace
from kmq._kernels import dither as _kd
from kmq.errors import ArgumentError
from kmq.io import DEFAULT_MAX_PIXELS, as_rgb
from kmq.nearest import check_palette

#: Most palette entries an index map holds (uint16 indices).
MAX_COLORS = 65536
#: Dithering methods: ``"adaptive"`` (the default) and classic ``"floyd-steinberg"``.
METHODS = ("adaptive", "floyd-steinberg")
#: Channel counts the kernels take: RGB-like points and premultiplied RGBA points.
CHANNELS = (3, 4)
#: Adaptive method: the dithering level at full strength in a flat area.
BASE_LEVEL = 15.0 / 16.0
#: Adaptive method: the exponent of the flatness (share of like neighbours) in the level.
FLAT_POWER = 2
#: Adaptive method: errors above this many times the nearest-color mean squared error ...
DAMP_THRESHOLD = 4.0
#: ... are multiplied by this before they are passed on.
DAMP = 0.5


def _check_finite(arr: np.ndarray, what: str) -> np.ndarray:
    """A real-valued array as contiguous float64 with only finite values, or a ValueError."""
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ArgumentError(f"expected {what} of a float or integer dtype; got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ArgumentError(f"expected finite {what}; got NaN or infinite values")
    return arr


def _check_points(points) -> np.ndarray:
    arr = np.asarray(points)
    if (arr.ndim != 3 or arr.shape[2] not in CHANNELS or arr.shape[0] == 0
            or arr.shape[1] == 0):
        raise ArgumentError(f"expected points to be a non-empty (H, W, 3) or (H, W, 4) image in a "
                            f"working space; got shape {arr.shape}")
    return _check_finite(arr, "points")


def _check_working_palette(palette, nch: int) -> np.ndarray:
    arr = np.asarray(palette)
    if arr.ndim != 2 or arr.shape[1] != nch or not 1 <= len(arr) <= MAX_COLORS:
        raise ArgumentError(f"expected a palette of shape (K, {nch}) (as many channels as the "
                            f"points) with 1 <= K <= {MAX_COLORS}; got shape {arr.shape}")
    return _check_finite(arr, "palette values")


def _check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not (
            0.0 <= float(strength) <= 1.0):
        raise ArgumentError(f"expected strength to be a number in 0..1; got {strength!r}")
    return float(strength)


def _check_method(method) -> str:
    if method not in METHODS:
        raise ArgumentError(f"expected a dithering method in {METHODS}; got {method!r}")
    return method


def _check_bounds(bounds, nch: int) -> tuple[np.ndarray, np.ndarray]:
    if bounds is None:
        return np.full(nch, -np.inf), np.full(nch, np.inf)
    try:
        lo, hi = (np.array(b, dtype=np.float64).reshape(nch) for b in bounds)
    except (TypeError, ValueError):
        raise ArgumentError(f"expected bounds to be (low, high), each {nch} numbers; got "
                            f"{bounds!r}") from None
    if np.isnan(lo).any() or np.isnan(hi).any() or (lo > hi).any():
        raise ArgumentError(f"expected bounds with low <= high in every channel; got {bounds!r}")
    return lo, hi


def _check_transparent(transparent, transparent_index, shape, pal) -> tuple[np.ndarray, int]:
    """The (H, W) uint8 mask and the index transparent pixels get."""
    if transparent is None:
        return np.zeros(shape, np.uint8), 0
    mask = np.asarray(transparent)
    if mask.shape != shape or mask.dtype != np.bool_:
        raise ArgumentError(f"expected transparent to be a boolean mask of shape {shape}; got "
                            f"{mask.dtype} of shape {mask.shape}")
    if transparent_index is None:
        clear = np.flatnonzero(pal[:, -1] == 0) if pal.shape[1] == 4 else np.array([], int)
        if len(clear) == 0:
            raise ArgumentError("expected transparent_index, or a 4-channel palette with an entry "
                                "of alpha 0")
        transparent_index = int(clear[0])
    if (isinstance(transparent_index, bool) or not isinstance(transparent_index, numbers.Integral)
            or not 0 <= int(transparent_index) < len(pal)):
        raise ArgumentError(f"expected transparent_index to be an index into the palette (0..."
                            f"{len(pal) - 1}); got {transparent_index!r}")
    return np.ascontiguousarray(mask, dtype=np.uint8), int(transparent_index)


def flatness(nearest_indices: np.ndarray) -> np.ndarray:
    """Share of each pixel's 8 neighbours with the same index, edges replicated: (H, W) float64
    in 0..1 (multiples of 1/8).

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.dither import flatness
    >>> flatness(np.array([[0, 0, 0, 1], [0, 0, 1, 1]]))
    array([[1.   , 0.875, 0.5  , 0.75 ],
           [1.   , 0.75 , 0.5  , 0.875]])
    """
    idx = np.asarray(nearest_indices)
    height, width = idx.shape
    pad = np.pad(idx, 1, mode="edge")
    same = np.zeros((height, width), np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                same += pad[1 + dy:1 + dy + height, 1 + dx:1 + dx + width] == idx
    return same / 8.0


def _kernel_args(pts, pal, bounds):
    nch = pts.shape[2]
    lo, hi = _check_bounds(bounds, nch)
    order = np.argsort(pal[:, 0], kind="stable").astype(np.int64)
    return _kd.DIFFUSE[nch], order, lo, hi


def diffuse(points, palette, *, strength: float = 1.0, method: str = "adaptive", bounds=None,
            transparent=None, transparent_index=None) -> np.ndarray:
    """Dither an image given in a working space onto a palette in the same space.

    Parameters
    ----------
    points : array_like, shape (H, W, C), C = 3 or 4
        The image, e.g. ``colorspace.to_working(rgb, "oklab")``; 4 channels for premultiplied
        RGBA points.
    palette : array_like, shape (K, C), 1 <= K <= 65536
        Palette colors in the same space.
    strength : float in 0..1
        0 gives the nearest color of every pixel; 1 is full dithering (see ``method``).
    method : {"adaptive", "floyd-steinberg"}
        See the module docstring: adaptive dithering (flatness-modulated, damped) or classic
        Floyd-Steinberg, which passes on ``strength`` times every error.
    bounds : (low, high), each a C-sequence, optional
        Per-channel limits to which a pixel's value plus the error it received is clipped before
        its color is chosen, e.g. :func:`kmq.colorspace.gamut_bounds`. Without them (the
        textbook algorithm) error can pile up without limit where the image leaves the
        palette's gamut. With bounds, even ``strength=0`` gives the nearest colors of the
        clipped points.
    transparent : ndarray of bool, shape (H, W), optional
        Pixels (e.g. those of alpha 0) that take ``transparent_index``, pass on no error and
        drop the error they receive: transparency does not bleed color into its neighbours.
    transparent_index : int, optional
        Their palette entry; by default the first entry whose last channel (alpha) is 0 in a
        4-channel palette.

    Returns
    -------
    ndarray of uint8 (K <= 256) or uint16, shape (H, W)
        Palette indices. The nearest color is exact (ties go to the lower index).

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.dither import diffuse
    >>> ramp = np.repeat(np.linspace(0, 255, 64)[None, :, None], 3, 2).repeat(16, axis=0)
    >>> bw = [[0, 0, 0], [255, 255, 255]]
    >>> idx = diffuse(ramp, bw)                      # adaptive: a flat gradient is dithered
    >>> bool(np.abs(idx.mean(axis=0) * 255 - ramp[0, :, 0]).mean() < 40)
    True
    >>> rgba = np.zeros((2, 3, 4)); rgba[0] = [100, 100, 100, 255]   # bottom row clear
    >>> diffuse(rgba, [[0, 0, 0, 255], [0, 0, 0, 0], [255, 255, 255, 255]],
    ...         method="floyd-steinberg", transparent=rgba[..., 3] == 0)
    array([[0, 2, 0],
           [1, 1, 1]], dtype=uint8)
    """
    pts = _check_points(points)
    nch = pts.shape[2]
    pal = _check_working_palette(palette, nch)
    s = _check_strength(strength)
    _check_method(method)
    mask, clear = _check_transparent(transparent, transparent_index, pts.shape[:2], pal)
    kernel, order, lo, hi = _kernel_args(pts, pal, bounds)
    height, width = pts.shape[:2]
    out = np.empty((height, width), np.int32)
    if method == "floyd-steinberg" or s == 0.0:
        kernel(pts, pal, order, np.full((height, width), s), lo, hi, np.inf, 1.0, mask, clear,
               out)
    else:
        # the nearest colors first (level 0: no error reaches any pixel)
        kernel(pts, pal, order, np.zeros((height, width)), lo, hi, np.inf, 1.0, mask, clear,
               out)
        mse = _nearest_mse(pts, pal, lo, hi, mask, out)
        _adaptive_pass(kernel, pts, pal, order, lo, hi, mask, clear, s, mse, out)
    return out.astype(np.uint8 if len(pal) <= 256 else np.uint16)


def _nearest_mse(pts, pal, lo, hi, mask, out) -> float:
    """Mean squared error (summed over channels) of the opaque pixels' (clipped) values against
    their entries ``out``."""
    opaque = mask == 0
    diff = np.clip(pts, lo, hi)[opaque] - pal[out[opaque]]
    return float(np.mean(np.sum(diff * diff, axis=1))) if len(diff) else 0.0


def diffuse_from_nearest(points, palette, nearest, *, strength: float = 1.0, bounds=None,
                         nearest_mse: float | None = None) -> np.ndarray:
    """:func:`diffuse` (adaptive, opaque) for a caller that already has each pixel's nearest
    entry: the same indices, without the first of its two passes.

    ``points`` (H, W, 3) and ``palette`` (K, 3) are in one working space, ``bounds`` as for
    :func:`diffuse`, and ``nearest`` (H, W) the index of the exactly nearest entry to each
    point clipped to ``bounds`` (ties to the lower index): what that pass computes. In the
    spaces whose conversion works channel by channel ("srgb", "wsrgb", "linear"), an 8-bit
    color's point is the same number whichever array it is converted in and lies within
    :func:`kmq.colorspace.gamut_bounds`, so :func:`kmq.quantize`'s nearest entries of the
    image's distinct colors are those of its pixels (a test checks the indices against
    :func:`dither`'s). ``nearest_mse``, the mean over pixels of their squared error summed
    over channels, is measured from the pixels unless given: in sRGB a caller with the color
    histogram has it exactly (a sum of integers) for far less work.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.colorspace import gamut_bounds, to_working
    >>> from kmq.dither import diffuse, diffuse_from_nearest
    >>> rng = np.random.default_rng(0)
    >>> pts = to_working(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "wsrgb")
    >>> pal = to_working(np.array([[0, 0, 0], [128, 128, 128], [255, 255, 255]]), "wsrgb")
    >>> near = ((pts[:, :, None, :] - pal) ** 2).sum(axis=3).argmin(axis=2)
    >>> fast = diffuse_from_nearest(pts, pal, near, bounds=gamut_bounds("wsrgb"))
    >>> bool(np.array_equal(fast, diffuse(pts, pal, bounds=gamut_bounds("wsrgb"))))
    True
    """
    pts = _check_points(points)
    nch = pts.shape[2]
    if nch != 3:
        raise ArgumentError(f"expected points of 3 channels; got {nch}")
    pal = _check_working_palette(palette, nch)
    s = _check_strength(strength)
    near = np.asarray(nearest)
    if near.shape != pts.shape[:2] or not np.issubdtype(near.dtype, np.integer):
        raise ArgumentError(f"expected nearest, integer indices of shape {pts.shape[:2]}; got "
                            f"{near.dtype} of shape {near.shape}")
    if near.min() < 0 or near.max() >= len(pal):
        raise ArgumentError(f"expected nearest indices in 0..{len(pal) - 1}; got "
                            f"{near.min()}..{near.max()}")
    kernel, order, lo, hi = _kernel_args(pts, pal, bounds)
    out = np.array(near, np.int32, order="C")  # a copy: the kernel writes into it
    if s > 0.0:
        mask = np.zeros(pts.shape[:2], np.uint8)
        if nearest_mse is None:  # measured as diffuse measures it
            nearest_mse = _nearest_mse(pts, pal, lo, hi, mask, out)
        _adaptive_pass(kernel, pts, pal, order, lo, hi, mask, 0, s, nearest_mse, out)
    return out.astype(np.uint8 if len(pal) <= 256 else np.uint16)


def _adaptive_pass(kernel, pts, pal, order, lo, hi, mask, clear, strength: float,
                   nearest_mse: float, out: np.ndarray) -> None:
    """The adaptive method's dithering pass: ``out`` holds each pixel's nearest entry on entry
    (their mean squared error, summed over channels, is ``nearest_mse``) and the dithered
    indices on return."""
    level = (strength * BASE_LEVEL) * flatness(out) ** FLAT_POWER
    kernel(pts, pal, order, level, lo, hi, DAMP_THRESHOLD * nearest_mse, DAMP, mask, clear, out)


def floyd_steinberg(points, palette, *, strength: float = 1.0, bounds=None) -> np.ndarray:
    """Classic serpentine Floyd-Steinberg: ``diffuse(..., method="floyd-steinberg")``.

    Parameters
    ----------
    points : array_like, shape (H, W, C), C = 3 or 4
    palette : array_like, shape (K, C)
    strength : float in 0..1
        Fraction of each pixel's error passed on; 0 gives the nearest color of every pixel.
    bounds : (low, high), optional
        See :func:`diffuse`.

    Returns
    -------
    ndarray of uint8 (K <= 256) or uint16, shape (H, W)

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
    return diffuse(points, palette, strength=strength, method="floyd-steinberg", bounds=bounds)


def dither(image, palette, *, space: str = "srgb", strength: float = 1.0,
           method: str = "adaptive", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Index map of ``image`` onto an sRGB ``palette`` by error diffusion in ``space``.

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
        1 is full dithering, 0 is plain nearest-color remapping.
    method : {"adaptive", "floyd-steinberg"}
        See the module docstring; ``"adaptive"`` is what :func:`kmq.quantize` uses.
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
    >>> idx = dither(ramp, bw, method="floyd-steinberg")
    >>> idx.shape, idx.dtype
    ((16, 64), dtype('uint8'))
    >>> means = bw[idx][..., 0].mean(axis=0)                    # column means follow the ramp
    >>> bool(np.abs(means - ramp[0, :, 0]).mean() < 20)
    True
    """
    colorspace.check_space(space)
    _check_method(method)
    rgb = as_rgb(image, max_pixels=max_pixels)
    pal = check_palette(palette)
    return diffuse(colorspace.to_working(rgb, space), colorspace.to_working(pal, space),
                   strength=strength, method=method, bounds=colorspace.gamut_bounds(space))


__all__ = ["CHANNELS", "MAX_COLORS", "METHODS", "diffuse", "diffuse_from_nearest", "dither",
           "flatness", "floyd_steinberg"]
