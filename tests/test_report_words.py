"""kmq.report.words: the verdicts, the summary and the terminal's table say what the numbers
say."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from skimage import data

from kmq.report import make_report, overall, summary_lines


@pytest.fixture(scope="module")
def photo_report():
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((64, 64),
                                                                Image.Resampling.LANCZOS))
    return make_report(photo, (4, 16, 64), figures=False)


@pytest.fixture(scope="module")
def graphic_report(graphic):
    """The report of a drawing of 5 flat colors: what palette compression is for."""
    return make_report(graphic, [2, 8], figures=False)


def test_palette_compression_wins_on_a_graphic(graphic_report):
    small, enough = graphic_report.results
    assert enough.quantized.k == 5 and math.isinf(enough.png.psnr)  # all 5 colors: lossless
    assert enough.best("psnr") == "kmq-png"
    assert "kmq is ahead" in enough.verdict().lower()
    assert "lossless (PSNR inf)" in enough.verdict()
    assert small.quantized.k == 2 and small.png.psnr < 40


def test_photo_verdict_names_the_codec_ahead(photo_report):
    for r in photo_report.results:
        best = r.best("psnr")
        winner = {"kmq-png": r.png, "jpeg": r.jpeg, "webp": r.webp}[best]
        assert winner.n_bytes <= r.png.n_bytes
        for enc in (r.png, r.jpeg, r.webp):
            if enc.n_bytes <= r.png.n_bytes:
                assert enc.psnr <= winner.psnr
        sentence = {"kmq-png": "kmq is ahead", "jpeg": "jpeg is ahead",
                    "webp": "lossy webp is ahead"}[best]
        assert sentence in r.verdict().lower()
        assert r.verdict().startswith(f"K = {r.k}: kmq's PNG is ")


@pytest.mark.parametrize("which", ["photo", "graphic"])
def test_summary_lines_are_the_results(photo_report, graphic_report, which):
    report = photo_report if which == "photo" else graphic_report
    lines = summary_lines(report)
    assert lines[-1] == overall(report)
    rows = [line.split() for line in lines[1:-1]]
    assert len(rows) == len(report.results)

    def psnr(value: float) -> str:
        return "inf" if math.isinf(value) else f"{value:.2f}"

    for row, r in zip(rows, report.results, strict=True):
        who = {"kmq-png": "kmq", "kmq": "kmq", "jpeg": "jpeg", "webp": "webp"}
        assert row == [str(r.k), f"{r.png.n_bytes:,}", psnr(r.png.psnr), f"{r.jpeg.n_bytes:,}",
                       psnr(r.jpeg.psnr), f"{r.webp.n_bytes:,}", psnr(r.webp.psnr),
                       who[r.best("psnr")], f"{r.container.n_bytes:,}",
                       who[r.best("psnr", container=True)]]
    n = len(report.results)
    for container, subject in ((False, "kmq's PNG has the highest PSNR among files of its size "
                                       "(against JPEG and lossy WebP)"),
                               (True, "its .kmq file")):
        wins = [r.k for r in report.results if r.best("psnr", container=container) in
                ("kmq", "kmq-png")]
        said = ("at every K tried" if len(wins) == n else "at no K tried" if not wins
                else f"at K = {', '.join(map(str, wins))} of the {n} K tried")
        assert f"{subject} {said}" in overall(report)
    if which == "graphic":
        assert "at every K tried; its .kmq file at every K tried." in overall(report)
