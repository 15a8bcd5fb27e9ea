"""The .kmq container: a palette and a context-coded index map (spec: ``docs/FORMAT.md``).

A file holds the K palette colors as they were given and, per pixel, its palette index, coded by
a context model driving a binary range coder (method 2), or bit-packed and zstd-compressed
(method 1) when that is smaller, or nothing at all for a single-color palette (method 0).
``decode(encode(palette, indices))`` gives back the same palette and the same indices, dtype
included. Every malformed input makes :func:`decode` raise :class:`~kmq.errors.CorruptFileError`;
the header is checked against the limits before anything is allocated from a size it states,
and the checksum is checked before the payload is decoded.
"""

from __future__ import annotations

import enum
import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import zstandard

from kmq._kernels import coder as _coder
from kmq.errors import ArgumentError, ArgumentTypeError, CorruptFileError, ImageTooLargeError
from kmq.io import DEFAULT_MAX_PIXELS
from kmq.quantized import IndexedImage

MAGIC = b"\x89KMQ\r\n\x1a\n"
VERSION = 1
#: Bytes of the fixed header, its checksum included.
HEADER_SIZE = 32
#: Bytes of the trailing checksum.
TRAILER_SIZE = 4
#: Format limits, checked on write and on read.
MAX_SIDE = 1 << 24
MAX_PIXELS = 1 << 30
MAX_K = 1 << 16
MAX_PAYLOAD = (1 << 32) - 1
ZSTD_LEVEL = 10

_HEADER = struct.Struct("<8sBBBBIIII")  # the 28 bytes the header checksum covers
_LAYOUT_RGB = 3
_LAYOUT_RGBA = 4


class Method(enum.IntEnum):
    """How the index map is coded (the header's method byte)."""

    CONSTANT = 0
    """K == 1: every index is 0 and the payload is empty."""
    BITPACK_ZSTD = 1
    """ceil(log2 K) bits per index, MSB first, in one zstd frame."""
    CONTEXT = 2
    """Neighbour-context model and adaptive binary range coder over luma-ranked indices."""


@dataclass(frozen=True)
class Header:
    """What the fixed header of a .kmq file states (see ``docs/FORMAT.md``).

    Attributes
    ----------
    version : int
        Format version (1).
    layout : str
        Channel layout of the palette, ``"RGB"`` or ``"RGBA"``.
    method : Method
        How the index map is coded.
    index_dtype : str
        ``"uint8"`` or ``"uint16"``, the dtype the indices were given in and are decoded to.
    width, height : int
        Image size in pixels.
    k : int
        Palette entries, 1 to 65536.
    payload_size : int
        Bytes of the coded index map.
    """

    version: int
    layout: str
    method: Method
    index_dtype: str
    width: int
    height: int
    k: int
    payload_size: int

    @property
    def pixels(self) -> int:
        """``width * height``."""
        return self.width * self.height

    @property
    def channels(self) -> int:
        """Bytes per palette entry: 3 (RGB) or 4 (RGBA)."""
        return len(self.layout)

    @property
    def palette_size(self) -> int:
        """Bytes of the palette, ``3 * k`` (RGB) or ``4 * k`` (RGBA)."""
        return self.channels * self.k

    @property
    def file_size(self) -> int:
        """Bytes of the whole file: header, palette, payload and checksum."""
        return HEADER_SIZE + self.palette_size + self.payload_size + TRAILER_SIZE

    @property
    def bits_per_pixel(self) -> float:
        """Bits of the whole file per pixel."""
        return 8.0 * self.file_size / self.pixels


@dataclass(frozen=True, repr=False)
class Decoded(IndexedImage):
    """A decoded .kmq file: ``palette`` (K, 3) or (K, 4) uint8 and ``indices`` (H, W) in the
    dtype they were written from (see :class:`kmq.quantized.IndexedImage`), and the format
    version and coding method the file used."""

    version: int = 1
    method: Method = Method.CONTEXT


# --- encoding ------------------------------------------------------------------------------------

def _check_inputs(palette, indices) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(palette, np.ndarray) or not isinstance(indices, np.ndarray):
        raise ArgumentTypeError(f"expected numpy arrays for palette and indices; got "
                                f"{type(palette).__name__} and {type(indices).__name__}")
    if palette.dtype != np.uint8 or palette.ndim != 2 or palette.shape[1] not in (3, 4):
        raise ArgumentError(f"expected a palette of shape (K, 3) or (K, 4) and dtype uint8; "
                            f"got shape {palette.shape} and dtype {palette.dtype}")
    k = palette.shape[0]
    if not 1 <= k <= MAX_K:
        raise ArgumentError(f"expected 1 to {MAX_K} palette entries; got {k}")
    if indices.dtype not in (np.uint8, np.uint16):
        raise ArgumentTypeError(f"expected indices of dtype uint8 or uint16; got {indices.dtype}")
    if indices.ndim != 2:
        raise ArgumentError(f"expected a 2-D (H, W) index map; got shape {indices.shape}")
    height, width = indices.shape
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and width * height <= MAX_PIXELS):
        raise ArgumentError(f"expected an index map of 1 to {MAX_SIDE} pixels a side and at most "
                            f"{MAX_PIXELS} pixels; got {width}x{height}")
    top = int(indices.max())
    if top >= k:
        raise ArgumentError(f"expected indices below K = {k}; got an index of {top}")
    return np.ascontiguousarray(palette), np.ascontiguousarray(indices)


def luma_order(palette: np.ndarray) -> np.ndarray:
    """Palette entries sorted by 299 R + 587 G + 114 B, ties by entry number (int64, shape (K,)).

    Method 2 codes each index as its rank in this order, so that similar colors get nearby
    numbers; the order is computed from the stored palette and is not stored.

    Examples
    --------
    >>> import numpy as np
    >>> luma_order(np.array([[255, 255, 255], [0, 0, 0], [0, 0, 0]], np.uint8)).tolist()
    [1, 2, 0]
    """
    p = palette.astype(np.int64)
    key = 299 * p[:, 0] + 587 * p[:, 1] + 114 * p[:, 2]
    return np.lexsort((np.arange(len(p)), key))


def _payload_bitpack(indices: np.ndarray, k: int) -> bytes:
    nbits = int(_coder.index_bits(k))
    packed = _coder.pack_bits(indices.reshape(-1).astype(np.uint16), nbits)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(packed.tobytes())


def _payload_context(palette: np.ndarray, indices: np.ndarray) -> bytes:
    order = luma_order(palette)
    rank = np.empty(len(order), np.uint16)
    rank[order] = np.arange(len(order), dtype=np.uint16)
    return _coder.cm_encode(rank[indices], len(order)).tobytes()


def encode(palette: np.ndarray, indices: np.ndarray, *, method: Method | None = None) -> bytes:
    """A .kmq file's bytes for a palette and an index map.

    Parameters
    ----------
    palette : ndarray of uint8, shape (K, 3)
        sRGB colors, 1 <= K <= 65536; stored as given (order and duplicates kept).
    indices : ndarray of uint8 or uint16, shape (H, W)
        Palette index of every pixel, each below K.
    method : Method, optional
        Force a coding method (K >= 2 only). By default the context coder is used, unless the
        bit-packed zstd payload is smaller (near-random index maps).

    Returns
    -------
    bytes

    Raises
    ------
    TypeError, ValueError
        The arrays have the wrong type, dtype or shape, an index is out of range, or the image
        is over the format's limits.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.codecs.container import decode, encode
    >>> palette = np.array([[0, 0, 0], [255, 128, 0]], np.uint8)
    >>> indices = np.zeros((64, 64), np.uint8); indices[16:48, 16:48] = 1
    >>> data = encode(palette, indices)
    >>> len(data) < 64 * 64 // 8
    True
    >>> out = decode(data)
    >>> np.array_equal(out.indices, indices), np.array_equal(out.palette, palette)
    (True, True)
    """
    palette, indices = _check_inputs(palette, indices)
    k = palette.shape[0]
    if k == 1:
        if method not in (None, Method.CONSTANT):
            raise ArgumentError(f"K == 1 is always coded with {Method.CONSTANT!r}; got {method!r}")
        chosen, payload = Method.CONSTANT, b""
    elif method == Method.BITPACK_ZSTD:
        chosen, payload = Method.BITPACK_ZSTD, _payload_bitpack(indices, k)
    elif method in (None, Method.CONTEXT):
        chosen, payload = Method.CONTEXT, _payload_context(palette, indices)
        packed_size = (indices.size * int(_coder.index_bits(k)) + 7) // 8
        if method is None and len(payload) > 0.95 * packed_size:
            fallback = _payload_bitpack(indices, k)
            if len(fallback) < len(payload):
                chosen, payload = Method.BITPACK_ZSTD, fallback
    else:
        raise ArgumentError(f"expected a Method with K >= 2 (BITPACK_ZSTD or CONTEXT); "
                            f"got {method!r}")
    if len(payload) > MAX_PAYLOAD:
        raise ArgumentError(f"the coded index map ({len(payload):,} bytes) is over the format's "
                            f"limit of {MAX_PAYLOAD:,} bytes")
    height, width = indices.shape
    layout = _LAYOUT_RGBA if palette.shape[1] == 4 else _LAYOUT_RGB
    fields = _HEADER.pack(MAGIC, VERSION, layout, int(chosen), indices.dtype.itemsize,
                          width, height, k, len(payload))
    body = b"".join((fields, struct.pack("<I", zlib.crc32(fields)), palette.tobytes(), payload))
    return body + struct.pack("<I", zlib.crc32(body))


# --- decoding ------------------------------------------------------------------------------------

def read_header(data: bytes | bytearray | memoryview) -> Header:
    """Parse and check the fixed header (the first 32 bytes); the rest is not read.

    Checks the magic, the version, the header checksum, every field's range and the format's
    limits. It does not check the payload or the file checksum: :func:`decode` does.

    Raises
    ------
    CorruptFileError
        Not a .kmq file, an unsupported version or layout, or a damaged header.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.codecs.container import encode, read_header
    >>> h = read_header(encode(np.zeros((1, 3), np.uint8), np.zeros((2, 5), np.uint8)))
    >>> h.width, h.height, h.k, h.method.name, h.layout, h.index_dtype
    (5, 2, 1, 'CONSTANT', 'RGB', 'uint8')
    """
    head = bytes(memoryview(data)[:HEADER_SIZE])
    if len(head) < len(MAGIC) or head[:len(MAGIC)] != MAGIC:
        raise CorruptFileError("not a .kmq file (bad magic bytes)")
    if len(head) < HEADER_SIZE:
        raise CorruptFileError(f"truncated: {len(head)} bytes, shorter than the "
                               f"{HEADER_SIZE}-byte header")
    _, version, layout, method, index_bytes, width, height, k, payload = _HEADER.unpack(
        head[:_HEADER.size])
    if version != VERSION:
        raise CorruptFileError(f"unsupported .kmq version {version} (this kmq reads version "
                               f"{VERSION})")
    (crc,) = struct.unpack("<I", head[_HEADER.size:])
    if zlib.crc32(head[:_HEADER.size]) != crc:
        raise CorruptFileError("header checksum mismatch (the file is damaged)")
    if layout not in (_LAYOUT_RGB, _LAYOUT_RGBA):
        raise CorruptFileError(f"unknown channel layout {layout}")
    if method not in {m.value for m in Method}:
        raise CorruptFileError(f"unknown coding method {method}")
    if index_bytes not in (1, 2):
        raise CorruptFileError(f"bad index width {index_bytes} (expected 1 or 2 bytes)")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise CorruptFileError(f"bad size {width}x{height} (1 to {MAX_SIDE} pixels a side)")
    if width * height > MAX_PIXELS:
        raise CorruptFileError(f"{width}x{height} is over the format's limit of {MAX_PIXELS:,} "
                               f"pixels")
    if not 1 <= k <= MAX_K:
        raise CorruptFileError(f"bad palette size K = {k} (1 to {MAX_K})")
    if index_bytes == 1 and k > 256:
        raise CorruptFileError(f"K = {k} does not fit 8-bit indices")
    if (method == Method.CONSTANT) != (k == 1) or (method == Method.CONSTANT and payload != 0):
        raise CorruptFileError(f"method {method} does not match K = {k} and a payload of "
                               f"{payload} bytes")
    return Header(version=version, layout="RGBA" if layout == _LAYOUT_RGBA else "RGB",
                  method=Method(method),
                  index_dtype="uint8" if index_bytes == 1 else "uint16", width=width,
                  height=height, k=k, payload_size=payload)


def _check_pixels(header: Header, max_pixels: int) -> None:
    if header.pixels > max_pixels:
        raise CorruptFileError(f"{header.width}x{header.height} = {header.pixels:,} pixels is "
                               f"over the limit of {max_pixels:,} pixels (raise max_pixels)")


def _decode_bitpack(payload: bytes, header: Header) -> np.ndarray:
    nbits = int(_coder.index_bits(header.k))
    expected = (header.pixels * nbits + 7) // 8
    raw = bytearray()
    try:  # read at most one byte more than expected: a zstd bomb cannot make us allocate more
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload)) as reader:
            while len(raw) <= expected:
                chunk = reader.read(min(expected + 1 - len(raw), 1 << 24))
                if not chunk:
                    break
                raw += chunk
    except zstandard.ZstdError as exc:
        raise CorruptFileError(f"the zstd payload does not decode ({exc})") from exc
    if len(raw) != expected:
        raise CorruptFileError(f"the zstd payload holds {len(raw)} bytes, not {expected}")
    values = _coder.unpack_bits(np.frombuffer(bytes(raw), np.uint8), nbits, header.pixels)
    if header.pixels and int(values.max()) >= header.k:
        raise CorruptFileError(f"an index is out of range (K = {header.k})")
    return values.reshape(header.height, header.width)


def _decode_context(payload: bytes, palette: np.ndarray, header: Header) -> np.ndarray:
    ranks, status = _coder.cm_decode(np.frombuffer(payload, np.uint8), header.height,
                                     header.width, header.k)
    if status == _coder.BAD_INDEX:
        raise CorruptFileError(f"the coded index map decodes to an index >= K = {header.k}")
    if status != _coder.OK:
        raise CorruptFileError("the coded index map does not end where the payload ends")
    return luma_order(palette)[ranks]


def decode(data: bytes | bytearray | memoryview, *,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Decode a .kmq file's bytes.

    Parameters
    ----------
    data : bytes-like
        The whole file.
    max_pixels : int
        Refuse images with more pixels (checked before any allocation; the format's own limit
        is ``MAX_PIXELS``).

    Returns
    -------
    Decoded
        The palette (K, 3) uint8 and the (H, W) indices in the dtype they were written from.

    Raises
    ------
    CorruptFileError
        For any input that is not an intact .kmq file this version reads: wrong magic,
        unsupported version, truncated, damaged (checksum), inconsistent or over the limits.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.codecs.container import decode, encode
    >>> rng = np.random.default_rng(0)
    >>> palette = rng.integers(0, 256, (300, 3), dtype=np.uint8)
    >>> indices = rng.integers(0, 300, (20, 30)).astype(np.uint16)
    >>> out = decode(encode(palette, indices))
    >>> out.k, out.indices.dtype.name, np.array_equal(out.indices, indices)
    (300, 'uint16', True)
    >>> decode(b"not a kmq file")
    Traceback (most recent call last):
    ...
    kmq.errors.CorruptFileError: not a .kmq file (bad magic bytes)
    """
    try:
        view = memoryview(data).cast("B")
    except TypeError as exc:
        raise CorruptFileError(f"expected bytes; got {type(data).__name__}") from exc
    header = read_header(view)
    _check_pixels(header, max_pixels)
    if len(view) != header.file_size:
        raise CorruptFileError(f"{'truncated' if len(view) < header.file_size else 'too long'}: "
                               f"{len(view):,} bytes where the header states "
                               f"{header.file_size:,}")
    (crc,) = struct.unpack("<I", view[-TRAILER_SIZE:])
    if zlib.crc32(view[:-TRAILER_SIZE]) != crc:
        raise CorruptFileError("checksum mismatch (the file is damaged)")
    start = HEADER_SIZE + header.palette_size
    palette = np.frombuffer(view[HEADER_SIZE:start], np.uint8).reshape(
        header.k, header.channels).copy()
    payload = bytes(view[start:start + header.payload_size])
    if header.method == Method.CONSTANT:
        indices = np.zeros((header.height, header.width), np.uint16)
    elif header.method == Method.BITPACK_ZSTD:
        indices = _decode_bitpack(payload, header)
    else:
        indices = _decode_context(payload, palette, header)
    return Decoded(palette=palette, indices=indices.astype(header.index_dtype, copy=False),
                   version=header.version, method=header.method)



def read(fh, *, max_pixels: int = DEFAULT_MAX_PIXELS, size: int | None = None,
         name: str = "") -> Decoded:
    """Decode a .kmq file from an open binary file: the header, and the file's ``size`` when
    given, are checked before the rest is read (a damaged header costs no large read).

    Raises :class:`CorruptFileError` as :func:`decode` does, its message prefixed by ``name``,
    and :class:`kmq.ImageTooLargeError` when the header states more than ``max_pixels``.
    """
    prefix = f"{name}: " if name else ""
    head = fh.read(HEADER_SIZE)
    try:
        header = read_header(head)
        if header.pixels > max_pixels:
            raise ImageTooLargeError(
                f"{prefix}{header.width}x{header.height} = {header.pixels:,} pixels is over the "
                f"limit of {max_pixels:,} pixels (raise it with max_pixels / --max-pixels)")
        if size is not None and size != header.file_size:
            raise CorruptFileError(f"{'truncated' if size < header.file_size else 'too long'}: "
                                   f"{size:,} bytes where the header states "
                                   f"{header.file_size:,}")
        return decode(head + fh.read(header.file_size - HEADER_SIZE), max_pixels=max_pixels)
    except CorruptFileError as exc:
        raise CorruptFileError(f"{prefix}{exc}") from exc


__all__ = ["HEADER_SIZE", "MAGIC", "MAX_K", "MAX_PIXELS", "Decoded", "Header", "Method",
           "decode", "encode", "luma_order", "read", "read_header"]
