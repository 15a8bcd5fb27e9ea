"""``kmq.web.api``: the page's parameters and results, checked against the library."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
from PIL import Image

import kmq
from kmq import codecs, files
from kmq.colorspace import SPACES
from kmq.io import SourceImage, binary_alpha, load_image
from kmq.web import api


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def crop(request) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:164, 200:264])


@pytest.fixture(scope="module")
def cutout(crop) -> np.ndarray:
    """RGBA: transparent around, opaque inside, a translucent band."""
    rgba = np.dstack([crop[:48, :48], np.zeros((48, 48), np.uint8)])
    rgba[8:40, 8:40, 3] = 255
    rgba[4:44, 4:8, 3] = 100
    return rgba


def source(pixels: np.ndarray, name: str = "x.png") -> SourceImage:
    return load_image(png_bytes(pixels), name=name)


# ---------------------------------------------------------------------------------------------
# Parameters


@pytest.mark.parametrize(("query", "message"), [
    ({"k": "1"}, "k must be an integer in 2..256"), ({"k": "257"}, "k must be"),
    ({"k": "sixteen"}, "k must be"), ({"k": "-4"}, "k must be"),
    ({"colorspace": "hsv"}, "colorspace must be one of srgb, wsrgb, linear, oklab"),
    ({"dither": "1.5"}, "dither must be"), ({"dither": "nan"}, "dither must be"),
    ({"dither": "lots"}, "dither must be"),
    ({"format": "jpg"}, "format must be one of png, webp, gif, kmq; got 'jpg'"),
    ({"K": "8"}, "unknown parameter 'K'"),
])
def test_bad_parameters_are_400_with_the_choices(query, message):
    with pytest.raises(api.ApiError) as caught:
        api.parse_params(query)
    assert caught.value.status == 400 and message in caught.value.message


def test_parameters_accept_what_the_library_offers():
    assert api.parse_params({}) == api.Params(k=api.DEFAULT_K, colorspace="srgb", dither=0.0,
                                              format=codecs.DEFAULT)
    for k in (files.K_MIN, files.K_MAX):
        assert api.parse_params({"k": str(k)}).k == k
    for space in SPACES:
        assert api.parse_params({"colorspace": space.upper()}).colorspace == space
    for name in codecs.names():
        assert api.parse_params({"format": f".{name.upper()}"}).format == name
    assert api.parse_params({"dither": "0.25"}).dither == 0.25
    assert api.parse_params({"dither": "off"}).dither == 0.0


def test_page_config_lists_the_registry_and_the_library_constants():
    config = api.page_config(1234, 5678)
    assert (config["max_upload_bytes"], config["max_pixels"]) == (1234, 5678)
    assert (config["k_min"], config["k_max"]) == (files.K_MIN, files.K_MAX)
    assert config["k_min"] <= config["k_default"] <= config["k_max"]
    assert config["colorspaces"] == list(SPACES)
    assert config["formats"] == [{"name": c.name, "title": c.title, "extension": c.extension,
                                  "mime": c.mime} for c in codecs.CODECS.values()]
    from kmq.samples import SAMPLES

    assert config["samples"] == list(SAMPLES)


def test_output_names_are_safe_and_as_kmq_compress_names_them():
    for codec in codecs.CODECS.values():
        name = api.output_name("photo.jpg", codec)
        assert name == files.default_output("photo.jpg", codec.name).name
    assert api.output_name("../../etc/pass wd.png", codecs.get("png")) == "pass_wd-kmq.png"
    assert api.output_name("", codecs.get("gif")) == "image-kmq.gif"
    assert api.output_name("....png", codecs.get("png")) == "image-kmq.png"


# ---------------------------------------------------------------------------------------------
# Results


@pytest.mark.parametrize("fmt", codecs.names())
@pytest.mark.parametrize(("k", "space", "dither"), [(8, "srgb", 0.0), (32, "oklab", 0.75)])
def test_result_is_the_file_kmq_quantize_gives(crop, fmt, k, space, dither):
    image = source(crop, "crop.png")
    r = api.quantize(image, api.Params(k=k, colorspace=space, dither=dither, format=fmt))
    q = kmq.quantize(crop, k, seed=0, color_space=space, dither=dither)
    codec = codecs.get(fmt)
    data = base64.b64decode(r["output"]["base64"])
    assert data == codec.encode(q)  # the same bytes as the library's
    assert r["output"]["mime"] == codec.mime
    assert r["output"]["filename"] == f"crop-kmq{codec.extension}"
    assert r["params"] == {"k": k, "colorspace": space, "dither": dither, "format": fmt,
                           "max_bytes": None}
    assert (r["k"], r["distinct_colors"], r["mse"]) == (q.k, q.distinct_colors, round(q.mse, 6))
    assert r["psnr"] == pytest.approx(q.psnr, abs=1e-4)
    assert r["input_bytes"] == image.n_bytes and r["output_bytes"] == len(data)
    assert r["size_change"] == pytest.approx(len(data) / image.n_bytes - 1, abs=1e-6)
    assert r["ratio_input"] == pytest.approx(image.n_bytes / len(data), rel=1e-3)
    assert r["ratio_raw"] == pytest.approx(crop.size / len(data), rel=1e-3)
    assert r["bits_per_pixel"] == pytest.approx(8 * len(data) / (64 * 64), abs=1e-4)
    ssim = kmq.metrics.ssim_indexed(crop, q.palette, q.indices, fast=True)
    assert r["ssim"] == pytest.approx(ssim, abs=1e-6)
    # a palette whose counts are the index map's, largest share first
    counts = np.bincount(q.indices.ravel(), minlength=len(q.palette))
    expected = {"#" + bytes(q.palette[i]).hex(): int(counts[i]) for i in range(len(q.palette))
                if counts[i]}
    assert {p["hex"]: p["count"] for p in r["palette"]} == expected
    shares = [p["share"] for p in r["palette"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1, abs=1e-4)
    # a browser shows every format but .kmq; for that one, the same pixels as an indexed PNG
    if codec.mime.startswith("image/"):
        assert r["preview"] is None
    else:
        assert r["preview"]["mime"] == "image/png"
        assert base64.b64decode(r["preview"]["base64"]) == codecs.get("png").encode(q)


def test_transparent_upload_comes_back_transparent(cutout):
    image = source(cutout, "cutout.png")
    for fmt in codecs.names():
        r = api.quantize(image, api.Params(k=8, format=fmt))
        data = base64.b64decode(r["output"]["base64"])
        decoded = codecs.get(fmt).decode(data).to_array()
        alpha = decoded[:, :, 3]
        assert (alpha[cutout[:, :, 3] == 0] == 0).all() and (alpha[8:40, 8:40] == 255).all()
        assert r["k"] <= 8 and r["ratio_raw"] == pytest.approx(cutout.size / len(data),
                                                              rel=1e-3)
        # GIF holds one transparent color: the image is quantized with binary alpha
        pixels = binary_alpha(cutout) if fmt == "gif" else cutout
        assert data == codecs.get(fmt).encode(kmq.quantize(pixels, 8, seed=0)), fmt


def test_a_tiny_image_has_no_ssim_and_an_exact_one_no_psnr():
    flat = np.full((5, 6, 3), 77, np.uint8)
    r = api.quantize(source(flat), api.Params(k=4))
    assert r["ssim"] is None and r["psnr"] is None and r["mse"] == 0 and r["k"] == 1


def test_warm_up_runs_and_names_numbas_threading_layer():
    assert api.warm_up() in {"tbb", "omp", "workqueue"}


# ---------------------------------------------------------------------------------------------
# Cancelling


def test_a_request_cancelled_before_it_starts_does_nothing(crop, monkeypatch):
    calls = []
    monkeypatch.setattr(files, "compress_image", lambda *a, **k: calls.append(a))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(kmq.CancelledError):
        api.quantize(source(crop), api.Params(k=8), cancel=cancel)
    assert calls == []


def record_checks(monkeypatch, set_at: int | None = None):
    """Record every progress check of :func:`kmq.files.compress_image` (its stage), and set the
    request's cancel event at the ``set_at``-th check, before that check is answered."""
    real = files.compress_image
    stages: list[str] = []
    lock = threading.Lock()

    def spy(pixels, options, *, name="image", progress=None):
        def recorded(stage, fraction):
            with lock:  # seeding threads check side by side
                stages.append(stage)
                if len(stages) == set_at:
                    cancel.set()
            return progress(stage, fraction)

        return real(pixels, options, name=name, progress=recorded)

    cancel = threading.Event()
    monkeypatch.setattr(files, "compress_image", spy)
    return stages, cancel


@pytest.mark.parametrize("when", ["seeding", "halfway"])
def test_a_request_cancelled_while_quantizing_stops_where_it_is(monkeypatch, when):
    from skimage import data

    image = source(np.ascontiguousarray(data.coffee()[:200, :300]))
    params = api.Params(k=256)
    full, cancel = record_checks(monkeypatch)
    api.quantize(image, params, cancel=cancel)
    assert full[-1] == "encoding" and "kmeans" in full

    # set at the first check of the k-means seedings (run side by side on threads), or halfway
    # through: the checks made after it (by threads already running) are in stages begun
    # before it, so no later stage starts; nothing is encoded, and the request ends cancelled
    set_at = full.index("kmeans") + 1 if when == "seeding" else len(full) // 2
    stages, cancel = record_checks(monkeypatch, set_at=set_at)
    with pytest.raises(kmq.CancelledError):
        api.quantize(image, params, cancel=cancel)
    before, after = stages[:set_at], stages[set_at:]
    assert set(after) <= set(before), (before[-1], after)
    assert "encoding" not in stages and len(stages) < len(full)


# ---------------------------------------------------------------------------------------------
# A byte budget


@pytest.mark.parametrize("fmt", ["png", "kmq"])
def test_a_byte_budget_gives_the_most_colors_whose_file_fits(crop, fmt):
    from kmq.targets import quantize_to_size

    image = source(crop, "crop.png")
    codec = codecs.get(fmt)
    full = len(codec.encode(kmq.quantize(crop, 64, seed=0)))
    budget = full // 2
    r = api.quantize(image, api.Params(k=64, format=fmt, max_bytes=budget))
    data = base64.b64decode(r["output"]["base64"])
    assert len(data) == r["output_bytes"] <= budget and r["params"]["max_bytes"] == budget
    # the file decodes to the image at the K it says, the library's own answer for the budget
    q, expected = quantize_to_size(crop, budget, codec.encode, max_colors=64, seed=0)
    assert data == expected and r["k"] == q.k < 64
    assert np.array_equal(codec.decode(data).to_array()[:, :, :3], q.palette[q.indices][:, :, :3])
    # one more color does not fit: it is the lowest error within the budget
    assert len(codec.encode(kmq.quantize(crop, q.k_requested + 1, seed=0))) > budget


def test_an_impossible_byte_budget_says_so():
    from kmq.errors import SizeBudgetError

    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(SizeBudgetError, match="even 2 colors make a file of"):
        api.quantize(source(noise), api.Params(k=16, max_bytes=100))


@pytest.mark.parametrize("text", ["0", "-5", "1.5", "lots", "10kB"])
def test_a_bad_byte_budget_is_400(text):
    with pytest.raises(api.ApiError, match="max_bytes must be a whole number"):
        api.parse_params({"max_bytes": text})
    assert api.parse_params({"max_bytes": ""}).max_bytes is None
