"""Whole-process time of the ``kmq compress`` command beside the ``pngquant`` command.

Question: from file to file, as a user runs it (interpreter start, imports, decoding, quantizing,
encoding), how does ``kmq compress`` compare with ``pngquant --nofs`` on the photos of >= 2 MP?

pngquant reads only PNG, so each photo is first written as a PNG (Pillow, default settings) and
both commands read that same file:

    kmq compress IN.png -o OUT.png -k K --force --quiet
    pngquant --nofs --force --output OUT.png K IN.png

Runs alternate between the two commands (to share the machine's noise) and the median of
``--repeat`` runs is reported, with the ratio kmq/pngquant (< 1: kmq is faster), each output's
size and its MSE against the input. One untimed kmq run first loads the numba kernel cache.

    python benchmarks/bench_cli.py [IMAGES] [--k 16,64,256] [--repeat 5] [--min-mp 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import (
    DEFAULT_IMAGES,
    LARGE_MP,
    find_images,
    kmq_source_digest,
    machine,
    megapixels,
    read_rgb,
    table,
)


def kmq_command() -> str | None:
    """The ``kmq`` executable beside this interpreter (or on PATH) if ``compress --help`` works."""
    exe = Path(sys.executable).with_name("kmq")
    exe = str(exe) if exe.exists() else shutil.which("kmq")
    if exe is None:
        return None
    run = subprocess.run([exe, "compress", "--help"], capture_output=True)
    return exe if run.returncode == 0 else None


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {run.returncode}:\n{run.stderr}")
    return elapsed


def mse(rgb: np.ndarray, path: Path) -> float:
    with Image.open(path) as im:
        out = np.asarray(im.convert("RGB"), dtype=np.float64)
    diff = (out - rgb).ravel()
    return float(diff @ diff / diff.size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="?", default=str(DEFAULT_IMAGES))
    p.add_argument("--k", default="16,64,256", help="comma-separated palette sizes")
    p.add_argument("--repeat", type=int, default=5, help="runs per command (median reported)")
    p.add_argument("--min-mp", type=float, default=LARGE_MP, help="only images this large")
    args = p.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]

    kmq = kmq_command()
    if kmq is None:
        print("kmq compress is not available (no working `kmq compress --help`): nothing to do")
        return 1
    pngquant = shutil.which("pngquant")
    paths = [q for q in find_images(args.images) if megapixels(q) >= args.min_mp]
    print(f"# bench_cli: {len(paths)} images >= {args.min_mp:g} MP, K = {ks}, median of "
          f"{args.repeat} runs; {machine()}; kmq sources {kmq_source_digest()}")
    if pngquant is None:
        print("# pngquant not on PATH: only kmq is timed")

    rows, ratios = [], {k: [] for k in ks}
    with tempfile.TemporaryDirectory(prefix="kmq-cli-") as tmp_name:
        tmp = Path(tmp_name)
        for path in paths:
            rgb = read_rgb(path)
            src = tmp / (path.stem + ".png")
            Image.fromarray(rgb).save(src)
            out_k, out_p = tmp / "out-kmq.png", tmp / "out-pngquant.png"
            for k in ks:
                cmd_k = [kmq, "compress", str(src), "-o", str(out_k), "-k", str(k), "--force",
                         "--quiet"]
                cmd_p = [pngquant, "--nofs", "--force", "--output", str(out_p), str(k), str(src)]
                timed(cmd_k)  # warm-up: kernel cache, file-system cache
                t_k, t_p = [], []
                for _ in range(args.repeat):
                    t_k.append(timed(cmd_k))
                    if pngquant:
                        t_p.append(timed(cmd_p))
                mk = statistics.median(t_k)
                row = [path.name, f"{rgb.shape[1]}x{rgb.shape[0]}", k, f"{mk:.3f}"]
                if pngquant:
                    mp_ = statistics.median(t_p)
                    ratios[k].append(mk / mp_)
                    row += [f"{mp_:.3f}", f"{mk / mp_:.3f}"]
                else:
                    row += ["-", "-"]
                row += [f"{out_k.stat().st_size:,}", f"{mse(rgb, out_k):.2f}"]
                row += ([f"{out_p.stat().st_size:,}", f"{mse(rgb, out_p):.2f}"] if pngquant
                        else ["-", "-"])
                rows.append(row)
                print(" ".join(str(c) for c in row), file=sys.stderr, flush=True)
    print(table(["image", "size", "K", "kmq s", "pngquant s", "kmq/pngquant", "kmq bytes",
                 "kmq MSE", "pngquant bytes", "pngquant MSE"], rows))
    if pngquant:
        print("\nmedian kmq/pngquant whole-process time per K: " + ", ".join(
            f"K={k}: {statistics.median(r):.3f}" for k, r in ratios.items() if r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
