"""pngquant's quality scale in kmq: is ``--quality`` calibrated, and does it choose the K pngquant
chooses?

Against the ``pngquant`` command, on every photo and for several Q:

1. **The K chosen**: ``pngquant --quality 0-Q --nofs`` and kmq's ``--quality 0-Q``; the palette
   size of each output, their ratio, and the quality pngquant's output reaches on kmq's scale
   (pngquant lands well above the quality asked).
2. **Calibration** of :data:`kmq.quality.MSE_SCALE`: where pngquant chose fewer than 256 colors,
   kmq's error at pngquant's K over the quality's error in libimagequant's standard units; the
   median is the scale that makes kmq choose pngquant's K.
3. The two programs' units side by side: kmq's error of pngquant's own output over the error
   pngquant reports for it (``--verbose``), at K = 16, 64, 256; the median is
   :data:`kmq.quality.MIN_MSE_SCALE`, with which ``--quality``'s minimum is judged.
4. **The minimum**: pngquant's rating Q of its own 256-color output, and the lowest minimum
   (``--quality MIN-100``) each program refuses; the two should be a few points apart at most.

    python benchmarks/bench_quality.py [IMAGES] [--q 60,70,80,90] [--markdown]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from _common import DEFAULT_IMAGES, find_images, machine, read_rgb, table


def pngquant(args: list[str], source: Path,
             output: Path) -> tuple[int, float | None, float | None]:
    """Run pngquant; returns its exit code, and the MSE and quality it reports (None if none)."""
    run = subprocess.run(["pngquant", *args, "--nofs", "--verbose", "--force", "--output",
                          str(output), str(source)], capture_output=True, text=True)
    found = re.search(r"MSE=([0-9.]+) \(Q=([0-9]+)\)", run.stderr)
    if not found:
        return run.returncode, None, None
    return run.returncode, float(found.group(1)), float(found.group(2))


def palette_size(path: Path) -> int:
    with Image.open(path) as im:
        return len(im.getpalette() or []) // 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", default=DEFAULT_IMAGES)
    parser.add_argument("--q", default="60,70,80,90")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if shutil.which("pngquant") is None:
        raise SystemExit("pngquant is not installed (apt-get install pngquant)")
    import kmq
    from kmq.quality import (
        MIN_MSE_SCALE,
        MSE_SCALE,
        mse_for_quality,
        psnr_for_quality,
        psnr_range,
        quality_for_psnr,
    )
    from kmq.targets import quantize_to_quality

    print(machine())
    qualities = [int(q) for q in args.q.split(",")]
    ratios, calibration, chosen, scales, refusals = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for image in find_images(args.images):
            rgb = read_rgb(image)
            source = work / f"{image.stem}.png"
            Image.fromarray(rgb).save(source)  # pngquant reads PNG only
            out = work / "out.png"
            for k in (16, 64, 256):
                _, reported, reported_q = pngquant([str(k)], source, out)
                with Image.open(out) as im:
                    got = np.asarray(im.convert("RGB"), np.float64)
                mse = float(np.mean((got - rgb) ** 2))
                if k == 256 and reported:  # the lowest minimum each program refuses
                    rated = int(reported_q)
                    ours = kmq.quantize(rgb, 256).psnr
                    kmq_refuses = next((q for q in range(1, 101)
                                        if ours < psnr_for_quality(q, scale=MIN_MSE_SCALE)), 101)
                    refusals.append((image.stem, rated, rated + 1, kmq_refuses,
                                     kmq_refuses - rated - 1))
                if reported:
                    ratios.append(mse / reported)
                    calibration.append((image.stem, k, f"{reported:.3f}", f"{mse:.3f}",
                                        f"{mse / reported:.3f}"))
            for q in qualities:
                code, _, _ = pngquant(["--quality", f"0-{q}"], source, out)
                theirs = palette_size(out) if code == 0 else 0
                ours = quantize_to_quality(rgb, *psnr_range(0, q)).k
                with Image.open(out) as im:
                    got = np.asarray(im.convert("RGB"), np.float64)
                their_psnr = 10 * np.log10(255**2 / max(np.mean((got - rgb) ** 2), 1e-12))
                chosen.append((image.stem, q, theirs, ours, f"{ours / theirs:.2f}",
                               quality_for_psnr(float(their_psnr))))
                if 0 < theirs < 256:  # kmq's error at pngquant's K, in standard units
                    standard = mse_for_quality(q) / MSE_SCALE
                    scales.append(kmq.quantize(rgb, theirs).mse / standard)
            print(f"{image.name} done", file=sys.stderr, flush=True)
    print("\nK chosen by --quality 0-Q (pngquant's Q of its own output by kmq's scale)\n")
    print(table(["image", "Q", "pngquant K", "kmq K", "kmq/pngquant", "Q of pngquant's"],
                chosen, markdown=args.markdown))
    for q in qualities:
        ks = [float(row[4]) for row in chosen if row[1] == q and row[2] < 256]
        if ks:
            print(f"Q = {q}: kmq K / pngquant K where pngquant chose < 256: median "
                  f"{statistics.median(ks):.2f}, range {min(ks):.2f}..{max(ks):.2f} "
                  f"({len(ks)} photos)")
    if scales:
        print(f"\nThe scale that gives pngquant's K: median {statistics.median(scales):.3f} over "
              f"{len(scales)} photo/Q pairs (range {min(scales):.2f}..{max(scales):.2f}); "
              f"kmq uses {MSE_SCALE}")
    print(f"\nkmq's MSE of pngquant's output / the MSE pngquant reports: median "
          f"{statistics.median(ratios):.3f}\n")
    print(table(["image", "K", "pngquant MSE", "kmq MSE", "ratio"], calibration,
                markdown=args.markdown))
    print(f"\nThe minimum (--quality MIN-100), with MIN_MSE_SCALE = {MIN_MSE_SCALE}: pngquant's "
          f"rating of its 256 colors, and the lowest MIN each program refuses\n")
    print(table(["image", "pngquant Q", "pngquant refuses", "kmq refuses", "difference"],
                refusals, markdown=args.markdown))
    gaps = [row[4] for row in refusals]
    if gaps:
        print(f"\nkmq refuses from {statistics.median(gaps):+.0f} points of pngquant (median), "
              f"{min(gaps):+d}..{max(gaps):+d}")


if __name__ == "__main__":
    main()
