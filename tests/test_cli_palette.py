"""``kmq palette``: the dominant colors of an image in every format, end to end."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import kmq
from kmq import cli
from kmq.palette_files import read_palette

runner = CliRunner()
K = 8


def run(*args: object):
    return runner.invoke(cli.app, [str(a) for a in args])


@pytest.fixture(scope="module")
def photo(tmp_path_factory, small_photo) -> Path:
    path = tmp_path_factory.mktemp("palette") / "cat.png"
    Image.fromarray(small_photo).save(path)
    return path


@pytest.fixture(scope="module")
def expected(small_photo):
    """The quantization the command must report: its palette and pixel shares, by share."""
    q = kmq.quantize(small_photo, K, seed=0)
    order = np.argsort(-q.counts, kind="stable")
    return q.palette[order], q.counts[order] / small_photo.shape[0] / small_photo.shape[1]


def test_json_colors_are_the_quantization_palette_with_its_shares(photo, expected):
    result = run("palette", photo, "-k", K, "--format", "json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    colors, shares = expected
    assert len(entries) == K
    np.testing.assert_array_equal([e["rgb"] for e in entries], colors)
    assert [e["hex"] for e in entries] == ["#" + c.tobytes().hex() for c in colors]
    got = np.array([e["share"] for e in entries])
    np.testing.assert_allclose(got, shares, rtol=1e-15, atol=0)
    assert abs(got.sum() - 1.0) < 1e-9
    assert np.all(np.diff(got) <= 0)  # largest first


def test_text_is_hex_and_percent_per_line_on_stdout(photo, expected):
    result = run("palette", photo, "-k", K)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == K
    colors, shares = expected
    for line, color, share in zip(lines, colors, shares, strict=True):
        m = re.fullmatch(r"#([0-9a-f]{6}) +(\d+\.\d\d)%", line)
        assert m, line
        assert bytes.fromhex(m.group(1)) == color.tobytes()
        assert float(m.group(2)) == pytest.approx(100 * share, abs=0.005 + 1e-9)


def test_css_custom_properties(photo, expected):
    result = run("palette", photo, "-k", K, "-F", "css")
    assert result.exit_code == 0, result.output
    props = re.findall(r"--kmq-color-(\d+): #([0-9a-f]{6}); /\* (\d+\.\d\d)% \*/", result.stdout)
    assert [int(i) for i, _, _ in props] == list(range(1, K + 1))
    assert [bytes.fromhex(h) for _, h, _ in props] == [c.tobytes() for c in expected[0]]
    assert result.stdout.count("{") == result.stdout.count("}") == 1


def test_gpl_file_parses_back(photo, expected, tmp_path):
    out = tmp_path / "cat.gpl"
    result = run("palette", photo, "-k", K, "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = out.read_text()
    assert text.startswith("GIMP Palette\nName: cat\n")
    np.testing.assert_array_equal(read_palette(out), expected[0])
    # an independent reading of the color lines: "R G B<TAB>name"
    rows = [line.split("\t")[0].split() for line in text.splitlines()
            if re.match(r"^\s*\d+\s+\d+\s+\d+\t", line)]
    np.testing.assert_array_equal(np.array(rows, int), expected[0])


def test_json_file_parses_back(photo, expected, tmp_path):
    out = tmp_path / "cat.json"
    assert run("palette", photo, "-k", K, "-o", out).exit_code == 0
    np.testing.assert_array_equal(read_palette(out), expected[0])


def test_png_swatches_have_exactly_k_colors_as_wide_as_their_shares(photo, expected, tmp_path):
    out = tmp_path / "swatches.png"
    result = run("palette", photo, "-k", K, "-o", out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "P"
        rgb = np.asarray(im.convert("RGB"))
    colors, shares = expected
    distinct = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(distinct) == K
    np.testing.assert_array_equal(distinct, np.unique(colors, axis=0))
    # left to right in share order, each column one color, widths proportional to shares
    np.testing.assert_array_equal(read_palette(out), colors)
    assert np.all(rgb == rgb[:1])
    widths = [(rgb[0] == c).all(axis=1).sum() for c in colors]
    assert sum(widths) == rgb.shape[1]
    np.testing.assert_allclose(widths, shares * rgb.shape[1], atol=1.0)


def test_format_follows_the_extension_and_format_overrides_it(photo, tmp_path):
    out = tmp_path / "colors.txt"
    assert run("palette", photo, "-k", 3, "-o", out).exit_code == 0
    assert re.fullmatch(r"(#[0-9a-f]{6} +\d+\.\d\d%\n){3}", out.read_text())
    forced = tmp_path / "colors.gpl"
    assert run("palette", photo, "-k", 3, "-o", forced, "-F", "json").exit_code == 0
    assert json.loads(forced.read_text())[0]["hex"].startswith("#")


def test_same_seed_same_output_and_k_is_respected(photo):
    a = run("palette", photo, "-k", 5, "--seed", 3, "-F", "json")
    b = run("palette", photo, "-k", 5, "--seed", 3, "-F", "json")
    assert a.exit_code == b.exit_code == 0 and a.stdout == b.stdout
    assert len(json.loads(a.stdout)) == 5


def test_fewer_distinct_colors_than_k(tmp_path):
    img = np.zeros((4, 5, 3), np.uint8)
    img[0] = (10, 200, 30)
    path = tmp_path / "two.png"
    Image.fromarray(img).save(path)
    entries = json.loads(run("palette", path, "-k", 8, "-F", "json").stdout)
    assert [(e["rgb"], e["share"]) for e in entries] == [([0, 0, 0], 0.75), ([10, 200, 30], 0.25)]


def test_exit_codes(photo, tmp_path):
    out = tmp_path / "p.gpl"
    assert run("palette", photo, "-o", out).exit_code == 0
    before = out.read_bytes()
    result = run("palette", photo, "-k", 3, "-o", out)
    assert result.exit_code == kmq.OutputExistsError.exit_code and "exists" in result.output
    assert out.read_bytes() == before
    assert run("palette", photo, "-k", 3, "-o", out, "--force").exit_code == 0
    assert out.read_bytes() != before
    exists = kmq.OutputExistsError.exit_code
    assert run("palette", photo, "-o", photo, "--force").exit_code == exists
    assert run("palette", tmp_path / "missing.png").exit_code == kmq.ImageReadError.exit_code
    assert run("palette", photo, "--max-pixels", 100).exit_code == kmq.ImageTooLargeError.exit_code
    assert run("palette", photo, "-F", "png").exit_code == 2  # png needs -o
    assert run("palette", photo, "-o", tmp_path / "p.bmp").exit_code == 2
    assert run("palette", photo, "-k", 1).exit_code == 2
    assert run("palette", photo, "-o", tmp_path).exit_code == 2  # a directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gpl"]  # no temporary files left


def test_help_lists_the_command_and_its_formats():
    top = run("--help")
    assert "palette" in top.stdout
    result = run("palette", "--help")
    assert result.exit_code == 0
    assert "gpl" in result.stdout


def test_swatch_png_is_a_real_png_with_k_palette_entries(photo, tmp_path):
    out = tmp_path / "s.png"
    assert run("palette", photo, "-k", 5, "-o", out).exit_code == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        assert len(im.getpalette()) // 3 == 5


# --- images with transparency ------------------------------------------------------------------

@pytest.fixture(scope="module")
def translucent(tmp_path_factory, small_photo) -> Path:
    """The photo with a transparent band and a translucent ramp, as RGBA PNG."""
    alpha = np.full(small_photo.shape[:2], 255, np.uint8)
    alpha[:, :10] = 0
    alpha[:, 10:40] = np.linspace(0, 255, 30).round().astype(np.uint8)
    path = tmp_path_factory.mktemp("rgba") / "glass.png"
    Image.fromarray(np.dstack([small_photo, alpha]), "RGBA").save(path)
    return path


def test_a_translucent_image_gives_rgba_colors_in_every_text_format(translucent):
    q = kmq.quantize(np.asarray(Image.open(translucent)), K, seed=0)
    order = np.argsort(-q.counts, kind="stable")
    colors, shares = q.palette[order], q.counts[order] / q.counts.sum()
    assert colors.shape[1] == 4 and (colors[:, 3] < 255).any()
    result = run("palette", translucent, "-k", K, "-F", "json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    np.testing.assert_array_equal([e["rgba"] for e in entries], colors)
    assert [e["hex"] for e in entries] == ["#" + c.tobytes().hex() for c in colors]
    np.testing.assert_allclose([e["share"] for e in entries], shares, rtol=1e-12)
    text = run("palette", translucent, "-k", K).stdout.split()
    assert text[0::2] == ["#" + c.tobytes().hex() for c in colors]
    css = run("palette", translucent, "-k", K, "-F", "css").stdout
    found = [tuple(map(float, m)) for m in re.findall(
        r"rgba\((\d+), (\d+), (\d+), ([0-9.]+)\)", css)]
    assert [f[:3] for f in found] == [tuple(map(float, c[:3])) for c in colors]
    assert all(abs(f[3] - c[3] / 255) < 5e-4 for f, c in zip(found, colors, strict=True))


def test_rgba_palettes_read_back_from_gpl_and_json(translucent, tmp_path):
    for fmt in ("gpl", "json"):
        out = tmp_path / f"p.{fmt}"
        assert run("palette", translucent, "-k", K, "-o", out).exit_code == 0
        back = read_palette(out)
        printed = json.loads(run("palette", translucent, "-k", K, "-F", "json").stdout)
        np.testing.assert_array_equal(back, [e["rgba"] for e in printed])


def test_rgba_swatches_are_drawn_over_a_checkerboard(translucent, tmp_path):
    out = tmp_path / "s.png"
    assert run("palette", translucent, "-k", K, "-o", out).exit_code == 0
    entries = json.loads(run("palette", translucent, "-k", K, "-F", "json").stdout)
    with Image.open(out) as im:
        rgb = np.asarray(im.convert("RGB"), np.float64)
    widths = np.round(np.array([e["share"] for e in entries]) * rgb.shape[1]).astype(int)
    left = 0
    for entry, width in zip(entries, widths, strict=True):
        r, g, b, a = entry["rgba"]
        if width >= 3:  # the middle column of the swatch, both checker shades on it
            column = rgb[:, left + width // 2]
            for shade in (204.0, 153.0):
                want = np.array([r, g, b]) * a / 255 + shade * (1 - a / 255)
                assert np.abs(column - want).max(axis=1).min() <= 1.0
        left += width
