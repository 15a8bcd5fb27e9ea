"""Color management: an image tagged with an ICC profile is converted to sRGB before clustering.

The reference is CSS Color 4's published Display P3 -> sRGB conversion (``tests/icc.py``), computed
in float64 here, independently of LittleCMS, which kmq uses through Pillow's ImageCms.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

import icc
import kmq
from kmq import metrics
from kmq.io import ProfileIgnoredWarning, read_image


@pytest.fixture(scope="module")
def p3_photo(coffee) -> np.ndarray:
    """128x128 of saturated colors, to be read as Display P3 (where they mean other colors than
    in sRGB): the coffee photo's top half above a hue and saturation sweep."""
    from skimage.color import hsv2rgb

    top = np.asarray(Image.fromarray(coffee).resize((128, 64), Image.Resampling.LANCZOS))
    hue, sat = np.meshgrid(np.linspace(0, 1, 128), np.linspace(0.3, 1, 64))
    sweep = hsv2rgb(np.dstack([hue, sat, np.full_like(hue, 0.9)]))
    return np.concatenate([top, np.rint(sweep * 255).astype(np.uint8)])


def _save(pixels: np.ndarray, path, profile: bytes | None, fmt: str = "PNG") -> None:
    options = {"icc_profile": profile} if profile else {}
    Image.fromarray(pixels).save(path, fmt, **options)


def _reference(p3: np.ndarray) -> np.ndarray:
    return icc.p3_to_srgb8(p3.reshape(-1, 3)).reshape(p3.shape)


def test_p3_tagged_png_is_read_as_the_same_colors_in_srgb(tmp_path):
    rng = np.random.default_rng(0)
    p3 = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    path = tmp_path / "p3.png"
    _save(p3, path, icc.display_p3_profile())
    out = read_image(path).astype(np.float64)
    expected = _reference(p3)
    assert np.abs(out - expected).max() <= 1.0
    # reading the numbers as if they were sRGB would shift the colors by far more
    assert np.abs(p3 - expected).mean() > 5.0


def test_p3_tagged_rgba_keeps_its_alpha(tmp_path):
    rng = np.random.default_rng(1)
    p3 = rng.integers(0, 256, (20, 30, 3)).astype(np.uint8)
    a = rng.integers(0, 256, (20, 30, 1)).astype(np.uint8)
    path = tmp_path / "p3a.png"
    _save(np.concatenate([p3, a], axis=2), path, icc.display_p3_profile())
    out = read_image(path)
    assert out.shape == (20, 30, 4)
    np.testing.assert_array_equal(out[:, :, 3], a[:, :, 0])
    assert np.abs(out[:, :, :3].astype(np.float64) - _reference(p3)).max() <= 1.0


def test_srgb_tagged_file_is_left_exactly_as_it_is(tmp_path):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (30, 30, 3)).astype(np.uint8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "srgb.png"
    _save(pixels, path, srgb)
    np.testing.assert_array_equal(read_image(path), pixels)


def test_a_broken_profile_is_ignored_with_a_warning(tmp_path):
    pixels = np.full((8, 8, 3), 90, np.uint8)
    path = tmp_path / "broken.png"
    _save(pixels, path, b"this is not an ICC profile at all" * 8)
    with pytest.warns(ProfileIgnoredWarning, match="ICC profile ignored"):
        out = read_image(path)
    np.testing.assert_array_equal(out, pixels)


def test_quantizing_a_p3_image_clusters_its_srgb_colors(tmp_path, p3_photo):
    path = tmp_path / "p3.png"
    _save(p3_photo, path, icc.display_p3_profile())
    q = kmq.quantize(path, 64, seed=0)
    expected = np.clip(np.rint(_reference(p3_photo)), 0, 255).astype(np.uint8)
    untagged = kmq.quantize(p3_photo, 64, seed=0)
    # the palette fits the converted colors: as close to them as quantizing them directly
    direct = kmq.quantize(expected, 64, seed=0)
    assert metrics.psnr(expected, q.to_rgb()) >= direct.psnr - 0.3
    assert metrics.psnr(expected, q.to_rgb()) > metrics.psnr(expected, untagged.to_rgb()) + 3


def test_cli_converts_a_p3_jpeg(tmp_path, p3_photo):
    source = tmp_path / "phone.jpg"
    _save(p3_photo, source, icc.display_p3_profile(), fmt="JPEG")
    out = tmp_path / "phone.png"
    from kmq.cli import app

    result = CliRunner().invoke(app, ["compress", str(source), "-k", "128", "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = np.asarray(Image.open(out).convert("RGB"))
    decoded_p3 = np.asarray(Image.open(source).convert("RGB"))  # the JPEG's own numbers
    expected = np.clip(np.rint(_reference(decoded_p3)), 0, 255).astype(np.uint8)
    assert metrics.psnr(expected, written) > metrics.psnr(decoded_p3, written) + 3
    assert "icc_profile" not in Image.open(out).info  # sRGB, as every viewer assumes


def test_the_profile_is_what_littlecms_reads_as_display_p3():
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc.display_p3_profile()))
    assert "Display P3" in ImageCms.getProfileDescription(profile)
