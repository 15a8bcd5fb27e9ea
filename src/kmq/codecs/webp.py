"""Lossless WebP of a palette and an index map, written by Pillow (libwebp).

The pixels are ``palette[indices]`` exactly: the encoder runs with ``lossless=True`` and
``exact=True`` (nothing is altered, not even under transparency), at ``method=6``, its most
thorough. libwebp finds the palette itself and stores palette images of up to 256 colors as
indices; more colors (up to 65536) are stored as lossless RGB. No metadata is written, so the
same palette, indices and options always give the same bytes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from kmq.codecs._common import check_indexed, decode_with_pillow
from kmq.errors import ArgumentError

#: Most palette entries accepted (the index maps of :func:`kmq.quantize` and :mod:`kmq.dither`).
MAX_COLORS = 65536
#: libwebp's default lossless effort; 100 is about 10% smaller and some 50 times slower.
DEFAULT_QUALITY = 80
METHOD = 6


def _check_quality(quality) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not (
            0 <= quality <= 100):
        raise ArgumentError(f"expected quality (lossless effort) to be an int in 0..100; "
                            f"got {quality!r}")
    return int(quality)


def encode_webp(palette, indices, *, quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode a palette and an index map as a lossless WebP.

    Parameters
    ----------
    palette : ndarray of uint8, shape (K, 3) or (K, 4) (RGBA), 1 <= K <= 65536
    indices : ndarray of integers, shape (H, W), values in 0..K-1
    quality : int, 0..100
        libwebp's lossless effort (the pixels are exact whatever it is): higher is smaller and
        slower.

    Returns
    -------
    bytes
        The WebP file; identical for identical arguments.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> from kmq.codecs.webp import encode_webp
    >>> palette = np.array([[0, 0, 0], [255, 128, 0]], np.uint8)
    >>> indices = np.array([[0, 1, 1], [1, 0, 0]])
    >>> im = Image.open(io.BytesIO(encode_webp(palette, indices)))
    >>> im.format, im.size, bool((np.asarray(im.convert("RGB")) == palette[indices]).all())
    ('WEBP', (3, 2), True)
    """
    palette, indices = check_indexed(palette, indices, MAX_COLORS)
    quality = _check_quality(quality)
    pixels = np.take(palette, indices, axis=0)  # (4x faster than palette[indices])
    im = Image.fromarray(pixels, "RGBA" if palette.shape[1] == 4 else "RGB")
    buf = io.BytesIO()
    im.save(buf, format="WEBP", lossless=True, quality=quality, method=METHOD, exact=True)
    return buf.getvalue()


def decode_webp(data: bytes):
    """The palette and index map of a WEBP file (see
    :func:`kmq.codecs._common.decode_with_pillow`)."""
    return decode_with_pillow(data, "WEBP", MAX_COLORS)


__all__ = ["DEFAULT_QUALITY", "MAX_COLORS", "decode_webp", "encode_webp"]
