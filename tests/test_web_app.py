"""``kmq.web.app``: the page's HTTP API on a real uvicorn server: limits, errors, results,
concurrency, cancelling."""

from __future__ import annotations

import base64
import io
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

import kmq
from kmq import codecs, metrics
from kmq.web import LOOPBACK_HOSTS, BackgroundServer, ServerConfig, api, create_app
from kmq.web.app import STATIC_DIR

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
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC_DIR / name).read_text()
        assert client.get(f"/{name}").text == text
        # nothing is fetched from elsewhere: no absolute URLs, no @import, no web fonts
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert "@import" not in text and "@font-face" not in text
    config = client.get("/api/config").json()
    assert config == api.page_config(UPLOAD_CAP, PIXEL_CAP)
    # errors carry the headers too
    assert "default-src 'self'" in client.get("/api/nothing").headers["content-security-policy"]


def test_page_offers_no_list_of_its_own():
    """The K range, color spaces and formats come from /api/config, not from the page."""
    html = (STATIC_DIR / "index.html").read_text()
    assert "<option" not in html and not re.search(r'id="k"[^>]*\b(min|max|value)=', html)


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
    ({"k": "1"}, "k must be"), ({"colorspace": "hsv"}, "colorspace must be"),
    ({"dither": "1.5"}, "dither must be"), ({"format": "jpg"}, "format must be"),
    ({"K": "8"}, "unknown parameter 'K'"),
])
def test_bad_parameters_get_400(client, crop_png, query, name):
    token = upload(client, crop_png)["token"]
    response = client.get(f"/api/images/{token}/quantize", params=query)
    assert response.status_code == 400
    assert name in response.json()["error"]


def test_unknown_token_sample_and_route_get_json_404(client):
    response = client.get("/api/images/no-such-token/quantize", params={"k": 4})
    assert response.status_code == 404
    assert "upload the image again" in response.json()["error"]
    assert client.get("/api/images/no-such-token/original.png").status_code == 404
    response = client.post("/api/samples/nothing")
    assert response.status_code == 404 and "astronaut" in response.json()["error"]
    assert client.get("/api/nothing-here").json() == {"error": "Not Found"}


def test_foreign_host_header_is_refused(client):
    response = client.get("/api/config", headers={"Host": "attacker.example:8000"})
    assert response.status_code == 400
    assert "Host" in response.json()["error"]
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for host in ("localhost:8000", "[::1]:8000", "127.0.0.1"):
        assert client.get("/api/config", headers={"Host": host}).status_code == 200, host


# ---------------------------------------------------------------------------------------------
# Results


def test_result_png_is_kmq_quantizes_with_the_metrics_kmq_gives(client, crop_png, crop):
    info = upload(client, crop_png)
    assert (info["width"], info["height"], info["input_bytes"]) == (
        256, 256, crop_png.stat().st_size)
    assert info["name"] == crop_png.name and info["warnings"] == []
    original = decode_rgb(base64.b64encode(client.get(info["original"]).content).decode())
    assert np.array_equal(original, crop)

    response = client.get(f"/api/images/{info['token']}/quantize", params={"k": 16})
    assert response.status_code == 200
    r = response.json()
    assert r["params"] == {"k": 16, "colorspace": "srgb", "dither": 0.0, "format": "png",
                           "max_bytes": None}
    png = base64.b64decode(r["output"]["base64"])
    assert png == codecs.get("png").encode(kmq.quantize(crop, 16, seed=0))
    assert r["output_bytes"] == len(png) and r["output"]["filename"] == "astronaut-crop-kmq.png"
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.mode == "P" and im.size == (256, 256)
        rgb = np.asarray(im.convert("RGB"))
    assert colors_of(rgb) <= 16 and colors_of(rgb) == r["k"] == len(r["palette"])
    assert r["psnr"] == pytest.approx(metrics.psnr(crop, rgb), abs=1e-4)
    assert r["ssim"] == pytest.approx(metrics.ssim(crop, rgb), abs=1e-4)
    assert r["mse"] == pytest.approx(metrics.mse(crop, rgb), abs=1e-5)
    assert r["size_change"] == pytest.approx(len(png) / crop_png.stat().st_size - 1, abs=1e-6)
    # the one-shot route gives the same file
    once = client.post("/api/quantize", params={"k": 16}, content=crop_png.read_bytes(),
                       headers={"X-Filename": crop_png.name}).json()
    assert once["output"] == r["output"]


def test_every_format_holds_the_same_pixels(client, tmp_path, crop):
    path = tmp_path / "small.png"
    Image.fromarray(crop[64:192, 64:192]).save(path)
    token = upload(client, path)["token"]
    results = {fmt: client.get(f"/api/images/{token}/quantize",
                               params={"k": 8, "format": fmt}).json()
               for fmt in codecs.names()}
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
                                  "format": "png", "max_bytes": None}
    rgb = decode_rgb(dithered["output"]["base64"])
    assert not np.array_equal(rgb, decode_rgb(plain["output"]["base64"]))
    assert colors_of(rgb) <= 8
    assert dithered["psnr"] == pytest.approx(metrics.psnr(crop, rgb), abs=1e-4)
    assert dithered["psnr"] < plain["psnr"]  # dithering raises the error


def test_a_sample_is_stored_as_its_png_upload_would_be(client):
    response = client.post("/api/samples/chelsea")  # 451x300: over this server's pixel cap
    assert response.status_code == 413 and "chelsea.png: 451x300" in response.json()["error"]
    with BackgroundServer(create_app(ServerConfig(warm_up=False))) as other, \
            httpx.Client(base_url=other.url, timeout=120) as local:
        info = local.post("/api/samples/chelsea").json()
        assert (info["name"], info["width"], info["height"]) == ("chelsea.png", 451, 300)
        assert info["input_bytes"] == len(png_bytes(data.chelsea()))
        original = local.get(info["original"])
        assert original.headers["content-type"] == "image/png"
        assert np.array_equal(decode_rgb(base64.b64encode(original.content).decode()),
                              data.chelsea())


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


def test_a_byte_budget_over_http(client, crop_png):
    token = upload(client, crop_png)["token"]
    full = client.get(f"/api/images/{token}/quantize", params={"k": 64}).json()
    budget = full["output_bytes"] // 2
    r = client.get(f"/api/images/{token}/quantize", params={"k": 64, "max_bytes": budget})
    assert r.status_code == 200, r.text
    fitted = r.json()
    png = base64.b64decode(fitted["output"]["base64"])
    assert len(png) <= budget and fitted["k"] < 64 and colors_of(decode_rgb(
        fitted["output"]["base64"])) == fitted["k"]
    r = client.get(f"/api/images/{token}/quantize", params={"k": 64, "max_bytes": 50})
    assert r.status_code == 422
    assert re.match(r"even 2 colors make a file of [\d,]+ bytes, over the budget of 50",
                    r.json()["error"]) and "Max size" in r.json()["error"]


# ---------------------------------------------------------------------------------------------
# Cancelling


def test_work_for_a_client_that_went_away_is_cancelled(server, monkeypatch):
    started, ended = threading.Event(), threading.Event()
    outcome: list = []
    real = api.quantize

    def spy(image, params, *, cancel=None):
        # Hold the work until the server sees the client go away (at most 30 s; the quantize
        # then runs to the end and the test fails), whatever the machine's speed.
        started.set()
        cancel.wait(30)
        try:
            result = real(image, params, cancel=cancel)
            outcome.append("finished")
            return result
        except BaseException as exc:
            outcome.append(type(exc))
            raise
        finally:
            ended.set()

    monkeypatch.setattr(api, "quantize", spy)
    coffee = np.ascontiguousarray(data.coffee()[50:350, 150:450])
    with httpx.Client(base_url=server.url) as c:
        token = c.post("/api/images", content=png_bytes(coffee)).json()["token"]
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET /api/images/{token}/quantize?k=256 HTTP/1.1\r\n"
                     f"Host: {host}\r\n\r\n".encode())
        assert started.wait(60)
    # the connection is closed: the server cancels the work through its progress callback
    assert ended.wait(60)
    assert outcome == [kmq.CancelledError]


# ---------------------------------------------------------------------------------------------
# Packaging


def test_uploads_need_no_multipart_package():
    """Uploads are raw bodies: the app works with python-multipart absent."""
    code = """if True:
        import sys
        sys.modules["multipart"] = sys.modules["python_multipart"] = None  # absent
        import io
        import numpy as np
        from PIL import Image
        import httpx
        from kmq.web import BackgroundServer, ServerConfig, create_app
        buf = io.BytesIO()
        Image.fromarray(np.arange(300, dtype=np.uint8).reshape(10, 10, 3)).save(buf, "PNG")
        with BackgroundServer(create_app(ServerConfig(warm_up=False))) as server, \
                httpx.Client(base_url=server.url, timeout=120) as client:
            token = client.post("/api/images", content=buf.getvalue()).json()["token"]
            r = client.get(f"/api/images/{token}/quantize", params={"k": 4})
            assert r.status_code == 200 and r.json()["k"] == 4, r.text
            r = client.post("/api/quantize", params={"k": 2}, content=buf.getvalue())
            assert r.status_code == 200 and r.json()["k"] == 2, r.text
        print("ok")
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
