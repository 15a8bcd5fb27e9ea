"""--quality: the fewest colors that reach a PSNR target, and a clean failure below the minimum."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import kmq
from kmq.cli import app
from kmq.targets import quantize_to_quality


def test_the_chosen_k_meets_the_target_and_three_quarters_of_it_does_not(coffee):
    photo = np.ascontiguousarray(coffee[::2, ::2])
    q = quantize_to_quality(photo, 20, 33)
    assert q.psnr >= 33
    assert float(np.mean((q.to_rgb().astype(float) - photo) ** 2)) == pytest.approx(q.mse)
    smaller = kmq.quantize(photo, max(2, (3 * q.k) // 4))
    assert smaller.psnr < 33
    assert kmq.quantize(photo, q.k).psnr == pytest.approx(q.psnr)  # the same fit as quantize


def test_below_the_minimum_is_quality_too_low(coffee):
    with pytest.raises(kmq.QualityTooLowError, match="below the minimum"):
        quantize_to_quality(coffee[::4, ::4], 45, 50, max_colors=8)


def test_between_min_and_max_the_largest_k_is_used(coffee):
    photo = coffee[::4, ::4]
    q8 = kmq.quantize(photo, 8)
    q = quantize_to_quality(photo, q8.psnr - 1, 60, max_colors=8)
    assert q.k == 8 and q.psnr == pytest.approx(q8.psnr)


def test_cli_quality_writes_nothing_and_exits_7_when_too_low(tmp_path, small_photo):
    src = tmp_path / "cat.png"
    Image.fromarray(small_photo).save(src)
    out = tmp_path / "out.png"
    runner = CliRunner()
    bad = runner.invoke(app, ["compress", str(src), "--psnr", "60-70", "-k", "4",
                              "-o", str(out)])
    assert bad.exit_code == kmq.QualityTooLowError.exit_code == 7
    assert not out.exists()
    ok = runner.invoke(app, ["compress", str(src), "--psnr", "25-30", "-o", str(out),
                             "--quiet"])
    assert ok.exit_code == 0, ok.output
    with Image.open(out) as im:
        k = len(im.getpalette()) // 3
    assert k == quantize_to_quality(small_photo, 25, 30).k
    assert runner.invoke(app, ["compress", str(src), "--psnr", "40-30"]).exit_code == 2
    assert runner.invoke(app, ["compress", str(src), "--quality", "80-70"]).exit_code == 2
