"""kmq.report.measure: the files and numbers of a report, each against an independent reference.

kmq's files are compared with what kmq compress's file layer makes of the same image, and
decoded by Pillow; PSNR is recomputed with NumPy and SSIM by scikit-image; the JPEG and WebP
files are re-encoded with Pillow directly, and the size matching is checked as the property it
promises (the largest file not above the target, the next quality above it).
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import structural_similarity

import kmq
from kmq import CancelledError, ImageReadError
from kmq.files import CompressOptions, compress_image
from kmq.report import make_report, match_size, parse_ks

KS = (4, 16, 64)
SEED = 3


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """scikit-image's astronaut, downscaled to 64x64 (thousands of colors)."""
    return np.asarray(Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def photo_report(photo):
    return make_report(photo, KS, seed=SEED, figures=False)


def decode_rgb(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"))


def numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def pillow_encode(rgb: np.ndarray, codec: str, quality: int) -> bytes:
    """The settings the report states, through Pillow directly."""
    buf = io.BytesIO()
    if codec == "jpeg":
        Image.fromarray(rgb).save(buf, "JPEG", quality=quality, optimize=True)
    else:
        Image.fromarray(rgb).save(buf, "WEBP", quality=quality, method=6)
    return buf.getvalue()


def test_results_equal_quantize(photo, photo_report):
    for r in photo_report.results:
        q = kmq.quantize(photo, r.k, seed=SEED)
        assert np.array_equal(q.palette, r.quantized.palette)
        assert np.array_equal(q.indices, r.quantized.indices)
        assert np.array_equal(q.counts, r.quantized.counts) and q.mse == r.quantized.mse


@pytest.mark.parametrize(("field", "fmt"), [("png", "png"), ("container", "kmq"),
                                            ("webp_lossless", "webp")])
def test_kmq_files_are_what_kmq_compress_writes(photo, photo_report, field, fmt):
    for r in photo_report.results:
        made = compress_image(photo, CompressOptions(k=r.k, seed=SEED, format=fmt))
        assert getattr(r, field).data == made.data, r.k


def test_kmq_files_decode_to_the_quantized_pixels_and_are_measured_right(photo, photo_report):
    for r in photo_report.results:
        pixels = r.quantized.palette[r.quantized.indices]
        for enc in (r.png, r.webp_lossless):  # Pillow decodes these two
            assert np.array_equal(decode_rgb(enc.data), pixels), (r.k, enc.codec)
        assert np.array_equal(kmq.decode(r.container.data).to_rgb(), pixels)
        with Image.open(io.BytesIO(r.png.data)) as im:
            assert im.mode == "P" and len(im.getpalette()) // 3 <= r.k
        psnr = numpy_psnr(photo, pixels)
        ssim = structural_similarity(photo, pixels, channel_axis=2, data_range=255)
        for enc in (r.png, r.container, r.webp_lossless):
            assert math.isclose(enc.psnr, psnr, rel_tol=1e-9), (r.k, enc.codec)
            assert math.isclose(enc.ssim, ssim, abs_tol=1e-6), (r.k, enc.codec)


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_matching_picks_the_largest_file_not_above_kmqs(photo, photo_report, codec):
    for r in photo_report.results:
        for own, matched in ((r.png, getattr(r, codec)),
                             (r.container, getattr(r, f"{codec}_small"))):
            again = pillow_encode(photo, codec, matched.quality)
            assert len(again) == matched.n_bytes, (r.k, matched.quality)
            if codec == "jpeg":
                assert again == matched.data
            lowest = 1 if codec == "jpeg" else 0
            if matched.n_bytes > own.n_bytes:  # only when even the lowest quality is larger
                assert matched.quality == lowest
            elif matched.quality < 100:
                assert len(pillow_encode(photo, codec, matched.quality + 1)) > own.n_bytes
            decoded = decode_rgb(matched.data)
            assert math.isclose(matched.psnr, numpy_psnr(photo, decoded), rel_tol=1e-9)


def test_match_size_holds_for_non_monotonic_encoders():
    sizes = [5, 9, 7, 12, 11, 20, 15, 30, 31, 29, 40]

    def encode(q):
        return bytes(sizes[q])

    for target in range(0, 45):
        q, blob = match_size(encode, target, (0, len(sizes) - 1))
        assert blob == encode(q)
        if sizes[0] > target:
            assert q == 0
            continue
        assert sizes[q] <= target
        assert q == len(sizes) - 1 or sizes[q + 1] > target


def test_progress_cancel_and_silence(photo, capsys):
    seen = []
    make_report(photo[:24, :24], [2, 4], figures=False,
                progress=lambda stage, f: seen.append((stage, f)))
    fractions = [f for _, f in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert any(stage.startswith("K = 4") for stage, _ in seen)
    with pytest.raises(CancelledError):
        make_report(photo[:24, :24], [2, 4], figures=False,
                    progress=lambda stage, f: stage.startswith("K = 4"))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_downscaling(photo):
    report = make_report(photo, [4], max_side=32, figures=False)
    assert report.size == (32, 32) and report.original_size == (64, 64)
    assert report.results[0].quantized.indices.shape == (32, 32)
    expected = np.asarray(Image.fromarray(photo).resize((32, 32), Image.Resampling.LANCZOS,
                                                        reducing_gap=3.0))
    assert np.array_equal(report.rgb, expected)


def test_a_file_is_read_by_the_file_layer(photo, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    report = make_report(path, [4], figures=False)
    assert report.name == "photo.png" and np.array_equal(report.rgb, photo)
    assert report.warnings == ()
    rgba = np.dstack([photo, np.full(photo.shape[:2], 100, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # returned in the report, not emitted
        report = make_report(path, [4], figures=False)
    assert report.warnings == (f"{path}: transparency dropped (this use needs RGB)",)
    assert np.array_equal(report.rgb, photo)
    with pytest.raises(ImageReadError, match="directory"):
        make_report(tmp_path, [4], figures=False)


def test_parse_ks():
    assert parse_ks("256,4, 16,4") == [4, 16, 256]
    for bad in ("", "4,,8", "x", "1,4", "257", "4.5"):
        with pytest.raises(ValueError):
            parse_ks(bad)


@pytest.mark.parametrize("ks", [[1], [4, 300], [], [4.0], [True], 16])
def test_bad_ks_are_refused_before_any_work(ks):
    seen = []
    with pytest.raises(ValueError):
        make_report(np.zeros((8, 8, 3), np.uint8), ks, figures=False,
                    progress=lambda stage, f: seen.append(stage))
    assert seen == []
