"""``kmq.batch`` on the local engine and the ``kmq batch`` command: layout, outputs equal to
images compressed one by one in this process, failures, resume (also after SIGKILL),
--skip-if-larger, reports, the shared palette and ``kmq palette`` with many inputs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

import kmq
from batch_reference import (
    decoded_png,
    reference_png,
    reference_shared_palette,
    write_photos,
)
from kmq import batch as kb
from kmq import cli
from kmq.codecs.png import encode_png
from kmq.io import read_rgb

runner = CliRunner()
KMQ_EXE = Path(sys.executable).with_name("kmq")
K = 16


def run(*args: object):
    return runner.invoke(cli.app, [str(a) for a in args])


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


def summary_row(stdout: str) -> list[str]:
    """The numbers of the summary table's one row."""
    lines = [line.split() for line in stdout.splitlines()]
    header = next(i for i, cells in enumerate(lines) if cells[:4] == ["files", "done", "skipped",
                                                                    "failed"])
    return next(cells for cells in lines[header + 1:] if cells and cells[0][0].isdigit())


def test_inputs_are_walked_and_their_layout_kept(tmp_path):
    root = tmp_path / "in"
    (root / "a" / "b").mkdir(parents=True)
    for rel in ("x.png", "y.JPG", "a/z.png", "a/b/w.webp", "notes.txt", ".hidden.png",
                "a/.x.png.abc123.tmp"):
        (root / rel).write_bytes(b"")
    out = root / "out"
    (out).mkdir()
    (out / "old.png").write_bytes(b"")  # the output folder is never an input

    def rel(jobs):
        return sorted((Path(j.source).relative_to(root).as_posix(),
                       Path(j.output).relative_to(out).as_posix()) for j in jobs)

    assert rel(kb.plan_batch([root], out)) == [("x.png", "x.png"), ("y.JPG", "y.png")]
    assert rel(kb.plan_batch([root], out, recursive=True, fmt="kmq")) == [
        ("a/b/w.webp", "a/b/w.kmq"), ("a/z.png", "a/z.kmq"), ("x.png", "x.kmq"),
        ("y.JPG", "y.kmq")]
    assert rel(kb.plan_batch([f"{root}/**/*.png"], out)) == [("a/z.png", "a/z.png"),
                                                            ("x.png", "x.png")]
    # a file named directly goes to the top of OUT_DIR; a file named twice is done once
    assert rel(kb.plan_batch([root / "a" / "b" / "w.webp", root / "a/b/../b/w.webp"], out)) == [
        ("a/b/w.webp", "w.png")]


def test_local_batch_writes_what_single_images_give(engine, photos, quantized, references,
                                                    tmp_path):
    folder, paths = photos
    out = tmp_path / "out"
    seen = []
    result = kb.compress_batch(kb.plan_batch([folder], out, recursive=True),
                               kb.CompressOptions(k=K), engine=engine,
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
    # two worker processes did the work, each reporting its peak memory
    assert 1 <= len({r.worker for r in result.records}) <= 2
    assert all(r.peak_rss > 10_000_000 for r in result.records)


def test_cli_reports_a_bad_file_finishes_the_rest_and_resumes(photos, references, tmp_path):
    _, paths = photos
    inputs = tmp_path / "in"
    inputs.mkdir()
    for p in paths[:3]:
        (inputs / p.name).write_bytes(p.read_bytes())
    (inputs / "broken.png").write_bytes(paths[3].read_bytes()[:200])  # truncated PNG
    out = tmp_path / "out"
    result = run("batch", inputs, "-o", out, "-k", K, "-j", "2", "--report",
                 tmp_path / "r.json")
    assert result.exit_code == cli.EXIT_READ, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("kmq: error:")]
    assert len(errors) == 1 and "broken.png" in errors[0]
    assert "1 of 4 files failed" in result.stderr
    for p in paths[:3]:
        assert (out / p.name).read_bytes() == references[p]
    assert not (out / "broken.png").exists()
    files, done, skipped, failed, before, after = summary_row(result.stdout)[:6]
    assert (files, done, skipped, failed) == ("4", "3", "0", "1")
    assert int(before.replace(",", "")) == sum(p.stat().st_size for p in paths[:3])
    assert int(after.replace(",", "")) == sum(len(references[p]) for p in paths[:3])
    doc = json.loads((tmp_path / "r.json").read_text())
    rows = {Path(f["source"]).name: f for f in doc["files"]}
    assert rows["broken.png"]["status"] == "failed" and rows["broken.png"]["error"] == "read"
    for p in paths[:3]:
        row = rows[p.name]
        assert row["status"] == "done"
        assert row["output_bytes"] == (out / p.name).stat().st_size
        assert row["input_bytes"] == p.stat().st_size
    assert doc["summary"]["done"] == 3 and doc["summary"]["failed"] == 1

    # the same command again: the outputs present are skipped, untouched
    stamps = {p.name: (out / p.name).stat().st_mtime_ns for p in paths[:3]}
    again = run("batch", inputs, "-o", out, "-k", K, "-j", "1", "--report", tmp_path / "r.csv")
    assert again.exit_code == cli.EXIT_READ
    assert summary_row(again.stdout)[:4] == ["4", "0", "3", "1"]
    assert stamps == {p.name: (out / p.name).stat().st_mtime_ns for p in paths[:3]}
    with open(tmp_path / "r.csv", newline="") as fh:
        rows = {Path(r["source"]).name: r for r in csv.DictReader(fh)}
    assert {name: r["status"] for name, r in rows.items()} == {
        **{p.name: "skipped" for p in paths[:3]}, "broken.png": "failed"}
    assert set(rows["broken.png"]) == set(kb.REPORT_FIELDS)


def test_force_rewrites_and_existing_outputs_are_kept_without_it(engine, photos, references,
                                                                  tmp_path):
    _, paths = photos
    out = tmp_path / "out"
    out.mkdir()
    (out / paths[0].name).write_bytes(b"not ours")
    jobs = kb.plan_batch([paths[0], paths[1]], out)
    result = kb.compress_batch(jobs, kb.CompressOptions(k=K), engine=engine)
    assert [r.status for r in result.records] == ["skipped", "done"]
    assert (out / paths[0].name).read_bytes() == b"not ours"
    result = kb.compress_batch(jobs, kb.CompressOptions(k=K, force=True), engine=engine)
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
                               kb.CompressOptions(k=k, skip_if_larger=True), engine=engine)
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
                               kb.CompressOptions(k=K), engine=engine)
    assert sorted((Path(r.source).name, r.status, r.error) for r in result.records) == [
        ("same.bmp", "done", ""), ("same.png", "failed", "exists")]
    # and an output that would replace its own input is refused
    result = kb.compress_batch(kb.plan_batch([inputs / "same.png"], inputs),
                               kb.CompressOptions(k=K, force=True), engine=engine)
    assert result.records[0].error == "exists"
    assert "is an input file" in result.records[0].reason


def test_shared_palette_is_the_fit_of_the_summed_histograms(engine, photos, tmp_path):
    folder, paths = photos
    expected = reference_shared_palette(paths, K)
    out = tmp_path / "out"
    stages = []
    result = kb.compress_batch(kb.plan_batch([folder], out, recursive=True),
                               kb.CompressOptions(k=K), engine=engine, shared_palette=True,
                               progress=lambda stage, r: stages.append(stage))
    assert np.array_equal(result.palette, expected)
    assert stages.count("histogram") == len(paths) and stages.count("compress") == len(paths)
    for p in paths:
        palette, indices = decoded_png(out / p.relative_to(folder))
        assert np.array_equal(palette, expected)
        assert np.array_equal(indices, kmq.remap(read_rgb(p), expected))


def test_palette_command_takes_many_inputs(photos, tmp_path):
    folder, paths = photos
    top = sorted(p for p in paths if p.parent == folder)
    result = run("palette", *top, "-k", 6, "--format", "json", "-j", "2")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    expected = reference_shared_palette(top, 6)
    # shares: each color's pixels over all the images, recounted here by exact remapping
    counts = sum(np.bincount(kmq.remap(read_rgb(p), expected).ravel(), minlength=len(expected))
                 for p in top)
    order = np.argsort(-counts, kind="stable")
    assert [e["rgb"] for e in entries] == expected[order].tolist()
    assert [e["share"] for e in entries] == pytest.approx(counts[order] / counts.sum())


def test_batch_killed_part_way_resumes_to_the_complete_result(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    paths = write_photos(inputs, 24, size=96, nested=False)
    command = [str(KMQ_EXE), "batch", str(inputs), "-o", str(out), "-k", "32", "-j", "2", "-q"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("*.png"))) >= 3:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its workers, as a killed job
        proc.wait()
    present = sorted(out.glob("*.png"))
    assert 3 <= len(present) < len(paths), "the batch was not stopped part-way"
    expected = {p.name: reference_png(p, 32) for p in paths}
    for written in present:  # whatever is there under an output's name is complete
        assert written.read_bytes() == expected[written.name]
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    files, done, skipped, failed = summary_row(again.stdout)[:4]
    assert (int(files), int(done) + int(skipped), int(failed)) == (len(paths), len(paths), 0)
    assert int(skipped) >= len(present)
    assert sorted(os.listdir(out)) == sorted(expected)  # no temporary files left over
    for name, content in expected.items():
        assert (out / name).read_bytes() == content


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
    result = kb.compress_batch(kb.plan_batch([inputs], out), kb.CompressOptions(k=K),
                               engine=engine)
    assert result.count("done") == 3
    for src in inputs.iterdir():
        assert (out / src.name).read_bytes() == reference_png(src, K)
