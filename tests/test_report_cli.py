"""kmq report, the command: the files it writes, its table, and its errors and exit codes.

The page is read back with tests/test_report_html.py's parser; a full disk is simulated in
kmq.files' atomic writer, and a missing matplotlib by making its import fail.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

import kmq.files
from kmq import cli
from kmq.report import output_paths
from test_report_html import parse, sections

runner = CliRunner()


@pytest.fixture
def image_file(tmp_path) -> Path:
    """A 32x32 crop of scikit-image's astronaut, as a PNG file."""
    path = tmp_path / "astro.png"
    Image.fromarray(np.ascontiguousarray(data.astronaut()[100:132, 200:232])).save(path)
    return path


def run(*args: object):
    return runner.invoke(cli.app, ["report", *map(str, args)])


def test_cli_writes_the_report(image_file, tmp_path):
    out = tmp_path / "r.html"
    result = run(image_file, "-k", "8,4", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert out.is_file()
    page = parse(out.read_text("utf-8"))
    assert sorted(sections(page)) == [4, 8]
    for figure in output_paths(out).values():
        with Image.open(figure) as im:
            assert im.format == "PNG"
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"^\s+\d+\s", line)]
    assert [row[0] for row in rows] == ["4", "8"]
    psnr_shown = {int(row[0]): float(row[2]) for row in rows}
    for k, section in sections(page).items():
        assert f"{psnr_shown[k]:.2f} dB" in section.find("figure", data_codec="kmq-png").all_text()


@pytest.mark.parametrize("ks", ["4,x", "1,4", "300", "4,,8"])
def test_cli_bad_k_list_is_a_usage_error(image_file, tmp_path, ks):
    result = run(image_file, "-k", ks, "-o", tmp_path / "r.html")
    assert result.exit_code == 2
    assert not (tmp_path / "r.html").exists()


def test_cli_unreadable_input(tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"this is not a PNG")
    for source in (bad, tmp_path / "missing.png", tmp_path):  # the file layer's reader
        result = run(source, "-k", "4", "-o", tmp_path / "r.html")
        assert result.exit_code == 3, result.output
        assert "kmq: error: " in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_cli_never_overwrites_without_force(image_file, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("keep me")
    result = run(image_file, "-k", "4", "-o", out)
    assert result.exit_code == 5 and "exists" in result.stderr
    assert out.read_text() == "keep me"
    out.unlink()
    figure = output_paths(out)["palettes"]
    figure.parent.mkdir()
    figure.write_bytes(b"keep me too")
    assert run(image_file, "-k", "4", "-o", out).exit_code == 5
    assert not out.exists() and figure.read_bytes() == b"keep me too"
    result = run(image_file, "-k", "4", "-o", out, "--force", "--quiet")
    assert result.exit_code == 0, result.output
    assert out.is_file() and figure.read_bytes().startswith(b"\x89PNG")


def test_cli_refuses_the_input_as_output_and_a_missing_directory(image_file, tmp_path):
    assert run(image_file, "-k", "4", "-o", image_file, "--force").exit_code == 5
    assert run(image_file, "-k", "4", "-o", tmp_path / "nope" / "r.html").exit_code == 2


def test_cli_rerun_after_a_full_disk_succeeds_without_force(image_file, tmp_path, monkeypatch):
    real, calls = kmq.files.write_atomic, []

    def full_disk_on_the_second_file(path, write, *, overwrite=False):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, write, overwrite=overwrite)

    monkeypatch.setattr(kmq.files, "write_atomic", full_disk_on_the_second_file)
    out = tmp_path / "r.html"
    result = run(image_file, "-k", "4", "-o", out, "--quiet")
    assert result.exit_code == 1 and len(calls) == 2
    assert result.stderr == (f"kmq: error: {output_paths(out)['quality-vs-k']}: cannot write "
                             f"({os.strerror(errno.ENOSPC)})\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [image_file.name]
    monkeypatch.undo()
    result = run(image_file, "-k", "4", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert out.is_file() and all(p.is_file() for p in output_paths(out).values())


def test_cli_without_matplotlib_fails_with_one_line(image_file, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run(image_file, "-k", "4", "-o", tmp_path / "r.html")
    assert result.exit_code == 2
    assert result.stderr == ("kmq: error: kmq report (for its plots) needs matplotlib, which is "
                             "not installed: pip install 'kmq[report]'\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [image_file.name]


def test_cli_prints_what_reading_changed(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 128
    source = tmp_path / "see-through.png"
    Image.fromarray(rgba, "RGBA").save(source)
    result = run(source, "-k", "2", "-o", tmp_path / "r.html", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"kmq: warning: {source}: transparency dropped (this use needs "
                             f"RGB)\n")
