"""kmq.metrics against NumPy / scikit-image references and known values."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

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


#: kmq's SSIM against scikit-image's: both compute the same formula, kmq from exact window sums,
#: skimage with running float sums (scipy's uniform_filter), so they differ by rounding only.
SSIM_TOL = 1e-10


def _skimage_ssim(a, b, win_size=7) -> float:
    """scikit-image's SSIM; RGBA as premultiplied float64 (R*A/255, G*A/255, B*A/255, A)."""
    if a.shape[2] == 4:
        a, b = _premultiplied_float(a), _premultiplied_float(b)
    return structural_similarity(a, b, channel_axis=2, data_range=255, win_size=win_size)


def _premultiplied_float(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float64)
    return np.concatenate([f[:, :, :3] * f[:, :, 3:] / 255.0, f[:, :, 3:]], axis=2)


def _with_alpha(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGBA: a diagonal alpha ramp, some fully transparent and some opaque pixels, with noise."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    ramp = np.add.outer(np.arange(h), np.arange(w)) * 400 / (h + w) - 60
    alpha = np.clip(ramp + rng.integers(-20, 21, (h, w)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.dstack([img, alpha]))


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
    assert abs(metrics.ssim(img, other) - _skimage_ssim(img, other)) <= SSIM_TOL


@pytest.mark.parametrize("win_size", [3, 11])
def test_ssim_other_window_sizes_equal_skimage(monkeypatch, small_photo, win_size):
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", 700)  # strips of a few rows
    other = _noisy(small_photo, 40, seed=2)
    assert abs(metrics.ssim(small_photo, other, win_size=win_size)
               - _skimage_ssim(small_photo, other, win_size)) <= SSIM_TOL


def test_ssim_of_an_image_no_taller_than_the_window(monkeypatch, chelsea):
    img = np.ascontiguousarray(chelsea[50:57, 20:143])  # exactly 7 rows: one row of SSIM
    other = _noisy(img, 20)
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", 1)
    assert abs(metrics.ssim(img, other) - _skimage_ssim(img, other)) <= SSIM_TOL


@pytest.mark.parametrize(("height", "width"), [
    (7, 7), (7, 8), (8, 7), (9, 9), (7, 31), (31, 7), (10, 13), (13, 10), (33, 65), (64, 48)])
@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_of_small_random_images_equals_skimage(height, width, seed):
    """Uncorrelated random images (SSIM near 0, often negative), and one a noisy copy."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for b in (rng.integers(0, 256, a.shape, dtype=np.uint8), _noisy(a, 15, seed)):
        assert abs(metrics.ssim(a, b) - _skimage_ssim(a, b)) <= SSIM_TOL


@pytest.mark.parametrize(("va", "vb"), [(0, 0), (0, 255), (255, 255), (10, 200), (128, 129)])
def test_ssim_of_flat_images_equals_skimage(va, vb):
    """No variance at all: only the luminance term and the constants are left."""
    a = np.full((9, 12, 3), va, np.uint8)
    b = np.full((9, 12, 3), vb, np.uint8)
    assert abs(metrics.ssim(a, b) - _skimage_ssim(a, b)) <= SSIM_TOL


def test_ssim_of_extreme_random_images_equals_skimage():
    """Only 0 and 255: the largest window sums and variances."""
    rng = np.random.default_rng(5)
    a = (rng.integers(0, 2, (40, 50, 3)) * 255).astype(np.uint8)
    b = (rng.integers(0, 2, (40, 50, 3)) * 255).astype(np.uint8)
    for other in (b, 255 - a, a):
        assert abs(metrics.ssim(a, other) - _skimage_ssim(a, other)) <= SSIM_TOL


def test_ssim_of_non_contiguous_views_equals_skimage(coffee):
    a = coffee[::2, ::3]  # strided views, as a caller might pass them
    b = _noisy(coffee, 20)[1::2, ::3]
    assert not a.flags.c_contiguous
    assert abs(metrics.ssim(a, b) - _skimage_ssim(a, b)) <= SSIM_TOL


@pytest.mark.parametrize("strip_pixels", [1, 5000, 1 << 18])
def test_ssim_of_rgba_equals_skimage_on_premultiplied(monkeypatch, chelsea, strip_pixels):
    img = _with_alpha(chelsea)
    other = _noisy(img, 25, seed=3)  # noise in color and alpha
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", strip_pixels)
    assert abs(metrics.ssim(img, other) - _skimage_ssim(img, other)) <= SSIM_TOL
    # the color under a fully transparent pixel does not count
    hidden = img.copy()
    clear = hidden[:, :, 3] == 0
    assert clear.any()
    hidden[clear, :3] = 255 - hidden[clear, :3]
    assert metrics.ssim(hidden, other) == pytest.approx(metrics.ssim(img, other), abs=1e-15)


def test_ssim_same_value_on_one_and_two_threads(monkeypatch, astronaut):
    """The strips' cut does not depend on the threads, nor does the sum: bit for bit."""
    other = _noisy(astronaut, 30, seed=4)
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", 9000)  # 29 strips of 8 or 9 rows
    values = []
    for threads in (1, 2):
        monkeypatch.setattr(metrics, "_threads", lambda threads=threads: threads)
        values.append(metrics.ssim(astronaut, other))
    assert values[0] == values[1]
    assert abs(values[0] - _skimage_ssim(astronaut, other)) <= SSIM_TOL


def test_ssim_kernel_has_one_compiled_version(coffee):
    """Writeable or read-only, RGB or RGBA, any window: the kernel sees one argument type list
    (each more would compile, and load from the cache, on its own)."""
    from kmq._kernels.ssim import ssim_sum

    frozen = coffee[:40, :50].copy()
    frozen.flags.writeable = False
    writeable = _noisy(frozen, 10)
    rgba = _with_alpha(writeable)
    metrics.ssim(frozen, writeable)
    metrics.ssim(writeable, frozen, win_size=3)
    metrics.ssim(rgba, rgba)
    metrics.ssim_indexed(frozen, np.zeros((2, 3), np.uint8), np.zeros((40, 50), np.int16))
    assert len(ssim_sum.signatures) == 1


def test_ssim_imports_neither_scikit_image_nor_scipy(tmp_path):
    """In a fresh process SSIM loads no skimage and none of scipy's filters, and it still works
    where importing either fails (numba only imports scipy for its own linear algebra)."""
    src = str(Path(metrics.__file__).resolve().parents[1])
    code = """if True:
        import sys
        if sys.argv[1] == "blocked":
            sys.modules["scipy"] = sys.modules["skimage"] = None  # any import of them fails
        import numpy as np
        import kmq.metrics as m
        rng = np.random.default_rng(0)
        a = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
        pal = rng.integers(0, 256, (5, 3), dtype=np.uint8)
        idx = rng.integers(0, 5, (40, 30))
        print(repr(m.ssim(a, pal[idx])), repr(m.ssim_indexed(a, pal, idx)))
        loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("skimage", "scipy")
                        and sys.modules[n] is not None)
        print(" ".join(loaded))
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = {}
    for mode in ("normal", "blocked"):
        run = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                             env=env, cwd=tmp_path, check=True)
        values, loaded = [*run.stdout.splitlines(), ""][:2]
        out[mode] = values
        names = loaded.split()
        assert not [n for n in names if n.split(".")[0] == "skimage"]
        assert not [n for n in names if n.startswith(("scipy.ndimage", "scipy.signal"))]
        if mode == "blocked":
            assert names == []
    assert out["normal"] == out["blocked"]
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    pal = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    expected = _skimage_ssim(a, pal[rng.integers(0, 5, (40, 30))])
    assert all(abs(float(v) - expected) <= SSIM_TOL for v in out["normal"].split())


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
    assert abs(metrics.ssim_indexed(img, palette, indices) - expected) <= SSIM_TOL
    mse = np.mean((img.astype(np.float64) - palette[indices]) ** 2)
    assert metrics.mse_indexed(img, palette, indices) == pytest.approx(mse, rel=1e-12)


def test_ssim_memory_does_not_grow_with_the_image_height(astronaut, monkeypatch):
    """The peak of extra memory is set by the strip, not by the image: the rebuilt quantized
    strip of ssim_indexed, the contiguous copy of a strided view's strip. (The kernel's own
    window sums, width x channels x 5 float64, are numba's allocation, which tracemalloc does
    not see.)"""
    # one thread: with two, the peak holds one or two strips as the threads' phases line up
    monkeypatch.setattr(metrics, "_threads", lambda: 1)
    tall = np.tile(astronaut, (4, 2, 1))[:, :600]  # 2048 x 600: strips of 339 and 409 rows
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    metrics.ssim(astronaut[:9, :9], astronaut[:9, :9])  # imports and kernel load: not traced
    peaks = []
    for rows in (1024, 2048):
        a = np.ascontiguousarray(tall[:rows])
        indices = rng.integers(0, 16, (rows, 600))
        b = _noisy(a, 10)
        tracemalloc.start()
        metrics.ssim_indexed(a, palette, indices)
        metrics.ssim(a[:, ::-1], b[:, ::-1])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    strip_bytes = (metrics._STRIP_PIXELS + 6 * 600) * 3
    assert peaks[1] < 1.3 * peaks[0]
    assert peaks[1] < 2.5 * strip_bytes  # two strips (a's and b's copies) and small change


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


def test_ssim_indexed_accepts_fast_and_gives_the_same_value(astronaut):
    rng = np.random.default_rng(4)
    palette = rng.integers(0, 256, (32, 3), dtype=np.uint8)
    indices = rng.integers(0, 32, astronaut.shape[:2])
    exact = metrics.ssim_indexed(astronaut, palette, indices)
    assert metrics.ssim_indexed(astronaut, palette, indices, fast=True) == exact
    assert abs(exact - _skimage_ssim(astronaut, palette[indices])) <= SSIM_TOL


@pytest.mark.parametrize("strip_pixels", [3000, 1 << 18])
def test_ssim_indexed_of_rgba_equals_skimage_on_premultiplied(monkeypatch, coffee, strip_pixels):
    img = _with_alpha(coffee, seed=2)
    rng = np.random.default_rng(6)
    palette = rng.integers(0, 256, (40, 4), dtype=np.uint8)
    palette[:3, 3] = [0, 255, 128]  # a transparent, an opaque and a translucent entry
    indices = rng.integers(0, 40, img.shape[:2]).astype(np.uint8)
    monkeypatch.setattr(metrics, "_STRIP_PIXELS", strip_pixels)
    expected = _skimage_ssim(img, palette[indices])
    assert abs(metrics.ssim_indexed(img, palette, indices) - expected) <= SSIM_TOL


@pytest.mark.shared_images
@pytest.mark.parametrize("name", ["cq100/macaws.png", "cq100/tulip_field.png",
                                  "unsplash/boothbay_1920x1280.jpg"])
def test_ssim_of_shared_photos_equals_skimage(shared_images, name):
    """Real photos taller than one strip (two threads by default), against a median-cut
    quantization and against a noisy copy."""
    path = shared_images / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"))
    palette, indices = _pillow_indexed(img, 64)
    expected = _skimage_ssim(img, palette[indices])
    assert abs(metrics.ssim_indexed(img, palette, indices) - expected) <= SSIM_TOL
    other = _noisy(img, 12, seed=7)
    assert abs(metrics.ssim(img, other) - _skimage_ssim(img, other)) <= SSIM_TOL
