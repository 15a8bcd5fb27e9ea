"""Peak memory of kmq on a 24-megapixel photo, as a multiple of the decoded RGB size (H*W*3 bytes).

Question: does quantizing a large photo stay under 4x its decoded size in extra memory?

The 24 MP input is the 9.8 MP Louvre photo (``unsplash/louvre_3840x2560.jpg``) upscaled to
6000x4000 with Pillow's LANCZOS filter, written once to a temporary PNG (and a .npy array). Every
scenario runs in its own child process; the numba kernels are loaded (from the on-disk cache)
before measuring.

- ``library``: ``kmq.quantize(array, K)`` of an array already in memory. Baseline: the child's
  resident memory after imports, kernel loading and loading the array (the input belongs to the
  caller), after ``malloc_trim``; peak: the high-water mark during the call
  (``/proc/self/clear_refs`` resets it).
- ``file-to-file``: the library path from file to file: read the PNG, quantize, write the indexed
  PNG (``kmq.quantize(path)`` then ``Quantized.to_image().save``). Baseline after imports only, so
  the decoded image counts.
- ``cli (in process)``: the whole command, ``kmq compress IN -o OUT -k K --force --quiet``, run
  through ``kmq.cli.main`` in a child, with the same baseline as above (imports, kernels loaded).
- ``kmq compress (process)``: the same command as a process; its peak RSS
  (``getrusage(RUSAGE_CHILDREN)``) minus the peak of the same command on a 16x16 PNG, which holds
  the interpreter, imports and kernels. Both CLI rows are skipped while the command is missing.
- for reference, the same measures for libimagequant (``imagequant.quantize_raw_rgba_bytes``, with
  the RGBA conversion it needs) and the ``pngquant`` CLI (when installed).

    python benchmarks/bench_memory.py [IMAGES] [--k 256] [--size 6000x4000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import DEFAULT_IMAGES, REPO_ROOT, kmq_source_digest, machine, table

TARGET = 4.0
SOURCE = "unsplash/louvre_3840x2560.jpg"


# --- the child side ---------------------------------------------------------------------------

def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak() -> None:
    """Return freed heap to the system, then restart the high-water mark from the current RSS."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the baseline may then include freed but retained memory
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(scenario: str, path: str, k: int) -> dict:
    """Run one scenario in this (fresh) process; returns baseline and peak in bytes."""
    import imagequant
    from PIL import Image

    import kmq

    if scenario == "cli":
        import kmq.cli
    # ~100k distinct colors (above the 65536 that turn the coarse cells on): loads every
    # kernel, so they are in the baseline
    tiny = np.random.default_rng(0).integers(0, 256, (320, 320, 3), dtype=np.uint8)
    kmq.quantize(tiny, k)
    kmq.quantize(np.asarray(Image.fromarray(tiny)), k)  # read-only, as read from a file
    npy = Path(path).with_suffix(".npy")
    arr = np.load(npy) if scenario in {"library", "imagequant"} else None
    _reset_peak()
    base = _status()["VmRSS"]
    start = time.perf_counter()
    if scenario == "library":
        q = kmq.quantize(arr, k)
    elif scenario == "file-to-file":
        q = kmq.quantize(path, k)
        q.to_image().save(Path(path).with_name("out-kmq.png"))
    elif scenario == "imagequant":
        pil = Image.fromarray(arr)
        imagequant.quantize_raw_rgba_bytes(pil.convert("RGBA").tobytes(), pil.width, pil.height,
                                           dithering_level=0.0, max_colors=k, min_quality=0,
                                           max_quality=100)
        q = None
    elif scenario == "cli":
        sys.argv = ["kmq", "compress", path, "-o", str(Path(path).with_name("out-cli.png")),
                    "-k", str(k), "--force", "--quiet"]
        try:
            kmq.cli.main()
        except SystemExit as exc:
            if exc.code:
                raise
        q = None
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    seconds = time.perf_counter() - start
    peak = _status()["VmHWM"]
    return {"baseline": base, "peak": peak, "seconds": seconds}


# --- the parent side --------------------------------------------------------------------------

def run_child(scenario: str, path: Path, k: int) -> dict:
    cmd = [sys.executable, __file__, "--child", scenario, str(path), "--k", str(k)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if run.returncode != 0:
        raise RuntimeError(f"child {scenario} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def process_peak(cmd: list[str]) -> tuple[int, float]:
    """Peak RSS in bytes (getrusage of a fresh wrapper's only child) and wall time of ``cmd``."""
    wrapper = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
               "t = time.perf_counter() - t\n"
               "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, t)\n")
    run = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    code, maxrss_kib, seconds = run.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}: {run.stderr}")
    return int(maxrss_kib) * 1024, float(seconds)


def kmq_cli() -> str | None:
    exe = Path(sys.executable).with_name("kmq")
    if not exe.exists():
        return None
    run = subprocess.run([str(exe), "compress", "--help"], capture_output=True)
    return str(exe) if run.returncode == 0 else None


def make_input(folder: Path, tmp: Path, size: tuple[int, int]) -> tuple[Path, tuple[int, int]]:
    from PIL import Image

    src = folder / SOURCE
    if not src.exists():
        raise SystemExit(f"{src} not found (pass the images folder as an argument)")
    with Image.open(src) as im:
        big = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    path = tmp / f"louvre_{size[0]}x{size[1]}.png"
    big.save(path)
    np.save(path.with_suffix(".npy"), np.asarray(big))
    Image.new("RGB", (16, 16), (200, 100, 50)).save(tmp / "tiny.png")
    return path, size


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="?", default=str(DEFAULT_IMAGES))
    p.add_argument("--k", type=int, default=256, help="palette size (default 256)")
    p.add_argument("--size", default="6000x4000", help="WxH of the test image (default 6000x4000)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.images, args.k)))
        return 0

    print(f"# bench_memory: K={args.k}; {machine()}; kmq sources {kmq_source_digest()}")
    with tempfile.TemporaryDirectory(prefix="kmq-mem-") as tmp_name:
        tmp = Path(tmp_name)
        size = tuple(int(v) for v in args.size.lower().split("x"))
        path, (w, h) = make_input(Path(args.images), tmp, size)
        rgb_bytes = w * h * 3
        print(f"# input: {SOURCE} upscaled (LANCZOS) to {w}x{h} = {w * h / 1e6:.1f} MP; "
              f"decoded RGB = {rgb_bytes / 2**20:.0f} MiB; "
              f"PNG {path.stat().st_size / 2**20:.0f} MiB")
        rows, results = [], {}

        def add(name, base, peak, seconds, note=""):
            extra = peak - base
            results[name] = {"baseline": base, "peak": peak, "increase": extra,
                             "multiple": extra / rgb_bytes, "seconds": seconds}
            rows.append([name, f"{base / 2**20:.0f}", f"{peak / 2**20:.0f}",
                         f"{extra / 2**20:.0f}", f"{extra / rgb_bytes:.2f}x",
                         f"{seconds:.2f}", note])

        exe = kmq_cli()
        scenarios = [("library", "library", "baseline includes the input array"),
                     ("file-to-file", "file-to-file", "read PNG + quantize + write PNG"),
                     ("cli", "cli (in process)", "kmq.cli.main(['compress', ...]) in a child"),
                     ("imagequant", "imagequant (reference)", "libimagequant, array in memory")]
        for scenario, name, note in scenarios:
            if scenario == "cli" and not exe:
                rows.append([name, "", "", "", "", "", "skipped: no kmq compress"])
                continue
            r = run_child(scenario, path, args.k)
            add(name, r["baseline"], r["peak"], r["seconds"], note)

        out = tmp / "out.png"
        if exe:
            cmd = [exe, "compress", "{}", "-o", str(out), "-k", str(args.k), "--force", "--quiet"]
            base, _ = process_peak([c.replace("{}", str(tmp / "tiny.png")) for c in cmd])
            peak, seconds = process_peak([c.replace("{}", str(path)) for c in cmd])
            add("kmq compress (process)", base, peak, seconds,
                "whole process; baseline: same command on a 16x16 PNG")
        pngquant = shutil.which("pngquant")
        if pngquant:
            cmd = [pngquant, "--nofs", "--force", "--output", str(out), str(args.k)]
            base, _ = process_peak([*cmd, str(tmp / "tiny.png")])
            peak, seconds = process_peak([*cmd, str(path)])
            add("pngquant (process, reference)", base, peak, seconds,
                "whole process; baseline: 16x16 PNG")

    print(table(["scenario", "baseline MiB", "peak MiB", "increase MiB", "x RGB size",
                 "seconds", "note"], rows))
    print(f"\nTarget: increase < {TARGET:g}x the decoded RGB size")
    for name in ("library", "file-to-file", "cli (in process)", "kmq compress (process)"):
        if name in results:
            m = results[name]["multiple"]
            print(f"  {name}: {m:.2f}x -> {'PASS' if m < TARGET else 'FAIL'}")
        else:
            print(f"  {name}: not measured")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"(this parent process peaked at {own / 1024:.0f} MiB while making the input)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
