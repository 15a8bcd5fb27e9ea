"""Round trips through the .kmq container over random shapes, palettes and index maps."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kmq.codecs.container import Method, decode, encode, read_header

KINDS = ("noise", "gradient", "blocks", "constant", "stripes")


def index_map(kind: str, height: int, width: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        m = rng.integers(0, k, (height, width))
    elif kind == "gradient":
        y, x = np.mgrid[:height, :width]
        m = (x * 3 + y * 5 + rng.integers(0, 2, (height, width))) * k // (3 * width + 5 * height)
    elif kind == "blocks":
        cell = int(rng.integers(1, 9))
        small = rng.integers(0, k, (height // cell + 1, width // cell + 1))
        m = np.kron(small, np.ones((cell, cell), np.int64))[:height, :width]
    elif kind == "stripes":
        m = np.broadcast_to(rng.integers(0, k, (1, width)), (height, width))
    else:
        m = np.full((height, width), rng.integers(0, k))
    return np.minimum(m, k - 1).astype(np.int64)


@st.composite
def images(draw):
    k = draw(st.one_of(st.sampled_from([1, 2, 3, 16, 255, 256, 257, 65536]),
                       st.integers(1, 65536)))
    height = draw(st.integers(1, 48))
    width = draw(st.integers(1, 48))
    kind = draw(st.sampled_from(KINDS))
    seed = draw(st.integers(0, 2**32 - 1))
    wide = k > 256 or draw(st.booleans())
    m = index_map(kind, height, width, k, seed).astype(np.uint16 if wide else np.uint8)
    palette = np.random.default_rng(seed + 1).integers(0, 256, (k, 3), dtype=np.uint8)
    return palette, m


def check_round_trip(palette, indices, method=None):
    data = encode(palette, indices, method=method)
    out = decode(data)
    assert out.indices.dtype == indices.dtype
    assert np.array_equal(out.indices, indices)
    assert np.array_equal(out.palette, palette)
    header = read_header(data)
    assert (header.width, header.height, header.k) == (indices.shape[1], indices.shape[0],
                                                       len(palette))
    assert header.file_size == len(data)
    if method is not None:
        assert out.method == method
    return data


@settings(max_examples=60, deadline=None)
@given(images())
@example((np.zeros((1, 3), np.uint8), np.zeros((1, 1), np.uint8)))
@example((np.zeros((2, 3), np.uint8), np.ones((1, 1), np.uint8)))
@example((np.zeros((65536, 3), np.uint8), np.full((1, 1), 65535, np.uint16)))
def test_round_trip(image):
    palette, indices = image
    check_round_trip(palette, indices)


@settings(max_examples=25, deadline=None)
@given(images(), st.sampled_from([Method.BITPACK_ZSTD, Method.CONTEXT]))
def test_round_trip_each_method(image, method):
    palette, indices = image
    if len(palette) == 1:
        method = Method.CONSTANT
    check_round_trip(palette, indices, method)


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(KINDS), st.sampled_from([2, 16, 256, 4096]), st.integers(0, 1000))
@example("noise", 256, 0)
def test_round_trip_large(kind, k, seed):
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(300, 700)), int(rng.integers(300, 700))
    m = index_map(kind, height, width, k, seed).astype(np.uint8 if k <= 256 else np.uint16)
    palette = rng.integers(0, 256, (k, 3), dtype=np.uint8)
    check_round_trip(palette, m)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 300), st.integers(0, 65535))
def test_single_index_image_is_tiny(pixels, value):
    k = value + 1
    palette = np.zeros((k, 3), np.uint8)
    indices = np.full((1, pixels), value, np.uint16)
    data = check_round_trip(palette, indices)
    # A constant map costs a few bytes of payload whatever its size (16 bits for the first index).
    assert len(data) <= 32 + 3 * k + 4 + 8 + pixels // 64
