"""How large is kmq's PNG next to pngquant's, and what does the default encoder cost?

For every image and K, the image is quantized as ``kmq compress -k K`` does it
(:func:`kmq.files.compress_image`), and the same palette and index map are written by: kmq's old
default (Pillow's PNG writer, which kmq used before: adaptive row filters, zlib level 6), the new
default (``encode_png``), ``effort="fast"`` and ``effort="max"`` (``--optimize``). pngquant
quantizes the same image itself (``pngquant K --nofs``, from a PNG copy: it reads PNG only), so
its pixels differ: the comparison is file size at the same K, as a user sees it. Ratios are to
pngquant's bytes; the summary gives their medians over the images, and the encoders' CPU time.

``--timing`` also times the whole ``kmq compress IMAGE -k K`` process on one photo, with the old
default encoder (Pillow's writer patched in) and the new one, alternated, ``--repeat`` times
each: the medians of wall-clock and of CPU time (user + system, of the child process).

    python benchmarks/bench_png.py [IMAGES_DIR] [--k 16 64 256] [--quick] [--markdown]
                                   [--timing [--timing-image PATH] [--repeat 5]]

``IMAGES_DIR`` defaults to ``../shared/images`` beside the repository. Targets: the default PNG
at most 0.92x pngquant's bytes at K = 16 and 64 (median), and at most +15% on the whole
``kmq compress`` time of a 2.5 MP photo.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kmq
from _common import DEFAULT_IMAGES, find_images, machine, table
from kmq.codecs.png import encode_png, to_pil
from kmq.files import CompressOptions, compress_image
from kmq.io import read_image

QUICK = ("astronaut", "color_checker", "peacock", "futuristic_1920x1280")
TIMING_IMAGE = DEFAULT_IMAGES / "unsplash" / "boothbay_1920x1280.jpg"

# The command line with kmq's old default PNG encoder patched in: Pillow's writer, as
# encode_png was before (mode P with exactly K entries, tRNS, Image.save(format="PNG")).
OLD_CLI = """
import io, sys
import kmq.codecs.png as png

def pillow_png(palette, indices, **_):
    buf = io.BytesIO()
    png.to_pil(palette, indices).save(buf, format="PNG")
    return buf.getvalue()

png.encode_png = pillow_png
from kmq.cli import main
sys.argv[0] = "kmq"
main()
"""
NEW_CLI = "import sys; from kmq.cli import main; sys.argv[0] = 'kmq'; main()"


def pillow_png(palette, indices) -> bytes:
    """kmq's old default PNG: Pillow's writer."""
    buf = io.BytesIO()
    to_pil(palette, indices).save(buf, format="PNG")
    return buf.getvalue()


def cpu(fn):
    """``fn()`` and the CPU seconds of this process it took."""
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def pngquant_size(source: Path, k: int, tmp: Path) -> int | None:
    """Bytes of ``pngquant K --nofs`` on a PNG copy of ``source`` (None without pngquant)."""
    exe = shutil.which("pngquant")
    if exe is None:
        return None
    png = source if source.suffix.lower() == ".png" else tmp / f"{source.stem}.png"
    if not png.exists():
        from PIL import Image

        with Image.open(source) as im:
            im.convert("RGB").save(png)
    out = tmp / f"{source.stem}-{k}-pngquant.png"
    subprocess.run([exe, str(k), "--nofs", "--force", "--output", str(out), str(png)],
                   check=True)
    return out.stat().st_size


def sizes(paths: list[Path], ks: list[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            pixels = read_image(path)
            for k in ks:
                q = compress_image(pixels, CompressOptions(k=k)).quantized
                old, t_old = cpu(lambda q=q: pillow_png(q.palette, q.indices))
                new, t_new = cpu(lambda q=q: encode_png(q.palette, q.indices))
                fast, t_fast = cpu(lambda q=q: encode_png(q.palette, q.indices, effort="fast"))
                best, t_max = cpu(lambda q=q: encode_png(q.palette, q.indices, effort="max"))
                rows.append({"image": path.stem, "k": k, "old": len(old), "new": len(new),
                             "fast": len(fast), "max": len(best),
                             "pngquant": pngquant_size(path, k, Path(tmp)),
                             "t_old": t_old, "t_new": t_new, "t_fast": t_fast, "t_max": t_max})
                print(f"  {path.stem} K={k}: old {len(old):,}  new {len(new):,}  "
                      f"max {len(best):,}  pngquant {rows[-1]['pngquant']}", file=sys.stderr,
                      flush=True)
    return rows


def ratio(row: dict, key: str) -> float | None:
    return row[key] / row["pngquant"] if row["pngquant"] else None


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def report_sizes(rows: list[dict], ks: list[int], markdown: bool) -> None:
    header = ["image", "K", "old (Pillow)", "fast", "new default", "max (--optimize)",
              "pngquant", "old/pq", "new/pq", "max/pq", "new/old"]
    body = [[r["image"], r["k"], f"{r['old']:,}", f"{r['fast']:,}", f"{r['new']:,}",
             f"{r['max']:,}", "-" if r["pngquant"] is None else f"{r['pngquant']:,}",
             fmt(ratio(r, "old")), fmt(ratio(r, "new")), fmt(ratio(r, "max")),
             fmt(r["new"] / r["old"])] for r in rows]
    print(table(header, body, markdown=markdown))
    print()
    header = ["K", "images", "old/pq", "fast/pq", "new/pq", "max/pq", "new/old",
              "CPU s old", "CPU s fast", "CPU s new", "CPU s max"]
    body = []
    for k in ks:
        group = [r for r in rows if r["k"] == k]

        def med(key, group=group):
            values = [ratio(r, key) for r in group]
            return None if None in values else statistics.median(values)

        body.append([k, len(group), fmt(med("old")), fmt(med("fast")), fmt(med("new")),
                     fmt(med("max")), fmt(statistics.median(r["new"] / r["old"] for r in group)),
                     *(f"{sum(r[t] for r in group):.2f}" for t in ("t_old", "t_fast", "t_new",
                                                                   "t_max"))])
    print("Medians over the images (ratios), total encode CPU seconds:")
    print(table(header, body, markdown=markdown))


def run_cli(code: str, image: Path, k: int, out: Path) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one ``kmq compress`` child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, "compress", str(image), "-k", str(k), "-o",
                    str(out), "--force"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(Path(kmq.__file__).parents[1])})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def report_timing(image: Path, ks: list[int], repeat: int, markdown: bool) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in ks:
            runs: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
            sizes_ = {}
            for _ in range(repeat):  # alternate, so that a change of load hits both
                for name, code in (("old", OLD_CLI), ("new", NEW_CLI)):
                    out = Path(tmp) / f"{name}.png"
                    runs[name].append(run_cli(code, image, k, out))
                    sizes_[name] = out.stat().st_size
            wall = {n: statistics.median(w for w, _ in r) for n, r in runs.items()}
            cpu_ = {n: statistics.median(c for _, c in r) for n, r in runs.items()}
            rows.append([k, f"{wall['old']:.2f}", f"{wall['new']:.2f}",
                         f"{wall['new'] / wall['old']:.3f}", f"{cpu_['old']:.2f}",
                         f"{cpu_['new']:.2f}", f"{cpu_['new'] / cpu_['old']:.3f}",
                         f"{sizes_['old']:,}", f"{sizes_['new']:,}"])
            print(f"  timing K={k} done", file=sys.stderr, flush=True)
    print(f"Whole `kmq compress {image.name} -k K` process, median of {repeat} alternated runs:")
    print(table(["K", "wall s old", "wall s new", "new/old", "CPU s old", "CPU s new",
                 "new/old", "bytes old", "bytes new"], rows, markdown=markdown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="?", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--k", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--timing", action="store_true",
                        help="also time the whole kmq compress process, old and new encoder")
    parser.add_argument("--timing-image", type=Path, default=TIMING_IMAGE)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    paths = find_images(args.images)
    if args.quick:
        paths = [p for p in paths if p.stem in QUICK]
    print(f"{machine()}; kmq {kmq.__version__}; pngquant: {shutil.which('pngquant') or 'none'}")
    print()
    report_sizes(sizes(paths, args.k), args.k, args.markdown)
    if args.timing:
        print()
        report_timing(args.timing_image, args.k, args.repeat, args.markdown)


if __name__ == "__main__":
    main()
