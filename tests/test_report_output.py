"""kmq.report.output: where a report's files go, and that writing them is all or nothing.

A full disk is simulated inside the file layer: kmq.files' atomic writer starts the Nth file,
writes part of it, and fails with ENOSPC, as a real full disk would.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import kmq.files
from kmq import OutputExistsError, OutputWriteError
from kmq.report import FIGURES, make_report, output_paths
from kmq.report import output as report_output

N_FILES = 1 + len(FIGURES)  # the page and its plots


@pytest.fixture(scope="module")
def report():
    """A report with its plots, on a 32x32 crop of scikit-image's astronaut."""
    return make_report(np.ascontiguousarray(data.astronaut()[100:132, 200:232]), [4, 8],
                       name="crop")


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder``: a file's bytes, None for a folder."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


def expected(report, path: Path) -> dict[str, bytes | None]:
    """What write_html(path) leaves in an empty folder: the page and its plots."""
    files = {path.name: report.html().encode("utf-8"), f"{path.stem}-files": None}
    files.update({f"{path.stem}-files/{name}.png": blob for name, blob in report.figures.items()})
    return files


def full_disk_on(monkeypatch, n: int) -> list[str]:
    """Make kmq.files' atomic writer fail the ``n``-th file it writes with ENOSPC, after part
    of it was written; returns the list of paths it was asked to write."""
    real = kmq.files.write_atomic
    calls: list[str] = []

    def writer(path, write, *, overwrite=False):
        calls.append(os.fspath(path))
        if len(calls) != n:
            return real(path, write, overwrite=overwrite)

        def part(fh):
            fh.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return real(path, part, overwrite=overwrite)

    monkeypatch.setattr(kmq.files, "write_atomic", writer)
    return calls


def test_output_paths_are_beside_the_page():
    paths = output_paths(Path("out") / "r.v2.html")
    assert list(paths) == list(FIGURES)
    assert all(p == Path("out") / "r.v2-files" / f"{name}.png" for name, p in paths.items())


def test_write_html_writes_the_page_and_plots_and_refuses_existing_files(report, tmp_path):
    path = tmp_path / "report.html"
    written = report.write_html(path)
    assert written == [path, *output_paths(path).values()]
    assert tree(tmp_path) == expected(report, path)
    for figure in written[1:]:
        with Image.open(figure) as im:
            im.load()
            assert im.format == "PNG" and im.width >= 600 and im.height >= 100
    before = tree(tmp_path)
    with pytest.raises(OutputExistsError):
        report.write_html(path)
    path.unlink()
    with pytest.raises(OutputExistsError):  # a figure alone is enough to refuse
        report.write_html(path)
    assert not path.exists()
    assert report.write_html(path, overwrite=True) == written
    assert tree(tmp_path) == before


def test_write_html_without_figures_makes_no_folder(tmp_path):
    small = make_report(np.zeros((8, 8, 3), np.uint8), [2], figures=False)
    assert small.write_html(tmp_path / "r.html") == [tmp_path / "r.html"]
    assert list(tree(tmp_path)) == ["r.html"]


@pytest.mark.parametrize("n", range(1, N_FILES + 1))
def test_a_failed_write_leaves_nothing_and_a_rerun_succeeds(report, tmp_path, monkeypatch, n):
    path = tmp_path / "report.html"
    calls = full_disk_on(monkeypatch, n)
    with pytest.raises(OutputWriteError) as caught:
        report.write_html(path)
    assert len(calls) == n
    failed = [*report.figure_paths(path).values(), path][n - 1]
    assert str(caught.value) == f"{failed}: cannot write ({os.strerror(errno.ENOSPC)})"
    assert tree(tmp_path) == {}  # no page, no plot, no temporary, no folder
    monkeypatch.undo()
    report.write_html(path)  # without overwrite: nothing is in the way
    assert tree(tmp_path) == expected(report, path)


def test_a_failed_overwrite_keeps_the_old_files(report, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    report.write_html(path)
    for p in report.write_html(path, overwrite=True):
        p.write_bytes(b"old " + p.name.encode())
    before = tree(tmp_path)
    full_disk_on(monkeypatch, N_FILES)  # the page, after every plot was written
    with pytest.raises(OutputWriteError):
        report.write_html(path, overwrite=True)
    assert tree(tmp_path) == before


def test_a_failed_write_keeps_a_folder_it_did_not_make(report, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    notes = tmp_path / "report-files" / "notes.txt"
    notes.parent.mkdir()
    notes.write_bytes(b"mine")
    full_disk_on(monkeypatch, 2)
    with pytest.raises(OutputWriteError):
        report.write_html(path)
    assert tree(tmp_path) == {"report-files": None, "report-files/notes.txt": b"mine"}


def test_a_failed_rename_takes_back_the_files_already_in_place(report, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    real, placed = report_output._place, []

    def place(stage, target, overwrite):
        if len(placed) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(stage, target, overwrite)
        placed.append(target)

    monkeypatch.setattr(report_output, "_place", place)
    with pytest.raises(OutputWriteError, match="Input/output error"):
        report.write_html(path)
    assert len(placed) == 2 and tree(tmp_path) == {}


def test_write_html_never_replaces_an_input(report, tmp_path):
    path = tmp_path / "report.html"
    path.write_bytes(b"input")
    with pytest.raises(OutputExistsError, match="input"):
        report.write_html(path, overwrite=True, inputs=[path])
    assert tree(tmp_path) == {"report.html": b"input"}
