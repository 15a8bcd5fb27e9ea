"""``kmq serve``'s HTTP API, on a real uvicorn server: limits, errors, results, concurrency."""

from __future__ import annotations

import base64
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

import kmq
from kmq import metrics
from kmq.web import LOOPBACK_HOSTS, BackgroundServer, ServerConfig, create_app
from kmq.web import server as web

UPLOAD_CAP = 200_000
PIXEL_CAP = 300 * 300


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def decode_rgb(b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        return np.asarray(im.convert("RGB"))


def colors_of(rgb: np.ndarray) -> int:
    return len(np.unique(rgb.reshape(-1, 3), axis=0))


@pytest.fixture(scope="module")
def server():
    config = ServerConfig(max_upload_bytes=UPLOAD_CAP, max_pixels=PIXEL_CAP, max_images=64,
                          workers=2, allowed_hosts=LOOPBACK_HOSTS)
    with BackgroundServer(create_app(config)) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A 256x256 crop of the astronaut photo (scikit-image sample: no download)."""
    return np.ascontiguousarray(data.astronaut()[:256, 128:384])


@pytest.fixture
def crop_png(tmp_path, crop) -> Path:
    path = tmp_path / "astronaut-crop.png"
    Image.fromarray(crop).save(path)
    return path


def upload(client: httpx.Client, path: Path) -> dict:
    response = client.post("/api/images", content=path.read_bytes(),
                           headers={"X-Filename": path.name})
    assert response.status_code == 201, response.text
    return response.json()


# ---------------------------------------------------------------------------------------------
# The page and its limits


def test_page_is_served_offline_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200
    assert 'src="app.js"' in page.text and 'href="style.css"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("index.html", "app.js", "style.css"):
        text = (web.STATIC_DIR / name).read_text()
        assert client.get(f"/{name}").text == text
        # nothing is fetched from elsewhere: no absolute URLs, no @import, no web fonts
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert "@import" not in text and "@font-face" not in text
    config = client.get("/api/config").json()
    assert config["max_upload_bytes"] == UPLOAD_CAP and config["max_pixels"] == PIXEL_CAP
    assert (config["k_min"], config["k_max"]) == (2, 256)


def test_oversize_upload_gets_413_with_a_message(client, tmp_path):
    big = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(big)  # about 500 KB, over the 200 KB cap
    assert big.stat().st_size > UPLOAD_CAP
    for url in ("/api/images", "/api/quantize?k=8"):
        response = client.post(url, content=big.read_bytes())
        assert response.status_code == 413
        assert "over the limit of 200,000 bytes" in response.json()["error"]

    def chunks():  # no Content-Length: the cap is enforced while the body streams in
        body = big.read_bytes()
        for start in range(0, len(body), 32_768):
            yield body[start:start + 32_768]

    response = client.post("/api/images", content=chunks())
    assert response.status_code == 413
    assert "over the limit" in response.json()["error"]


def test_image_over_the_pixel_cap_gets_413(client):
    flat = np.zeros((400, 400, 3), np.uint8)  # a small file of 160,000 pixels
    response = client.post("/api/images", content=png_bytes(flat),
                           headers={"X-Filename": "flat.png"})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error.startswith("flat.png: 400x400") and "over the limit of 90,000 pixels" in error


@pytest.mark.parametrize(("body", "message"), [
    (b"just some text, not an image\n", "not an image file"),
    (b"", "empty request body"),
    ("truncated", "cannot decode image"),
])
def test_non_image_gets_400(client, crop, body, message):
    if body == "truncated":
        body = png_bytes(crop)[:2000]
    for url in ("/api/images", "/api/quantize?k=4"):
        response = client.post(url, content=body, headers={"X-Filename": "notes.txt"})
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]


@pytest.mark.parametrize(("query", "name"), [
    ({"k": "1"}, "k must be"), ({"k": "257"}, "k must be"), ({"k": "sixteen"}, "k must be"),
    ({"colorspace": "hsv"}, "colorspace must be"), ({"dither": "1.5"}, "dither must be"),
    ({"dither": "nan"}, "dither must be"), ({"format": "jpg"}, "format must be"),
    ({"K": "8"}, "unknown parameter 'K'"),
])
def test_bad_parameters_get_400(client, crop_png, query, name):
    token = upload(client, crop_png)["token"]
    response = client.get(f"/api/images/{token}/quantize", params=query)
    assert response.status_code == 400
    assert name in response.json()["error"]


def test_unknown_token_and_route_get_json_404(client):
    response = client.get("/api/images/no-such-token/quantize", params={"k": 4})
    assert response.status_code == 404
    assert "upload the image again" in response.json()["error"]
    assert client.get("/api/nothing-here").json() == {"error": "Not Found"}


def test_foreign_host_header_is_refused(client):
    response = client.get("/api/config", headers={"Host": "attacker.example:8000"})
    assert response.status_code == 400
    assert "Host" in response.json()["error"]


# ---------------------------------------------------------------------------------------------
# Results


def test_result_png_has_at_most_k_colors_and_the_psnr_kmq_metrics_gives(client, crop_png, crop):
    info = upload(client, crop_png)
    assert (info["width"], info["height"], info["input_bytes"]) == (
        256, 256, crop_png.stat().st_size)
    original = decode_rgb(base64.b64encode(client.get(info["original"]).content).decode())
    assert np.array_equal(original, crop)

    response = client.get(f"/api/images/{info['token']}/quantize", params={"k": 16})
    assert response.status_code == 200
    r = response.json()
    assert r["params"] == {"k": 16, "colorspace": "srgb", "dither": 0.0, "format": "png"}
    png = base64.b64decode(r["output"]["base64"])
    assert r["output_bytes"] == len(png) and r["output"]["filename"] == "astronaut-crop-kmq.png"
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.mode == "P" and im.size == (256, 256)
        rgb = np.asarray(im.convert("RGB"))
    assert colors_of(rgb) <= 16 and colors_of(rgb) == r["k"] == len(r["palette"])
    assert r["psnr"] == pytest.approx(metrics.psnr(crop, rgb), abs=1e-4)
    assert r["ssim"] == pytest.approx(metrics.ssim(crop, rgb), abs=1e-4)
    assert r["mse"] == pytest.approx(metrics.mse(crop, rgb), abs=1e-5)
    assert r["bits_per_pixel"] == pytest.approx(8 * len(png) / 256**2, abs=1e-4)
    assert r["ratio_input"] == pytest.approx(crop_png.stat().st_size / len(png), rel=1e-4)
    # a palette whose counts and shares are the pixels'
    colors, counts = np.unique(rgb.reshape(-1, 3), axis=0, return_counts=True)
    by_hex = {"#{:02x}{:02x}{:02x}".format(*c): n for c, n in zip(colors, counts, strict=True)}
    assert {p["hex"]: p["count"] for p in r["palette"]} == by_hex
    shares = [p["share"] for p in r["palette"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1, abs=1e-4)


def test_every_format_holds_the_same_pixels(client, tmp_path, crop):
    path = tmp_path / "small.png"
    Image.fromarray(crop[64:192, 64:192]).save(path)
    token = upload(client, path)["token"]
    results = {fmt: client.get(f"/api/images/{token}/quantize",
                               params={"k": 8, "format": fmt}).json()
               for fmt in ("png", "webp", "gif", "kmq")}
    reference = decode_rgb(results["png"]["output"]["base64"])
    assert colors_of(reference) <= 8
    for fmt in ("webp", "gif"):
        r = results[fmt]
        assert r["output"]["mime"] == f"image/{fmt}" and r["preview"] is None
        assert r["output"]["filename"].endswith(f"-kmq.{fmt}")
        assert np.array_equal(decode_rgb(r["output"]["base64"]), reference), fmt
    r = results["kmq"]
    container = kmq.decode(base64.b64decode(r["output"]["base64"]))
    assert (container.width, container.height) == (128, 128) and len(container.palette) <= 8
    assert np.array_equal(container.to_rgb(), reference)
    assert np.array_equal(decode_rgb(r["preview"]["base64"]), reference)
    sizes = {fmt: results[fmt]["output_bytes"] for fmt in results}
    assert sizes["kmq"] < sizes["png"]  # the container is the smallest, as the README says


def test_dithering_and_color_space_change_the_result(client, crop_png, crop):
    token = upload(client, crop_png)["token"]
    plain = client.get(f"/api/images/{token}/quantize", params={"k": 8}).json()
    response = client.get(f"/api/images/{token}/quantize",
                          params={"k": 8, "dither": "0.75", "colorspace": "oklab"})
    assert response.status_code == 200, response.text
    dithered = response.json()
    assert dithered["params"] == {"k": 8, "colorspace": "oklab", "dither": 0.75,
                                  "format": "png"}
    rgb = decode_rgb(dithered["output"]["base64"])
    assert not np.array_equal(rgb, decode_rgb(plain["output"]["base64"]))
    assert colors_of(rgb) <= 8
    assert dithered["psnr"] == pytest.approx(metrics.psnr(crop, rgb), abs=1e-4)
    assert dithered["psnr"] < plain["psnr"]  # dithering raises the error


def test_twenty_concurrent_uploads_each_get_their_own_result(server):
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    jobs = []
    for i in range(20):
        h, w = 32 + 4 * i, 80 - 2 * i  # every request a different size...
        photo = photos[i % 3]
        y, x = (7 * i) % (photo.shape[0] - h), (11 * i) % (photo.shape[1] - w)
        rgb = np.ascontiguousarray(photo[y:y + h, x:x + w])
        jobs.append((rgb, 2 + (i * 5) % 15, i % 2 == 0))  # ...K and route
    results: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def post(i: int) -> None:
        rgb, k, one_shot = jobs[i]
        try:
            with httpx.Client(base_url=server.url, timeout=120) as c:
                start.wait()
                if one_shot:
                    response = c.post("/api/quantize", params={"k": k}, content=png_bytes(rgb))
                else:
                    token = c.post("/api/images", content=png_bytes(rgb)).json()["token"]
                    response = c.get(f"/api/images/{token}/quantize", params={"k": k})
            results[i] = (response.status_code, response.json())
        except Exception as exc:  # reported below, with the request's number
            results[i] = (None, repr(exc))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    for i, ((rgb, k, _), (status, r)) in enumerate(zip(jobs, results, strict=True)):
        assert status == 200, (i, r)
        h, w = rgb.shape[:2]
        assert (r["width"], r["height"], r["params"]["k"]) == (w, h, k), i
        out = decode_rgb(r["output"]["base64"])
        assert out.shape == rgb.shape and colors_of(out) == r["k"] <= k, i
        assert r["psnr"] == pytest.approx(metrics.psnr(rgb, out), abs=1e-4), i


# ---------------------------------------------------------------------------------------------
# Pieces


def test_image_store_evicts_least_recently_used_within_its_byte_budget():
    image = web.StoredImage("x", np.zeros((10, 10, 3), np.uint8), 1)  # 300 bytes
    store = web.ImageStore(max_images=10, max_bytes=1000)
    a, b, c = (store.put(image) for _ in range(3))
    assert store.get(a) is image  # a is now the most recently used
    store.put(image)  # 1200 bytes: the least recently used, b, goes
    assert store.get(b) is None and store.get(a) is image and store.get(c) is image
    assert len(store) == 3
    huge = web.StoredImage("h", np.zeros((30, 30, 3), np.uint8), 1)
    token = store.put(huge)  # alone over the budget: kept, everything else goes
    assert store.get(token) is huge and len(store) == 1


def test_decoded_upload_is_read_only_and_keeps_its_alpha(crop):
    rgba = np.dstack([crop[:32, :32], np.full((32, 32), 128, np.uint8)])
    image = web.decode_image(png_bytes(rgba), "alpha.png")
    assert np.array_equal(image.rgb, rgba) and not image.rgb.flags.writeable
    assert image.warnings == ()


def test_transparent_upload_comes_back_transparent(crop):
    rgba = np.dstack([crop[:48, :48], np.zeros((48, 48), np.uint8)])
    rgba[8:40, 8:40, 3] = 255
    rgba[4:44, 4:8, 3] = 100
    image = web.decode_image(png_bytes(rgba), "cutout.png")
    for fmt in ("png", "webp", "gif"):
        result = web.quantize_image(image, web.Params(k=8, format=fmt))
        data = base64.b64decode(result["output"]["base64"])
        alpha = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[:, :, 3]
        assert (alpha[rgba[:, :, 3] == 0] == 0).all() and (alpha[8:40, 8:40] == 255).all()
        assert result["k"] <= 8


def test_work_for_a_client_that_went_away_is_cancelled(server, monkeypatch):
    ended = []
    real = web.quantize_image

    def spy(image, params, *, cancel=None):
        # The work must outlast the client whatever the machine's speed: hold it until the
        # server notices the disconnect (or 20 s pass, and the quantize below then finishes).
        cancel.wait(20)
        try:
            return real(image, params, cancel=cancel)
        except BaseException as exc:
            ended.append(type(exc))
            raise

    monkeypatch.setattr(web, "quantize_image", spy)
    coffee = np.ascontiguousarray(data.coffee()[50:350, 150:450])
    with httpx.Client(base_url=server.url) as c:
        token = c.post("/api/images", content=png_bytes(coffee)).json()["token"]
        with pytest.raises(httpx.TimeoutException):
            c.get(f"/api/images/{token}/quantize", params={"k": 256}, timeout=0.3)
    deadline = time.monotonic() + 30
    while not ended and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended == [kmq.CancelledError]


def test_a_cancelled_request_stops(crop):
    image = web.StoredImage("x", crop, 1)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(kmq.CancelledError):
        web.quantize_image(image, web.Params(k=8), cancel=cancel)
    # set while quantizing: the progress callback stops k-means. The event turns set at its
    # 20th check (a full run checks it ~70 times), so no timer races the machine's speed.

    class SetMidway(threading.Event):
        checks = 0
        lock = threading.Lock()

        def is_set(self):
            with self.lock:  # the seeding threads check it side by side
                self.checks += 1
                return self.checks >= 20

    cancel = SetMidway()
    with pytest.raises(kmq.CancelledError):
        web.quantize_image(web.StoredImage("x", np.ascontiguousarray(
            data.coffee()[:300, :300]), 1), web.Params(k=256), cancel=cancel)
    # it stopped at once: a check or two more from the threads running beside the first that
    # saw the event set, not the ~50 checks left of a whole run
    assert 20 <= cancel.checks <= 24


# ---------------------------------------------------------------------------------------------
# The command


def test_serve_warns_off_loopback_and_guards_hosts_on_loopback(monkeypatch):
    from kmq.cli import app

    calls = []
    monkeypatch.setattr("kmq.web.serve", lambda sock, application: calls.append(
        (sock.getsockname(), application.state.config)) or sock.close())
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--port", "0", "--max-upload-mb", "2"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr and "serving on http://127.0.0.1:" in result.stderr
    (address, config), = calls
    assert address[0] == "127.0.0.1" and config.max_upload_bytes == 2_000_000
    assert "localhost" in config.allowed_hosts
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 0
    assert result.stderr.startswith("kmq: warning: listening on 0.0.0.0: ")
    assert "reachable from other machines" in result.stderr
    assert calls[1][1].allowed_hosts is None


def test_serve_reports_a_port_in_use():
    from kmq.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"kmq: error: cannot listen on 127.0.0.1:{port} (")


def test_kmq_serve_process_serves_the_page_and_stops_on_ctrl_c():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kmq", "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        match = re.match(r"kmq: serving on (http://127\.0\.0\.1:\d+) ", line)
        assert match, line
        deadline = time.monotonic() + 60
        while True:  # the server starts after loading kmq's kernels
            try:
                page = httpx.get(match[1] + "/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert page.status_code == 200 and "kmq" in page.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
