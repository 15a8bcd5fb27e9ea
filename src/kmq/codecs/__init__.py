"""The output formats, one registry entry each: indexed PNG, lossless WebP, GIF and kmq's own
``.kmq`` container.

An entry (:class:`Codec`) says what the format is called, its file extensions and MIME type, the
most colors it holds, how it keeps transparency, and how to encode a palette and an index map
(and decode one back). The command line's ``--format`` choices, the batch and web format lists
and the default output names all come from :data:`CODECS`; adding a format is adding an entry.
The encoders are imported on first use, so reading the registry costs nothing.

Examples
--------
>>> from kmq import codecs
>>> list(codecs.CODECS)
['png', 'webp', 'gif', 'kmq']
>>> codecs.get("GIF").max_colors, codecs.for_path("photo.KMQ").name
(256, 'kmq')
>>> import numpy as np
>>> png = codecs.get("png")
>>> data = png.encode(np.array([[0, 0, 0], [255, 0, 0]], np.uint8), np.eye(3, dtype=np.uint8))
>>> back = png.decode(data)
>>> back.palette.tolist(), back.indices.tolist()
([[0, 0, 0], [255, 0, 0]], [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from kmq.errors import KmqError


class UnknownFormatError(KmqError, ValueError):
    """A format name or file extension that no codec handles."""

    kind = "usage"
    exit_code = 2


@dataclass(frozen=True)
class Codec:
    """One output format.

    Attributes
    ----------
    name : str
        Short lower-case name, as ``--format`` takes it.
    title : str
        What to call it in help texts.
    extensions : tuple of str
        File extensions, lower case with the dot; the first is the one kmq writes.
    mime : str
        MIME type of the files.
    max_colors : int
        Most palette entries a file holds.
    alpha : {"full", "binary"}
        ``full``: any alpha per entry; ``binary``: one fully transparent color at most (GIF),
        so images are quantized with alpha made 0 or 255 first.
    options : frozenset of str
        Keyword options :meth:`encode` passes on to the encoder (others are ignored).
    """

    name: str
    title: str
    extensions: tuple[str, ...]
    mime: str
    max_colors: int
    alpha: str
    encoder: str
    decoder: str
    options: frozenset[str] = frozenset()

    @property
    def extension(self) -> str:
        """The extension kmq gives the files it writes (``.png``)."""
        return self.extensions[0]

    def encode(self, palette, indices=None, **options: Any) -> bytes:
        """The file's bytes for ``palette`` (K, 3|4) uint8 and ``indices`` (H, W); or for a
        result with ``.palette`` and ``.indices`` (:class:`kmq.Quantized`) given alone.

        Options the format has (:attr:`options`, e.g. ``effort`` for PNG) are passed on; the
        others are ignored, so one call serves every format.
        """
        if indices is None:
            palette, indices = palette.palette, palette.indices
        chosen = {key: value for key, value in options.items() if key in self.options}
        return _load(self.encoder)(palette, indices, **chosen)

    def decode(self, data: bytes):
        """The palette and index map of a file of this format: an object with ``.palette``
        (K, 3|4) uint8, ``.indices`` (H, W), ``.to_array()`` and ``.to_image()``."""
        return _load(self.decoder)(data)


def _load(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


#: The formats, by name, in the order help texts list them.
CODECS: dict[str, Codec] = {codec.name: codec for codec in (
    Codec("png", "indexed PNG", (".png",), "image/png", 256, "full",
          "kmq.codecs.png:encode_png", "kmq.codecs.png:decode_png",
          frozenset({"optimize", "effort", "keep_order"})),
    Codec("webp", "lossless WebP", (".webp",), "image/webp", 65536, "full",
          "kmq.codecs.webp:encode_webp", "kmq.codecs.webp:decode_webp"),
    Codec("gif", "GIF", (".gif",), "image/gif", 256, "binary",
          "kmq.codecs.gif:encode_gif", "kmq.codecs.gif:decode_gif"),
    Codec("kmq", "kmq's container", (".kmq",), "application/octet-stream", 65536, "full",
          "kmq.codecs.container:encode", "kmq.codecs.container:decode"),
)}

#: The default format.
DEFAULT = "png"


def names() -> list[str]:
    """The format names, as ``--format`` lists them."""
    return list(CODECS)


def get(name: str) -> Codec:
    """The codec called ``name`` (any case, an optional leading dot), or
    :class:`UnknownFormatError`."""
    key = str(name).strip().lower().lstrip(".")
    if key not in CODECS:
        raise UnknownFormatError(f"unknown format {name!r}; expected one of "
                                 f"{', '.join(CODECS)}")
    return CODECS[key]


def for_path(path: str | os.PathLike) -> Codec:
    """The codec whose extension ``path`` has, or :class:`UnknownFormatError`."""
    suffix = PurePath(path).suffix.lower()
    for codec in CODECS.values():
        if suffix in codec.extensions:
            return codec
    raise UnknownFormatError(
        f"cannot tell the format from {os.fspath(path)!r}: give it one of the extensions "
        f"{', '.join(c.extension for c in CODECS.values())}, or name the format (--format)")


def decode_palette_image(data: bytes, *, max_pixels: int | None = None):
    """The palette and index map of any image file Pillow reads (an
    :class:`kmq.IndexedImage`): a palette image's own, or the distinct colors (at most 65536)
    of any other. Raises :class:`kmq.ImageReadError` when it is none of these."""
    from kmq.codecs._common import decode_with_pillow

    return decode_with_pillow(data, None, 65536, max_pixels=max_pixels)


__all__ = ["CODECS", "DEFAULT", "Codec", "UnknownFormatError", "decode_palette_image",
           "for_path", "get", "names"]
