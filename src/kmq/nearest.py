"""Map every pixel to its exactly nearest palette color.

The nearest color is found once per distinct color of the image (not once per pixel), by a search
that scans only the palette entries near a first guess (triangle inequality); pixels then get their
index by one lookup through the color histogram. Ties go to the lower palette index, so the result
equals a brute-force ``argmin`` over squared sRGB distances.
"""

from __future__ import annotations

import numpy as np

from kmq._kernels import kmeans as _k
from kmq.color_histogram import gather, histogram
from kmq.colorspace import to_working
from kmq.errors import ArgumentError
from kmq.kmeans import assign, grid_guess


def nearest(points: np.ndarray, palette: np.ndarray, guess: np.ndarray | None = None, *,
            upper: np.ndarray | None = None, lower: np.ndarray | None = None) -> np.ndarray:
    """Index of the nearest palette entry for every point (ties to the lower index).

    Parameters
    ----------
    points : (N, 3) float array
    palette : (K, 3) float array
    guess : (N,) int array, optional
        A first guess per point; any guess gives the same (exact) answer, a good one is faster.
    upper, lower : (N,) float64 arrays, optional
        With ``guess``: bounds on each point's distance to its guessed entry (from above) and to
        every other entry (from below). A point whose ``upper`` is below its ``lower`` keeps its
        guess without a search (no other entry can be as near: no tie either). Used as scratch
        space: overwritten (so that a large point set needs no copies), and left as such bounds
        for the answer: a point then searched has ``upper`` its distance to its entry and
        ``lower`` at most that to any other, so a call with them again (the palette reordered,
        say) searches only the points at a tie.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.nearest import nearest
    >>> nearest(np.array([[0, 0, 0], [90, 90, 90.0]]), np.array([[100, 100, 100], [0, 0, 10.0]]))
    array([1, 0], dtype=int32)
    """
    points = np.ascontiguousarray(points, np.float64)
    palette = np.ascontiguousarray(palette, np.float64)
    n, k = len(points), len(palette)
    labels = (grid_guess(points, palette) if guess is None
              else np.array(guess, np.int32, order="C"))
    order = _k.new_order(palette)
    cc2, _ = _k.center_geometry(palette, order)
    never_skip = np.full(k, -1.0)  # no bound from the palette's spacing: only the given ones
    if upper is None or lower is None or guess is None:
        upper, lower = np.full(n, np.inf), np.full(n, -1.0)  # every point is searched exactly
    else:
        upper = np.ascontiguousarray(upper, np.float64)
        lower = np.ascontiguousarray(lower, np.float64)
    assign(points, palette, cc2, order, never_skip, labels, upper, lower, np.zeros(k), 0.0, 0.0,
           0)
    return labels


def check_palette(palette, *, alpha: bool = False) -> np.ndarray:
    """A palette as a (K, 3) uint8 array with 1 <= K <= 65536, or a ValueError that says why;
    with ``alpha``, (K, 4) RGBA palettes are accepted too."""
    arr = np.asarray(palette)
    widths = (3, 4) if alpha else (3,)
    if arr.ndim != 2 or arr.shape[1] not in widths or not 1 <= len(arr) <= 65536:
        shape = "(K, 3) or (K, 4)" if alpha else "(K, 3)"
        raise ArgumentError(f"expected a palette of shape {shape} with 1 <= K <= 65536; "
                            f"got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or arr.min() < 0 or arr.max() > 255 or (
                not np.all(arr == np.round(arr))):
            raise ArgumentError(f"expected palette values that are integers in 0..255; "
                                f"got dtype {arr.dtype} with range {arr.min()}..{arr.max()}")
        arr = arr.astype(np.uint8)
    return arr


def remap_array(rgb: np.ndarray, palette: np.ndarray, color_space: str = "srgb") -> np.ndarray:
    """Index map (H, W) of an (H, W, 3) uint8 image onto a (K, 3) uint8 palette, nearest in
    ``color_space``."""
    palette = check_palette(palette)
    hist = histogram(rgb)
    labels = nearest(to_working(hist.colors, color_space), to_working(palette, color_space))
    return gather(rgb, hist, labels, len(palette))
