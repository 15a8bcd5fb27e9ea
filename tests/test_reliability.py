"""The ``kmq`` command on inputs and places that go wrong: transparency of every kind, float
images with infinities, folders it may not enter, FIFOs, several frames, palettes with alpha.

Each test runs the real command: in a process where the operating system must take part
(permissions, FIFOs), else through typer's CliRunner. docs/reliability.md lists the cases and
the tests of each.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import kmq
from kmq import cli

KMQ_EXE = str(Path(sys.executable).with_name("kmq"))
K = 6
runner = CliRunner()
#: What kmq may not do once the capabilities that let root ignore file permissions are dropped.
DROP_CAPS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
             "--inh-caps=-dac_override,-dac_read_search"]


def run(*args: object):
    return runner.invoke(cli.app, [str(a) for a in args])


def lines_of(stderr: str, kind: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"kmq: {kind}: ")]


def expected_palette(pixels: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """The colors and shares ``kmq palette`` must print: kmq.quantize's, most used first."""
    q = kmq.quantize(pixels, k, seed=0)
    order = np.argsort(-q.counts, kind="stable")
    return q.palette[order], q.counts[order] / q.counts.sum()


# --- 1. palettes of images with transparency ---------------------------------------------------

def _la(photo: np.ndarray) -> Image.Image:
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    alpha = np.tile(np.linspace(0, 255, gray.shape[1]).round().astype(np.uint8), (len(gray), 1))
    return Image.fromarray(np.dstack([gray, alpha]), "LA")


def _p_with_trns(photo: np.ndarray) -> Image.Image:
    im = Image.fromarray(photo).quantize(12, dither=Image.Dither.NONE)
    im.info["transparency"] = bytes([0, 60, 128, 200] + [255] * 8)  # a PNG tRNS chunk
    return im


@pytest.mark.parametrize("make", [_la, _p_with_trns], ids=["LA", "P-tRNS"])
def test_palette_of_an_image_with_transparency_is_rgba_in_every_format(tmp_path, small_photo,
                                                                       make):
    source = tmp_path / "glass.png"
    make(small_photo).save(source)
    with Image.open(source) as im:  # Pillow's reading of it, as RGBA
        pixels = np.asarray(im.convert("RGBA"))
    assert (pixels[:, :, 3] < 255).any()
    colors, shares = expected_palette(pixels)
    assert colors.shape[1] == 4
    hexes = ["#" + c.tobytes().hex() for c in colors]

    text = run("palette", source, "-k", K)
    assert text.exit_code == 0, text.output
    assert text.stdout.split()[0::2] == hexes
    entries = json.loads(run("palette", source, "-k", K, "-F", "json").stdout)
    np.testing.assert_array_equal([e["rgba"] for e in entries], colors)
    np.testing.assert_allclose([e["share"] for e in entries], shares, rtol=1e-12)
    css = run("palette", source, "-k", K, "-F", "css").stdout
    found = re.findall(r"rgba\((\d+), (\d+), (\d+), ([0-9.]+)\)", css)
    assert [tuple(map(int, f[:3])) for f in found] == [tuple(map(int, c[:3])) for c in colors]
    np.testing.assert_allclose([float(f[3]) for f in found], colors[:, 3] / 255, atol=5e-4)
    gpl = run("palette", source, "-k", K, "-F", "gpl").stdout.splitlines()
    assert "# GIMP palettes hold no alpha: each color's is in its name" in gpl
    rows = [re.fullmatch(r"\s*(\d+)\s+(\d+)\s+(\d+)\t(#[0-9a-f]{8}) .* alpha (\d+)", line)
            for line in gpl if line[:1].isspace() or line[:1].isdigit()]
    assert all(rows) and len(rows) == K
    np.testing.assert_array_equal([[int(m.group(i)) for i in (1, 2, 3, 5)] for m in rows],
                                  colors)

    swatches = tmp_path / "s.png"
    assert run("palette", source, "-k", K, "-o", swatches).exit_code == 0
    with Image.open(swatches) as im:
        rgb = np.asarray(im.convert("RGB"), np.float64)
    left = 0
    for (r, g, b, a), width in zip(colors.astype(np.float64),
                                   np.round(shares * rgb.shape[1]).astype(int), strict=True):
        if width >= 3:  # its middle column shows the color over both checker shades
            column = rgb[:, left + width // 2]
            for shade in (204.0, 153.0):
                want = np.array([r, g, b]) * a / 255 + shade * (1 - a / 255)
                assert np.abs(column - want).max(axis=1).min() <= 1.0
        left += width


# --- 2. float images with infinities -----------------------------------------------------------

@pytest.mark.parametrize("top", [1.0, 255.0], ids=["unit", "bytes"])
def test_an_infinite_sample_is_clipped_with_a_warning_not_a_black_image(tmp_path, small_photo,
                                                                        top):
    gray = np.asarray(Image.fromarray(small_photo).convert("L")).astype(np.float32)
    finite = gray / 255 * top
    bad = finite.copy()
    bad[5, 7] = np.inf
    clipped = finite.copy()
    clipped[5, 7] = finite.max()
    paths = {}
    for name, values in (("inf", bad), ("clipped", clipped)):
        paths[name] = tmp_path / f"{name}.tif"
        Image.fromarray(values, "F").save(paths[name])
    # 256 colors: the gray image has fewer, so each output holds its 8-bit samples exactly
    results = {name: run("compress", path, "-k", 256, "--no-ssim")
               for name, path in paths.items()}
    assert results["inf"].exit_code == results["clipped"].exit_code == 0
    assert lines_of(results["inf"].stderr, "warning") == [
        f"kmq: warning: {paths['inf']}: 1 NaN or infinite samples clipped to the image's range"]
    assert lines_of(results["clipped"].stderr, "warning") == []
    out = {name: np.array(Image.open(tmp_path / f"{name}-kmq.png").convert("L"))
           for name in paths}
    np.testing.assert_array_equal(out["clipped"], np.rint(clipped / top * 255))
    assert out["inf"][5, 7] == 255  # the end of the range
    out["inf"][5, 7] = out["clipped"][5, 7]
    np.testing.assert_array_equal(out["inf"], out["clipped"])  # not rescaled by the infinity


def test_a_float_rgb_tiff_pillow_cannot_read_is_refused_in_one_line(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "rgb32f.tif"
    tifffile.imwrite(path, np.random.default_rng(0).random((8, 8, 3), np.float32),
                     photometric="rgb")
    result = run("compress", path)
    assert result.exit_code == 3
    assert result.stderr == f"kmq: error: {path}: not an image file Pillow can read\n"


# --- 3, 4. folders kmq may not enter or write in -----------------------------------------------

@pytest.fixture
def no_access(tmp_path, small_photo):
    """``(command prefix, folder)``: a photo ``a.png`` and ``c.png``, a folder ``locked``
    (mode 000) holding ``bad.png`` and a folder ``readonly`` (mode 555); as root, kmq runs
    with the capabilities that ignore permissions dropped."""
    for name in ("a.png", "c.png"):
        Image.fromarray(small_photo).save(tmp_path / name)
    locked, readonly = tmp_path / "locked", tmp_path / "readonly"
    locked.mkdir()
    readonly.mkdir()
    shutil.copy(tmp_path / "a.png", locked / "bad.png")
    locked.chmod(0o000)
    readonly.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop the "
                        "capabilities that ignore file permissions")
        probe = subprocess.run([*DROP_CAPS, sys.executable, "-c",
                                f"open({str(locked / 'bad.png')!r}, 'rb')"],
                               capture_output=True, timeout=60)
        if probe.returncode == 0:
            pytest.skip("root could still read a mode-000 folder after setpriv dropped "
                        "CAP_DAC_OVERRIDE (a container that forbids dropping capabilities?)")
        prefix = DROP_CAPS
    yield prefix, tmp_path
    locked.chmod(0o755)
    readonly.chmod(0o755)


def kmq_as(prefix: list[str], *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, KMQ_EXE, *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_compress_unreadable_input_exits_3_and_the_others_are_written(no_access):
    prefix, d = no_access
    bad = d / "locked" / "bad.png"
    result = kmq_as(prefix, "compress", d / "a.png", bad, d / "c.png", "-k", 4, "--no-ssim")
    assert result.returncode == 3
    assert lines_of(result.stderr, "error") == [f"kmq: error: {bad}: permission denied"]
    assert (d / "a-kmq.png").is_file() and (d / "c-kmq.png").is_file()
    for folder in ("locked", "readonly"):
        out = d / folder / "x.png"
        result = kmq_as(prefix, "compress", d / "a.png", "-o", out, "-k", 4, "-q")
        assert result.returncode == 1
        assert result.stderr == f"kmq: error: {out}: cannot write (Permission denied)\n"


def test_palette_unreadable_input_exits_3_and_an_unwritable_output_1(no_access):
    prefix, d = no_access
    bad = d / "locked" / "bad.png"
    result = kmq_as(prefix, "palette", bad)
    assert (result.returncode, result.stderr) == (3, f"kmq: error: {bad}: permission denied\n")
    several = kmq_as(prefix, "palette", d / "a.png", bad, d / "c.png", "-k", 4)
    assert several.returncode == 3
    assert lines_of(several.stderr, "error") == [f"kmq: error: {bad}: permission denied"]
    assert len(several.stdout.splitlines()) == 4  # the colors of the two readable ones
    out = d / "readonly" / "p.gpl"
    result = kmq_as(prefix, "palette", d / "a.png", "-o", out)
    assert (result.returncode, result.stderr) == (
        1, f"kmq: error: {out}: cannot write (Permission denied)\n")


def test_batch_unreadable_input_exits_3_and_writes_the_readable_ones(no_access):
    prefix, d = no_access
    bad = d / "locked" / "bad.png"
    result = kmq_as(prefix, "batch", d / "a.png", bad, d / "c.png", "-o", d / "out", "-k", 4,
                    "-q", "--report", d / "r.json")
    assert result.returncode == 3
    assert lines_of(result.stderr, "error") == [f"kmq: error: {bad}: permission denied"]
    assert sorted(p.name for p in (d / "out").glob("*.png")) == ["a.png", "c.png"]
    files = json.loads((d / "r.json").read_text())["files"]
    assert [f["status"] for f in files] == ["done", "failed", "done"]
    for walk in ([d / "locked"], [d, "--recursive"]):  # said, not silently skipped
        folder = kmq_as(prefix, "batch", *walk, "-o", d / "out2", "-q")
        assert (folder.returncode, folder.stderr) == (
            3, f"kmq: error: {d / 'locked'}: cannot list the folder (Permission denied)\n")
    out = d / "readonly"
    result = kmq_as(prefix, "batch", d / "a.png", "-o", out, "-q")
    assert result.returncode == 1
    assert result.stderr == (f"kmq: error: {out / '.kmq-batch.json'}: cannot write "
                             f"(Permission denied)\n")


# --- 6. FIFOs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["compress"], ["palette"], ["info"], ["info", "--check"],
                                     ["decompress"], ["batch", "-o", "OUT"]])
def test_a_fifo_is_refused_at_once(tmp_path, command):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    # no writer ever opens the FIFO: a read would block, and the timeout would fail the test
    result = subprocess.run([KMQ_EXE, *args, str(fifo)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 3
    assert lines_of(result.stderr, "error") == [f"kmq: error: {fifo}: not a regular file"]


# --- 10. frames, palettes with alpha -------------------------------------------------------------

@pytest.mark.parametrize("ext", ["gif", "tif"])
def test_the_first_frame_is_used_with_a_one_line_warning(tmp_path, small_photo, ext):
    frames = [Image.fromarray(small_photo), Image.fromarray(255 - small_photo)]
    many, one = tmp_path / f"many.{ext}", tmp_path / f"one.{ext}"
    frames[0].save(many, save_all=True, append_images=frames[1:])
    frames[0].save(one)
    result = run("compress", many, "-k", 8, "--no-ssim")
    assert result.exit_code == 0, result.output
    assert lines_of(result.stderr, "warning") == [
        f"kmq: warning: {many}: 2 frames or pages; the first is used"]
    assert run("compress", one, "-k", 8, "--no-ssim").exit_code == 0
    assert (tmp_path / "many-kmq.png").read_bytes() == (tmp_path / "one-kmq.png").read_bytes()


def test_a_palette_image_with_alpha_maps_an_opaque_image_without_raw_warnings(tmp_path,
                                                                               small_photo):
    source = tmp_path / "cat.png"
    Image.fromarray(small_photo).save(source)
    given = np.array([[0, 0, 0, 255], [255, 255, 255, 255], [200, 120, 60, 255],
                      [255, 0, 0, 128], [0, 0, 0, 0]], np.uint8)
    palette = tmp_path / "pal.png"
    Image.fromarray(given[None], "RGBA").save(palette)
    result = run("compress", source, "--palette", palette, "--json")
    assert result.exit_code == 0, result.output
    assert [ln for ln in result.stderr.splitlines() if not ln.startswith("kmq: ")] == []
    with Image.open(tmp_path / "cat-kmq.png") as im:
        written = np.asarray(im.convert("RGBA"))
    # each pixel nearest in premultiplied RGBA (the opaque pixel against every entry)
    px = np.concatenate([small_photo, np.full((*small_photo.shape[:2], 1), 255)], axis=2)
    pre = given.astype(np.float64)
    pre[:, :3] *= pre[:, 3:] / 255
    d = ((px[:, :, None, :].astype(np.float64) - pre[None, None]) ** 2).sum(axis=3)
    np.testing.assert_array_equal(written, given[d.argmin(axis=2)])
    # the other way round: an image with alpha onto a palette image without it
    glass = tmp_path / "glass.png"
    Image.fromarray(np.dstack([small_photo, np.full(small_photo.shape[:2], 100, np.uint8)])
                    ).save(glass)
    Image.fromarray(given[None, :3, :3]).save(tmp_path / "rgb.png")
    result = run("compress", glass, "--palette", tmp_path / "rgb.png", "--no-ssim")
    assert result.exit_code == 0, result.output
    assert lines_of(result.stderr, "warning") == [
        f"kmq: warning: {glass}: transparency dropped (the palette given has no alpha)"]
    assert [ln for ln in result.stderr.splitlines() if not ln.startswith("kmq: ")] == []

