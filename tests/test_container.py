"""The .kmq container: layout, round trips, checks on read, files, and the kernels vs naive_coder.

Golden files: ``tests/golden/*.kmq`` were written by version 1 (``python tests/test_container.py
--write-golden``); their expected contents are regenerated here from seeds, so every later version
must decode them to exactly these palettes and indices.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import naive_coder
from kmq._kernels import coder
from kmq.codecs.container import (
    HEADER_SIZE,
    MAGIC,
    MAX_SIDE,
    Method,
    decode,
    encode,
    luma_order,
    read_header,
)
from kmq.errors import CorruptFileError, ImageReadError, OutputExistsError
from kmq.indexed_files import load, read_kmq, save

GOLDEN = Path(__file__).parent / "golden"
IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def blocks_and_gradient(height, width, k, seed):
    """A structured index map: a diagonal gradient of k levels, with random rectangles on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    m = ((x + y) * k // (height + width)).astype(np.int64)
    for _ in range(6):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        m[y0:y0 + rng.integers(1, 9), x0:x0 + rng.integers(1, 9)] = rng.integers(0, k)
    return m.astype(np.uint8 if k <= 256 else np.uint16)


def random_palette(k, seed):
    return np.random.default_rng(seed).integers(0, 256, (k, 3), dtype=np.uint8)


def golden_cases():
    """name -> (palette, indices, method): the inputs behind each golden file."""
    rng = np.random.default_rng(2024)
    noise = rng.integers(0, 5, (9, 7)).astype(np.uint8)
    wide = rng.integers(0, 300, (10, 13)).astype(np.uint16)
    return {
        "v1_constant_k1": (np.array([[12, 34, 56]], np.uint8), np.zeros((3, 5), np.uint8),
                           Method.CONSTANT),
        "v1_bitpack_k5": (random_palette(5, 1), noise, Method.BITPACK_ZSTD),
        "v1_context_k16": (random_palette(16, 2), blocks_and_gradient(24, 32, 16, 3),
                           Method.CONTEXT),
        "v1_context_k300": (random_palette(300, 4), wide, Method.CONTEXT),
    }


def rewrite_header(data: bytes, **fields) -> bytes:
    """``data`` with header fields replaced and both checksums made valid again."""
    names = ("magic", "version", "layout", "method", "index_bytes", "width", "height", "k",
             "payload")
    values = dict(zip(names, struct.unpack("<8sBBBBIIII", data[:28]), strict=True))
    values.update(fields)
    head = struct.pack("<8sBBBBIIII", *(values[n] for n in names))
    body = head + struct.pack("<I", zlib.crc32(head)) + data[HEADER_SIZE:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def with_payload(data: bytes, payload: bytes) -> bytes:
    """``data`` with its payload replaced (sizes and checksums kept consistent)."""
    h = read_header(data)
    start = HEADER_SIZE + h.palette_size
    return rewrite_header(data[:start] + payload + b"\0\0\0\0", payload=len(payload))


# --- kernels against the naive reference ---------------------------------------------------------

@pytest.mark.parametrize("nbits", [1, 2, 3, 7, 8, 9, 15, 16])
def test_pack_bits_matches_naive(nbits):
    values = np.random.default_rng(nbits).integers(0, 1 << nbits, 53).astype(np.uint16)
    packed = coder.pack_bits(values, nbits)
    assert packed.tobytes() == naive_coder.pack_bits(values, nbits)
    assert np.array_equal(coder.unpack_bits(packed, nbits, len(values)), values)


@pytest.mark.parametrize(("k", "shape", "kind"), [
    (2, (1, 1), "noise"), (2, (1, 40), "noise"), (3, (30, 1), "noise"),
    (16, (17, 23), "structured"), (256, (12, 21), "noise"), (256, (20, 20), "structured"),
    (300, (9, 14), "noise"), (65536, (6, 7), "noise"), (70, (16, 16), "structured"),
])
def test_cm_kernels_match_naive(k, shape, kind):
    if kind == "noise":
        m = np.random.default_rng(k).integers(0, k, shape).astype(np.uint16)
    else:
        m = blocks_and_gradient(*shape, k, seed=k).astype(np.uint16)
    payload = coder.cm_encode(m, k)
    assert payload.tobytes() == naive_coder.cm_encode(m, k)
    back, used = naive_coder.cm_decode(payload.tobytes(), *shape, k)
    assert np.array_equal(back, m) and used == len(payload)
    kernel_back, status = coder.cm_decode(payload, *shape, k)
    assert status == coder.OK and np.array_equal(kernel_back, m)


def test_cm_decode_rejects_a_stream_that_ends_early_or_late():
    m = blocks_and_gradient(20, 20, 16, seed=5).astype(np.uint16)
    payload = coder.cm_encode(m, 16)
    for bad in (payload[:-1], np.concatenate([payload, np.zeros(1, np.uint8)])):
        _, status = coder.cm_decode(bad, 20, 20, 16)
        assert status != coder.OK


def test_luma_order_known_values():
    palette = np.array([[0, 0, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0]], np.uint8)
    # lumas 114, 299, 587, 114, 0 (x1000): black, the two blues in entry order, red, green
    assert luma_order(palette).tolist() == [4, 0, 3, 1, 2]


# --- layout --------------------------------------------------------------------------------------

def test_encode_layout_matches_the_spec():
    palette = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    indices = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    data = encode(palette, indices, method=Method.BITPACK_ZSTD)
    assert data[:8] == b"\x89KMQ\r\n\x1a\n" == MAGIC
    assert struct.unpack("<BBBBIIII", data[8:28]) == (1, 3, 1, 1, 3, 2, 2, len(data) - 42)
    assert struct.unpack("<I", data[28:32])[0] == zlib.crc32(data[:28])
    assert data[32:38] == bytes([1, 2, 3, 4, 5, 6])
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    raw = bytes([0b01110000])  # 0 1 1 1 0 0 at one bit each, MSB first, zero padded
    import zstandard
    assert zstandard.ZstdDecompressor().decompress(data[38:-4]) == raw


def test_read_header_needs_only_the_first_32_bytes():
    palette, indices = random_palette(300, 0), blocks_and_gradient(10, 40, 300, seed=0)
    data = encode(palette, indices)
    h = read_header(data[:HEADER_SIZE])
    assert (h.version, h.layout, h.method, h.index_dtype) == (1, "RGB", Method.CONTEXT, "uint16")
    assert (h.width, h.height, h.k, h.pixels, h.palette_size) == (40, 10, 300, 400, 900)
    assert h.file_size == len(data) == HEADER_SIZE + 900 + h.payload_size + 4
    assert h.bits_per_pixel == 8 * len(data) / 400
    assert read_header(data) == h


def test_single_color_image_has_an_empty_payload():
    data = encode(np.array([[7, 8, 9]], np.uint8), np.zeros((100, 3), np.uint8))
    assert len(data) == HEADER_SIZE + 3 + 4
    out = decode(data)
    assert out.method == Method.CONSTANT and out.indices.shape == (100, 3)
    assert not out.indices.any() and out.palette.tolist() == [[7, 8, 9]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_keeps_dtype_palette_order_and_duplicates(dtype):
    palette = np.array([[9, 9, 9], [0, 0, 0], [9, 9, 9], [200, 1, 1]], np.uint8)
    indices = blocks_and_gradient(15, 19, 4, seed=1).astype(dtype)
    out = decode(encode(palette, indices))
    assert out.indices.dtype == dtype
    assert np.array_equal(out.indices, indices) and np.array_equal(out.palette, palette)
    assert (out.width, out.height, out.k, out.version) == (19, 15, 4, 1)
    assert np.array_equal(out.to_rgb(), palette[indices])


@pytest.mark.parametrize("method", [Method.BITPACK_ZSTD, Method.CONTEXT])
@pytest.mark.parametrize("k", [2, 255, 256, 257, 65536])
def test_both_methods_round_trip(method, k):
    indices = np.random.default_rng(k).integers(0, k, (11, 13)).astype(
        np.uint8 if k <= 256 else np.uint16)
    palette = random_palette(k, k)
    out = decode(encode(palette, indices, method=method))
    assert out.method == method and np.array_equal(out.indices, indices)
    assert np.array_equal(out.palette, palette)


def test_noise_falls_back_to_the_smaller_method():
    indices = np.random.default_rng(0).integers(0, 256, (64, 64)).astype(np.uint8)
    palette = random_palette(256, 0)
    sizes = {m: len(encode(palette, indices, method=m))
             for m in (Method.BITPACK_ZSTD, Method.CONTEXT)}
    data = encode(palette, indices)
    assert len(data) == min(sizes.values())
    assert read_header(data).method == min(sizes, key=sizes.get)


def test_structured_map_is_far_below_bitpacking():
    indices = blocks_and_gradient(128, 128, 64, seed=0)
    data = encode(random_palette(64, 0), indices)
    assert read_header(data).method == Method.CONTEXT
    assert len(data) < 0.5 * len(encode(random_palette(64, 0), indices,
                                        method=Method.BITPACK_ZSTD))


@pytest.mark.shared_images
def test_real_photo_is_smaller_than_optimized_png():
    path = IMAGES / "cq100" / "shopping_bags.png"
    if not path.exists():
        pytest.skip(f"{path} not present")
    import kmq

    q = kmq.quantize(np.asarray(Image.open(path).convert("RGB"))[::2, ::2], 32, seed=0)
    png = io.BytesIO()
    im = Image.fromarray(q.indices.astype(np.uint8), "P")
    im.putpalette(q.palette.tobytes())
    im.save(png, "PNG", optimize=True)
    assert len(encode(q.palette, q.indices)) < 0.85 * len(png.getvalue())


# --- bad arguments to encode ---------------------------------------------------------------------

@pytest.mark.parametrize(("palette", "indices", "error"), [
    (np.zeros((2, 3), np.uint8), np.zeros((2, 2), np.int32), TypeError),
    (np.zeros((2, 3), np.float64), np.zeros((2, 2), np.uint8), ValueError),
    (np.zeros((2, 5), np.uint8), np.zeros((2, 2), np.uint8), ValueError),
    (np.zeros((0, 3), np.uint8), np.zeros((2, 2), np.uint8), ValueError),
    (np.zeros((65537, 3), np.uint8), np.zeros((2, 2), np.uint16), ValueError),
    (np.zeros((2, 3), np.uint8), np.zeros((2, 2, 1), np.uint8), ValueError),
    (np.zeros((2, 3), np.uint8), np.zeros((0, 2), np.uint8), ValueError),
    (np.zeros((2, 3), np.uint8), np.full((2, 2), 2, np.uint8), ValueError),
    ([[0, 0, 0]], np.zeros((2, 2), np.uint8), TypeError),
])
def test_encode_rejects_bad_arguments(palette, indices, error):
    with pytest.raises(error):
        encode(palette, indices)


def test_encode_rejects_a_method_that_does_not_fit_k():
    with pytest.raises(ValueError, match="K == 1"):
        encode(np.zeros((1, 3), np.uint8), np.zeros((2, 2), np.uint8),
               method=Method.CONTEXT)
    with pytest.raises(ValueError, match="K >= 2"):
        encode(np.zeros((2, 3), np.uint8), np.zeros((2, 2), np.uint8),
               method=Method.CONSTANT)


# --- checks on read ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample() -> bytes:
    return encode(random_palette(16, 0), blocks_and_gradient(20, 30, 16, seed=0))


@pytest.mark.parametrize(("fields", "message"), [
    ({"magic": b"\x89PNG\r\n\x1a\n"}, "bad magic"),
    ({"version": 2}, "unsupported .kmq version 2"),
    ({"layout": 4}, "truncated"),  # an RGB file relabelled RGBA: 4K palette bytes are missing
    ({"layout": 5}, "unknown channel layout"),
    ({"layout": 1}, "unknown channel layout"),
    ({"method": 3}, "unknown coding method"),
    ({"method": 0}, "does not match K"),
    ({"index_bytes": 4}, "bad index width"),
    ({"k": 300}, "does not fit 8-bit"),
    ({"k": 0}, "bad palette size"),
    ({"k": 65537, "index_bytes": 2}, "bad palette size"),
    ({"width": 0}, "bad size"),
    ({"height": MAX_SIDE + 1}, "bad size"),
    ({"width": MAX_SIDE, "height": MAX_SIDE}, "over the format's limit"),
    ({"width": 20_000, "height": 20_000}, "over the limit of"),
    ({"payload": 0}, "too long"),
    ({"payload": 2**32 - 1}, "truncated"),
])
def test_decode_rejects_bad_headers_with_valid_checksums(sample, fields, message):
    with pytest.raises(CorruptFileError, match=message):
        decode(rewrite_header(sample, **fields))


def test_decode_checks_header_checksum_and_file_checksum(sample):
    damaged_header = bytearray(sample)
    damaged_header[12] ^= 1  # width
    with pytest.raises(CorruptFileError, match="header checksum"):
        decode(bytes(damaged_header))
    damaged_payload = bytearray(sample)
    damaged_payload[-10] ^= 0x40
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        decode(bytes(damaged_payload))


def test_decode_rejects_every_truncation_and_extension(sample):
    for n in range(len(sample)):
        with pytest.raises(CorruptFileError):
            decode(sample[:n])
    with pytest.raises(CorruptFileError, match="too long"):
        decode(sample + b"\0")


def test_decode_max_pixels(sample):
    with pytest.raises(CorruptFileError, match="max_pixels"):
        decode(sample, max_pixels=599)
    assert decode(sample, max_pixels=600).indices.shape == (20, 30)


def test_decode_rejects_payloads_that_do_not_decode(sample):
    # A valid stream of another size, and method-1 payloads that are not the right zstd frame:
    # all with valid checksums, so only the decoders' own checks can catch them.
    with pytest.raises(CorruptFileError, match="does not end"):
        decode(with_payload(sample, coder.cm_encode(np.zeros((5, 5), np.uint16), 16).tobytes()))
    import zstandard

    bitpacked = rewrite_header(sample, method=1)
    for payload, message in [(b"garbage", "does not decode"),
                             (zstandard.compress(b"\0" * 299), "holds 299 bytes, not 300"),
                             (zstandard.compress(b"\0" * 10**6), "not 300")]:
        with pytest.raises(CorruptFileError, match=message):
            decode(with_payload(bitpacked, payload))


def test_decode_rejects_an_index_beyond_k():
    # Written with K = 8 gray levels (luma order = entry order), then relabelled K = 5: index 7
    # still fits the 3 bits per index but is not < K.
    grays = np.repeat(np.arange(0, 240, 30, dtype=np.uint8)[:, None], 3, axis=1)
    palette = grays[:5]
    indices = np.full((3, 3), 7, np.uint8)
    good = encode(grays, indices, method=Method.BITPACK_ZSTD)
    with pytest.raises(CorruptFileError, match="out of range"):
        decode(rewrite_header(good[:HEADER_SIZE] + palette.tobytes()
                              + good[HEADER_SIZE + 24:], k=5))
    ctx = encode(grays, indices, method=Method.CONTEXT)
    with pytest.raises(CorruptFileError, match=">= K"):
        decode(rewrite_header(ctx[:HEADER_SIZE] + palette.tobytes() + ctx[HEADER_SIZE + 24:],
                              k=5))


@pytest.mark.parametrize("data", [b"", b"\x89KMQ", 42, "text"])
def test_decode_rejects_non_files(data):
    with pytest.raises(CorruptFileError):
        decode(data)


# --- files ---------------------------------------------------------------------------------------

def test_save_and_load(tmp_path):
    palette, indices = random_palette(16, 1), blocks_and_gradient(40, 50, 16, seed=1)
    path = tmp_path / "a.kmq"
    size = save(path, palette, indices)
    assert size == path.stat().st_size == len(encode(palette, indices))
    out = load(path)
    assert np.array_equal(out.indices, indices) and np.array_equal(out.palette, palette)
    with pytest.raises(OutputExistsError):
        save(path, palette, indices)
    assert save(path, palette[:1], np.zeros((2, 2), np.uint8), overwrite=True) == 39
    assert load(path).k == 1


def test_load_errors(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        load(tmp_path / "missing.kmq")
    path = tmp_path / "cut.kmq"
    path.write_bytes(encode(random_palette(16, 1), blocks_and_gradient(40, 50, 16, seed=1))[:-1])
    with pytest.raises(CorruptFileError, match=r"cut\.kmq: .*where the header states"):
        load(path)
    path.write_bytes(b"GIF89a" + bytes(40))
    with pytest.raises(CorruptFileError, match="bad magic"):
        read_kmq(path)
    with pytest.raises(ImageReadError, match=r"cut\.kmq: not a readable image file"):
        load(path)  # neither a .kmq file nor an image


# --- golden files --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(golden_cases()))
def test_golden_files_decode_to_their_inputs(name):
    palette, indices, method = golden_cases()[name]
    data = (GOLDEN / f"{name}.kmq").read_bytes()
    out = decode(data)
    assert out.version == 1 and out.method == method
    assert out.indices.dtype == indices.dtype
    assert np.array_equal(out.indices, indices) and np.array_equal(out.palette, palette)
    # Version 1's coders are fixed by the spec: encoding again gives the very same bytes.
    assert encode(palette, indices, method=method) == data


def _write_golden() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name, (palette, indices, method) in golden_cases().items():
        (GOLDEN / f"{name}.kmq").write_bytes(encode(palette, indices, method=method))


if __name__ == "__main__" and sys.argv[1:] == ["--write-golden"]:
    _write_golden()
