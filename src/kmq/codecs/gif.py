"""GIF of a palette and an index map, written by Pillow with the exact palette.

The image is handed to Pillow as a palette (mode ``P``) image, so nothing is re-quantized or
dithered: the file's color table holds the K colors in their order (padded with black to the next
power of two, as GIF requires) and every pixel keeps its index. Pillow's palette optimization is
off, and nothing varying (no timestamps, no comments) is written, so the same palette and indices
always give the same bytes. A single frame. GIF has one kind of transparency, a single fully
transparent index: an RGBA palette may hold one entry of alpha 0 and otherwise opaque ones (quantize
with binary alpha for GIF, see :func:`kmq.io.binary_alpha`); translucent entries are refused.
"""

from __future__ import annotations

import io

import numpy as np

from kmq.codecs._common import check_indexed, decode_with_pillow
from kmq.codecs.png import to_pil
from kmq.errors import ArgumentError

#: Most colors a GIF color table holds (as many as an indexed PNG's: the same mode P image).
MAX_COLORS = 256


def encode_gif(palette, indices) -> bytes:
    """Encode a palette and an index map as a GIF.

    Parameters
    ----------
    palette : ndarray of uint8, shape (K, 3) or (K, 4), 1 <= K <= 256
        An RGBA palette may have one entry of alpha 0 (the transparent index); its other
        entries must be opaque.
    indices : ndarray of integers, shape (H, W), values in 0..K-1

    Returns
    -------
    bytes
        The GIF file; identical for identical arguments.

    Raises
    ------
    ValueError
        The palette has translucent entries, or more than one transparent one.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> from kmq.codecs.gif import encode_gif
    >>> palette = np.array([[0, 0, 0], [255, 128, 0], [9, 99, 199]], np.uint8)
    >>> indices = np.array([[0, 1, 2], [2, 1, 0]])
    >>> im = Image.open(io.BytesIO(encode_gif(palette, indices)))
    >>> im.mode, im.size, np.asarray(im).tolist()
    ('P', (3, 2), [[0, 1, 2], [2, 1, 0]])
    """
    palette, indices = check_indexed(palette, indices, MAX_COLORS)
    options = {}
    if palette.shape[1] == 4:
        alpha = palette[:, 3]
        clear = np.flatnonzero(alpha == 0)
        if ((alpha != 0) & (alpha != 255)).any() or len(clear) > 1:
            raise ArgumentError("a GIF holds one fully transparent color and opaque ones; this "
                                "palette has translucent entries (quantize with binary alpha)")
        if len(clear):
            options["transparency"] = int(clear[0])
        palette = np.ascontiguousarray(palette[:, :3])
    im = to_pil(palette, indices)
    buf = io.BytesIO()
    im.save(buf, format="GIF", optimize=False, **options)
    return buf.getvalue()


def decode_gif(data: bytes):
    """The palette and index map of a GIF file (see
    :func:`kmq.codecs._common.decode_with_pillow`)."""
    return decode_with_pillow(data, "GIF", MAX_COLORS)


__all__ = ["MAX_COLORS", "decode_gif", "encode_gif"]
