"""``kmq.batch.tasks``, run here as a worker runs them: one file compressed (through the file
layer) into the bytes a single ``kmq compress`` gives, the resume and failure records, one
image's histogram, and the fit of a shared palette."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kmq
from batch_reference import reference_png, write_photos
from kmq import batch as kb
from kmq.files import CompressOptions
from kmq.io import read_rgb

K = 16


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos"), 1)[0]


def compress(source, output, **options) -> kb.TaskResult:
    return kb.compress_one(kb.FileTask(str(source), str(output), CompressOptions(**options)))


def test_a_file_is_written_as_kmq_compress_writes_it_into_a_new_folder(photo, tmp_path):
    output = tmp_path / "a" / "b" / "photo.png"
    record = compress(photo, output, k=K)
    assert record.status == "done" and record.exit_code == 0
    assert output.read_bytes() == reference_png(photo, K)
    q = kmq.quantize(read_rgb(photo), K)
    assert (record.k, record.width, record.height, record.format) == (q.k, 96, 96, "png")
    assert record.psnr == pytest.approx(q.psnr, abs=1e-9)
    assert (record.input_bytes, record.output_bytes) == (photo.stat().st_size,
                                                         output.stat().st_size)
    assert record.worker == f"{socket.gethostname()}:{os.getpid()}"
    assert record.peak_rss > 10_000_000 and record.seconds > 0


def test_an_existing_output_is_skipped_untouched_unless_forced(photo, tmp_path):
    output = tmp_path / "photo.png"
    output.write_bytes(b"not ours")
    record = compress(photo, output, k=K)
    assert (record.status, record.reason, record.exit_code) == ("skipped", "output exists", 0)
    assert output.read_bytes() == b"not ours"
    assert compress(photo, output, k=K, force=True).status == "done"
    assert output.read_bytes() == reference_png(photo, K)


def test_failures_are_records_with_their_kind_and_exit_code(photo, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo.read_bytes()[:200])
    record = compress(broken, tmp_path / "out" / "broken.png", k=K)
    assert (record.status, record.error, record.exit_code) == ("failed", "read", 3)
    assert str(broken) in record.reason
    assert not (tmp_path / "out" / "broken.png").exists()

    # an output that is its own input, even with force
    before = photo.read_bytes()
    record = compress(photo, photo, k=K, force=True)
    assert (record.status, record.error, record.exit_code) == ("failed", "exists", 5)
    assert photo.read_bytes() == before

    # a quality out of reach: nothing written, the documented exit code
    record = compress(photo, tmp_path / "q.png", k=4, psnr=(60.0, 70.0))
    assert (record.status, record.error, record.exit_code) == ("failed", "quality", 7)
    assert not (tmp_path / "q.png").exists()

    # a file where the output's folder should be
    (tmp_path / "taken").write_bytes(b"")
    record = compress(photo, tmp_path / "taken" / "photo.png", k=K)
    assert (record.status, record.error, record.exit_code) == ("failed", "write", 1)
    assert "taken" in record.reason


def test_histogram_is_the_images_exact_histogram(photo, tmp_path, small_photo):
    record, keys, counts = kb.histogram_one(str(photo))
    expected = kmq.histogram(read_rgb(photo))
    assert np.array_equal(keys, expected.keys) and np.array_equal(counts, expected.counts)
    assert (record.status, record.k, record.width, record.height) == ("done", len(expected),
                                                                     96, 96)
    assert record.input_bytes == photo.stat().st_size and record.warnings == ()

    # a shared palette is RGB: an image's transparency is dropped, with a warning
    rgba = np.dstack([small_photo, np.full(small_photo.shape[:2], 100, np.uint8)])
    glass = tmp_path / "glass.png"
    Image.fromarray(rgba).save(glass)
    record, keys, counts = kb.histogram_one(str(glass))
    expected = kmq.histogram(small_photo)
    assert np.array_equal(keys, expected.keys) and np.array_equal(counts, expected.counts)
    assert len(record.warnings) == 1 and "transparency dropped" in record.warnings[0]

    record, keys, counts = kb.histogram_one(str(tmp_path / "missing.png"))
    assert (record.status, record.error, keys, counts) == ("failed", "read", None, None)


def test_palette_fit_is_the_palette_quantize_finds_for_those_pixels(photo):
    pixels = read_rgb(photo)
    hist = kmq.histogram(pixels)
    palette, counts, mse = kb.fit_palette_task(hist.keys, hist.counts, K, 3, "oklab")
    q = kmq.quantize(pixels, K, seed=3, color_space="oklab")
    assert np.array_equal(palette, q.palette)
    assert np.array_equal(counts, np.bincount(q.indices.ravel(), minlength=K))
    assert mse == pytest.approx(q.mse)
