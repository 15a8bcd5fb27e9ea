"""kmq.codecs.png: indexed PNG with exactly K palette entries at the smallest bit depth."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from kmq.codecs.png import encode_png, save_png
from kmq.errors import OutputExistsError


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, checking the signature and each CRC (no Pillow)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), f"bad CRC in {kind!r}"
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


def ihdr_bit_depth_and_color_type(data: bytes) -> tuple[int, int]:
    kind, payload = png_chunks(data)[0]
    assert kind == b"IHDR"
    return payload[8], payload[9]


def plte_entries(data: bytes) -> int:
    (payload,) = [p for kind, p in png_chunks(data) if kind == b"PLTE"]
    assert len(payload) % 3 == 0
    return len(payload) // 3


def nearest_indexed(img: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A palette of k pixels of ``img`` and each pixel's nearest entry (brute force, NumPy)."""
    rng = np.random.default_rng(seed)
    flat = img.reshape(-1, 3)
    colors = np.unique(flat, axis=0)
    palette = colors[rng.choice(len(colors), k, replace=False)]
    d2 = ((flat[:, None, :].astype(np.int32) - palette[None, :, :]) ** 2).sum(axis=2)
    return palette, np.argmin(d2, axis=1).reshape(img.shape[:2])


@pytest.mark.parametrize(("k", "depth"), [(2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8),
                                          (64, 8), (256, 8)])
def test_bit_depth_follows_the_palette_size(small_photo, k, depth):
    palette, indices = nearest_indexed(small_photo, k)
    data = encode_png(palette, indices)
    assert ihdr_bit_depth_and_color_type(data) == (depth, 3)  # color type 3: indexed
    assert plte_entries(data) == k


def test_round_trip_gives_back_palette_and_indices(chelsea):
    palette, indices = nearest_indexed(np.ascontiguousarray(chelsea[::3, ::3]), 13)
    with Image.open(io.BytesIO(encode_png(palette, indices))) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), indices)
        np.testing.assert_array_equal(np.array(im.getpalette(), np.uint8).reshape(-1, 3), palette)


def test_one_color_image_is_valid():
    data = encode_png(np.array([[10, 20, 30]], np.uint8), np.zeros((3, 5), np.uint8))
    assert ihdr_bit_depth_and_color_type(data) == (1, 3)
    with Image.open(io.BytesIO(data)) as im:
        assert im.convert("RGB").getpixel((4, 2)) == (10, 20, 30)


def test_encoding_is_deterministic(small_photo):
    palette, indices = nearest_indexed(small_photo, 32)
    assert encode_png(palette, indices) == encode_png(palette.copy(), indices.copy())
    assert encode_png(palette, indices, optimize=True) == encode_png(palette, indices,
                                                                     optimize=True)


def test_optimize_decodes_the_same_and_is_no_larger(small_photo):
    palette, indices = nearest_indexed(small_photo, 32)
    plain, small = encode_png(palette, indices), encode_png(palette, indices, optimize=True)
    assert len(small) <= len(plain)
    with Image.open(io.BytesIO(small)) as im:
        np.testing.assert_array_equal(np.asarray(im), indices)


def test_save_png_writes_the_encoded_bytes(tmp_path, small_photo):
    palette, indices = nearest_indexed(small_photo, 8)
    path = tmp_path / "out.png"
    n = save_png(path, palette, indices)
    assert n == path.stat().st_size
    assert path.read_bytes() == encode_png(palette, indices)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary file left


def test_save_png_never_replaces_a_file_without_overwrite(tmp_path, small_photo):
    palette, indices = nearest_indexed(small_photo, 8)
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        save_png(path, palette, indices)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    save_png(path, palette, indices, overwrite=True)
    assert path.read_bytes() == encode_png(palette, indices)


@pytest.mark.parametrize(("palette", "indices", "message"), [
    (np.zeros((4, 3), np.uint8), np.full((2, 2), 4), r"indices in 0\.\.3"),
    (np.zeros((4, 3), np.uint8), np.full((2, 2), -1), r"indices in 0\.\.3"),
    (np.zeros((257, 3), np.uint8), np.zeros((2, 2), int), "1 <= K <= 256"),
    (np.zeros((0, 3), np.uint8), np.zeros((2, 2), int), "1 <= K <= 256"),
    (np.zeros((4, 5), np.uint8), np.zeros((2, 2), int), r"\(K, 3\) or \(K, 4\) uint8"),
    (np.zeros((4, 3), np.float64), np.zeros((2, 2), int), r"\(K, 3\) or \(K, 4\) uint8"),
    (np.zeros((4, 3), np.uint8), np.zeros((2, 2, 1), int), r"\(H, W\) integer"),
    (np.zeros((4, 3), np.uint8), np.zeros((2, 2)), r"\(H, W\) integer"),
])
def test_invalid_arguments_say_what_was_expected(palette, indices, message):
    with pytest.raises(ValueError, match=message):
        encode_png(palette, indices)


def test_optimize_recompresses_with_oxipng_keeping_pixels_and_palette(astronaut):
    import io

    from PIL import Image

    import kmq
    from kmq.codecs.png import encode_png

    q = kmq.quantize(astronaut[:200, :200], 32)
    plain = encode_png(q.palette, q.indices)
    small = encode_png(q.palette, q.indices, optimize=True)
    assert len(small) < len(plain)
    with Image.open(io.BytesIO(small)) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im.getpalette()).reshape(-1, 3), q.palette)
        np.testing.assert_array_equal(np.asarray(im), q.indices)
