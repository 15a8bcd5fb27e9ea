"""Indexed (palette) PNG: a palette of K colors and an index map, written by Pillow.

The file holds exactly K ``PLTE`` entries (with an RGBA palette, their alpha in a ``tRNS`` chunk
that stops after the last entry that is not opaque), and Pillow packs the indices at the smallest
bit depth that holds K values: 1 bit for K <= 2, 2 bits for K <= 4, 4 bits for K <= 16, else 8. No
timestamps or other varying metadata are written, so the same palette and indices always give the
same bytes.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from kmq.codecs._common import check_indexed
from kmq.io import write_atomic

#: Most colors an indexed PNG holds.
MAX_COLORS = 256


def _check(palette, indices) -> tuple[np.ndarray, np.ndarray]:
    palette, indices = check_indexed(palette, indices, MAX_COLORS)
    return palette, indices.astype(np.uint8, copy=False)


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


def encode_png(palette, indices, *, optimize: bool = False) -> bytes:
    """Encode a palette and an index map as an indexed PNG.

    Parameters
    ----------
    palette : ndarray of uint8, shape (K, 3) or (K, 4), 1 <= K <= 256
        sRGB colors, all K written to ``PLTE``; an RGBA palette's alpha goes to ``tRNS``.
    indices : ndarray of integers, shape (H, W), values in 0..K-1
    optimize : bool
        Let zlib search harder (Pillow's ``optimize``), then recompress with oxipng (its level
        2: filters and deflate settings tried per image), keeping the smaller. The pixels,
        palette and its order are unchanged (palette reduction is off).

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
    im = to_pil(palette, indices)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=bool(optimize))
    data = buf.getvalue()
    if optimize:
        import oxipng

        smaller = oxipng.optimize_from_memory(data, level=2, palette_reduction=False,
                                              color_type_reduction=False,
                                              bit_depth_reduction=False, grayscale_reduction=False)
        data = min(data, smaller, key=len)
    return data


def save_png(path: str | os.PathLike, palette, indices, *, overwrite: bool = False,
             optimize: bool = False) -> int:
    """Write an indexed PNG atomically (temporary file, then rename); returns its size in bytes.

    Parameters
    ----------
    path : str or path-like
    palette, indices, optimize
        As for :func:`encode_png`.
    overwrite : bool
        Replace an existing file; without it an existing ``path`` raises
        :class:`kmq.OutputExistsError` and is left untouched.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from kmq.codecs.png import save_png
    >>> path = tempfile.mkdtemp() + "/two.png"
    >>> n = save_png(path, np.array([[0, 0, 0], [9, 9, 9]], np.uint8), np.zeros((4, 4), int))
    >>> n == len(open(path, "rb").read())
    True
    """
    data = encode_png(palette, indices, optimize=optimize)
    return write_atomic(path, lambda fh: fh.write(data), overwrite=overwrite)


__all__ = ["MAX_COLORS", "encode_png", "save_png", "to_pil"]
