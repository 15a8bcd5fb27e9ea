"""Small real image files in the formats kmq reads, the ways such a file goes wrong, and one
trip of a file through kmq's file layer.

Shared by ``tests/properties/test_image_fuzz.py`` (bounded, in the suite) and
``benchmarks/fuzz_inputs.py`` (the same mutations at scale, counted per outcome). A mutation
takes a file's bytes and returns damaged bytes: cut short, bits flipped, bytes overwritten in the
header, bytes inserted, or the image's width and height forged in the header with the format's
own checksum made valid again (so that the decoder, not a checksum, has to catch it).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from kmq.errors import ImageReadError, ImageTooLargeError, KmqError
from kmq.files import CompressOptions, compress_file
from kmq.io import read_image

#: Formats of the sample files, by name.
FORMATS = ("png", "png-rgba", "png-p", "jpeg", "gif", "webp", "webp-lossy", "tiff")
#: Mutations, by name.
MUTATIONS = ("truncate", "flip", "header", "insert", "forge")
#: The errors an unreadable image input may raise (kmq.errors; docs/cli.md gives their codes).
DOCUMENTED = (ImageReadError, ImageTooLargeError)
#: Forged images larger than this are refused before decoding (ImageTooLargeError): keeps each
#: trip fast whatever size a header claims.
MAX_PIXELS = 1 << 18
OPTIONS = CompressOptions(k=8, effort="fast", force=True, max_pixels=MAX_PIXELS)


def _photo(height: int = 20, width: int = 24) -> np.ndarray:
    """A small photo-like RGB image: smooth gradients and a little noise (many colors)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[:height, :width] / max(height, width)
    rgb = np.stack([200 * x + 30, 160 * y + 40, 120 * (1 - x * y) + 60], axis=2)
    return np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)


def sample_files() -> dict[str, bytes]:
    """One small file per name of :data:`FORMATS`, made by Pillow."""
    rgb = _photo()
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    images = {
        "png": (Image.fromarray(rgb), "PNG", {}),
        "png-rgba": (Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG", {}),
        "png-p": (Image.fromarray(rgb).quantize(16), "PNG",
                  {"transparency": bytes([0, 128] + [255] * 14)}),
        "jpeg": (Image.fromarray(rgb), "JPEG", {"quality": 85, "exif": _exif_rotated()}),
        "gif": (Image.fromarray(rgb).quantize(32), "GIF",  # two frames
                {"save_all": True, "append_images": [Image.fromarray(255 - rgb).quantize(32)]}),
        "webp": (Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "WEBP", {"lossless": True}),
        "webp-lossy": (Image.fromarray(rgb), "WEBP", {"quality": 80}),
        "tiff": (Image.fromarray(rgb), "TIFF", {"compression": "tiff_lzw"}),
    }
    files = {}
    for name, (im, fmt, params) in images.items():
        buf = io.BytesIO()
        im.save(buf, fmt, **params)
        files[name] = buf.getvalue()
    return files


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    return exif.tobytes()


# --- mutations ----------------------------------------------------------------------------------

def truncate(data: bytes, n: int) -> bytes:
    return data[:n]


def flip(data: bytes, bits) -> bytes:
    out = bytearray(data)
    for bit in bits:
        out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


def overwrite(data: bytes, offset: int, patch: bytes) -> bytes:
    offset = offset % max(len(data), 1)
    return data[:offset] + patch[:len(data) - offset] + data[offset + len(patch):]


def insert(data: bytes, offset: int, extra: bytes) -> bytes:
    offset = offset % (len(data) + 1)
    return data[:offset] + extra + data[offset:]


def forge_size(fmt: str, data: bytes, width: int, height: int) -> bytes:
    """``data`` with the width and height its header states replaced (clipped to what each
    field holds), its checksums made valid again; unchanged where no size field is found."""
    kind = fmt.split("-")[0]
    out = bytearray(data)
    if kind == "png":  # IHDR: width, height (big-endian u32), then the chunk's CRC
        struct.pack_into(">II", out, 16, width & 0xFFFFFFFF, height & 0xFFFFFFFF)
        struct.pack_into(">I", out, 29, zlib.crc32(bytes(out[12:29])))
    elif kind == "gif":  # the screen and the first image descriptor (little-endian u16)
        struct.pack_into("<HH", out, 6, width & 0xFFFF, height & 0xFFFF)
        at = _gif_descriptor(out)
        if at is not None:
            struct.pack_into("<HH", out, at + 5, width & 0xFFFF, height & 0xFFFF)
    elif kind == "jpeg":  # SOFn: height, width (big-endian u16)
        at = _jpeg_sof(out)
        if at is not None:
            struct.pack_into(">HH", out, at + 5, height & 0xFFFF, width & 0xFFFF)
    elif kind == "webp":
        _forge_webp(out, width, height)
    elif kind == "tiff":
        _forge_tiff(out, width, height)
    return bytes(out)


def _gif_descriptor(data: bytearray) -> int | None:
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while at < len(data):
        if data[at] == 0x2C:
            return at if at + 9 <= len(data) else None
        if data[at] != 0x21:
            return None
        at += 2
        while at < len(data) and data[at]:  # sub-blocks
            at += data[at] + 1
        at += 1
    return None


def _jpeg_sof(data: bytearray) -> int | None:
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            return at + 2
        at += 2 + struct.unpack_from(">H", data, at + 2)[0]
    return None


def _forge_webp(data: bytearray, width: int, height: int) -> None:
    at = 12
    while at + 8 <= len(data):
        tag, size = bytes(data[at:at + 4]), struct.unpack_from("<I", data, at + 4)[0]
        body = at + 8
        if tag == b"VP8X" and body + 10 <= len(data):  # canvas size - 1, 24 bits each
            w, h = (width - 1) & 0xFFFFFF, (height - 1) & 0xFFFFFF
            data[body + 4:body + 7] = w.to_bytes(3, "little")
            data[body + 7:body + 10] = h.to_bytes(3, "little")
        elif tag == b"VP8L" and body + 5 <= len(data):  # 14 bits each, size - 1
            bits = struct.unpack_from("<I", data, body + 1)[0] & ~((1 << 28) - 1)
            bits |= ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14)
            struct.pack_into("<I", data, body + 1, bits)
        elif tag == b"VP8 " and body + 10 <= len(data):  # 14 bits each, after the start code
            struct.pack_into("<HH", data, body + 6, width & 0x3FFF, height & 0x3FFF)
        at = body + size + (size & 1)


def _forge_tiff(data: bytearray, width: int, height: int) -> None:
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", data, 4)[0]
    if ifd + 2 > len(data):
        return
    for i in range(struct.unpack_from(order + "H", data, ifd)[0]):
        at = ifd + 2 + 12 * i
        if at + 12 > len(data):
            return
        tag, typ = struct.unpack_from(order + "HH", data, at)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG, held in the entry
            value = width if tag == 256 else height
            if typ == 3:
                struct.pack_into(order + "H", data, at + 8, value & 0xFFFF)
            elif typ == 4:
                struct.pack_into(order + "I", data, at + 8, value & 0xFFFFFFFF)


#: Sizes a forged header states: empty, tiny, one off, large, at and past each field's limit.
FORGED_SIZES = (0, 1, 2, 19, 21, 23, 25, 48, 513, 4096, 65535, 65536, 1 << 24, (1 << 31) - 1,
                (1 << 32) - 1)


def random_mutation(fmt: str, data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One mutation of ``data`` chosen by ``rng``, as ``(its name, the damaged bytes)``."""
    kind = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
    if kind == "truncate":
        return kind, truncate(data, int(rng.integers(len(data))))
    if kind == "flip":
        return kind, flip(data, rng.integers(0, 8 * len(data), int(rng.integers(1, 4))))
    if kind == "header":
        n = int(rng.integers(1, 5))
        return kind, overwrite(data, int(rng.integers(0, 64)),
                               rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    if kind == "insert":
        return kind, insert(data, int(rng.integers(len(data) + 1)),
                            rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8
                                         ).tobytes())
    width, height = (int(FORGED_SIZES[i]) for i in rng.integers(len(FORGED_SIZES), size=2))
    return kind, forge_size(fmt, data, width, height)


# --- one trip through the file layer ------------------------------------------------------------

def through_file_layer(data: bytes, folder: str | os.PathLike) -> str:
    """Read ``data`` with :func:`kmq.io.read_image` and compress it as a file with
    :func:`kmq.compress_file`; returns ``"ok"`` or the name of the documented error both
    raised.

    Raises
    ------
    AssertionError
        A success whose output does not decode to the input's size, an error outside
        :data:`DOCUMENTED` or whose message is not one line, or the two paths disagreeing.
    Exception
        Anything else either path raised (a bug: the caller reports it).
    """
    outcomes, pixels = [], None
    try:
        pixels = read_image(data, max_pixels=MAX_PIXELS, name="fuzz")
        outcomes.append("ok")
    except KmqError as exc:
        outcomes.append(_checked(exc))
    source, output = Path(folder) / "in.bin", Path(folder) / "out.png"
    source.write_bytes(data)
    try:
        result = compress_file(source, output, OPTIONS)
        with Image.open(output) as im:
            im.load()
            assert im.size == (result.width, result.height)
        if pixels is not None:
            assert pixels.shape[1::-1] == im.size
        outcomes.append("ok")
    except KmqError as exc:
        outcomes.append(_checked(exc))
    assert outcomes[0] == outcomes[1], f"read_image: {outcomes[0]}, compress_file: {outcomes[1]}"
    return outcomes[0]


def _checked(exc: KmqError) -> str:
    message = str(exc)
    assert isinstance(exc, DOCUMENTED), f"{type(exc).__name__}: {message}"
    assert message and "\n" not in message and "\r" not in message, repr(message)
    return type(exc).__name__
