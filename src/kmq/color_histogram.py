"""Exact color histogram: every distinct color of an image and how many pixels have it.

k-means runs on this histogram instead of on the pixels: a photo has far fewer distinct colors than
pixels, and the weighted objective over (color, count) pairs equals the objective over all pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from kmq._kernels import histogram as _k
from kmq._kernels.histogram import N_KEYS
from kmq.errors import ArgumentError


@dataclass(frozen=True)
class ColorHistogram:
    """Distinct colors, ascending by 24-bit key ``R << 16 | G << 8 | B``, and their pixel counts.

    Attributes
    ----------
    colors : ndarray of uint8, shape (N, 3)
    counts : ndarray of int64, shape (N,)
    """

    colors: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def n_pixels(self) -> int:
        """Number of pixels the histogram counts."""
        return int(self.counts.sum())

    @property
    def points(self) -> np.ndarray:
        """The colors as float64 (N, 3), the form k-means works on (a new array each time)."""
        return self.colors.astype(np.float64)

    @property
    def weights(self) -> np.ndarray:
        """The counts as float64 (N,) (a new array each time)."""
        return self.counts.astype(np.float64)

    @cached_property
    def keys(self) -> np.ndarray:
        """The 24-bit keys of the colors (int32)."""
        c = self.colors.astype(np.int32)
        return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def keys_to_colors(keys: np.ndarray) -> np.ndarray:
    """(N,) 24-bit keys to (N, 3) uint8 colors."""
    keys = np.asarray(keys, dtype=np.int64)
    return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], axis=1).astype(np.uint8)


def _pixels(rgb: np.ndarray) -> np.ndarray:
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
            and rgb.shape[2] == 3):
        got = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
        raise ArgumentError(f"expected an RGB image as a uint8 array (H, W, 3); got {got}")
    if rgb.size == 0:
        raise ArgumentError(f"expected a non-empty image; got shape {rgb.shape}")
    # read-only, whatever the caller's array: numba compiles (and caches, and loads) one
    # version of a kernel per writeable flag, and images read from files are read-only
    pixels = np.ascontiguousarray(rgb).reshape(-1, 3).view()
    pixels.flags.writeable = False
    return pixels


def histogram(rgb: np.ndarray) -> ColorHistogram:
    """Exact histogram of an (H, W, 3) uint8 image.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.color_histogram import histogram
    >>> img = np.array([[[255, 0, 0], [255, 0, 0], [0, 0, 9]]], dtype=np.uint8)
    >>> h = histogram(img)
    >>> h.colors.tolist(), h.counts.tolist()
    ([[0, 0, 9], [255, 0, 0]], [1, 2])
    """
    keys, colors, counts = _k.sorted_counts(_pixels(rgb))  # no dense table: cache-friendly
    hist = ColorHistogram(colors, counts)
    hist.__dict__["keys"] = keys  # already known: spare recomputing the cached property
    return hist


def merge(histograms: Iterable[ColorHistogram]) -> ColorHistogram:
    """Sum histograms (of many images) into one.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.color_histogram import histogram, merge
    >>> a = histogram(np.zeros((1, 2, 3), np.uint8))
    >>> b = histogram(np.full((1, 1, 3), 7, np.uint8))
    >>> merge([a, b, a]).counts.tolist()
    [4, 1]
    """
    hs = list(histograms)
    if not hs:
        raise ArgumentError("expected at least one histogram to merge; got none")
    keys = np.concatenate([h.keys for h in hs])
    counts = np.concatenate([h.counts for h in hs])
    uniq, inverse = np.unique(keys, return_inverse=True)
    return ColorHistogram(keys_to_colors(uniq), np.bincount(inverse, weights=counts,
                                                             minlength=len(uniq)).astype(np.int64))


def gather(rgb: np.ndarray, hist: ColorHistogram, labels: np.ndarray,
           n_labels: int) -> np.ndarray:
    """Per-pixel labels (H, W) of ``rgb`` from one label per distinct color of ``hist`` (its
    histogram), through a dense color -> label lookup table: one read per pixel.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.color_histogram import gather, histogram
    >>> img = np.array([[[9, 9, 9], [0, 0, 0], [9, 9, 9]]], np.uint8)
    >>> gather(img, histogram(img), np.array([5, 7]), 8).tolist()
    [[7, 5, 7]]
    """
    dtype = np.uint8 if n_labels <= 256 else np.uint16
    lookup = np.zeros(N_KEYS, dtype)  # the smallest table: fewer cache and TLB misses
    _k.scatter_labels(lookup, hist.keys, labels.astype(dtype))
    out = np.empty(rgb.shape[0] * rgb.shape[1], dtype)
    _k.gather_labels(_pixels(rgb), lookup, out)
    return out.reshape(rgb.shape[:2])
