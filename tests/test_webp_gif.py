"""kmq.codecs.webp and kmq.codecs.gif: the pixels read back are exactly palette[indices]."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import kmq
from kmq.codecs.gif import encode_gif
from kmq.codecs.webp import encode_webp
from kmq.errors import OutputExistsError
from kmq.indexed_files import save


def random_indexed(seed: int, k: int, shape=(23, 37)):
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (k, 3)).astype(np.uint8)
    indices = rng.integers(0, k, shape)
    return palette, indices


def read_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def gif_global_color_table(data: bytes) -> np.ndarray:
    """The global color table, read from the bytes by the GIF89a specification (no Pillow)."""
    assert data[:6] in (b"GIF87a", b"GIF89a")
    packed = data[10]
    assert packed & 0x80, "no global color table"
    n = 2 ** ((packed & 0x07) + 1)
    return np.frombuffer(data[13:13 + 3 * n], np.uint8).reshape(n, 3)


# ---------------------------------------------------------------------------------------------
# WebP


@pytest.mark.parametrize("k", [1, 2, 16, 256, 300])
def test_webp_reads_back_exactly(k):
    palette, indices = random_indexed(k, k)
    data = encode_webp(palette, indices)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert data[12:16] == b"VP8L"  # the lossless bitstream, no extended header or metadata
    np.testing.assert_array_equal(read_rgb(data), palette[indices])


def test_webp_of_a_quantized_photo_reads_back_exactly(small_photo):
    q = kmq.quantize(small_photo, 64, seed=0)
    data = encode_webp(q.palette, q.indices)
    np.testing.assert_array_equal(read_rgb(data), q.to_rgb())
    assert encode_webp(q.palette, q.indices) == data  # deterministic
    assert len(encode_webp(q.palette, q.indices, quality=0)) >= len(data)


def test_save_webp_is_atomic_and_refuses_to_overwrite(tmp_path):
    palette, indices = random_indexed(1, 5)
    path = tmp_path / "a.webp"
    n = save(path, palette, indices, format="webp")
    assert path.read_bytes() == encode_webp(palette, indices) and n == path.stat().st_size
    with pytest.raises(OutputExistsError):
        save(path, palette[::-1].copy(), indices, format="webp")
    assert path.read_bytes() == encode_webp(palette, indices)
    save(path, palette[::-1].copy(), indices, format="webp", overwrite=True)
    np.testing.assert_array_equal(read_rgb(path.read_bytes()), palette[::-1][indices])
    assert [p.name for p in tmp_path.iterdir()] == ["a.webp"]  # no temporary file left


def test_webp_bad_arguments():
    palette, indices = random_indexed(1, 5)
    with pytest.raises(ValueError, match=r"indices in 0\.\.4 .* got values in 5\.\.5"):
        encode_webp(palette, np.full((2, 2), 5))
    with pytest.raises(ValueError, match="uint8 array"):
        encode_webp(palette.astype(float), indices)
    with pytest.raises(ValueError, match=r"quality .* 0\.\.100; got 101"):
        encode_webp(palette, indices, quality=101)


# ---------------------------------------------------------------------------------------------
# GIF


@pytest.mark.parametrize("k", [1, 2, 3, 17, 255, 256])
def test_gif_keeps_palette_and_indices_exactly(k):
    palette, indices = random_indexed(k + 1000, k)
    data = encode_gif(palette, indices)
    table = gif_global_color_table(data)
    assert len(table) == max(4, 1 << (k - 1).bit_length())  # next power of two (Pillow: >= 4)
    np.testing.assert_array_equal(table[:k], palette)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "P" and getattr(im, "n_frames", 1) == 1
        np.testing.assert_array_equal(np.asarray(im), indices)
    np.testing.assert_array_equal(read_rgb(data), palette[indices])


def test_gif_keeps_duplicate_and_unused_palette_entries():
    palette = np.array([[5, 5, 5], [200, 10, 10], [5, 5, 5], [0, 0, 0]], np.uint8)
    indices = np.array([[0, 2, 2], [2, 0, 0]])  # entries 1 and 3 unused, 0 and 2 equal
    data = encode_gif(palette, indices)
    np.testing.assert_array_equal(gif_global_color_table(data), palette)
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im), indices)


def test_gif_of_a_quantized_photo_is_exact_and_deterministic(small_photo, tmp_path):
    q = kmq.quantize(small_photo, 200, seed=0)
    n = save(tmp_path / "a.gif", q.palette, q.indices, format="gif")
    data = (tmp_path / "a.gif").read_bytes()
    assert n == len(data) and data == encode_gif(q.palette, q.indices)
    np.testing.assert_array_equal(read_rgb(data), q.to_rgb())
    with pytest.raises(OutputExistsError):
        save(tmp_path / "a.gif", q.palette, q.indices, format="gif")


def test_gif_bad_arguments():
    palette, indices = random_indexed(1, 257)
    with pytest.raises(ValueError, match=r"1 <= K <= 256; got shape \(257, 3\)"):
        encode_gif(palette, indices)
    with pytest.raises(ValueError, match=r"\(H, W\) integer array; got shape \(4,\)"):
        encode_gif(palette[:4], np.zeros(4, int))
