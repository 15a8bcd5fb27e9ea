"""kmq's engine against libimagequant's on small photos (0.1-0.5 MP), or any folder, per K.

The engine is ``kmq.quantize(rgb, k, seed=0)`` (palette and indices from an array in memory);
libimagequant is called as ``bench_perceptual.py`` calls it (``imagequant.
quantize_raw_rgba_bytes``, no dithering, quality 0-100, max_colors=k; the RGBA bytes are made
before its clock starts). The two alternate, ``--repeat`` rounds, and each keeps its best wall
and CPU time (``time.process_time``: kmq's seeding threads add theirs). Per K it prints the
median and worst kmq/libimagequant ratio of each, and with ``--check`` the kmq/scikit-learn MSE
from ``sklearn_reference.json`` (see ``sklearn_reference.py``).

    # the 12 CQ100 photos and scikit-image's small ones
    python benchmarks/bench_small.py --repeat 7 --check
    # the large photos
    python benchmarks/bench_small.py ../shared/images/unsplash --no-skimage --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import kmq
from _common import DEFAULT_IMAGES, find_images, kmq_source_digest, machine, read_rgb
from sklearn_reference import REFERENCE, SKIMAGE_PHOTOS


def run_imagequant(rgba: bytes, w: int, h: int, k: int):
    import imagequant

    out, palette = imagequant.quantize_raw_rgba_bytes(rgba, w, h, dithering_level=0.0,
                                                      max_colors=k, min_quality=0,
                                                      max_quality=100)
    return out, palette


def clock(fn) -> tuple[float, float, object]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", default=str(DEFAULT_IMAGES / "cq100"))
    ap.add_argument("--no-skimage", action="store_true", help="without scikit-image's photos")
    ap.add_argument("--k", default="16,64,256")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--check", action="store_true",
                    help="also kmq's MSE over scikit-learn's recorded one")
    ap.add_argument("--per-image", action="store_true")
    ap.add_argument("--out", help="write the measurements to this JSON file")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    loads = [(p.name, lambda p=p: read_rgb(p)) for p in find_images(args.folder)]
    if not args.no_skimage:
        import skimage.data

        loads += [(f"skimage:{n}", getattr(skimage.data, n)) for n in SKIMAGE_PHOTOS]
    ref = ({(r["image"], r["k"]): r["mse"] for r in json.loads(REFERENCE.read_text())["results"]}
           if args.check else {})
    print(f"# bench_small: {len(loads)} images, K = {ks}, best of {args.repeat}; {machine()}; "
          f"kmq sources {kmq_source_digest()}")
    kmq.quantize(np.random.default_rng(0).integers(0, 256, (300, 300, 3), np.uint8), 16)
    rows = []
    for name, load in loads:
        rgb = load()
        h, w = rgb.shape[:2]
        rgba = np.dstack([rgb, np.full((h, w), 255, np.uint8)]).tobytes()
        for k in ks:
            best = {"kmq": [np.inf, np.inf], "liq": [np.inf, np.inf]}
            q = None
            for _ in range(args.repeat):
                for method in ("kmq", "liq"):
                    if method == "kmq":
                        wall, cpu, out = clock(lambda k=k, rgb=rgb: kmq.quantize(rgb, k, seed=0))
                        q = out
                    else:
                        wall, cpu, _ = clock(
                            lambda k=k, a=rgba, w=w, h=h: run_imagequant(a, w, h, k))
                    best[method][0] = min(best[method][0], wall)
                    best[method][1] = min(best[method][1], cpu)
            row = {"image": name, "mp": h * w / 1e6, "k": k, "kmq_s": best["kmq"][0],
                   "liq_s": best["liq"][0], "kmq_cpu": best["kmq"][1], "liq_cpu": best["liq"][1],
                   "mse": q.mse, "sklearn_mse": ref.get((name, k))}
            rows.append(row)
            if args.per_image:
                extra = (f"  MSE/sklearn {q.mse / row['sklearn_mse']:.4f}"
                         if row["sklearn_mse"] else "")
                print(f"{name:28s} K={k:3d}  kmq {row['kmq_s'] * 1e3:7.1f} ms  liq "
                      f"{row['liq_s'] * 1e3:7.1f} ms  wall {row['kmq_s'] / row['liq_s']:.3f}  "
                      f"cpu {row['kmq_cpu'] / row['liq_cpu']:.3f}{extra}", flush=True)
    print()
    for k in ks:
        at = [r for r in rows if r["k"] == k]
        wall = [r["kmq_s"] / r["liq_s"] for r in at]
        cpu = [r["kmq_cpu"] / r["liq_cpu"] for r in at]
        kmq_ms = statistics.median(r["kmq_s"] for r in at) * 1e3
        line = (f"K={k:3d}: {len(at)} images; kmq/libimagequant wall median "
                f"{statistics.median(wall):.3f} worst {max(wall):.3f}; CPU median "
                f"{statistics.median(cpu):.3f} worst {max(cpu):.3f}; kmq median {kmq_ms:.1f} ms")
        mse = [r["mse"] / r["sklearn_mse"] for r in at if r["sklearn_mse"]]
        if mse:
            line += f"; MSE/sklearn median {statistics.median(mse):.4f} worst {max(mse):.4f}"
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
