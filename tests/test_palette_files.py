"""kmq.palette_files: the writers and read_palette, round trip by round trip, and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import kmq
from kmq.palette_files import (
    format_palette,
    read_palette,
    swatch_widths,
    swatches_png,
)


def random_palette(seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    colors = rng.integers(0, 256, (k, 3)).astype(np.uint8)
    shares = rng.random(k)
    return colors, np.sort(shares / shares.sum())[::-1]


@pytest.mark.parametrize("fmt", ["gpl", "json"])
@pytest.mark.parametrize("k", [1, 2, 37, 256])
def test_text_writers_round_trip(tmp_path, fmt, k):
    colors, shares = random_palette(k, k)
    path = tmp_path / f"p.{fmt}"
    path.write_text(format_palette(colors, shares, fmt, name="test"))
    np.testing.assert_array_equal(read_palette(path), colors)


def test_content_decides_not_the_extension(tmp_path):
    colors, shares = random_palette(3, 6)
    path = tmp_path / "palette.txt"
    path.write_text(format_palette(colors, shares, "gpl"))
    np.testing.assert_array_equal(read_palette(path), colors)
    path.write_text(format_palette(colors, shares, "json"))
    np.testing.assert_array_equal(read_palette(path), colors)


def test_json_shares_are_exact_and_sum_to_one():
    colors, shares = random_palette(4, 9)
    entries = json.loads(format_palette(colors, shares, "json"))
    assert [e["share"] for e in entries] == shares.tolist()
    assert abs(sum(e["share"] for e in entries) - 1) < 1e-9


@pytest.mark.parametrize("k", [1, 3, 64, 256])
def test_swatch_png_round_trips_in_order(tmp_path, k):
    colors = np.unique(random_palette(k, k)[0], axis=0)  # swatches need distinct colors
    rng = np.random.default_rng(k)
    colors = colors[rng.permutation(len(colors))]
    shares = np.full(len(colors), 1 / len(colors))
    path = tmp_path / "s.png"
    path.write_bytes(swatches_png(colors, shares))
    np.testing.assert_array_equal(read_palette(path), colors)


def test_image_colors_in_order_of_first_appearance(tmp_path):
    img = np.array([[[9, 9, 9], [1, 2, 3], [9, 9, 9]],
                    [[200, 0, 0], [1, 2, 3], [0, 0, 0]]], np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(img).save(path)
    assert read_palette(path).tolist() == [[9, 9, 9], [1, 2, 3], [200, 0, 0], [0, 0, 0]]


def test_swatch_widths_are_proportional_and_never_zero():
    rng = np.random.default_rng(0)
    for k in (1, 2, 7, 100, 256):
        shares = rng.random(k) ** 4  # some tiny shares
        widths = swatch_widths(shares, 640)
        assert widths.sum() == 640 and widths.min() >= 1
        ideal = 640 * shares / shares.sum()
        big = ideal >= 2
        assert np.all(np.abs(widths[big] - ideal[big]) < 1 + (widths == 1).sum())
    np.testing.assert_array_equal(swatch_widths([0.5, 0.25, 0.25], 8), [4, 2, 2])
    with pytest.raises(ValueError, match="at least one pixel per color"):
        swatch_widths(np.ones(10), 5)


# ---------------------------------------------------------------------------------------------
# Errors name the file and the problem


def check_error(path, match):
    with pytest.raises(ValueError, match=match) as info:
        read_palette(path)
    assert str(path) in str(info.value)


def test_gpl_errors(tmp_path):
    path = tmp_path / "bad.gpl"
    path.write_text("GIMP Palette\nName: x\n10 20\n")
    check_error(path, r"line 3: expected 'R G B \[name\]'")
    path.write_text("GIMP Palette\n10 20 300 big\n")
    check_error(path, r"line 2: expected an integer 0\.\.255; got 300")
    path.write_text("GIMP Palette\n10 x 3\n")
    check_error(path, r"line 2: expected an integer 0\.\.255; got 'x'")
    path.write_text("GIMP Palette\nName: empty\n# nothing\n")
    check_error(path, "has no colors")
    path.write_text("10 20 30\n")
    check_error(path, "not a palette: expected a GIMP palette")
    path.write_bytes(b"GIMP Palette\n\xff\xfe\n")
    check_error(path, "not UTF-8")


def test_json_errors(tmp_path):
    path = tmp_path / "bad.json"
    cases = [
        ('{"hex": "#000000"}', "expected a JSON list of colors; got a dict"),
        ('[{"hex": "#00000"}]', r"entry 0: expected a color '#rrggbb'"),
        ('[{"hex": "#000000"}, {"rgb": [1, 2]}]', r"entry 1: expected 'rgb' to be 3 integers"),
        ('[{"rgb": [1, 2, 256]}]', r"entry 0: expected an integer 0\.\.255; got 256"),
        ('[{"rgb": [1, 2, 3], "hex": "#010204"}]', "'rgb' .* and 'hex' .* disagree"),
        ('[{"name": "red"}]', "entry 0: expected an object with 'rgb'"),
        ("[]", "has no colors"),
        ("[1, ", "invalid JSON"),
    ]
    for text, match in cases:
        path.write_text(text)
        check_error(path, match)
    path.write_text('["#ff8000", {"hex": "00ff00", "share": 1}]')
    assert read_palette(path).tolist() == [[255, 128, 0], [0, 255, 0]]


def test_image_errors(tmp_path):
    path = tmp_path / "noise.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 300, 3)).astype(np.uint8)).save(path)
    check_error(path, r"has \d{2},\d{3} distinct colors; a palette image may have at most 65,536")
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x00\x01not an image at all")
    check_error(path, "not a GIMP palette, a JSON palette or an image")
    with pytest.raises(kmq.ImageReadError, match=r"missing\.gpl: no such file"):
        read_palette(tmp_path / "missing.gpl")


def test_writer_argument_errors():
    colors, shares = random_palette(1, 3)
    with pytest.raises(ValueError, match=r"shares to be 3 non-negative numbers"):
        format_palette(colors, shares[:2], "text")
    with pytest.raises(ValueError, match="uint8 array"):
        format_palette(colors.astype(int), shares, "text")
    with pytest.raises(ValueError, match="'bmp' is not a valid PaletteFormat"):
        format_palette(colors, shares, "bmp")
    with pytest.raises(ValueError, match="binary"):
        format_palette(colors, shares, "png")
