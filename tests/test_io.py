"""kmq.io: reading every kind of image file as RGB, and atomic writes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from kmq.errors import ImageReadError, ImageTooLargeError, OutputExistsError
from kmq.io import AlphaDroppedWarning, atomic_output, read_rgb, write_atomic


def test_rgb_png_reads_back_exactly(tmp_path, small_photo):
    path = tmp_path / "rgb.png"
    Image.fromarray(small_photo).save(path)
    out = read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == small_photo.shape
    np.testing.assert_array_equal(out, small_photo)


def test_grayscale_becomes_three_equal_channels(tmp_path, chelsea):
    gray = np.ascontiguousarray(chelsea[:, :, 1])
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    out = read_rgb(path)
    assert out.shape == (*gray.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_palette_image_is_expanded_through_its_palette(tmp_path, small_photo):
    rng = np.random.default_rng(4)
    palette = rng.integers(0, 256, (7, 3), dtype=np.uint8)
    indices = rng.integers(0, 7, small_photo.shape[:2], dtype=np.uint8)
    im = Image.fromarray(indices).convert("L")
    im.putpalette(palette.tobytes())
    assert im.mode == "P"
    path = tmp_path / "pal.png"
    im.save(path)
    np.testing.assert_array_equal(read_rgb(path), palette[indices])


def test_rgba_drops_alpha_with_a_warning(tmp_path, small_photo):
    alpha = np.linspace(0, 255, small_photo.shape[1]).astype(np.uint8)
    rgba = np.dstack([small_photo, np.broadcast_to(alpha, small_photo.shape[:2])])
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)
    with pytest.warns(AlphaDroppedWarning, match="rgba.png"):
        out = read_rgb(path)
    np.testing.assert_array_equal(out, small_photo)


def test_opaque_rgb_gives_no_warning(tmp_path, small_photo):
    path = tmp_path / "rgb.png"
    Image.fromarray(small_photo).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_rgb(path)


def test_16_bit_png_is_scaled_to_8_bits_by_rounding(tmp_path):
    wide = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit value once
    im = Image.fromarray(wide)
    assert im.mode == "I;16"
    path = tmp_path / "wide.png"
    im.save(path)
    out = read_rgb(path)
    expected = np.rint(wide.astype(np.float64) * 255 / 65535).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], expected)


def test_cmyk_jpeg_becomes_rgb(tmp_path, small_photo):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(small_photo).convert("CMYK").save(path, quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    out = read_rgb(path)
    assert out.shape == small_photo.shape and out.dtype == np.uint8
    # lossy JPEG: close to the original colors, not exact
    assert np.abs(out.astype(int) - small_photo).mean() < 6


def test_exif_orientation_is_applied(tmp_path, coffee):
    stored = np.ascontiguousarray(coffee[::4, ::4])  # 100 x 150
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    out = read_rgb(path)
    assert out.shape == (stored.shape[1], stored.shape[0], 3)
    clockwise = np.rot90(stored, k=-1).astype(int)
    counter = np.rot90(stored, k=1).astype(int)
    err_cw = np.abs(out.astype(int) - clockwise).mean()
    assert err_cw < 6 and err_cw < np.abs(out.astype(int) - counter).mean() / 3


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_file_is_a_read_error(tmp_path, small_photo, fmt, suffix):
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(small_photo).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=f"cut{suffix}"):
        read_rgb(path)


def test_not_an_image_missing_and_directory_are_read_errors(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    for path, message in [(text, "not an image"), (tmp_path / "absent.png", "no such file"),
                          (tmp_path, "directory")]:
        with pytest.raises(ImageReadError, match=message):
            read_rgb(path)


def test_too_many_pixels_is_refused(tmp_path, small_photo):
    path = tmp_path / "big.png"
    Image.fromarray(small_photo).save(path)
    n = small_photo.shape[0] * small_photo.shape[1]
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        read_rgb(path, max_pixels=n - 1)
    assert read_rgb(path, max_pixels=n).shape == small_photo.shape
    assert issubclass(ImageTooLargeError, ImageReadError)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="boom"), atomic_output(target) as fh:
        fh.write(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_failure_keeps_the_old_file_even_with_overwrite(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target, overwrite=True) as fh:
        fh.write(b"new")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_output_never_replaces_an_existing_file_without_overwrite(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="--force"), atomic_output(target) as fh:
        fh.write(b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_output_does_not_replace_a_file_that_appears_while_writing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(OutputExistsError), atomic_output(target) as fh:
        fh.write(b"mine")
        target.write_bytes(b"theirs")  # another process wins the race
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_write_atomic_returns_the_size_and_overwrites_on_request(tmp_path):
    target = tmp_path / "out.bin"
    assert write_atomic(target, lambda fh: fh.write(b"12345")) == 5
    assert write_atomic(target, lambda fh: fh.write(b"ab"), overwrite=True) == 2
    assert target.read_bytes() == b"ab"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
