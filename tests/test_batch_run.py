"""``kmq.batch.run`` and ``kmq.batch.records`` on the local engine: outputs equal to images
compressed one by one in this process, in every format; resume and --force; --skip-if-larger;
clashing outputs; cancelling; the shared palette equal to the fit of the summed histograms; the
CSV and JSON reports."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import kmq
from batch_reference import decoded_png, reference_png, reference_shared_palette, write_photos
from kmq import batch as kb
from kmq.codecs.png import encode_png
from kmq.files import CompressOptions
from kmq.io import read_rgb

K = 16


@pytest.fixture(scope="module")
def engine():
    """Two worker processes, shared by the tests of this module (starting them costs seconds)."""
    with kb.LocalEngine(workers=2) as eng:
        yield eng


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("photos")
    return folder, write_photos(folder, 7)


@pytest.fixture(scope="module")
def quantized(photos) -> dict[Path, kmq.Quantized]:
    return {p: kmq.quantize(read_rgb(p), K) for p in photos[1]}


@pytest.fixture(scope="module")
def references(quantized) -> dict[Path, bytes]:
    return {p: encode_png(q.palette, q.indices) for p, q in quantized.items()}


def test_local_batch_writes_what_single_images_give(engine, photos, quantized, references,
                                                    tmp_path):
    folder, paths = photos
    out = tmp_path / "out"
    seen = []
    result = kb.compress_batch(kb.plan_batch([folder], out, recursive=True),
                               CompressOptions(k=K), engine=engine,
                               progress=lambda stage, r: seen.append((stage, r.status)))
    assert [r.status for r in result.records] == ["done"] * len(paths)
    assert sorted(seen) == [("compress", "done")] * len(paths)
    for path in paths:
        written = out / path.relative_to(folder)
        assert written.read_bytes() == references[path], written
    by_source = {Path(r.source): r for r in result.records}
    for path in paths:
        r = by_source[path]
        q = quantized[path]
        assert (r.k, r.width, r.height) == (q.k, 96, 96)
        assert r.psnr == pytest.approx(q.psnr, abs=1e-9)
        assert r.input_bytes == path.stat().st_size
        assert r.output_bytes == len(references[path])
    s = result.summary()
    assert (s["done"], s["skipped"], s["failed"]) == (len(paths), 0, 0)
    assert s["bytes_before"] == sum(p.stat().st_size for p in paths)
    assert s["bytes_after"] == sum(len(b) for b in references.values())
    assert s["mean_psnr"] == pytest.approx(np.mean([q.psnr for q in quantized.values()]))
    # two worker processes did the work, each reporting its peak memory
    assert 1 <= len({r.worker for r in result.records}) <= 2
    assert all(r.peak_rss > 10_000_000 for r in result.records)


def test_each_output_is_written_in_its_extensions_format(engine, photos, quantized, tmp_path):
    _, paths = photos
    names = ["a.webp", "b.gif", "c.kmq", "d.png"]
    jobs = [kb.Job(str(p), str(tmp_path / name)) for p, name in zip(paths, names, strict=False)]
    result = kb.compress_batch(jobs, CompressOptions(k=K), engine=engine)  # format=None
    assert [r.format for r in result.records] == ["webp", "gif", "kmq", "png"]
    for job, record in zip(jobs, result.records, strict=True):
        q = quantized[Path(job.source)]
        back = kmq.load(job.output)
        assert np.array_equal(back.to_array(), q.to_array()), job.output
        assert record.output_bytes == Path(job.output).stat().st_size


def test_force_rewrites_and_existing_outputs_are_kept_without_it(engine, photos, references,
                                                                  tmp_path):
    _, paths = photos
    out = tmp_path / "out"
    out.mkdir()
    (out / paths[0].name).write_bytes(b"not ours")
    jobs = kb.plan_batch([paths[0], paths[1]], out)
    result = kb.compress_batch(jobs, CompressOptions(k=K), engine=engine)
    assert [(r.status, r.reason) for r in result.records] == [("skipped", "output exists"),
                                                              ("done", "")]
    assert (out / paths[0].name).read_bytes() == b"not ours"
    result = kb.compress_batch(jobs, CompressOptions(k=K, force=True), engine=engine)
    assert [r.status for r in result.records] == ["done", "done"]
    assert (out / paths[0].name).read_bytes() == references[paths[0]]


def test_skip_if_larger_writes_only_outputs_smaller_than_their_input(engine, tmp_path):
    crop = np.ascontiguousarray(data.astronaut()[100:196, 100:196])
    small_jpeg, raw_bmp = tmp_path / "small.jpg", tmp_path / "raw.bmp"
    Image.fromarray(crop).save(small_jpeg, quality=20)
    Image.fromarray(crop).save(raw_bmp)
    k = 256
    # the independent facts: this PNG is larger than the JPEG, smaller than the BMP
    assert len(reference_png(small_jpeg, k)) > small_jpeg.stat().st_size
    assert len(reference_png(raw_bmp, k)) < raw_bmp.stat().st_size
    out = tmp_path / "out"
    result = kb.compress_batch(kb.plan_batch([small_jpeg, raw_bmp], out),
                               CompressOptions(k=k, skip_if_larger=True), engine=engine)
    assert [r.status for r in result.records] == ["skipped", "done"]
    assert "larger than the input" in result.records[0].reason
    assert not (out / "small.png").exists()
    assert (out / "raw.png").read_bytes() == reference_png(raw_bmp, k)


def test_two_inputs_with_one_output_name_do_not_overwrite_each_other(engine, photos, tmp_path):
    _, paths = photos
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.open(paths[0]).save(inputs / "same.png")
    Image.open(paths[1]).save(inputs / "same.bmp")
    result = kb.compress_batch(kb.plan_batch([inputs], tmp_path / "out"),
                               CompressOptions(k=K), engine=engine)
    assert sorted((Path(r.source).name, r.status, r.error) for r in result.records) == [
        ("same.bmp", "done", ""), ("same.png", "failed", "exists")]
    # and an output that would replace its own input is refused
    result = kb.compress_batch(kb.plan_batch([inputs / "same.png"], inputs),
                               CompressOptions(k=K, force=True), engine=engine)
    assert result.records[0].error == "exists"
    assert "is an input file" in result.records[0].reason


def test_a_cancelled_batch_stops_and_what_it_wrote_is_complete(photos, references, tmp_path):
    folder, paths = photos
    out = tmp_path / "out"
    seen = []

    def stop_after_two(stage, record):
        seen.append(record)
        return len(seen) == 2

    # an engine of its own: closing it waits for the files in flight, which then finish
    with kb.LocalEngine(workers=1) as engine, pytest.raises(kmq.CancelledError):
        kb.compress_batch(kb.plan_batch([folder], out, recursive=True), CompressOptions(k=K),
                          engine=engine, progress=stop_after_two)
    assert len(seen) == 2
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert 2 <= len(written) < len(paths)  # at most two more were in flight
    for path in written:  # each whole, and no temporary file left
        assert path.read_bytes() == references[folder / path.relative_to(out)]


def test_shared_palette_is_the_fit_of_the_summed_histograms(engine, photos, tmp_path):
    folder, paths = photos
    expected = reference_shared_palette(paths, K)
    out = tmp_path / "out"
    stages = []
    result = kb.compress_batch(kb.plan_batch([folder], out, recursive=True),
                               CompressOptions(k=K), engine=engine, shared_palette=True,
                               progress=lambda stage, r: stages.append(stage))
    assert np.array_equal(result.palette, expected)
    assert stages.count("histogram") == len(paths) and stages.count("compress") == len(paths)
    for p in paths:
        palette, indices = decoded_png(out / p.relative_to(folder))
        assert np.array_equal(palette, expected)
        assert np.array_equal(indices, kmq.remap(read_rgb(p), expected))


def test_shared_palette_leaves_out_what_cannot_be_read(engine, photos, tmp_path):
    _, paths = photos
    broken = tmp_path / "broken.png"
    broken.write_bytes(paths[0].read_bytes()[:150])
    sources = [paths[1], broken, paths[2]]
    fitted = kb.shared_palette(sources, K, engine=engine)
    assert [r.status for r in fitted.records] == ["done", "failed", "done"]
    assert fitted.records[1].error == "read"
    assert np.array_equal(fitted.palette, reference_shared_palette([paths[1], paths[2]], K))
    merged = kmq.color_histogram.merge([kmq.histogram(read_rgb(p)) for p in sources[::2]])
    assert fitted.distinct_colors == len(merged)
    remapped = [kmq.remap(read_rgb(p), fitted.palette).ravel() for p in sources[::2]]
    assert np.array_equal(fitted.counts, np.bincount(np.concatenate(remapped), minlength=K))
    with pytest.raises(kmq.ImageReadError, match="none of the 1 inputs"):
        kb.shared_palette([broken], K, engine=engine)


def test_reports_hold_one_row_per_file_as_csv_and_json(engine, photos, tmp_path):
    _, paths = photos
    broken = tmp_path / "broken.png"
    broken.write_bytes(paths[0].read_bytes()[:150])
    glass = tmp_path / "glass.png"
    rgb = read_rgb(paths[1])
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 90, np.uint8)])).save(glass)
    jobs = [kb.Job(str(paths[0]), str(tmp_path / "a.png")), kb.Job(str(broken), str(tmp_path /
            "b.png")), kb.Job(str(glass), str(tmp_path / "c.png"))]
    # a shared palette is RGB: the transparent image's alpha is dropped, with a warning
    result = kb.compress_batch(jobs, CompressOptions(k=K), engine=engine, shared_palette=True)
    assert [r.status for r in result.records] == ["done", "failed", "done"]

    assert kb.write_report(tmp_path / "r.csv", result) == (tmp_path / "r.csv").stat().st_size
    with open(tmp_path / "r.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == kb.REPORT_FIELDS
        rows = list(reader)
    assert [(row["source"], row["status"], row["error"]) for row in rows] == [
        (str(paths[0]), "done", ""), (str(broken), "failed", "read"), (str(glass), "done", "")]
    assert int(rows[0]["output_bytes"]) == (tmp_path / "a.png").stat().st_size
    assert "transparency dropped" in rows[2]["warnings"]

    kb.write_report(tmp_path / "r.json", result)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["palette"] == result.palette.tolist()
    assert [f["status"] for f in doc["files"]] == ["done", "failed", "done"]
    assert doc["files"][1]["psnr"] is None and doc["files"][0]["ssim"] is None  # NaN
    assert any("transparency dropped" in w for w in doc["files"][2]["warnings"])
    assert doc["files"][0]["psnr"] == pytest.approx(result.records[0].psnr)
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v)
               for k, v in result.summary().items()}
    assert doc["summary"] == pytest.approx(summary)
    assert set(doc["files"][0]) == set(kb.REPORT_FIELDS)
    with pytest.raises(ValueError, match="'csv' or 'json'"):
        kb.write_report(tmp_path / "r.xml", result)
    assert not (tmp_path / "r.xml").exists()


@pytest.mark.shared_images
def test_batch_of_shared_photos_matches_single_images(engine, shared_images, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for src in sorted((shared_images / "cq100").glob("*.png"))[:3]:
        with Image.open(src) as im:
            im.convert("RGB").resize((96, 64)).save(inputs / src.name)
    if len(list(inputs.iterdir())) < 3:
        pytest.skip(f"fewer than 3 CQ100 photos in {shared_images / 'cq100'}")
    out = tmp_path / "out"
    result = kb.compress_batch(kb.plan_batch([inputs], out), CompressOptions(k=K),
                               engine=engine)
    assert result.count("done") == 3
    for src in inputs.iterdir():
        assert (out / src.name).read_bytes() == reference_png(src, K)
