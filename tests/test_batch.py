"""The ``kmq batch`` command (``kmq.cli.batch``): a bad file reported and the rest done, exit
codes, the summary and the report, resume (also after the command and its workers are killed),
formats from the codec registry, Dask as an optional part; and ``kmq palette`` with many
inputs."""

from __future__ import annotations

import csv
import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import kmq
from batch_reference import reference_png, reference_shared_palette, write_photos
from kmq import batch as kb
from kmq import cli, codecs
from kmq.io import read_rgb

runner = CliRunner()
KMQ_EXE = Path(sys.executable).with_name("kmq")
K = 16


def run(*args: object):
    return runner.invoke(cli.app, [str(a) for a in args])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("photos")
    return folder, write_photos(folder, 7)


@pytest.fixture(scope="module")
def references(photos) -> dict[Path, bytes]:
    return {p: reference_png(p, K) for p in photos[1]}


def outputs(folder: Path) -> list[str]:
    """The names in ``folder``, but the batch's manifest."""
    return sorted(p.name for p in folder.iterdir() if p.name != kb.MANIFEST_NAME)


def summary_row(stdout: str) -> list[str]:
    """The numbers of the summary table's one row."""
    lines = [line.split() for line in stdout.splitlines()]
    header = next(i for i, cells in enumerate(lines) if cells[:4] == ["files", "done", "skipped",
                                                                    "failed"])
    return next(cells for cells in lines[header + 1:] if cells and cells[0][0].isdigit())


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
    assert result.exit_code == kmq.ImageReadError.exit_code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("kmq: error:")]
    assert len(errors) == 1 and "broken.png" in errors[0]
    assert "1 of 4 files failed" in result.stderr
    for p in paths[:3]:
        assert (out / p.name).read_bytes() == references[p]
    assert not (out / "broken.png").exists()
    files, done, skipped, failed = summary_row(result.stdout)[:4]
    assert (files, done, skipped, failed) == ("4", "3", "0", "1")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["summary"]["bytes_before"] == sum(p.stat().st_size for p in paths[:3])
    assert doc["summary"]["bytes_after"] == sum(len(references[p]) for p in paths[:3])
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
    assert again.exit_code == kmq.ImageReadError.exit_code
    assert summary_row(again.stdout)[:4] == ["4", "0", "3", "1"]
    assert "kmq: skipped 3 because their outputs exist (--force redoes them)" in again.stderr
    assert stamps == {p.name: (out / p.name).stat().st_mtime_ns for p in paths[:3]}
    with open(tmp_path / "r.csv", newline="") as fh:
        rows = {Path(r["source"]).name: r for r in csv.DictReader(fh)}
    assert {name: r["status"] for name, r in rows.items()} == {
        **{p.name: "skipped" for p in paths[:3]}, "broken.png": "failed"}
    assert set(rows["broken.png"]) == set(kb.REPORT_FIELDS)


def test_format_choices_and_extensions_come_from_the_codec_registry(photos, tmp_path):
    _, paths = photos
    help_text = " ".join(run("batch", "--help").stdout.split())
    for codec in codecs.CODECS.values():
        assert codec.name in help_text
    out = tmp_path / "out"
    result = run("batch", paths[0], paths[1], "-o", out, "-k", K, "-j", 1, "--format", "GIF")
    assert result.exit_code == 0, result.output
    assert outputs(out) == sorted(f"{p.stem}.gif" for p in paths[:2])
    for p in paths[:2]:
        q = kmq.quantize(read_rgb(p), K)
        assert np.array_equal(kmq.load(out / f"{p.stem}.gif").to_array(), q.to_array())
    assert run("batch", paths[0], "-o", out, "--format", "jpeg").exit_code == 2


def test_dask_engine_without_dask_exits_2_naming_the_extra(photos, tmp_path, monkeypatch):
    _, paths = photos
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    out = tmp_path / "out"
    result = run("batch", paths[0], "-o", out, "--engine", "dask")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "kmq: error: the dask engine needs distributed, which is not installed: "
        "pip install 'kmq[dask]'"]
    assert not out.exists()


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


#: ``kmq batch ARGS...`` that stops once three files are written: its progress callback prints
#: a line and waits forever (no more files are sent to the workers, which finish those in
#: flight), so the test kills it part-way for sure.
PAUSED_BATCH = """
import sys, threading
import kmq.batch
from kmq.cli import main

real = kmq.batch.compress_batch

def compress_batch(jobs, options, *, progress=None, **kwargs):
    done = 0

    def pause_after_three(stage, record):
        nonlocal done
        if progress is not None:
            progress(stage, record)
        done += record.status == "done"
        if done == 3:
            print("three written", flush=True)
            threading.Event().wait()

    return real(jobs, options, progress=pause_after_three, **kwargs)

kmq.batch.compress_batch = compress_batch
main()
"""


def start_paused_batch(args: list[str]) -> tuple[subprocess.Popen, str]:
    """Run ``kmq ARGS`` paused after three files (``PAUSED_BATCH``) in its own process group;
    returns the process and the line it printed ("three written" when it paused)."""
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_BATCH, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=300)  # a bound on a broken run, not a wait
    return proc, proc.stdout.readline() if ready else ""


def test_batch_killed_part_way_resumes_to_the_complete_result(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    paths = write_photos(inputs, 24, size=160, nested=False)
    args = ["batch", str(inputs), "-o", str(out), "-k", "32", "-j", "2", "-q"]
    proc, line = start_paused_batch(args)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its workers, as a killed job
    proc.wait()
    assert line == "three written\n", proc.stderr.read()
    present = sorted(out.glob("*.png"))
    # the three written, and those in flight when the batch paused (a few): not all of them
    assert 3 <= len(present) < len(paths)
    expected = {p.name: reference_png(p, 32) for p in paths}
    for written in present:  # whatever is there under an output's name is complete
        assert written.read_bytes() == expected[written.name]
    again = subprocess.run([str(KMQ_EXE), *args[:-1]], capture_output=True, text=True,
                           timeout=300)  # without -q: the summary
    assert again.returncode == 0, again.stderr
    files, done, skipped, failed = summary_row(again.stdout)[:4]
    assert (int(files), int(done) + int(skipped), int(failed)) == (len(paths), len(paths), 0)
    assert int(skipped) >= len(present)
    assert sorted(os.listdir(out)) == sorted([*expected, kb.MANIFEST_NAME])  # no temporaries
    for name, content in expected.items():
        assert (out / name).read_bytes() == content


def test_ctrl_c_writes_the_report_of_the_files_done(tmp_path):
    inputs, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "r.json"
    write_photos(inputs, 12, size=96, nested=False)
    args = ["batch", str(inputs), "-o", str(out), "-k", "16", "-j", "1", "-q",
            "--report", str(report)]
    proc, line = start_paused_batch(args)
    try:
        assert line == "three written\n", proc.stderr.read()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert code == 130, proc.stderr.read()
    doc = json.loads(report.read_text())
    done = [f for f in doc["files"] if f["status"] == "done"]
    assert len(done) >= 3
    for record in done:  # what the report says was done is there, whole
        assert Path(record["output"]).stat().st_size == record["output_bytes"]


def test_a_rerun_removes_temporaries_left_beside_outputs_already_in_place(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    paths = write_photos(inputs, 2, size=64, nested=False)
    assert run("batch", inputs, "-o", out, "-k", 8, "-j", 1, "-q").exit_code == 0
    # a kill between linking the output into place and unlinking its temporary leaves both
    stale = out / f".{paths[0].stem}.png.k3j9x.tmp"
    stale.write_bytes((out / f"{paths[0].stem}.png").read_bytes())
    again = run("batch", inputs, "-o", out, "-k", 8, "-j", 1, "-q")
    assert again.exit_code == 0
    assert not stale.exists()
    assert outputs(out) == sorted(f"{p.stem}.png" for p in paths)
