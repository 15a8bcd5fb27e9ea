"""Clustering in a perceptual or linear space: the palette stays sRGB, the mapping is exact in
the chosen space, and each space wins on its own error measure."""

import numpy as np
import pytest

import kmq
from kmq.colorspace import to_working
from naive import nearest


def _working_mse(rgb, palette, indices, space):
    a = to_working(rgb.reshape(-1, 3), space)
    b = to_working(palette, space)[indices.ravel()]
    return float(np.mean((a - b) ** 2))


@pytest.mark.parametrize("space", ["wsrgb", "linear", "oklab"])
def test_pixels_map_to_the_nearest_palette_color_in_the_space(small_photo, space):
    q = kmq.quantize(small_photo, 16, color_space=space)
    expected = nearest(to_working(small_photo.reshape(-1, 3), space),
                       to_working(q.palette, space))
    np.testing.assert_array_equal(q.indices.ravel(), expected)
    np.testing.assert_array_equal(kmq.remap(small_photo, q.palette, color_space=space),
                                  q.indices)
    assert q.mse == pytest.approx(float(np.mean((q.to_rgb().astype(float) - small_photo) ** 2)))


@pytest.mark.parametrize("space", ["wsrgb", "linear", "oklab"])
def test_each_space_has_the_lowest_error_in_its_own_measure(chelsea, space):
    srgb = kmq.quantize(chelsea, 16, color_space="srgb")
    other = kmq.quantize(chelsea, 16, color_space=space)
    assert (_working_mse(chelsea, other.palette, other.indices, space)
            < _working_mse(chelsea, srgb.palette, srgb.indices, space))
    assert other.mse > srgb.mse  # and sRGB wins in sRGB


def test_unknown_space_is_a_clear_error(small_photo):
    with pytest.raises(ValueError, match="oklab"):
        kmq.quantize(small_photo, 8, color_space="lab")


def test_compress_colorspace_option_writes_the_oklab_quantization(tmp_path, small_photo):
    from PIL import Image
    from typer.testing import CliRunner

    from kmq.cli import app

    src = tmp_path / "cat.png"
    Image.fromarray(small_photo).save(src)
    out = tmp_path / "cat-oklab.png"
    result = CliRunner().invoke(app, ["compress", str(src), "-k", "16", "--colorspace", "oklab",
                                      "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    q = kmq.quantize(small_photo, 16, color_space="oklab")
    written = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(written, q.to_rgb())


@pytest.mark.parametrize("space", ["srgb", "wsrgb", "oklab"])
def test_dithered_quantization_uses_the_palette_and_reports_its_true_error(small_photo, space):
    from kmq.dither import dither

    plain = kmq.quantize(small_photo, 8, color_space=space)
    dithered = kmq.quantize(small_photo, 8, color_space=space, dither=1.0)
    np.testing.assert_array_equal(dithered.palette, plain.palette)
    np.testing.assert_array_equal(dithered.indices,
                                  dither(small_photo, plain.palette, space=space, strength=1.0))
    assert dithered.mse == pytest.approx(
        float(np.mean((dithered.to_rgb().astype(float) - small_photo) ** 2)))
    assert dithered.counts.sum() == small_photo.shape[0] * small_photo.shape[1]
    assert not np.array_equal(dithered.indices, plain.indices)


def test_dither_strength_is_checked(small_photo):
    with pytest.raises(ValueError, match="dither"):
        kmq.quantize(small_photo, 8, dither=1.5)


def test_compress_palette_option_maps_onto_the_given_colors(tmp_path, small_photo):
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from kmq.cli import app

    src = tmp_path / "cat.png"
    Image.fromarray(small_photo).save(src)
    palette = np.array([[0, 0, 0], [255, 255, 255], [200, 120, 60], [90, 60, 40]], np.uint8)
    spec = tmp_path / "pal.json"
    spec.write_text(json.dumps([{"rgb": c.tolist()} for c in palette]))
    out = tmp_path / "out.png"
    result = CliRunner().invoke(app, ["compress", str(src), "--palette", str(spec), "-o", str(out),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im.getpalette()).reshape(-1, 3), palette)
        np.testing.assert_array_equal(np.asarray(im),
                                      nearest(small_photo.reshape(-1, 3), palette)
                                      .reshape(small_photo.shape[:2]))
    bad = tmp_path / "bad.gpl"
    bad.write_text("GIMP Palette\nnot a color line\n")
    assert CliRunner().invoke(app, ["compress", str(src), "--palette", str(bad),
                                    "-o", str(tmp_path / "x.png")]).exit_code == 2
