"""Indexed (palette) PNG: a palette of K colors and an index map.

The file holds exactly K ``PLTE`` entries, the colors of the palette given, in an order the
encoder chooses; every pixel decodes to ``palette[indices]``, alpha included. With an RGBA
palette the translucent entries come first, so the ``tRNS`` chunk that holds their alpha (and
stops after the last translucent entry) stays short. The indices are packed at the smallest bit
depth that holds K (1 bit for K <= 2, 2 for K <= 4, 4 for K <= 16, else 8); only
``effort="max"`` also tries 8 bits for K <= 16, kept when that file is smaller (byte-aligned
pixels can give deflate longer matches). No timestamps or other varying metadata are written,
so the same palette and indices give the same bytes.

How hard the encoder works is its ``effort`` (see :func:`encode_png`). What makes the default
file small:

- Deflate by libdeflate's near-optimal parser (through oxipng), not zlib's lazy matcher.
- Two candidates, the smaller written: the palette as given with no row filter (PNG filters
  on palette indices mean nothing unless the order does), and the palette reordered so that
  entries that are neighbours in the image get near indices (a greedy path over the counts of
  adjacent pixel pairs) with a PNG filter chosen per row by oxipng's entropy heuristic: smooth
  areas then filter to small residuals. On a large image the candidates are compared on a
  sample of rows and only the chosen one is compressed whole.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from kmq.codecs._common import check_indexed, decode_with_pillow

#: Most colors an indexed PNG holds.
MAX_COLORS = 256

#: The ``effort`` values :func:`encode_png` takes, fastest first.
EFFORTS = ("fast", "default", "max")

# libdeflate levels (through oxipng): 6 is zlib-like; 10 is the fastest near-optimal parse
# (about half the size difference of zlib 9 to zopfli, at a fraction of zopfli's time); 12 the
# most thorough.
_FAST_LEVEL, _DEFAULT_LEVEL, _MAX_LEVEL = 6, 10, 12
# Above this many pixels, the default effort compares its candidates on a sample of rows
# (1/16 of the image, at least _SAMPLE_MIN pixels, in _SAMPLE_BANDS bands spread over it) and
# compresses only the chosen one whole.
_SAMPLE_ABOVE = 1 << 19
_SAMPLE_MIN = 1 << 17
_SAMPLE_BANDS = 8


def _check(palette, indices) -> tuple[np.ndarray, np.ndarray]:
    palette, indices = check_indexed(palette, indices, MAX_COLORS)
    return palette, indices.astype(np.uint8, copy=False)


def bit_depth(k: int) -> int:
    """The smallest PNG bit depth that holds indices 0..k-1 (1, 2, 4 or 8)."""
    return next(depth for depth in (1, 2, 4, 8) if k <= 1 << depth)


def to_pil(palette, indices) -> Image.Image:
    """A Pillow mode ``P`` image whose palette has exactly ``len(palette)`` entries."""
    palette, indices = _check(palette, indices)
    height, width = indices.shape
    im = Image.frombytes("P", (width, height), indices.tobytes())
    if palette.shape[1] == 4 and (palette[:, 3] == 255).all():
        palette = palette[:, :3]  # nothing transparent: no tRNS
    im.putpalette(palette.tobytes(), rawmode="RGBA" if palette.shape[1] == 4 else "RGB")
    if palette.shape[1] == 4:
        alpha = palette[:, 3]
        last = int(np.flatnonzero(alpha != 255)[-1])
        im.info["transparency"] = alpha[:last + 1].tobytes()
    return im


def encode_png(palette, indices, *, effort: str = "default", optimize: bool = False,
               keep_order: bool = False) -> bytes:
    """Encode a palette and an index map as an indexed PNG.

    Parameters
    ----------
    palette : ndarray of uint8, shape (K, 3) or (K, 4), 1 <= K <= 256
        sRGB colors, all K written to ``PLTE`` (in an order of the encoder's choosing); an RGBA
        palette's alpha goes to ``tRNS``.
    indices : ndarray of integers, shape (H, W), values in 0..K-1
    effort : {"fast", "default", "max"}
        ``"fast"``: the palette as given (translucent entries first), no row filter, one
        zlib-like deflate pass (libdeflate level 6), at the smallest bit depth.
        ``"default"``: the smaller of two candidates (the palette as given and no filter; the
        palette reordered by adjacency with a filter chosen per row), deflated by libdeflate's
        near-optimal parser (level 10), at the smallest bit depth.
        ``"max"``: more candidates (a second reordering, a second filter heuristic, 8-bit
        indices for K <= 16), each compressed whole at libdeflate's level 12, and the default's
        candidates at level 10, so never larger than the default; about ten times its time.
    optimize : bool
        ``True`` is ``effort="max"`` (kept for older callers); ``False`` leaves ``effort``
        alone.
    keep_order : bool
        Write ``PLTE`` in the palette's own order (only the row filters are chosen): for a
        palette the caller chose, shared by many files.

    Returns
    -------
    bytes
        The PNG file; identical for identical arguments.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> from kmq.codecs.png import encode_png
    >>> palette = np.array([[0, 0, 0], [255, 128, 0]], np.uint8)
    >>> data = encode_png(palette, np.array([[0, 1, 1], [1, 0, 0]]))
    >>> im = Image.open(io.BytesIO(data))
    >>> im.mode, im.size, len(im.getpalette()) // 3
    ('P', (3, 2), 2)
    """
    if effort not in EFFORTS:
        raise ValueError(f"expected effort, one of {', '.join(EFFORTS)}; got {effort!r}")
    if optimize:
        effort = "max"
    palette, indices = _check(palette, indices)
    if palette.shape[1] == 3:
        palette = np.concatenate([palette, np.full((len(palette), 1), 255, np.uint8)], axis=1)
    depth = bit_depth(len(palette))
    given_order = np.arange(len(palette)) if keep_order else _translucent_first(palette)
    given = _Candidate(palette, indices, given_order, "none", depth)
    if effort == "fast":
        return given.encode(_FAST_LEVEL)
    candidates, extra = [given], []
    if keep_order:  # the row filters only
        candidates.append(_Candidate(palette, indices, given_order, "entropy", depth))
        if effort == "max":
            extra = [_Candidate(palette, indices, given_order, "bigent", depth)]
    elif len(palette) > 2:  # with two colors or fewer, reordering changes nothing
        pairs = _adjacent_pairs(indices, len(palette))
        path = _palette_path(palette, pairs)
        candidates.append(_Candidate(palette, indices, path, "entropy", depth))
        if effort == "max":
            extra = [_Candidate(palette, indices, path, "bigent", depth),
                     _Candidate(palette, indices, _palette_insertion(palette, pairs), "entropy",
                                depth)]
    if effort == "max" and depth < 8:
        extra += [c.at_depth(8) for c in candidates]
    if effort == "max":  # never larger than the default: its candidates at level 10 too
        return min([c.encode(_DEFAULT_LEVEL) for c in candidates]
                   + [c.encode(_MAX_LEVEL) for c in candidates + extra], key=len)
    if indices.size <= _SAMPLE_ABOVE:
        return min((c.encode(_DEFAULT_LEVEL) for c in candidates), key=len)
    rows = _sample_rows(*indices.shape)
    best = min(candidates, key=lambda c: len(c.encode(_DEFAULT_LEVEL, rows)))
    return best.encode(_DEFAULT_LEVEL)


class _Candidate:
    """One way to write the file: a palette order, a row filter heuristic and a bit depth."""

    def __init__(self, palette, indices, order, filter_, depth):
        self.palette, self.indices, self.order = palette, indices, order
        self.filter, self.depth = filter_, depth

    def at_depth(self, depth: int) -> _Candidate:
        return _Candidate(self.palette, self.indices, self.order, self.filter, depth)

    def encode(self, level: int, rows: np.ndarray | None = None) -> bytes:
        """The PNG file, at libdeflate ``level``; of the given rows only, to compare
        candidates."""
        import oxipng

        order = self.order
        rank = np.empty(len(order), np.uint8)
        rank[order] = np.arange(len(order), dtype=np.uint8)
        indices = self.indices if rows is None else self.indices[rows]
        height, width = indices.shape
        raw = _pack(rank[indices], self.depth)
        image = oxipng.RawImage(raw.tobytes(), width, height, bit_depth=self.depth,
                                color_type=oxipng.ColorType.indexed(self.palette[order].tolist()))
        return image.create_optimized_png(
            level=0, filter=[_FILTERS[self.filter]()], deflate=oxipng.Deflaters.libdeflater(level),
            bit_depth_reduction=False, color_type_reduction=False, palette_reduction=False,
            grayscale_reduction=False)


def _filter(name):
    def get():
        import oxipng

        return getattr(oxipng.RowFilter, name)
    return get


# The row filter heuristics, by oxipng's names: one filter type for every row ("none"), or a
# type chosen per row: the one whose bytes have the least entropy, or of their pairs.
_FILTERS = {"none": _filter("NoOp"), "entropy": _filter("Entropy"), "bigent": _filter("BigEnt")}


def _pack(indices: np.ndarray, depth: int) -> np.ndarray:
    """Rows of ``depth``-bit indices packed into bytes, leftmost pixel in the high bits."""
    if depth == 8:
        return indices
    height, width = indices.shape
    per_byte = 8 // depth
    padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
    padded[:, :width] = indices
    groups = padded.reshape(height, -1, per_byte)
    packed = np.zeros(groups.shape[:2], np.uint8)
    for j in range(per_byte):
        packed |= groups[:, :, j] << (8 - depth * (j + 1))
    return packed


def _sample_rows(height: int, width: int) -> np.ndarray:
    """Row numbers of a few evenly spaced bands, about 1/16 of the image and at least
    ``_SAMPLE_MIN`` pixels: whole rows, so that the candidates are compared on runs, repeats
    and rows above as in the image."""
    want = max(height // 16, -(-_SAMPLE_MIN // width))
    band = max(1, want // _SAMPLE_BANDS)
    starts = np.linspace(0, height - band, _SAMPLE_BANDS).astype(np.intp)
    return np.unique((starts[:, None] + np.arange(band)).ravel())


def _translucent_first(palette: np.ndarray) -> np.ndarray:
    """The palette's order with its translucent entries moved first (a stable partition)."""
    return np.argsort(palette[:, 3] == 255, kind="stable")


def _adjacent_pairs(indices: np.ndarray, k: int) -> np.ndarray:
    """(k, k) symmetric counts of horizontally or vertically adjacent pixels of two different
    entries."""
    flat = indices.astype(np.uint16)  # a pair's number a * k + b fits: k <= 256
    counts = np.bincount((flat[:, 1:] * k + flat[:, :-1]).ravel(), minlength=k * k)
    counts += np.bincount((flat[1:] * k + flat[:-1]).ravel(), minlength=k * k)
    counts = counts.reshape(k, k)
    counts += counts.T
    np.fill_diagonal(counts, 0)
    return counts


def _groups(palette: np.ndarray) -> list[np.ndarray]:
    """The translucent entries, then the opaque ones: each group is ordered on its own, so the
    ``tRNS`` chunk (which stops after the last translucent entry) stays short."""
    opaque = palette[:, 3] == 255
    return [group for group in (np.flatnonzero(~opaque), np.flatnonzero(opaque)) if len(group)]


def _palette_path(palette: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """A palette order in which entries often adjacent in the image are next to each other:
    the greedy path that takes the pairs from the most frequent down, skipping any that would
    give an entry a third neighbour or close a loop (in each alpha group)."""
    return np.concatenate([group[_greedy_path(pairs[np.ix_(group, group)])]
                           for group in _groups(palette)])


def _greedy_path(weights: np.ndarray) -> np.ndarray:
    k = len(weights)
    if k <= 2:
        return np.arange(k)
    first, second = np.triu_indices(k, 1)
    by_weight = np.argsort(-weights[first, second], kind="stable")
    degree = np.zeros(k, np.intp)
    root = list(range(k))
    neighbours: list[list[int]] = [[] for _ in range(k)]

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    joined = 0
    for a, b in zip(first[by_weight].tolist(), second[by_weight].tolist(), strict=True):
        if degree[a] == 2 or degree[b] == 2:
            continue
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        root[ra] = rb
        degree[a] += 1
        degree[b] += 1
        neighbours[a].append(b)
        neighbours[b].append(a)
        joined += 1
        if joined == k - 1:
            break
    # Walk the path from its lower-numbered end (the more used, with a most-used-first palette).
    start = int(np.flatnonzero(degree == 1)[0])
    order, previous = [start], -1
    while len(order) < k:
        step = next(n for n in neighbours[order[-1]] if n != previous)
        previous = order[-1]
        order.append(step)
    return np.array(order, np.intp)


def _palette_insertion(palette: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Another adjacency order (for ``effort="max"``): entries added one at a time, the one
    most adjacent to those placed first, at whichever end of the order puts it nearer to them
    (the modified Zeng reindexing of Pinho et al., IEEE Trans. Image Process. 13(11), 2004)."""
    return np.concatenate([group[_insertion_order(pairs[np.ix_(group, group)])]
                           for group in _groups(palette)])


def _insertion_order(weights: np.ndarray) -> np.ndarray:
    k = len(weights)
    if k <= 2:
        return np.arange(k)
    weights = weights.astype(np.int64)
    first, second = np.triu_indices(k, 1)
    best = int(np.argmax(weights[first, second]))
    order = [int(first[best]), int(second[best])]
    placed = np.zeros(k, bool)
    placed[order] = True
    sums = weights[order[0]] + weights[order[1]]
    while len(order) < k:
        i = int(np.argmax(np.where(placed, -1, sums)))
        n = len(order)
        # Prepending puts it at distance p + 1 from the entry at position p; appending at n - p.
        if int(((n - 1 - 2 * np.arange(n)) * weights[i, order]).sum()) > 0:
            order.insert(0, i)
        else:
            order.append(i)
        placed[i] = True
        sums += weights[i]
    return np.array(order, np.intp)


def decode_png(data: bytes):
    """The palette and index map of a PNG file (see
    :func:`kmq.codecs._common.decode_with_pillow`)."""
    return decode_with_pillow(data, "PNG", MAX_COLORS)


__all__ = ["EFFORTS", "MAX_COLORS", "bit_depth", "decode_png", "encode_png", "to_pil"]
