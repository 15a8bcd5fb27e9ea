"""kmq's file layer under damaged image files: PNG (RGB, RGBA, palette with tRNS), JPEG (with
an EXIF rotation), GIF (two frames), WebP (lossless with alpha, lossy) and TIFF (LZW), cut short,
bit-flipped, with bytes overwritten or inserted, and with forged sizes in valid headers.

Every file either reads and compresses to an output that decodes to the input's size, or fails
with one of the documented errors (:class:`kmq.ImageReadError`, :class:`kmq.ImageTooLargeError`)
whose message is one line, the same way through :func:`kmq.io.read_image` (bytes) and
:func:`kmq.compress_file` (a file): no other exception. The examples are derandomized and
bounded; ``benchmarks/fuzz_inputs.py`` runs the same mutations by the ten thousand.
"""

from __future__ import annotations

import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_mutations import (
    FORGED_SIZES,
    FORMATS,
    MUTATIONS,
    flip,
    forge_size,
    insert,
    overwrite,
    random_mutation,
    sample_files,
    through_file_layer,
    truncate,
)

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SAMPLES = sample_files()


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield name


def trip(data: bytes, folder: str) -> str:
    with warnings.catch_warnings():  # Pillow's warnings on damaged files are not the point
        warnings.simplefilter("ignore")
        return through_file_layer(data, folder)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_sample_reads_and_compresses(fmt, folder):
    assert trip(SAMPLES[fmt], folder) == "ok"


@pytest.mark.parametrize("fmt", FORMATS)
def test_forged_sizes_in_valid_headers_are_caught(fmt, folder):
    outcomes = {(w, h): trip(forge_size(fmt, SAMPLES[fmt], w, h), folder)
                for w in FORGED_SIZES[::2] for h in FORGED_SIZES[1::3]}
    # the forgery reached the decoder: some were refused as too large or as damaged
    assert set(outcomes.values()) - {"ok"}, outcomes


@FUZZ
@given(st.sampled_from(FORMATS), st.data())
def test_truncated_files(folder, fmt, data):
    sample = SAMPLES[fmt]
    trip(truncate(sample, data.draw(st.integers(0, len(sample) - 1))), folder)


@FUZZ
@given(st.sampled_from(FORMATS), st.lists(st.integers(0, 1 << 20), min_size=1, max_size=3))
def test_bit_flips(folder, fmt, bits):
    trip(flip(SAMPLES[fmt], bits), folder)


@FUZZ
@given(st.sampled_from(FORMATS), st.integers(0, 63), st.binary(min_size=1, max_size=4),
       st.integers(0, 1 << 16), st.binary(min_size=1, max_size=16))
def test_header_bytes_overwritten_and_bytes_inserted(folder, fmt, at, patch, where, extra):
    trip(overwrite(SAMPLES[fmt], at, patch), folder)
    trip(insert(SAMPLES[fmt], where, extra), folder)


def test_mixed_mutations_fixed_iterations(folder):
    """1500 seeded mutations spread over the formats: the kinds the benchmark counts."""
    rng = np.random.default_rng(2024)
    seen: dict[str, set[str]] = {kind: set() for kind in MUTATIONS}
    for i in range(1500):
        fmt = FORMATS[i % len(FORMATS)]
        kind, damaged = random_mutation(fmt, SAMPLES[fmt], rng)
        seen[kind].add(trip(damaged, folder))
    # every kind of mutation was tried, and damage was caught (not all of it decodes)
    assert all(seen.values()) and any(outcomes - {"ok"} for outcomes in seen.values())
