"""``kmq serve`` under slow, lying, hostile and many clients: stalled and oversized bodies, wrong
``Content-Length``, requests from other web pages, the memory budgets, concurrent requests
checked against :func:`kmq.quantize`, and the server's memory over many uploads.

Slow and lying clients speak raw HTTP over sockets; every wait polls a condition under a
deadline.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

import kmq
from kmq.web import LOOPBACK_HOSTS, BackgroundServer, ServerConfig, api, create_app

UPLOAD_CAP = 200_000
IN_FLIGHT = 2 * UPLOAD_CAP + 10_000  # two stalled uploads at the cap fit, and little more
IDLE = 1.0
#: Seconds any single wait may take before the test fails.
DEADLINE = 30.0


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server():
    config = ServerConfig(max_upload_bytes=UPLOAD_CAP, max_upload_bytes_in_flight=IN_FLIGHT,
                          upload_idle_seconds=IDLE, workers=2, allowed_hosts=LOOPBACK_HOSTS)
    with BackgroundServer(create_app(config)) as running:
        yield running


def address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def open_request(server, method: str, path: str, headers: dict, body: bytes = b"") -> socket.socket:
    """A connection that has sent a request head (``Host`` added unless given) and ``body``."""
    host, port = address(server)
    sock = socket.create_connection((host, port), timeout=DEADLINE)
    lines = [f"{method} {path} HTTP/1.1"]
    if "Host" not in headers:
        lines.append(f"Host: {host}:{port}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict] | None:
    """The first response on ``sock`` (status, JSON body), or None when the server closed the
    connection without one. Fails after :data:`DEADLINE` seconds."""
    sock.settimeout(DEADLINE)
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        raw += chunk
    head, rest = raw.split(b"\r\n\r\n", 1)
    status = int(head.split()[1])
    declared = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if declared is None:  # uvicorn's own answer to a request it cannot parse: no JSON
        return status, {}
    length = int(declared[1])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of a response"
        rest += chunk
    return status, json.loads(rest[:length]) if length else {}


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (within :data:`DEADLINE`), after any answer."""
    sock.settimeout(DEADLINE)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[100:228, 180:308])  # 128x128, ~40 kB PNG


# ---------------------------------------------------------------------------------------------
# Slow and lying clients


def test_a_stalled_upload_is_dropped_after_the_idle_timeout(server, photo):
    body = png_bytes(photo)
    start = time.monotonic()
    with open_request(server, "POST", "/api/images",
                      {"Content-Length": len(body)}, body[:1000]) as sock:
        answer = read_response(sock)
        assert answer is not None and answer[0] == 408, answer
        assert f"no bytes for {IDLE:g} s" in answer[1]["error"]
        assert closed_by_server(sock)
    assert time.monotonic() - start >= IDLE  # not before the client was silent that long


@contextlib.contextmanager
def upload_budget_full(server, body: bytes):
    """Two uploads that announce the cap each and stall (400 kB of the 410 kB of uploads in
    flight), held until a complete upload of ``body`` gets 503; yields their sockets and that
    503 response."""
    stalled = [open_request(server, "POST", "/api/images", {"Content-Length": UPLOAD_CAP},
                            b"x" * 10) for _ in range(2)]
    try:
        deadline = time.monotonic() + DEADLINE
        with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
            # a complete upload does not fit once the server saw them
            while (response := client.post("/api/images", content=body)).status_code != 503:
                assert time.monotonic() < deadline, response.text
        yield stalled, response
    finally:
        for s in stalled:
            s.close()


def test_uploads_in_flight_are_bounded_and_freed_when_dropped(server, photo):
    body = png_bytes(photo)
    with upload_budget_full(server, body) as (stalled, response):
        assert "busy" in response.json()["error"] and "try again" in response.json()["error"]
        # they are dropped for their silence, and the budget is free again
        assert [read_response(s)[0] for s in stalled] == [408, 408]
        with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
            assert client.post("/api/images", content=body).status_code == 201


def test_a_refused_upload_is_closed_even_while_its_client_keeps_sending(server, photo):
    """A 503 while the body is still coming closes the connection: a client that goes on
    sending (which would hold an open connection forever) is not served further."""
    body = png_bytes(photo)
    with upload_budget_full(server, body), open_request(
            server, "POST", "/api/images", {"Content-Length": len(body)}, body[:1000]) as sock:
        answer = read_response(sock)
        assert answer is not None and answer[0] == 503, answer
        sock.sendall(body[1000:4000])  # the client goes on, then falls silent
        assert closed_by_server(sock)


def test_a_content_length_over_the_cap_is_refused_before_the_body(server):
    with open_request(server, "POST", "/api/quantize?k=4",
                      {"Content-Length": 10**9}) as sock:
        status, answer = read_response(sock)
    assert status == 413 and "over the limit of 200,000 bytes" in answer["error"]


def test_a_content_length_shorter_than_the_body(server, photo):
    """The server reads what was announced: a truncated image (400), then the rest of the
    bytes are not a request."""
    body = png_bytes(photo)
    with open_request(server, "POST", "/api/images", {"Content-Length": len(body) // 2},
                      body) as sock:
        status, answer = read_response(sock)
        assert status == 400 and "cannot decode image" in answer["error"]
        assert closed_by_server(sock)


def test_a_content_length_longer_than_the_body(server, photo):
    """The body ends early: the client waits (dropped when idle) or gives up (closes); either
    way the upload budget is freed."""
    body = png_bytes(photo)
    with open_request(server, "POST", "/api/images", {"Content-Length": len(body) + 1000},
                      body) as sock:
        status, answer = read_response(sock)
        assert status == 408 and "stalled" in answer["error"]
    # clients that close half-way, five times the budget's worth
    for _ in range(5 * IN_FLIGHT // UPLOAD_CAP):
        open_request(server, "POST", "/api/images", {"Content-Length": UPLOAD_CAP},
                     body).close()
    deadline = time.monotonic() + DEADLINE
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
        while (response := client.post("/api/images", content=body)).status_code == 503:
            assert time.monotonic() < deadline, "the budget was never freed"
        assert response.status_code == 201, response.text


def test_a_bad_content_length_is_400(server):
    with open_request(server, "POST", "/api/images", {"Content-Length": "12, 34"},
                      b"x" * 12) as sock:
        answer = read_response(sock)
    assert answer is None or answer[0] == 400


# ---------------------------------------------------------------------------------------------
# Other web pages


def test_a_cross_origin_simple_post_is_refused(server, photo):
    body = png_bytes(photo[:32, :32])
    host, port = address(server)
    own = f"http://{host}:{port}"
    simple = {"Content-Type": "text/plain"}
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Origin": f"http://{host}:{port + 1}"},
                        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}):
            response = client.post("/api/quantize?k=4", content=body, headers=simple | headers)
            assert response.status_code == 403, (headers, response.text)
            assert "refused" in response.json()["error"]
            assert "default-src 'self'" in response.headers["content-security-policy"]
        # the page itself, and a link to it from elsewhere, are served
        response = client.post("/api/quantize?k=4", content=body,
                               headers=simple | {"Origin": own, "Sec-Fetch-Site": "same-origin"})
        assert response.status_code == 200, response.text
        assert client.get("/", headers={"Sec-Fetch-Site": "cross-site",
                                        "Sec-Fetch-Mode": "navigate"}).status_code == 200
        assert client.get("/api/config").status_code == 200  # no Origin: not a browser's fetch


@pytest.mark.parametrize("host", ["{h}:{p}@evil.example", "{h}:{p}, evil.example",
                                  "{h}:{p} evil.example", "{h}:x", "evil.example:{p}",
                                  "{h}:{p}/x", ""])
def test_a_host_header_that_is_not_exactly_a_loopback_name_is_refused(server, host):
    h, p = address(server)
    with open_request(server, "GET", "/api/config",
                      {"Host": host.format(h=h, p=p)}) as sock:
        answer = read_response(sock)
    assert answer is None or answer[0] in {400, 403, 421}, answer
    if answer is not None and answer[0] == 400 and "error" in answer[1]:
        assert "Host" in answer[1]["error"] or "Invalid" in answer[1]["error"]


# ---------------------------------------------------------------------------------------------
# Working memory


def test_a_large_image_while_the_work_budget_is_full_gets_503(monkeypatch, photo):
    """An image whose header says it would not fit the working memory left is refused before
    it is decoded; once the budget is free it is accepted."""
    flat = png_bytes(np.zeros((2000, 2000, 3), np.uint8))  # 4 Mpx in a file of a few kB
    config = ServerConfig(max_work_bytes=30 * 2**20, warm_up=False)  # under its 4 Mpx work
    held, release = threading.Event(), threading.Event()
    real = api.quantize

    def hold(image, params, *, cancel=None):
        held.set()
        release.wait(DEADLINE)
        return real(image, params, cancel=cancel)

    monkeypatch.setattr(api, "quantize", hold)
    with BackgroundServer(create_app(config)) as running, \
            httpx.Client(base_url=running.url, timeout=DEADLINE) as client:
        token = client.post("/api/images", content=png_bytes(photo)).json()["token"]
        busy = threading.Thread(target=client.get, args=(f"/api/images/{token}/quantize",),
                                kwargs={"params": {"k": 4}})
        busy.start()
        try:
            assert held.wait(DEADLINE)
            response = client.post("/api/images", content=flat)
            assert response.status_code == 503, response.text
            assert "busy" in response.json()["error"]
        finally:
            release.set()
            busy.join(DEADLINE)
        response = client.post("/api/images", content=flat)  # alone: let in
        assert response.status_code == 201, response.text


# ---------------------------------------------------------------------------------------------
# Many clients at once


def indexed(png: bytes) -> np.ndarray:
    """The RGB(A) pixels an indexed PNG holds, from its palette and indices."""
    with Image.open(io.BytesIO(png)) as im:
        assert im.mode == "P"
        indices = np.asarray(im)
        palette = np.array(im.getpalette(), np.uint8).reshape(-1, 3)
    return palette[indices]


def test_concurrent_mixed_requests_give_kmq_quantize_results(server):
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    jobs = []
    for i in range(12):
        h, w = 40 + 5 * i, 90 - 3 * i
        photo = photos[i % 3]
        rgb = np.ascontiguousarray(photo[9 * i:9 * i + h, 13 * i:13 * i + w])
        jobs.append((rgb, 2 + (i * 7) % 30, ("stored", "one-shot", "cross-site")[i % 3]))
    results: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs) + 2)

    def post(i: int) -> None:
        rgb, k, how = jobs[i]
        try:
            with httpx.Client(base_url=server.url, timeout=DEADLINE * 4) as c:
                start.wait(DEADLINE)
                if how == "stored":
                    token = c.post("/api/images", content=png_bytes(rgb)).json()["token"]
                    response = c.get(f"/api/images/{token}/quantize", params={"k": k})
                else:
                    headers = {"Origin": "http://evil.example"} if how == "cross-site" else {}
                    response = c.post("/api/quantize", params={"k": k},
                                      content=png_bytes(rgb), headers=headers)
            results[i] = (response.status_code, response.json())
        except Exception as exc:  # reported below, with the request's number
            results[i] = (None, repr(exc))

    def stall() -> None:  # slow clients in the mix
        start.wait(DEADLINE)
        with open_request(server, "POST", "/api/images", {"Content-Length": 5000},
                          b"x") as sock:
            read_response(sock)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(jobs))]
    threads += [threading.Thread(target=stall) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE * 4)
    for i, ((rgb, k, how), (status, r)) in enumerate(zip(jobs, results, strict=True)):
        if how == "cross-site":
            assert status == 403, (i, r)
            continue
        assert status == 200, (i, r)
        q = kmq.quantize(rgb, k, seed=0)
        pixels = indexed(kmq.codecs.get("png").encode(q))
        assert np.array_equal(indexed(api_output(r)), pixels), i
        assert np.array_equal(q.palette[q.indices], pixels), i


def api_output(result: dict) -> bytes:
    import base64

    return base64.b64decode(result["output"]["base64"])


# ---------------------------------------------------------------------------------------------
# Memory of a server process


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_server_memory_is_bounded_over_many_uploads_and_given_back():
    """Over many distinct uploads the server grows by at most its image store's cap; a large
    image's memory is given back once it is evicted."""
    cache_mb = 4
    proc = subprocess.Popen([sys.executable, "-m", "kmq", "serve", "--port", "0",
                             "--max-cache-mb", str(cache_mb)],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = re.match(r"kmq: serving on (\S+) ", proc.stderr.readline())[1]
        rng = np.random.default_rng(0)
        with httpx.Client(base_url=url, timeout=120) as client:
            def upload(pixels: np.ndarray) -> None:
                response = client.post("/api/images", content=png_bytes(pixels))
                assert response.status_code == 201, response.text

            shapes = [(150 + 3 * i, 400 - 2 * i, 3 + i % 2) for i in range(60)]
            decoded = max(h * w * c for h, w, c in shapes) / 2**20
            for shape in shapes[:20]:  # fill the store and the allocator's pools
                upload(rng.integers(0, 256, shape, dtype=np.uint8))
            before = rss_mb(proc.pid)
            for shape in shapes[20:]:
                upload(rng.integers(0, 256, shape, dtype=np.uint8))
            grown = rss_mb(proc.pid) - before
            assert grown < cache_mb + 4 * decoded, (before, grown)

            big = np.zeros((3000, 3000, 3), np.uint8)  # 27 MB decoded, from a small file
            before = rss_mb(proc.pid)
            upload(big)
            held = rss_mb(proc.pid)
            upload(rng.integers(0, 256, shapes[0], dtype=np.uint8))  # evicts it
            after = rss_mb(proc.pid)
            # Held, its pixels are resident; evicted, they are given back. (RSS while held is
            # compared with RSS after, not before: the upload may reuse memory freed earlier.)
            assert held - after > 0.8 * big.nbytes / 2**20, (before, held, after)
            assert after - before < 0.25 * big.nbytes / 2**20, (before, held, after)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        proc.stderr.close()
