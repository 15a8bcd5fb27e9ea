"""kmq.codecs.png: indexed PNG with exactly K palette entries at the smallest bit depth."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from kmq.codecs.png import EFFORTS, bit_depth, encode_png, to_pil
from kmq.errors import OutputExistsError
from kmq.indexed_files import save


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


def decoded_colors(data: bytes) -> np.ndarray:
    """The (H, W, 4) RGBA pixels a PNG decodes to, by Pillow."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "P"
        return np.asarray(im.convert("RGBA"))


def inflate_indexed(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A second decoder (zlib and NumPy, no Pillow): the RGBA palette and the (H, W) indices,
    undoing the row filters and the bit packing."""
    chunks = png_chunks(data)
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert color_type == 3 and interlace == 0 and depth in (1, 2, 4, 8)
    (plte,) = [p for kind, p in chunks if kind == b"PLTE"]
    palette = np.full((len(plte) // 3, 4), 255, np.uint8)
    palette[:, :3] = np.frombuffer(plte, np.uint8).reshape(-1, 3)
    for kind, payload in chunks:
        if kind == b"tRNS":
            palette[:len(payload), 3] = np.frombuffer(payload, np.uint8)
    raw = zlib.decompress(b"".join(p for kind, p in chunks if kind == b"IDAT"))
    stride = -(-width * depth // 8)
    assert len(raw) == height * (stride + 1)
    rows = np.zeros((height + 1, stride), np.int64)  # row 0: the zero row above the first
    for y in range(height):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        out, up = rows[y + 1], rows[y]
        for x, value in enumerate(line):  # one byte per pixel or less: the left byte is x - 1
            left = out[x - 1] if x else 0
            corner = up[x - 1] if x else 0
            if kind == 0:
                predicted = 0
            elif kind == 1:
                predicted = left
            elif kind == 2:
                predicted = up[x]
            elif kind == 3:
                predicted = (left + up[x]) // 2
            else:
                assert kind == 4, f"filter type {kind}"
                p = left + up[x] - corner
                pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - corner)
                predicted = left if pa <= pb and pa <= pc else up[x] if pb <= pc else corner
            out[x] = (value + predicted) & 255
    bits = np.unpackbits(rows[1:].astype(np.uint8), axis=1).reshape(height, -1, depth)
    indices = (bits * (1 << np.arange(depth - 1, -1, -1))).sum(axis=2)[:, :width]
    return palette, indices


def check_decodes_to(data: bytes, palette: np.ndarray, indices: np.ndarray) -> None:
    """Both decoders give palette[indices] (RGBA), from exactly K entries that are the
    palette's colors in some order."""
    rgba = palette if palette.shape[1] == 4 else np.concatenate(
        [palette, np.full((len(palette), 1), 255, np.uint8)], axis=1)
    expected = rgba[indices]
    np.testing.assert_array_equal(decoded_colors(data), expected)
    stored, stored_indices = inflate_indexed(data)
    np.testing.assert_array_equal(stored[stored_indices], expected)
    assert len(stored) == len(palette)
    assert sorted(map(tuple, stored.tolist())) == sorted(map(tuple, rgba.tolist()))


def nearest_indexed(img: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A palette of k pixels of ``img`` and each pixel's nearest entry (brute force, NumPy)."""
    rng = np.random.default_rng(seed)
    flat = img.reshape(-1, 3)
    colors = np.unique(flat, axis=0)
    palette = colors[rng.choice(len(colors), k, replace=False)]
    d2 = ((flat[:, None, :].astype(np.int32) - palette[None, :, :]) ** 2).sum(axis=2)
    return palette, np.argmin(d2, axis=1).reshape(img.shape[:2])


def test_one_color_image_is_valid():
    data = encode_png(np.array([[10, 20, 30]], np.uint8), np.zeros((3, 5), np.uint8))
    assert ihdr_bit_depth_and_color_type(data) == (1, 3)
    with Image.open(io.BytesIO(data)) as im:
        assert im.convert("RGB").getpixel((4, 2)) == (10, 20, 30)


def test_save_png_writes_the_encoded_bytes(tmp_path, small_photo):
    palette, indices = nearest_indexed(small_photo, 8)
    path = tmp_path / "out.png"
    n = save(path, palette, indices, format="png")
    assert n == path.stat().st_size
    assert path.read_bytes() == encode_png(palette, indices)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary file left


def test_save_png_never_replaces_a_file_without_overwrite(tmp_path, small_photo):
    palette, indices = nearest_indexed(small_photo, 8)
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        save(path, palette, indices, format="png")
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    save(path, palette, indices, format="png", overwrite=True)
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


@pytest.mark.parametrize("effort", EFFORTS)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 16, 17, 64, 255, 256])
def test_pixels_decode_to_the_palette_colors(small_photo, k, effort):
    if k == 1:
        palette, indices = small_photo[:1, :1].reshape(1, 3), np.zeros(small_photo.shape[:2], int)
    else:
        palette, indices = nearest_indexed(small_photo, k)
    data = encode_png(palette, indices, effort=effort)
    check_decodes_to(data, palette, indices)
    depth, color_type = ihdr_bit_depth_and_color_type(data)
    assert color_type == 3  # indexed
    # The smallest depth that holds K; "max" also tries 8 bits, kept when smaller.
    assert depth in (bit_depth(k), 8) if effort == "max" else depth == bit_depth(k)
    assert plte_entries(data) == k


@pytest.mark.parametrize(("k", "depth"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4),
                                          (17, 8), (256, 8)])
def test_bit_depth_is_the_smallest_that_holds_k(k, depth):
    assert bit_depth(k) == depth


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (37, 1), (3, 5), (17, 33), (64, 7)])
@pytest.mark.parametrize("k", [2, 3, 11, 40, 256])
def test_odd_sizes_and_single_rows(shape, k):
    rng = np.random.default_rng(k)
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    # Diagonal runs with some noise, so that the candidates differ.
    indices = (np.add.outer(np.arange(shape[0]), np.arange(shape[1])) // 3 + rng.integers(
        0, 2, shape)) % k
    for effort in EFFORTS:
        check_decodes_to(encode_png(palette, indices, effort=effort), palette, indices)


@pytest.mark.parametrize("k", [3, 16, 64, 256])
def test_rgba_palette_keeps_every_alpha_and_a_short_trns(small_photo, k):
    palette, indices = nearest_indexed(small_photo, k)
    rng = np.random.default_rng(1)
    alpha = np.full(k, 255, np.uint8)
    translucent = rng.choice(k, max(1, k // 4), replace=False)
    alpha[translucent] = rng.integers(0, 255, len(translucent))
    rgba = np.concatenate([palette, alpha[:, None]], axis=1)
    for effort in EFFORTS:
        data = encode_png(rgba, indices, effort=effort)
        check_decodes_to(data, rgba, indices)
        (trns,) = [p for kind, p in png_chunks(data) if kind == b"tRNS"]
        assert len(trns) == len(translucent)  # translucent entries first: no opaque one in it


@pytest.mark.parametrize("effort", EFFORTS)
@pytest.mark.parametrize("k", [3, 16, 256])
def test_keep_order_writes_the_palette_and_indices_as_given(small_photo, k, effort):
    palette, indices = nearest_indexed(small_photo, k)
    alpha = np.full(k, 255, np.uint8)
    alpha[-1] = 0  # a translucent entry last stays last
    rgba = np.concatenate([palette, alpha[:, None]], axis=1)
    for pal in (palette, rgba):
        im = Image.open(io.BytesIO(encode_png(pal, indices, effort=effort, keep_order=True)))
        channels = pal.shape[1]
        decoded = np.asarray(im.convert("RGBA" if channels == 4 else "RGB"))
        assert np.array_equal(np.asarray(im), indices)
        assert np.array_equal(decoded, pal[indices])


def test_an_opaque_rgba_palette_writes_no_trns(small_photo):
    palette, indices = nearest_indexed(small_photo, 12)
    rgba = np.concatenate([palette, np.full((12, 1), 255, np.uint8)], axis=1)
    data = encode_png(rgba, indices)
    assert b"tRNS" not in [kind for kind, _ in png_chunks(data)]
    check_decodes_to(data, rgba, indices)


def test_encoding_is_deterministic(small_photo):
    palette, indices = nearest_indexed(small_photo, 32)
    for effort in EFFORTS:
        assert encode_png(palette, indices, effort=effort) == encode_png(
            palette.copy(), indices.astype(np.int64), effort=effort)


def test_optimize_true_is_max_effort(small_photo):
    palette, indices = nearest_indexed(small_photo, 32)
    assert encode_png(palette, indices, optimize=True) == encode_png(palette, indices,
                                                                     effort="max")
    assert encode_png(palette, indices, optimize=False) == encode_png(palette, indices)


def test_unknown_effort_says_what_was_expected():
    with pytest.raises(ValueError, match="expected effort, one of fast, default, max"):
        encode_png(np.zeros((2, 3), np.uint8), np.zeros((2, 2), np.uint8), effort="best")


@pytest.mark.parametrize("k", [16, 64, 256])
def test_default_is_no_larger_than_pillows_writer_and_max_no_larger_than_default(astronaut, k):
    import kmq

    q = kmq.quantize(astronaut, k)
    pillow = io.BytesIO()
    to_pil(q.palette, q.indices).save(pillow, format="PNG")  # an independent reference
    default = encode_png(q.palette, q.indices)
    best = encode_png(q.palette, q.indices, effort="max")
    assert len(default) <= len(pillow.getvalue())
    assert len(best) <= len(default)
    check_decodes_to(default, q.palette, q.indices)


def test_a_large_image_picks_its_candidate_from_a_sample_and_decodes(monkeypatch, small_photo):
    from kmq.codecs import png

    palette, indices = nearest_indexed(small_photo, 24)
    indices = np.tile(indices, (2, 2))
    monkeypatch.setattr(png, "_SAMPLE_ABOVE", indices.size // 4)  # sample this one
    monkeypatch.setattr(png, "_SAMPLE_MIN", indices.size // 16)
    assert len(png._sample_rows(*indices.shape)) < len(indices)
    check_decodes_to(encode_png(palette, indices), palette, indices)
