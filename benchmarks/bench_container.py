"""How small is a .kmq file next to PNG, WebP and GIF holding the very same palette and indices?

For every image and K, the image is quantized once (``kmq.quantize(image, k, seed=0)``), then the
same palette and index map are written as: the .kmq container; indexed PNG (Pillow
``optimize=True``, then oxipng on that PNG); lossless WebP (Pillow ``lossless=True, method=6``, from
the RGB rendering, since Pillow has no palette WebP: libwebp finds the palette itself); GIF.
Reference sizes: raw 24-bit RGB and ``ceil(log2 K)`` bits per pixel. Encode and decode speeds are
the best of a few runs of ``encode`` / ``decode`` (the whole container: checks, CRC, coder), in
wall-clock time per image; the summary also gives them in CPU time of this process, which a busy
machine disturbs less.

    python benchmarks/bench_container.py [IMAGES_DIR] [--quick] [--markdown] [--oxipng-level N]

``IMAGES_DIR`` defaults to ``../shared/images`` beside the repository (``cq100/*.png`` and
``unsplash/*.jpg``). Targets (medians over images and K): .kmq <= 0.85 x the best PNG,
<= 1.0 x lossless WebP; encode and decode >= 10 megapixels per second.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import oxipng
from PIL import Image

import kmq
from kmq.codecs.container import decode, encode, read_header
from kmq.io import read_rgb

REPO = Path(__file__).resolve().parents[1]
KS = (16, 64, 256)
QUICK = ("astronaut", "color_checker", "peacock", "futuristic_1920x1280")


def find_images(folder: Path, quick: bool) -> list[Path]:
    paths = sorted((folder / "cq100").glob("*.png")) + sorted((folder / "unsplash").glob("*.jpg"))
    if quick:
        paths = [p for p in paths if p.stem in QUICK]
    return paths


def best_time(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU (this process) seconds over ``repeat`` runs."""
    wall = cpu = math.inf
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def peers(palette: np.ndarray, indices: np.ndarray, oxipng_level: int) -> dict[str, int]:
    im = Image.fromarray(indices.astype(np.uint8), "P")
    im.putpalette(palette.tobytes())
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    png = buf.getvalue()
    oxi = oxipng.optimize_from_memory(png, level=oxipng_level)
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "WEBP", lossless=True, method=6)
    webp = len(buf.getvalue())
    buf = io.BytesIO()
    im.save(buf, "GIF")
    return {"png": len(png), "oxipng": len(oxi), "webp": webp, "gif": len(buf.getvalue())}


def measure(path: Path, k: int, oxipng_level: int) -> dict:
    rgb = read_rgb(path)
    q = kmq.quantize(rgb, k, seed=0)
    pixels = q.indices.size
    data = encode(q.palette, q.indices)
    out = decode(data)
    if not (np.array_equal(out.indices, q.indices) and np.array_equal(out.palette, q.palette)):
        raise AssertionError(f"{path.name} K={k}: the round trip changed the data")
    repeat = 3 if pixels < 4_000_000 else 2
    t_enc, cpu_enc = best_time(lambda: encode(q.palette, q.indices), repeat)
    t_dec, cpu_dec = best_time(lambda: decode(data), repeat)
    row = {
        "image": path.stem, "k": k, "k_used": q.k, "pixels": pixels,
        "raw": pixels * 3, "bits": math.ceil(pixels * max(1, math.ceil(math.log2(q.k))) / 8),
        "kmq": len(data), "method": read_header(data).method.name,
        "enc_mps": pixels / t_enc / 1e6, "dec_mps": pixels / t_dec / 1e6,
        "enc_cpu_mps": pixels / max(cpu_enc, 1e-9) / 1e6,
        "dec_cpu_mps": pixels / max(cpu_dec, 1e-9) / 1e6,
    }
    row.update(peers(q.palette, q.indices, oxipng_level))
    row["best_png"] = min(row["png"], row["oxipng"])
    row["r_png"] = row["kmq"] / row["best_png"]
    row["r_webp"] = row["kmq"] / row["webp"]
    return row


COLUMNS = [("image", "image", "{}"), ("k", "K", "{}"), ("raw", "raw 24-bit", "{:,}"),
           ("bits", "log2K bits", "{:,}"), ("kmq", ".kmq", "{:,}"), ("png", "PNG opt", "{:,}"),
           ("oxipng", "oxipng", "{:,}"), ("webp", "WebP ll", "{:,}"), ("gif", "GIF", "{:,}"),
           ("r_png", "kmq/PNG", "{:.3f}"), ("r_webp", "kmq/WebP", "{:.3f}"),
           ("enc_mps", "enc MP/s", "{:.1f}"), ("dec_mps", "dec MP/s", "{:.1f}")]


def summary(rows: list[dict]) -> list[tuple[str, dict]]:
    groups = [(f"median K={k}", [r for r in rows if r["k"] == k]) for k in KS]
    groups.append(("median all", rows))
    out = []
    for name, group in groups:
        if group:
            med = {key: statistics.median(r[key] for r in group)
                   for key, _, fmt in COLUMNS if key not in ("image", "k")}
            med.update(image=name, k="")
            out.append((name, med))
    return out


def fmt(row: dict, key: str, spec: str) -> str:
    value = row[key]
    if isinstance(value, float) and spec == "{:,}":
        value = round(value)
    return spec.format(value)


def print_table(rows: list[dict], markdown: bool) -> None:
    table = rows + [med for _, med in summary(rows)]
    if markdown:
        print("| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
        print("|" + "|".join("---" if i < 2 else "--:" for i in range(len(COLUMNS))) + "|")
        for row in table:
            print("| " + " | ".join(fmt(row, key, spec) for key, _, spec in COLUMNS) + " |")
        return
    cells = [[title for _, title, _ in COLUMNS]]
    cells += [[fmt(row, key, spec) for key, _, spec in COLUMNS] for row in table]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    for line in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=True))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="?", type=Path, default=REPO.parent / "shared" / "images")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--oxipng-level", type=int, default=2, help="oxipng preset (default 2)")
    args = parser.parse_args(argv)
    paths = find_images(args.images, args.quick)
    if not paths:
        print(f"no images under {args.images}/cq100 or {args.images}/unsplash", file=sys.stderr)
        return 2
    rows = []
    for path in paths:
        for k in KS:
            rows.append(measure(path, k, args.oxipng_level))
            r = rows[-1]
            print(f"{r['image']} K={k}: kmq/PNG {r['r_png']:.3f}  kmq/WebP {r['r_webp']:.3f}  "
                  f"enc {r['enc_mps']:.1f} dec {r['dec_mps']:.1f} MP/s", file=sys.stderr)
    print_table(rows, args.markdown)
    med = dict(summary(rows))["median all"]
    cpu_enc = statistics.median(r["enc_cpu_mps"] for r in rows)
    cpu_dec = statistics.median(r["dec_cpu_mps"] for r in rows)
    print(f"\nmedians over {len(rows)} image x K: .kmq / best PNG = {med['r_png']:.3f} "
          f"(target <= 0.85), .kmq / lossless WebP = {med['r_webp']:.3f} (target <= 1.0), "
          f"encode {med['enc_mps']:.1f} MP/s, decode {med['dec_mps']:.1f} MP/s wall clock "
          f"(target >= 10); {cpu_enc:.1f} and {cpu_dec:.1f} MP/s of this process's CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
