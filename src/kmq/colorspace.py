"""Color spaces: sRGB <-> weighted sRGB, linear RGB, OKLab, vectorized, in float64.

kmq measures color differences in a *working space*, one of:

``"srgb"``
    8-bit sRGB values as they are, 0..255 (the default everywhere in kmq).
``"wsrgb"``
    sRGB with channel weights: R, G and B multiplied by :data:`WSRGB_WEIGHTS` (0.85, 1, 0.7),
    so G spans 0..255, R 0..216.75 and B 0..178.5. Squared distance is then
    0.7225 dR^2 + dG^2 + 0.49 dB^2: the eye resolves green differences best and blue ones
    worst (green carries most of the luminance, blue least), so a blue error counts half as
    much as a green one. The weights were chosen by measuring SSIM and CIEDE2000 on photos
    (``benchmarks/bench_perceptual.py``); libimagequant weights its channels the same way
    (0.5, 1, 0.45, on gamma-adjusted values), which measured worse here.
``"linear"``
    Linear-light RGB (the sRGB transfer function of IEC 61966-2-1 undone), **scaled by 255**,
    so black is 0 and white is 255 in every channel.
``"oklab"``
    Björn Ottosson's OKLab (https://bottosson.github.io/posts/oklab/), **L, a and b each scaled
    by 255**: black is (0, 0, 0), white is (255, 0, 0), and the sRGB gamut spans about -60..70
    in a and -80..50 in b.

The common scale of 255 makes distances comparable in magnitude across spaces (a difference of
1 between black and white is one 8-bit level in sRGB), so tolerances and strengths tuned in one
space are sensible in the others. Euclidean distance is the same up to that factor as in the
unscaled spaces, so nearest colors and k-means clusters do not depend on it.

:func:`gamut_bounds` gives the per-channel range of the 8-bit sRGB colors in each space (used to
clip dithering error).

Conversions take and return arrays of shape ``(..., 3)`` (one color per row, or an image) in
float64. The OKLab matrices are those Ottosson published for linear sRGB (his ``M1`` composed with
the sRGB-to-XYZ matrix); the inverse matrices are computed from them in float64, so that a round
trip is exact to about 1e-13 rather than to the 1e-10 of the rounded published inverses.
scikit-image has the sRGB transfer function only inside its XYZ conversions and has no OKLab;
the tests check this module against it and against published reference values.

Examples
--------
>>> import numpy as np
>>> from kmq.colorspace import to_working, from_working
>>> white_black = np.array([[255, 255, 255], [0, 0, 0]], np.uint8)
>>> np.round(to_working(white_black, "oklab"), 4) + 0.0
array([[255.,   0.,   0.],
       [  0.,   0.,   0.]])
>>> to_working(np.array([[128, 128, 128]], np.uint8), "linear").round(3)
array([[55.044, 55.044, 55.044]])
>>> from_working(to_working(white_black, "oklab"), "oklab").round(9) + 0.0
array([[255., 255., 255.],
       [  0.,   0.,   0.]])
"""

from __future__ import annotations

import functools

import numpy as np

from kmq.errors import ArgumentError

#: The working spaces :func:`to_working` and :func:`from_working` know.
SPACES = ("srgb", "wsrgb", "linear", "oklab")

#: Per-channel factors (R, G, B) of the ``"wsrgb"`` space.
WSRGB_WEIGHTS = np.array([0.85, 1.0, 0.7])

#: Every working space is scaled so that its natural unit range maps to 0..255.
SCALE = 255.0

# sRGB transfer function (IEC 61966-2-1:1999), on values in 0..1.
_DECODE_KNEE = 0.04045  # encoded value below which the curve is linear
_ENCODE_KNEE = 0.0031308  # the same point in linear light
_SLOPE = 12.92
_GAMMA = 2.4
_OFFSET = 0.055

#: Linear sRGB -> LMS, Ottosson's ``linear_srgb_to_oklab``.
LINEAR_TO_LMS = np.array([
    [0.4122214708, 0.5363325363, 0.0514459929],
    [0.2119034982, 0.6806995451, 0.1073969566],
    [0.0883024619, 0.2817188376, 0.6299787005],
])
#: Cube-rooted LMS -> OKLab (Ottosson's ``M2``).
LMS_TO_OKLAB = np.array([
    [0.2104542553, 0.7936177850, -0.0040720468],
    [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660],
])
#: CIE XYZ (D65, Y = 1 for white) -> LMS (Ottosson's ``M1``).
XYZ_TO_LMS = np.array([
    [0.8189330101, 0.3618667424, -0.1288597137],
    [0.0329845436, 0.9293118715, 0.0361456387],
    [0.0482003018, 0.2643662691, 0.6338517070],
])
LMS_TO_LINEAR = np.linalg.inv(LINEAR_TO_LMS)
OKLAB_TO_LMS = np.linalg.inv(LMS_TO_OKLAB)

# The decoding curve for the 256 8-bit values: uint8 input is converted by table lookup.
_LEVELS = np.arange(256, dtype=np.float64) / 255.0


def _decode(c: np.ndarray) -> np.ndarray:
    return np.where(c <= _DECODE_KNEE, c / _SLOPE,
                    ((np.maximum(c, _DECODE_KNEE) + _OFFSET) / (1 + _OFFSET)) ** _GAMMA)


_DECODE_TABLE = _decode(_LEVELS)


def _apply(matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x @ matrix.T`` on (..., 3) arrays, channel by channel (much faster than ``matmul`` on
    many short rows, and the same sum order for every element)."""
    x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2]
    out = np.empty(x.shape, np.float64)
    for i in range(3):
        out[..., i] = matrix[i, 0] * x0 + matrix[i, 1] * x1 + matrix[i, 2] * x2
    return out


def _check_colors(colors, name: str = "colors") -> np.ndarray:
    arr = np.asarray(colors)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ArgumentError(f"expected {name} with 3 channels in the last axis, shape (..., 3); "
                            f"got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ArgumentError(f"expected {name} of an integer or float dtype; got {arr.dtype}")
    return arr


def check_space(space: str) -> str:
    """``space`` if it is one of :data:`SPACES`, else a ValueError that lists them."""
    if space not in SPACES:
        raise ArgumentError(f"expected a color space in {SPACES}; got {space!r}")
    return space


def srgb_to_linear(srgb) -> np.ndarray:
    """Decode sRGB to linear light (IEC 61966-2-1), both in 0..1 units.

    Parameters
    ----------
    srgb : array_like, shape (..., 3) or any shape
        Encoded values in 0..1. Values outside are extended by the same formulas (negative values
        stay on the linear segment).

    Returns
    -------
    ndarray of float64, same shape

    Examples
    --------
    >>> from kmq.colorspace import srgb_to_linear
    >>> srgb_to_linear([0.0, 0.04045, 0.5, 1.0]).round(6)
    array([0.      , 0.003131, 0.214041, 1.      ])
    """
    return _decode(np.asarray(srgb, dtype=np.float64))


def linear_to_srgb(linear) -> np.ndarray:
    """Encode linear light as sRGB (IEC 61966-2-1), both in 0..1 units; the inverse of
    :func:`srgb_to_linear`.

    Examples
    --------
    >>> from kmq.colorspace import linear_to_srgb
    >>> linear_to_srgb([0.0, 0.214041, 1.0]).round(6)
    array([0. , 0.5, 1. ])
    """
    lin = np.asarray(linear, dtype=np.float64)
    return np.where(lin <= _ENCODE_KNEE, lin * _SLOPE,
                    (1 + _OFFSET) * np.maximum(lin, _ENCODE_KNEE) ** (1 / _GAMMA) - _OFFSET)


def linear_to_oklab(linear) -> np.ndarray:
    """Linear sRGB (0..1) to OKLab (L in 0..1), Ottosson's ``linear_srgb_to_oklab``.

    Parameters
    ----------
    linear : array_like, shape (..., 3)

    Returns
    -------
    ndarray of float64, shape (..., 3)
        L, a, b.

    Examples
    --------
    >>> from kmq.colorspace import linear_to_oklab
    >>> linear_to_oklab([1.0, 0.0, 0.0]).round(4)  # sRGB red
    array([0.628 , 0.2249, 0.1258])
    """
    lin = _check_colors(np.asarray(linear, dtype=np.float64), "linear")
    return _apply(LMS_TO_OKLAB, np.cbrt(_apply(LINEAR_TO_LMS, lin)))


def oklab_to_linear(lab) -> np.ndarray:
    """OKLab to linear sRGB (0..1); the inverse of :func:`linear_to_oklab`.

    Colors outside the sRGB gamut give values outside 0..1.

    Examples
    --------
    >>> from kmq.colorspace import oklab_to_linear
    >>> oklab_to_linear([1.0, 0.0, 0.0]).round(6) + 0.0
    array([1., 1., 1.])
    """
    lab = _check_colors(np.asarray(lab, dtype=np.float64), "lab")
    lms = _apply(OKLAB_TO_LMS, lab)
    return _apply(LMS_TO_LINEAR, lms * lms * lms)


def xyz_to_oklab(xyz) -> np.ndarray:
    """CIE XYZ (D65, Y = 1 for the white point) to OKLab with Ottosson's ``M1`` and ``M2``.

    Examples
    --------
    >>> from kmq.colorspace import xyz_to_oklab
    >>> xyz_to_oklab([0.950, 1.000, 1.089]).round(3) + 0.0  # D65 white, from Ottosson's table
    array([1., 0., 0.])
    """
    xyz = _check_colors(np.asarray(xyz, dtype=np.float64), "xyz")
    return _apply(LMS_TO_OKLAB, np.cbrt(_apply(XYZ_TO_LMS, xyz)))


def to_working(colors, space: str) -> np.ndarray:
    """sRGB colors as points of a working space (see the module docstring for the scales).

    Parameters
    ----------
    colors : array_like, shape (..., 3)
        sRGB, uint8 or any number in 0..255 (uint8 input is decoded through a table, float input
        through the formula; both give the same values).
    space : {"srgb", "wsrgb", "linear", "oklab"}

    Returns
    -------
    ndarray of float64, shape (..., 3)

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.colorspace import to_working
    >>> to_working(np.array([[255, 255, 255]], np.uint8), "wsrgb")
    array([[216.75, 255.  , 178.5 ]])
    >>> to_working(np.array([[255, 0, 0]], np.uint8), "oklab").round(2)
    array([[160.13,  57.34,  32.09]])
    >>> to_working([[0, 51, 255]], "srgb")
    array([[  0.,  51., 255.]])
    """
    check_space(space)
    arr = _check_colors(colors)
    if space == "srgb":
        return arr.astype(np.float64)
    if space == "wsrgb":
        return arr.astype(np.float64) * WSRGB_WEIGHTS
    if arr.dtype == np.uint8:
        linear = _DECODE_TABLE[arr]
    else:
        linear = srgb_to_linear(arr.astype(np.float64) / SCALE)
    if space == "linear":
        return linear * SCALE
    return linear_to_oklab(linear) * SCALE


def _cube_edges() -> np.ndarray:
    """The 12 edges of the 8-bit RGB cube, every level (3072 colors, corners repeated)."""
    levels = np.arange(256)
    edges = []
    for axis in range(3):
        for u in (0, 255):
            for v in (0, 255):
                e = np.empty((256, 3), np.int64)
                e[:, axis] = levels
                e[:, (axis + 1) % 3] = u
                e[:, (axis + 2) % 3] = v
                edges.append(e)
    return np.concatenate(edges).astype(np.uint8)


@functools.cache
def _gamut_bounds(space: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if space == "srgb":
        return (0.0, 0.0, 0.0), (SCALE, SCALE, SCALE)
    if space == "wsrgb":
        return (0.0, 0.0, 0.0), tuple(float(w) * SCALE for w in WSRGB_WEIGHTS)
    points = to_working(_cube_edges(), space)
    margin = 1e-9 * SCALE  # so that every 8-bit color is inside whatever the rounding
    return tuple(points.min(axis=0) - margin), tuple(points.max(axis=0) + margin)


def gamut_bounds(space: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel range of the 8-bit sRGB colors in a working space: ``(low, high)``.

    In ``"srgb"`` and ``"linear"`` it is 0..255 in every channel, in ``"wsrgb"`` 0..255 times
    each channel's weight; in ``"oklab"`` L is 0..255 and
    a, b span the sRGB gamut's extremes (reached on the cube's edges, e.g. a at green and at
    (255, 0, 224)), widened by 1e-9 * 255 so every 8-bit color lies inside.

    Examples
    --------
    >>> from kmq.colorspace import gamut_bounds
    >>> low, high = gamut_bounds("oklab")
    >>> low.round(2), high.round(2)
    (array([ -0.  , -59.64, -79.44]), array([255.  ,  70.44,  50.64]))
    """
    low, high = _gamut_bounds(check_space(space))
    return np.array(low), np.array(high)


def from_working(points, space: str) -> np.ndarray:
    """Points of a working space back to sRGB, as float 0..255 (not rounded, not clipped).

    Points outside the sRGB gamut (possible in OKLab, or after averaging in any space) give
    values outside 0..255; ``np.clip(np.rint(x), 0, 255).astype(np.uint8)`` makes 8-bit colors.

    Parameters
    ----------
    points : array_like, shape (..., 3)
    space : {"srgb", "wsrgb", "linear", "oklab"}

    Returns
    -------
    ndarray of float64, shape (..., 3)

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.colorspace import to_working, from_working
    >>> from_working([[216.75, 255.0, 178.5]], "wsrgb").round(9)
    array([[255., 255., 255.]])
    >>> colors = np.array([[12, 200, 99]], np.uint8)
    >>> from_working(to_working(colors, "oklab"), "oklab").round(9)
    array([[ 12., 200.,  99.]])
    """
    check_space(space)
    pts = _check_colors(points, "points").astype(np.float64)
    if space == "srgb":
        return pts
    if space == "wsrgb":
        return pts / WSRGB_WEIGHTS
    linear = pts / SCALE if space == "linear" else oklab_to_linear(pts / SCALE)
    return linear_to_srgb(linear) * SCALE


__all__ = ["SCALE", "SPACES", "WSRGB_WEIGHTS", "check_space", "from_working", "gamut_bounds",
           "linear_to_oklab", "linear_to_srgb", "oklab_to_linear", "srgb_to_linear", "to_working",
           "xyz_to_oklab"]
