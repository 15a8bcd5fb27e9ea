"""Palette images as files: ``.kmq`` files back to images (:func:`decompress_file`), and a palette
and an index map saved to and loaded from any of kmq's formats (:func:`save`, :func:`load`).

The other half of kmq's file layer (:mod:`kmq.files` compresses): reading goes through
:func:`kmq.io.open_input` (regular files only) and writing through :func:`kmq.files.write_bytes`
or :func:`kmq.io.write_atomic` (a temporary file renamed into place).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from kmq import codecs
from kmq.errors import ArgumentTypeError, ImageReadError, OutputWriteError, one_line
from kmq.files import FileResult, check_output, write_bytes
from kmq.io import DEFAULT_MAX_PIXELS, open_input, write_atomic

#: Pillow formats written indexed (mode P, the exact palette) when K <= 256.
PALETTE_FORMATS = frozenset({"PNG", "GIF"})
#: Pillow formats that keep an alpha channel; others get the colors only (JPEG, BMP...).
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "GIF", "TGA"})
#: Pillow save options per format: lossless where the format has a choice.
SAVE_OPTIONS: dict[str, dict] = {
    "WEBP": {"lossless": True, "quality": 100, "method": 4},
    "GIF": {"optimize": False},
    "JPEG": {"quality": 95},
}


def image_format(path: str | os.PathLike) -> str | None:
    """The Pillow format that writes ``path``, from its extension (``None`` if none does)."""
    from PIL import Image

    Image.init()
    name = Image.registered_extensions().get(Path(path).suffix.lower())
    return name if name in Image.SAVE else None


def encode_image(image, fmt: str) -> bytes:
    """A palette image (``.palette``, ``.indices``) as the bytes of a ``fmt`` file (a Pillow
    format name): PNG and GIF as ``kmq compress`` writes them, other formats by Pillow."""
    import io

    from PIL import Image

    k, alpha = len(image.palette), image.palette.shape[1] == 4
    if k <= 256 and fmt == "PNG":
        return codecs.get("png").encode(image)
    if k <= 256 and fmt == "GIF":
        try:
            return codecs.get("gif").encode(image)
        except ValueError:  # translucent entries: Pillow makes what a GIF can hold of them
            im = Image.fromarray(image.to_array(), "RGBA")
    elif alpha and fmt in ALPHA_FORMATS:
        im = Image.fromarray(image.to_array(), "RGBA")
    else:
        im = Image.fromarray(image.to_rgb(), "RGB")
    buf = io.BytesIO()
    im.save(buf, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
    return buf.getvalue()


def read_kmq(source: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Read and decode a ``.kmq`` file (:class:`kmq.codecs.container.Decoded`); the header is
    checked before the rest is read. Raises :class:`kmq.ImageReadError` when it cannot be
    read and :class:`kmq.CorruptFileError` when it is not an intact ``.kmq`` file."""
    from kmq.codecs import container

    name = os.fspath(source)
    with open_input(source) as fh:
        try:
            return container.read(fh, max_pixels=max_pixels, size=os.fstat(fh.fileno()).st_size,
                                  name=name)
        except OSError as exc:
            raise ImageReadError(f"{name}: cannot read ({exc.strerror or one_line(exc)})"
                                 ) from exc


def read_kmq_header(source: str | os.PathLike):
    """The checked header of a ``.kmq`` file (:class:`kmq.codecs.container.Header`), from its
    first 32 bytes and its size; the payload is not read."""
    from kmq.codecs.container import HEADER_SIZE, read_header
    from kmq.errors import CorruptFileError

    name = os.fspath(source)
    with open_input(source) as fh:
        head = fh.read(HEADER_SIZE)
        size = os.fstat(fh.fileno()).st_size
    try:
        header = read_header(head)
    except CorruptFileError as exc:
        raise CorruptFileError(f"{name}: {exc}") from exc
    if size != header.file_size:
        raise CorruptFileError(f"{name}: {'truncated' if size < header.file_size else 'too long'}:"
                               f" {size:,} bytes where the header states {header.file_size:,}")
    return header


def decompress_file(source: str | os.PathLike, output: str | os.PathLike, *,
                    force: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                    format: str | None = None) -> FileResult:
    """Decode a ``.kmq`` file and write it (atomically) as an image file.

    The output's format is ``format`` (a Pillow format name) or its extension's: any format
    Pillow writes; PNG and GIF indexed with the exact palette (K <= 256), WebP lossless, others
    as RGB(A).

    Raises
    ------
    ImageReadError, CorruptFileError
        The input cannot be read, or is not an intact ``.kmq`` file.
    OutputExistsError, OutputWriteError
    """
    start = time.perf_counter()
    name, target = os.fspath(source), os.fspath(output)
    fmt = format or image_format(output)
    if fmt is None:
        raise codecs.UnknownFormatError(
            f"cannot tell the image format from {target!r}: give it an extension of a format "
            f"Pillow writes (.png, .gif, .webp, .bmp, .tif, .jpg, ...)")
    decoded = read_kmq(source, max_pixels=max_pixels)
    check_output(output, force=force, inputs=[source])
    warnings: tuple[str, ...] = ()
    if fmt == "GIF" and decoded.k > 256:
        warnings = (f"{target}: GIF holds at most 256 colors; Pillow reduces the {decoded.k} "
                    f"colors of {name}",)
    try:
        data = encode_image(decoded, fmt)
    except (OSError, ValueError) as exc:
        raise OutputWriteError(f"{target}: cannot write ({one_line(exc)})") from exc
    n_bytes = write_bytes(output, data, force=force)
    return FileResult(name, target, format=fmt, input_bytes=os.path.getsize(source),
                      output_bytes=n_bytes, width=decoded.width, height=decoded.height,
                      channels=decoded.palette.shape[1], k=decoded.k,
                      seconds=time.perf_counter() - start, warnings=warnings)


def save(path: str | os.PathLike, image, indices: np.ndarray | None = None, *,
         format: str | None = None, overwrite: bool = False, effort: str = "default") -> int:
    """Write a palette and an index map as an image file, atomically; returns its size.

    Parameters
    ----------
    path : str or path-like
    image : Quantized, IndexedImage or ndarray
        A result with ``.palette`` and ``.indices``, or a palette (K, 3|4) uint8 with
        ``indices``.
    indices : ndarray, shape (H, W), optional
        With a palette.
    format : str, optional
        ``png``, ``webp``, ``gif`` or ``kmq``; by default from the extension, and ``kmq`` when
        the extension is none of these.
    overwrite : bool
        Replace an existing file; without it an existing ``path`` raises
        :class:`kmq.OutputExistsError` and is left untouched.
    effort : {"fast", "default", "max"}
        For PNG: how hard to search for a small file.

    Examples
    --------
    >>> import tempfile, numpy as np, kmq
    >>> img = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    >>> q = kmq.quantize(img, 8)
    >>> path = tempfile.mkdtemp() + "/img.kmq"
    >>> kmq.save(path, q) == len(open(path, "rb").read())
    True
    >>> back = kmq.load(path)
    >>> bool(np.array_equal(back.palette, q.palette) and np.array_equal(back.indices, q.indices))
    True
    """
    if indices is None:
        if not (hasattr(image, "palette") and hasattr(image, "indices")):
            raise ArgumentTypeError(f"expected a quantization result (with .palette and "
                                    f".indices) or a palette and indices; got a "
                                    f"{type(image).__name__} and no indices")
        palette, indices = image.palette, image.indices
    elif hasattr(image, "palette") and hasattr(image, "indices"):
        raise ArgumentTypeError(f"expected either a quantization result or a palette and "
                                f"indices; got a {type(image).__name__} and indices")
    else:
        palette = image
    if format is None:
        try:
            codec = codecs.for_path(path)
        except codecs.UnknownFormatError:
            codec = codecs.get("kmq")
    else:
        codec = codecs.get(format)
    data = codec.encode(palette, indices, effort=effort)
    return write_atomic(path, lambda fh: fh.write(data), overwrite=overwrite)


def load(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Read a palette image: a ``.kmq`` file (whatever its name), or a PNG, GIF or WebP as its
    palette and index map (an :class:`kmq.IndexedImage`; ``.to_image()``, ``.to_array()``).

    Raises
    ------
    ImageReadError
        The file cannot be read, or is not one of these.
    CorruptFileError
        It is a damaged ``.kmq`` file.
    """
    from kmq.codecs.container import MAGIC

    name = os.fspath(path)
    with open_input(path) as fh:
        head = fh.read(len(MAGIC))
    if head == MAGIC:
        return read_kmq(path, max_pixels=max_pixels)
    with open_input(path) as fh:
        data = fh.read()
    try:
        return codecs.decode_palette_image(data, max_pixels=max_pixels)
    except ImageReadError as exc:
        raise ImageReadError(f"{name}: {exc}") from exc


__all__ = ["ALPHA_FORMATS", "PALETTE_FORMATS", "SAVE_OPTIONS", "decompress_file", "encode_image",
           "image_format", "load", "read_kmq", "read_kmq_header", "save"]
