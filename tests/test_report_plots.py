"""kmq.report.plots: readable figures, and matplotlib as an optional extra (kmq[report]).

Readability is checked on the drawn figures themselves: tick labels are plain numbers equal to
their positions (kB of 1000 bytes), they do not overlap, and the K labels lie inside the axes,
over ranges of file sizes from under 1 kB to megabytes and from a factor of 1.6 to 3 decades.
"""

from __future__ import annotations

import io
import itertools
import math
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import kmq
from kmq import MissingExtraError
from kmq.report import FIGURES, Encoded, KResult, make_report, plots

PLAIN = re.compile(r"\d{1,3}(,\d{3})*(\.\d+)?%?")

MISSING = ("kmq report (for its plots) needs matplotlib, which is not installed: "
           "pip install 'kmq[report]'")


@pytest.fixture
def no_matplotlib(monkeypatch):
    """matplotlib made impossible to import, as if it were not installed."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_importing_the_report_does_not_import_matplotlib():
    code = ("import sys, kmq.report, kmq.cli.report; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    env = {"PYTHONPATH": str(Path(kmq.__file__).parents[1]), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.strip() == "[]"


def test_without_matplotlib_plots_fail_at_once_and_the_rest_works(no_matplotlib):
    img = np.zeros((16, 16, 3), np.uint8)
    img[8:] = 255
    seen = []
    with pytest.raises(MissingExtraError) as caught:
        make_report(img, [2], progress=lambda stage, f: seen.append(stage))
    assert str(caught.value) == MISSING and caught.value.exit_code == 2
    assert seen == []  # before any work
    report = make_report(img, [2], figures=False)
    assert report.figures == {} and "data-figure" not in report.html()


# ---------------------------------------------------------------------------------------------
# Readable figures


def fake_results(png_sizes: list[int]) -> list[KResult]:
    """Results with kmq's PNG of the sizes given (bytes), the other files in proportion, and
    PSNR and SSIM rising with size, as on a photo."""
    results = []
    for i, size in enumerate(png_sizes):
        k = 2 ** (i + 2)
        psnr, ssim = 20.0 + 3 * i, 0.7 + 0.04 * i

        def enc(codec, n, quality=None, psnr=psnr, ssim=ssim):
            return Encoded(codec, bytes(int(n)), psnr, ssim, quality)

        palette = np.linspace(0, 255, 3 * k).astype(np.uint8).reshape(k, 3)
        quantized = SimpleNamespace(k=k, palette=palette, counts=np.arange(k, 0, -1))
        results.append(KResult(
            k=k, quantized=quantized, png=enc("kmq-png", size), container=enc("kmq", size * 0.5),
            webp_lossless=enc("webp-lossless", size * 0.8),
            jpeg=enc("jpeg", size * 0.97, 10 + i, psnr + 4, ssim + 0.1),
            webp=enc("webp", size * 0.95, 20 + i, psnr + 6, ssim + 0.12),
            jpeg_small=enc("jpeg", size * 0.48, 5 + i, psnr + 2, ssim + 0.05),
            webp_small=enc("webp", size * 0.49, 8 + i, psnr + 3, ssim + 0.06)))
    return results


SIZE_RANGES = {
    "sub-kB": [70, 120, 260, 400],
    "narrow": [28_000, 36_000, 45_000],
    "wide": [600, 5_000, 40_000, 300_000, 900_000],
    "MB": [400_000, 900_000, 2_600_000],
}


def visible_labels(axis, renderer):
    return [(t, t.get_window_extent(renderer)) for t in axis.get_majorticklabels()
            if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("sizes", SIZE_RANGES.values(), ids=SIZE_RANGES.keys())
def test_quality_vs_size_is_readable(sizes):
    results = fake_results(sizes)
    fig = plots.figures(results, "test")["quality-vs-size"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    for ax in fig.axes:
        kmq_line = next(line for line in ax.get_lines() if line.get_label() == "kmq PNG")
        assert np.allclose(kmq_line.get_xdata(), np.asarray(sizes) / 1000)  # kB: 1000 bytes
        labels = visible_labels(ax.xaxis, renderer)
        assert len(labels) >= 3, [t.get_text() for t, _ in labels]
        for text, _ in labels:
            shown = text.get_text()
            assert PLAIN.fullmatch(shown), shown  # no 3x10^1, no 1e+03
            assert math.isclose(float(shown.replace(",", "")), text.get_position()[0],
                                rel_tol=1e-9)
        boxes = sorted((box for _, box in labels), key=lambda b: b.x0)
        assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes)), "tick labels overlap"
        assert not any(t.get_text() for t in ax.xaxis.get_minorticklabels())
        for axis in (ax.xaxis, ax.yaxis):
            assert axis.get_offset_text().get_text() == ""
        for text, _ in visible_labels(ax.yaxis, renderer):
            assert PLAIN.fullmatch(text.get_text().replace("\N{MINUS SIGN}", "")), text
        inside = ax.get_window_extent(renderer)
        notes = [t for t in ax.texts if t.get_text().startswith("K=")]
        assert [t.get_text() for t in notes] == [f"K={r.k}" for r in results]
        for note in notes:
            box = note.get_window_extent(renderer)
            assert (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
                    and box.y1 <= inside.y1), note.get_text()
    legend = fig.legends[0]
    assert figure_box.contains(*legend.get_window_extent(renderer).p0)
    assert not any(legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
                   for ax in fig.axes)


def test_sizes_against_k_and_palettes_are_plain_numbers():
    results = fake_results(SIZE_RANGES["MB"])
    found = plots.figures(results, "test")
    fig = found["quality-vs-k"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    sizes = fig.axes[2]
    assert sizes.get_ylabel() == "file size (kB = 1000 bytes)"
    assert np.allclose(sizes.get_lines()[0].get_ydata(), np.asarray(SIZE_RANGES["MB"]) / 1000)
    for ax in fig.axes:
        assert [t.get_text() for t, _ in visible_labels(ax.xaxis, renderer)] == [
            str(r.k) for r in results]
        for text, _ in visible_labels(ax.yaxis, renderer):
            assert PLAIN.fullmatch(text.get_text()), text.get_text()
        assert ax.yaxis.get_offset_text().get_text() == ""
    palettes = found["palettes"]
    palettes.canvas.draw()
    shown = [t.get_text() for t, _ in visible_labels(palettes.axes[0].xaxis,
                                                      palettes.canvas.get_renderer())]
    assert shown[0] == "0%" and shown[-1] == "100%"


def test_draw_makes_the_pngs_of_the_figures():
    drawn = plots.draw(fake_results(SIZE_RANGES["narrow"]), "test")
    assert list(drawn) == list(FIGURES)
    for blob in drawn.values():
        with Image.open(io.BytesIO(blob)) as im:
            im.load()
            assert im.format == "PNG" and im.width >= 1000


@pytest.mark.parametrize(("lo", "hi"), [(0.05, 0.4), (0.8, 150), (28, 45), (99, 101),
                                        (2.5, 2600), (1, 1.05)])
def test_size_ticks_are_round_values_in_range(lo, hi):
    ticks = plots.size_ticks(lo, hi)
    assert ticks == sorted(set(ticks)) and len(ticks) >= 2
    assert all(lo <= t <= hi for t in ticks)
    digits = 2 if hi / lo > 1.2 else 3
    for t in ticks:
        assert float(f"{t:.{digits}g}") == t, t  # round numbers
