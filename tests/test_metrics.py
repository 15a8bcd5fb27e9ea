"""kmq.metrics against NumPy / scikit-image references and known values."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from kmq import metrics


def _noisy(img: np.ndarray, amplitude: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-amplitude, amplitude + 1, img.shape)
    return np.clip(img.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def _pillow_indexed(img: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Palette and indices from Pillow's median cut: an indexed image kmq did not make."""
    q = Image.fromarray(img).quantize(k, method=Image.Quantize.MEDIANCUT)
    indices = np.asarray(q)
    palette = np.array(q.getpalette()[: 3 * (int(indices.max()) + 1)], np.uint8).reshape(-1, 3)
    return palette, indices


def _skimage_ssim(a, b, win_size=7) -> float:
    return structural_similarity(a, b, channel_axis=2, data_range=255, win_size=win_size)


def test_mse_equals_numpy_mean_of_squares(coffee):
    b = _noisy(coffee, 30)
    expected = np.mean((coffee.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert metrics.mse(coffee, b) == pytest.approx(expected, rel=1e-12)


def test_mse_is_exact_on_a_known_difference(chelsea):
    b = chelsea.copy()
    b[::2, :, 1] ^= 1  # flip the lowest bit of green on every other row: squared error 1 each
    rows_changed = (chelsea.shape[0] + 1) // 2
    assert metrics.mse(chelsea, b) == rows_changed * chelsea.shape[1] / chelsea.size


def test_psnr_of_a_known_mse():
    a = np.full((9, 11, 3), 100, np.uint8)
    b = a + np.uint8(5)  # every sample off by 5: MSE 25
    assert metrics.psnr(a, b) == pytest.approx(20 * math.log10(255 / 5), abs=1e-12)
    assert metrics.psnr(a, b) == pytest.approx(34.1514, abs=1e-4)


def test_psnr_equals_skimage(astronaut):
    b = _noisy(astronaut, 12, seed=3)
    assert metrics.psnr(astronaut, b) == pytest.approx(
        peak_signal_noise_ratio(astronaut, b, data_range=255), rel=1e-12)


def test_psnr_is_inf_for_identical_images(chelsea):
    assert metrics.psnr(chelsea, chelsea.copy()) == math.inf
    assert metrics.psnr_from_mse(0.0) == math.inf


def test_psnr_from_mse_rejects_a_negative_mse():
    with pytest.raises(ValueError, match="mean squared error"):
        metrics.psnr_from_mse(-1.0)


@pytest.mark.parametrize("strip_pixels", [1, 3000, 20_000, 1 << 18])
@pytest.mark.parametrize(("name", "box"), [
    ("astronaut", (slice(3, 260), slice(0, 511))),  # 257 x 511
    ("coffee", (slice(0, 399), slice(11, 342))),  # 399 x 331
    ("chelsea", (slice(None), slice(None))),  # 300 x 451, whole
])
def test_ssim_equals_skimage_whole_image(request, monkeypatch, name, box, strip_pixels):
    """Strips with halos give skimage's whole-image SSIM, whatever the strip height."""
    img = np.ascontiguousarray(request.getfixturevalue(name)[box])
    other = _noisy(img, 25, seed=1)
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", strip_pixels)
    assert abs(metrics.ssim(img, other) - _skimage_ssim(img, other)) <= 1e-9


@pytest.mark.parametrize("win_size", [3, 11])
def test_ssim_other_window_sizes_equal_skimage(monkeypatch, small_photo, win_size):
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", 700)  # strips of a few rows
    other = _noisy(small_photo, 40, seed=2)
    assert abs(metrics.ssim(small_photo, other, win_size=win_size)
               - _skimage_ssim(small_photo, other, win_size)) <= 1e-9


def test_ssim_of_an_image_no_taller_than_the_window(monkeypatch, chelsea):
    img = np.ascontiguousarray(chelsea[50:57, 20:143])  # exactly 7 rows: one row of SSIM
    other = _noisy(img, 20)
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", 1)
    assert abs(metrics.ssim(img, other) - _skimage_ssim(img, other)) <= 1e-9


def test_ssim_is_one_for_identical_and_lower_for_noisier(astronaut):
    assert metrics.ssim(astronaut, astronaut.copy()) == 1.0
    assert metrics.ssim(astronaut, _noisy(astronaut, 40)) < metrics.ssim(
        astronaut, _noisy(astronaut, 10))


@pytest.mark.parametrize("strip_pixels", [2000, 1 << 18])
def test_ssim_indexed_equals_skimage_on_the_rebuilt_image(monkeypatch, coffee, strip_pixels):
    img = np.ascontiguousarray(coffee[:, :401])
    palette, indices = _pillow_indexed(img, 24)
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", strip_pixels)
    expected = _skimage_ssim(img, palette[indices])
    assert abs(metrics.ssim_indexed(img, palette, indices) - expected) <= 1e-9
    mse = np.mean((img.astype(np.float64) - palette[indices]) ** 2)
    assert metrics.mse_indexed(img, palette, indices) == pytest.approx(mse, rel=1e-12)


def test_ssim_memory_does_not_grow_with_the_image_height(astronaut, monkeypatch):
    """The peak of extra memory is set by the strip, not by the image."""
    # one thread: with two, the peak holds one or two strips' temporaries as the threads'
    # phases happen to line up (CI once saw 83 MB against 96 MB), whatever the height
    monkeypatch.setattr(metrics, "_threads", lambda: 1)
    tall = np.tile(astronaut, (4, 2, 1))[:, :600]  # 2048 x 600
    peaks = []
    for rows in (1024, 2048):
        a = np.ascontiguousarray(tall[:rows])
        b = _noisy(a, 10)
        tracemalloc.start()
        metrics.ssim(a, b)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.15 * peaks[0]


def test_ssim_rejects_images_smaller_than_the_window():
    a = np.zeros((6, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.ssim(a, a)


@pytest.mark.parametrize("win_size", [4, 1, 7.0])
def test_ssim_rejects_a_bad_window(small_photo, win_size):
    with pytest.raises(ValueError, match="odd int"):
        metrics.ssim(small_photo, small_photo, win_size=win_size)


def test_metrics_reject_mismatched_or_non_uint8_images(small_photo):
    with pytest.raises(ValueError, match="same shape"):
        metrics.mse(small_photo, small_photo[1:])
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(small_photo.astype(np.float64), small_photo)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        metrics.ssim(small_photo[:, :, 0], small_photo[:, :, 0])


def test_indexed_metrics_reject_out_of_range_indices(small_photo):
    palette = np.zeros((4, 3), np.uint8)
    indices = np.zeros(small_photo.shape[:2], np.int64)
    indices[3, 5] = 4
    with pytest.raises(ValueError, match=r"indices in 0\.\.3"):
        metrics.ssim_indexed(small_photo, palette, indices)
    with pytest.raises(ValueError, match="shape"):
        metrics.mse_indexed(small_photo, palette, indices[1:])


def test_bits_per_pixel_known_values():
    assert metrics.bits_per_pixel(3 * 640 * 480, 640 * 480) == 24.0
    assert metrics.bits_per_pixel(1, 8) == 1.0
    with pytest.raises(ValueError):
        metrics.bits_per_pixel(10, 0)


def test_compression_ratio_known_values():
    assert metrics.compression_ratio(1000, 3 * 4000) == 12.0
    assert metrics.compression_ratio(500, 250) == 0.5  # a larger output: ratio below 1
    with pytest.raises(ValueError):
        metrics.compression_ratio(0, 100)


def test_fast_ssim_is_within_1e_5_of_the_float64_value(astronaut):
    from kmq.metrics import ssim_indexed

    rng = np.random.default_rng(4)
    palette = rng.integers(0, 256, (32, 3), dtype=np.uint8)
    indices = rng.integers(0, 32, astronaut.shape[:2])
    exact = ssim_indexed(astronaut, palette, indices)
    assert ssim_indexed(astronaut, palette, indices, fast=True) == pytest.approx(exact, abs=1e-5)
