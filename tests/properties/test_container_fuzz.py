"""The .kmq decoder under hostile input: truncated, bit-flipped, random and forged files.

Every input must either decode to a consistent result or raise ``CorruptFileError``: no other
exception, no crash, no hang, and no allocation from a size the file states before that size is
checked against the limits. Each test is bounded (a fixed number of examples or iterations).
"""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmq.codecs.container import HEADER_SIZE, Method, decode, encode, read_header
from kmq.errors import CorruptFileError

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _sample(k: int, height: int, width: int, seed: int, method=None) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    m = ((x + 2 * y) * k // (width + 2 * height) + rng.integers(0, 2, (height, width)))
    m = np.minimum(m, k - 1).astype(np.uint8 if k <= 256 else np.uint16)
    return encode(rng.integers(0, 256, (k, 3), dtype=np.uint8), m, method=method)


SAMPLES = [
    _sample(1, 5, 7, 0),
    _sample(2, 9, 31, 1),
    _sample(16, 40, 33, 2),
    _sample(256, 30, 20, 3),
    _sample(700, 12, 15, 4),
    _sample(16, 20, 20, 5, Method.BITPACK_ZSTD),
]
for _data in SAMPLES:  # compile (or load) the kernels before the timed examples
    decode(_data)


def _decode_or_corrupt(data: bytes):
    """Decode, accepting only CorruptFileError; a success must be self-consistent."""
    try:
        out = decode(data)
    except CorruptFileError:
        return None
    assert out.indices.shape == (out.height, out.width)
    assert out.palette.shape == (out.k, 3)
    assert int(out.indices.max()) < out.k
    return out


def _forge(data: bytes, payload: bytes | None = None, **fields) -> bytes:
    """Replace header fields and/or the payload and make both checksums valid again."""
    names = ("magic", "version", "layout", "method", "index_bytes", "width", "height", "k",
             "payload")
    values = dict(zip(names, struct.unpack("<8sBBBBIIII", data[:28]), strict=True))
    start = HEADER_SIZE + 3 * values["k"]
    palette, old = data[HEADER_SIZE:start], data[start:-4]
    payload = old if payload is None else payload
    values.update(payload=len(payload))
    values.update(fields)
    head = struct.pack("<8sBBBBIIII", *(values[n] for n in names))
    body = head + struct.pack("<I", zlib.crc32(head)) + palette + payload
    return body + struct.pack("<I", zlib.crc32(body))


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_truncated_files_raise(sample, data):
    n = data.draw(st.integers(0, len(sample) - 1))
    with pytest.raises(CorruptFileError):
        decode(sample[:n])


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_bit_flips_raise(sample, data):
    # CRC-32 detects every error of up to 3 bits in files this short (< 11 kB).
    damaged = bytearray(sample)
    for bit in data.draw(st.sets(st.integers(0, 8 * len(sample) - 1), min_size=1, max_size=3)):
        damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CorruptFileError):
        decode(bytes(damaged))


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_raise(blob, with_magic):
    if with_magic:
        blob = b"\x89KMQ\r\n\x1a\n" + blob
    with pytest.raises(CorruptFileError):
        decode(blob)


@FUZZ
@given(st.sampled_from(SAMPLES[1:]), st.binary(max_size=400))
def test_forged_payloads_with_valid_checksums(sample, payload):
    """Beyond the checksum: the payload decoders check every read and every index."""
    _decode_or_corrupt(_forge(sample, payload))


@FUZZ
@given(st.sampled_from(SAMPLES), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_forged_headers_with_valid_checksums(sample, layout, method, index_bytes, width, height,
                                             k):
    data = _forge(sample, layout=layout, method=method, index_bytes=index_bytes, width=width,
                  height=height, k=k)
    _decode_or_corrupt(data)


def test_mutated_streams_fixed_iterations():
    """3000 forged context-coded payloads: mutations of a real one, all with valid checksums."""
    rng = np.random.default_rng(0)
    base = SAMPLES[2]
    start = HEADER_SIZE + 3 * read_header(base).k
    payload = base[start:-4]
    outcomes = {"decoded": 0, "rejected": 0}
    for _ in range(3000):
        p = bytearray(payload)
        op = rng.integers(0, 3)
        if op == 0:
            p[rng.integers(0, len(p))] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:
            p = p[:rng.integers(0, len(p))]
        else:
            p += bytes(rng.integers(0, 256, rng.integers(1, 8), dtype=np.uint8))
        outcomes["decoded" if _decode_or_corrupt(_forge(base, bytes(p))) else "rejected"] += 1
    assert outcomes["rejected"] > 2500  # almost every mutation is caught by the stream's checks


@pytest.mark.parametrize(("width", "height", "k"), [
    (10_000, 10_000, 256), (16_777_216, 64, 65536), (1 << 15, 1 << 15, 2),
])
def test_absurd_sizes_are_refused_before_allocating(width, height, k):
    forged = _forge(SAMPLES[2], width=width, height=height, k=k, index_bytes=2)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFileError):
            decode(forged)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
