"""``kmq serve`` under hostile clients: the server process's memory (RSS) and times.

Question: does the server stay bounded when clients stall uploads, send small files of huge
images, or upload many distinct images?

Each scenario starts ``python -m kmq serve --port 0`` (default limits) as a child process, waits
for its warm-up (a small quantize), and reads the child's ``VmRSS`` and ``VmHWM`` from
``/proc/PID/status`` (the high-water mark reset through ``/proc/PID/clear_refs`` before each
scenario):

- ``stalled``: 10 clients announce a 20 MB upload, send all but 1 kB of it, and go silent.
  Reported: statuses, seconds until the server closed them all, RSS before/peak/after.
- ``big``: PNG files of 9000x9000 pixels (236 kB each, 243 MB decoded) uploaded one, then six at
  once, then a small image that makes the store evict them. RSS before/peak/after upload, after
  eviction, and the statuses.
- ``distinct``: 100 distinct uploads (sizes 150x400 to 447x202, RGB and RGBA); RSS every 20.

With ``--baseline-src DIR`` (a ``src`` folder of another kmq, e.g. ``git archive main src``) the
same scenarios run on it too, alternated with this one, and the table gives both and their
ratio.

    python benchmarks/bench_server.py [--baseline-src /tmp/main/src] [--rounds 1]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
from PIL import Image

from _common import REPO_ROOT, kmq_source_digest, machine, table


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


class Server:
    """``kmq serve`` in a child process, with ``src`` first on its path."""

    def __init__(self, src: str) -> None:
        env = {**os.environ, "PYTHONPATH": src, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "kmq", "serve", "--port", "0"],
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.url = re.match(r"kmq: serving on (\S+) ", self.proc.stderr.readline())[1]
        self.host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.client = httpx.Client(base_url=self.url, timeout=600)
        small = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
        token = self.client.post("/api/images", content=small).json()["token"]
        assert self.client.get(f"/api/images/{token}/quantize?k=8").status_code == 200

    def mb(self, key: str = "VmRSS") -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(key)

    def reset_peak(self) -> None:
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as fh:
            fh.write("5")

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(60)
        self.proc.stderr.close()


def status_of(sock: socket.socket, deadline: float) -> str:
    """The status line's code, ``closed`` if none came before the connection closed, or
    ``open`` at the deadline."""
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    raw = b""
    try:
        while chunk := sock.recv(65536):
            raw += chunk
    except TimeoutError:
        return "open" if not raw else raw.split()[1].decode()
    except ConnectionResetError:
        pass
    return raw.split()[1].decode() if raw else "closed"


def stalled(server: Server) -> dict:
    size = 20_000_000
    server.reset_peak()
    before = server.mb()
    start = time.monotonic()
    socks = []
    for _ in range(10):
        sock = socket.create_connection((server.host, server.port))
        sock.sendall(f"POST /api/images HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
                     f"Content-Length: {size}\r\n\r\n".encode())
        sock.sendall(b"\0" * (size - 1000))
        socks.append(sock)
    deadline = start + 40
    statuses: list[str] = [""] * len(socks)
    threads = [threading.Thread(target=lambda i=i: statuses.__setitem__(
        i, status_of(socks[i], deadline))) for i in range(len(socks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    for sock in socks:
        sock.close()
    time.sleep(0.5)  # the server's side of the closed connections
    return {"statuses": " ".join(f"{statuses.count(s)}x{s}" for s in sorted(set(statuses))),
            "seconds": seconds, "before": before, "peak": server.mb("VmHWM"),
            "after": server.mb()}


def big(server: Server, n: int, png: bytes) -> dict:
    server.reset_peak()
    before = server.mb()
    codes: list[int] = [0] * n
    start = time.monotonic()

    def post(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=600) as c:
            codes[i] = c.post("/api/images", content=png).status_code

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    held = server.mb()
    small = png_bytes(np.random.default_rng(1).integers(0, 256, (300, 300, 3), np.uint8))
    for _ in range(20):  # least recently used first: the big ones go (store cap or count)
        server.client.post("/api/images", content=small)
    return {"statuses": " ".join(f"{codes.count(s)}x{s}" for s in sorted(set(codes))),
            "seconds": seconds, "before": before, "peak": server.mb("VmHWM"), "held": held,
            "after": server.mb()}


def distinct(server: Server) -> dict:
    rng = np.random.default_rng(2)
    marks = {"before": server.mb()}
    for i in range(100):
        pixels = rng.integers(0, 256, (150 + 3 * i, 400 - 2 * i, 3 + i % 2), np.uint8)
        assert server.client.post("/api/images", content=png_bytes(pixels)).status_code == 201
        if i % 20 == 19:
            marks[str(i + 1)] = server.mb()
    return marks


def run(src: str) -> dict:
    server = Server(src)
    try:
        png = png_bytes(np.zeros((9000, 9000, 3), np.uint8))
        return {"stalled": stalled(server), "big x1": big(server, 1, png),
                "big x6": big(server, 6, png), "distinct": distinct(server)}
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", help="another kmq's src folder, measured alternately")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"# {machine()}; kmq sources {kmq_source_digest()}")
    peers = {"this": str(REPO_ROOT / "src")}
    if args.baseline_src:
        peers["baseline"] = args.baseline_src
    results: dict[str, list[dict]] = {name: [] for name in peers}
    for _ in range(args.rounds):
        for name, src in peers.items():  # alternated
            results[name].append(run(src))
    for scenario in ("stalled", "big x1", "big x6"):
        rows = []
        for name in peers:
            for r in results[name]:
                s = r[scenario]
                rows.append([name, s["statuses"], f"{s['seconds']:.1f}", f"{s['before']:.0f}",
                             f"{s['peak']:.0f}", f"{s.get('held', s['after']):.0f}",
                             f"{s['after']:.0f}"])
        print(f"\n{scenario}: RSS in MB")
        print(table(["server", "statuses", "s", "before", "peak", "held", "after"], rows))
    print("\ndistinct uploads: RSS in MB after N")
    rows = [[name] + [f"{v:.1f}" for v in r["distinct"].values()]
            for name in peers for r in results[name]]
    print(table(["server", *results["this"][0]["distinct"]], rows))
    if "baseline" in peers:
        print("\nratios this/baseline (first round): peak MB")
        for scenario in ("stalled", "big x1", "big x6"):
            a, b = results["this"][0][scenario], results["baseline"][0][scenario]
            print(f"  {scenario}: peak {a['peak'] - a['before']:.0f} / "
                  f"{b['peak'] - b['before']:.0f} MB over start = "
                  f"{(a['peak'] - a['before']) / max(1.0, b['peak'] - b['before']):.2f}")


if __name__ == "__main__":
    main()
