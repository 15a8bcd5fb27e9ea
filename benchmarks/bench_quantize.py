"""kmq beside its peers on the same images and K: quality, speed and PNG size, in one process.

Questions answered:

(a) Is kmq's error at most that of k-means fitted on *every* pixel (scikit-learn, k-means++,
    n_init=1)? Checked per image and K, and as the median over images per K.
(b) Is kmq's quantize+remap time at most 0.5x libimagequant's (the ``imagequant`` package, no
    dithering) at K = 16, 64, 256 on the photos of >= 2 MP?

Methods, each producing an index map and a uint8 palette from an (H, W, 3) uint8 image in memory:

- ``kmq``: ``kmq.quantize(image, k, seed=0)`` (histogram, k-means, remap).
- ``sklearn-sample``: scikit-learn's color-quantization example: KMeans(k, random_state=0) fitted
  on 1000 random pixels, then ``predict`` on every pixel.
- ``sklearn-full``: KMeans(k, init="k-means++", n_init=1, random_state=0) fitted on every pixel
  (``labels_`` is the index map). Skipped above ``--sklearn-max-mp`` megapixels (it takes minutes).
  Both scikit-learn variants are measured with the centers rounded to uint8, as a file holds them;
  the MSE of the float centers is reported as well.
- ``pil-mediancut``, ``pil-fastoctree``: ``Image.quantize(k, method=..., dither=Dither.NONE)``.
- ``imagequant``: libimagequant through ``imagequant.quantize_raw_rgba_bytes`` (dithering 0,
  quality 0-100, max_colors=k); the time includes the RGB -> RGBA conversion it needs.
- ``imagequant-pil``: the same library through ``imagequant.quantize_pil_image``, whose Python
  wrapper converts pixels to bytes one by one; same output, shown to make its overhead visible.
- ``pngquant``: the CLI (``--nofs``) on a PNG file: whole-process wall time including PNG decoding
  and encoding, so it is reported apart. Skipped when ``pngquant`` is not on PATH.

Every method's result is measured the same way: MSE over all pixels and channels (8-bit sRGB), PSNR,
SSIM (scikit-image, channel_axis=2, data_range=255), and the size of a Pillow palette PNG written
with default settings (palette trimmed to the highest index used). Times are the best of
``--repeat`` rounds that run every method once, interleaved, so that all methods sample the same
stretch of a noisy machine (one run only for a method whose run exceeds ``--slow-seconds``, and
for sklearn-full and imagequant-pil). Read the ratios, not the absolute times.

    python benchmarks/bench_quantize.py [IMAGES] [--quick] [--k 16,64,256] [--markdown]
                                        [--out results.json] [--sklearn-max-mp 3]
                                        [--min-mp 2] [--methods kmq,imagequant] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
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

METHODS = ("kmq", "sklearn-sample", "sklearn-full", "pil-mediancut", "pil-fastoctree",
           "imagequant", "imagequant-pil", "pngquant")
#: Methods timed once whatever --repeat says (each run takes seconds to minutes).
SINGLE_RUN = {"sklearn-full", "imagequant-pil"}


@dataclass
class Result:
    image: str
    width: int
    height: int
    k: int
    method: str
    seconds: float | None = None
    runs: int = 0
    whole_process: bool = False
    colors: int | None = None
    mse: float | None = None
    mse_float: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    png_bytes: int | None = None
    skipped: str | None = None

    @property
    def mp(self) -> float:
        return self.width * self.height / 1e6


# --- the methods: each returns (indices (H, W) uint8, palette (n, 3) uint8, extras) -----------

def run_kmq(rgb, pil, k, ctx):
    import kmq

    q = kmq.quantize(rgb, k, seed=0)
    return q.indices, q.palette, {"reported_mse": q.mse}


def _sklearn_result(km, labels, shape):
    centers = km.cluster_centers_ * 255.0
    palette = np.clip(np.rint(centers), 0, 255).astype(np.uint8)
    indices = labels.astype(np.uint8).reshape(shape[:2])
    return indices, palette, {"float_centers": centers}


def run_sklearn_sample(rgb, pil, k, ctx):
    from sklearn.cluster import KMeans
    from sklearn.utils import shuffle

    pixels = rgb.reshape(-1, 3) / 255.0  # as in scikit-learn's example
    sample = shuffle(pixels, random_state=0, n_samples=1000)
    km = KMeans(n_clusters=k, random_state=0).fit(sample)
    return _sklearn_result(km, km.predict(pixels), rgb.shape)


def run_sklearn_full(rgb, pil, k, ctx):
    from sklearn.cluster import KMeans

    pixels = rgb.reshape(-1, 3) / 255.0
    km = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=0).fit(pixels)
    return _sklearn_result(km, km.labels_, rgb.shape)


def _from_p_image(im: Image.Image):
    indices = np.asarray(im, dtype=np.uint8)
    palette = np.asarray(im.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)
    return indices, palette, {}


def run_pil_mediancut(rgb, pil, k, ctx):
    return _from_p_image(pil.quantize(k, method=Image.Quantize.MEDIANCUT,
                                      dither=Image.Dither.NONE))


def run_pil_fastoctree(rgb, pil, k, ctx):
    return _from_p_image(pil.quantize(k, method=Image.Quantize.FASTOCTREE,
                                      dither=Image.Dither.NONE))


def run_imagequant(rgb, pil, k, ctx):
    import imagequant

    data, pal = imagequant.quantize_raw_rgba_bytes(
        pil.convert("RGBA").tobytes(), pil.width, pil.height, dithering_level=0.0,
        max_colors=k, min_quality=0, max_quality=100)
    indices = np.frombuffer(data, dtype=np.uint8).reshape(pil.height, pil.width)
    return indices, np.asarray(pal, dtype=np.uint8).reshape(-1, 4)[:, :3], {}


def run_imagequant_pil(rgb, pil, k, ctx):
    import imagequant

    im = imagequant.quantize_pil_image(pil, dithering_level=0.0, max_quality=100, min_quality=0,
                                       max_colors=k)
    indices = np.asarray(im, dtype=np.uint8)
    palette = np.asarray(im.getpalette("RGBA"), dtype=np.uint8).reshape(-1, 4)[:, :3]
    return indices, palette, {}


def run_pngquant(rgb, pil, k, ctx):
    out = ctx["tmp"] / f"pngquant-{k}.png"
    subprocess.run([ctx["pngquant"], "--nofs", "--force", "--output", str(out), str(k),
                    str(ctx["png"])], check=True, capture_output=True)
    return out


RUNNERS: dict[str, Callable] = {
    "kmq": run_kmq, "sklearn-sample": run_sklearn_sample, "sklearn-full": run_sklearn_full,
    "pil-mediancut": run_pil_mediancut, "pil-fastoctree": run_pil_fastoctree,
    "imagequant": run_imagequant, "imagequant-pil": run_imagequant_pil,
    "pngquant": run_pngquant,
}


# --- measuring --------------------------------------------------------------------------------

def timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def time_methods(calls: dict[str, Callable[[], object]], repeat: int,
                 slow: float) -> dict[str, tuple[float, object, int]]:
    """Best wall time per method over rounds that interleave the methods.

    Each round runs every method once, so all methods sample the same stretch of a noisy machine.
    A method is not run again once a run of it took more than ``slow`` seconds, nor after one run
    if it is in ``SINGLE_RUN``. Returns ``{method: (best seconds, first output, runs)}``.
    """
    out: dict[str, list] = {}
    for round_ in range(repeat):
        for method, fn in calls.items():
            if round_ and (method in SINGLE_RUN or out[method][0] > slow):
                continue
            elapsed, result = timed(fn)
            if method not in out:
                out[method] = [elapsed, result, 1]
            else:
                out[method][0] = min(out[method][0], elapsed)
                out[method][2] += 1
    return {m: (v[0], v[1], v[2]) for m, v in out.items()}


def png_size(indices: np.ndarray, palette: np.ndarray) -> int:
    """Bytes of a Pillow palette PNG, default settings: the same encoder for every method."""
    im = Image.frombytes("P", (indices.shape[1], indices.shape[0]),
                         np.ascontiguousarray(indices).tobytes())
    im.putpalette(np.ascontiguousarray(palette).tobytes(), rawmode="RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.tell()


def squared_error(rgb: np.ndarray, approx: np.ndarray) -> float:
    """Mean squared error over all pixels and channels."""
    diff = (approx.astype(np.float64) - rgb).ravel()
    return float(diff @ diff / diff.size)


def ssim(rgb: np.ndarray, approx: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(rgb, approx, channel_axis=2, data_range=255))


def psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10 * math.log10(255.0**2 / mse)


def measure(res: Result, rgb: np.ndarray, indices: np.ndarray, palette: np.ndarray,
            extras: dict) -> None:
    indices = np.asarray(indices)
    palette = np.asarray(palette, dtype=np.uint8)[: int(indices.max()) + 1]
    approx = palette[indices]
    res.colors = int(np.count_nonzero(np.bincount(indices.ravel(), minlength=len(palette))))
    res.mse = squared_error(rgb, approx)
    res.psnr = psnr(res.mse)
    res.ssim = ssim(rgb, approx)
    res.png_bytes = png_size(indices, palette)
    if "float_centers" in extras:
        labels = indices.astype(np.intp)
        res.mse_float = squared_error(rgb, extras["float_centers"][labels])
    if "reported_mse" in extras and not math.isclose(extras["reported_mse"], res.mse,
                                                     rel_tol=1e-9, abs_tol=1e-9):
        print(f"  warning: kmq reports MSE {extras['reported_mse']:.6f}, measured {res.mse:.6f}",
              file=sys.stderr)


def bench_image(path: Path, ks: list[int], methods: list[str], args, ctx) -> list[Result]:
    rgb = read_rgb(path)
    pil = Image.fromarray(rgb)
    h, w = rgb.shape[:2]
    name = path.name
    results = []
    if "pngquant" in methods and ctx["pngquant"]:
        ctx["png"] = ctx["tmp"] / "input.png"
        pil.save(ctx["png"])
    for k in ks:
        calls = {}
        for method in methods:
            res = Result(name, w, h, k, method, whole_process=method == "pngquant")
            results.append(res)
            if method == "pngquant" and not ctx["pngquant"]:
                res.skipped = "pngquant not on PATH"
            elif method == "sklearn-full" and res.mp > args.sklearn_max_mp:
                res.skipped = f"{res.mp:.1f} MP > --sklearn-max-mp {args.sklearn_max_mp:g}"
            else:
                calls[method] = lambda m=method, k=k: RUNNERS[m](rgb, pil, k, ctx)
        timings = time_methods(calls, args.repeat, args.slow_seconds)
        for res in results[-len(methods):]:
            if res.skipped:
                continue
            res.seconds, out, res.runs = timings[res.method]
            if res.method == "pngquant":
                with Image.open(out) as im:
                    indices, palette, extras = _from_p_image(im)
            else:
                indices, palette, extras = out
            measure(res, rgb, indices, palette, extras)
        print_image_k(name, w, h, k, [r for r in results if r.k == k])
    return results


# --- reporting --------------------------------------------------------------------------------

def fmt(x, digits=2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def print_image_k(name: str, w: int, h: int, k: int, rows: list[Result]) -> None:
    kmq = next((r for r in rows if r.method == "kmq" and r.seconds), None)
    print(f"\n== {name}  {w}x{h} ({w * h / 1e6:.2f} MP)  K={k} ==")
    out = []
    for r in rows:
        if r.skipped:
            out.append([r.method, f"skipped: {r.skipped}"] + [""] * 7)
            continue
        ratio = kmq.seconds / r.seconds if kmq else None
        label = r.method + (" (whole process)" if r.whole_process else "")
        out.append([label, fmt(r.mse), fmt(r.mse_float), fmt(r.psnr), fmt(r.ssim, 4),
                    fmt(r.seconds, 3) + f" x{r.runs}", fmt(ratio, 3), f"{r.png_bytes:,}",
                    r.colors])
    print(table(["method", "MSE", "MSE float", "PSNR dB", "SSIM", "seconds", "kmq/x time",
                 "PNG bytes", "colors"], out))
    sys.stdout.flush()


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results: list[Result], ks: list[int], methods: list[str], markdown: bool) -> dict:
    by = {(r.image, r.k, r.method): r for r in results}
    images = sorted({(r.mp, r.image) for r in results})
    large = [name for mp, name in images if mp >= LARGE_MP]

    def ok(r):
        return r is not None and r.skipped is None

    summary_rows, summary = [], []
    for k in ks:
        for m in methods:
            rs = [by.get((name, k, m)) for _, name in images]
            rs = [r for r in rs if ok(r)]
            if not rs:
                continue
            pairs = [(by[(r.image, k, "kmq")], r) for r in rs]
            mse_ratio = median(q.mse / r.mse if r.mse else None for q, r in pairs)
            size_ratio = median(r.png_bytes / q.png_bytes for q, r in pairs)
            t_all = median(q.seconds / r.seconds for q, r in pairs)
            big = [(q, r) for q, r in pairs if r.image in large]
            t_big = median(q.seconds / r.seconds for q, r in big)
            s_big = median(r.seconds for _, r in big)
            row = {"k": k, "method": m, "images": len(rs), "psnr": median(r.psnr for r in rs),
                   "ssim": median(r.ssim for r in rs), "mse_ratio_kmq_over_x": mse_ratio,
                   "png_bytes_x_over_kmq": size_ratio, "time_ratio_kmq_over_x": t_all,
                   "seconds_large": s_big, "time_ratio_kmq_over_x_large": t_big}
            summary.append(row)
            summary_rows.append([k, m + (" (whole process)" if m == "pngquant" else ""), len(rs),
                                 fmt(row["psnr"]), fmt(row["ssim"], 4), fmt(mse_ratio, 3),
                                 fmt(t_all, 3), fmt(s_big, 3), fmt(t_big, 3),
                                 fmt(size_ratio, 3)])
    print(f"\n## Medians over images, per K ({len(images)} images; 'large' = the "
          f"{len(large)} photos of >= {LARGE_MP:g} MP)\n")
    print(table(["K", "method", "images", "PSNR dB", "SSIM", "MSE kmq/x", "time kmq/x",
                 "s (large)", "time kmq/x (large)", "PNG bytes x/kmq"], summary_rows,
                markdown=markdown))
    skipped = sorted({f"{r.method} on {r.image}: {r.skipped}" for r in results if r.skipped})
    for s in skipped:
        print(f"- skipped {s}")

    # Target (a): kmq MSE <= sklearn-full MSE (uint8 centers), per image and median per K.
    targets: dict = {"a": [], "b": []}
    print("\n## Target (a): kmq MSE <= scikit-learn k-means on all pixels (centers as uint8)\n")
    rows, all_pass_a = [], None
    for k in ks:
        pairs = [(by.get((n, k, "kmq")), by.get((n, k, "sklearn-full"))) for _, n in images]
        pairs = [(q, r) for q, r in pairs if ok(q) and ok(r)]
        for q, r in pairs:
            passed = q.mse <= r.mse
            all_pass_a = passed if all_pass_a is None else all_pass_a and passed
            targets["a"].append({"image": q.image, "k": k, "kmq_mse": q.mse, "sklearn_mse": r.mse,
                                 "sklearn_mse_float": r.mse_float, "ratio": q.mse / r.mse,
                                 "pass": passed})
            rows.append([q.image, k, fmt(q.mse, 3), fmt(r.mse, 3), fmt(r.mse_float, 3),
                         fmt(q.mse / r.mse, 4), fmt(q.mse / r.mse_float, 4),
                         "pass" if passed else "FAIL"])
        if pairs:
            med = median(q.mse / r.mse for q, r in pairs)
            passed = med <= 1.0
            all_pass_a = passed if all_pass_a is None else all_pass_a and passed
            targets["a"].append({"image": "median", "k": k, "ratio": med, "pass": passed})
            rows.append([f"median of {len(pairs)}", k, "", "", "", fmt(med, 4),
                         fmt(median(q.mse / r.mse_float for q, r in pairs), 4),
                         "pass" if passed else "FAIL"])
    if rows:
        print(table(["image", "K", "kmq MSE", "sklearn MSE", "sklearn float", "kmq/sklearn",
                     "kmq/float", "result"], rows, markdown=markdown))
    print(f"\nTarget (a): {verdict(all_pass_a)}")

    print("\n## Target (b): kmq quantize+remap time <= 0.5x imagequant's on photos >= "
          f"{LARGE_MP:g} MP\n")
    # the target is on the median over the large photos at each K; single photos are shown too
    rows, all_pass_b, per_image = [], None, []
    for k in ks:
        pairs = [(by.get((n, k, "kmq")), by.get((n, k, "imagequant"))) for n in large]
        pairs = [(q, r) for q, r in pairs if ok(q) and ok(r)]
        for q, r in pairs:
            ratio = q.seconds / r.seconds
            passed = ratio <= 0.5
            per_image.append(passed)
            wrap = by.get((q.image, k, "imagequant-pil"))
            wrap_ratio = q.seconds / wrap.seconds if ok(wrap) else None
            targets["b"].append({"image": q.image, "k": k, "kmq_seconds": q.seconds,
                                 "imagequant_seconds": r.seconds, "ratio": ratio,
                                 "ratio_vs_pil_wrapper": wrap_ratio, "pass": passed})
            rows.append([q.image, k, fmt(q.seconds, 3), fmt(r.seconds, 3), fmt(ratio, 3),
                         fmt(wrap_ratio, 3), "pass" if passed else "FAIL"])
        if pairs:
            med = median(q.seconds / r.seconds for q, r in pairs)
            all_pass_b = med <= 0.5 if all_pass_b is None else all_pass_b and med <= 0.5
            targets["b"].append({"image": "median", "k": k, "ratio": med, "pass": med <= 0.5})
            rows.append([f"median of {len(pairs)}", k, "", "", fmt(med, 3), "",
                         "pass" if med <= 0.5 else "FAIL"])
    if rows:
        print(table(["image", "K", "kmq s", "imagequant s", "kmq/imagequant",
                     "kmq/quantize_pil_image", "result"], rows, markdown=markdown))
    if all_pass_b is None:
        print(f"\nTarget (b): {verdict(None)}")
    else:
        print(f"\nTarget (b), on the median at each K: {'PASS' if all_pass_b else 'FAIL'} "
              f"(single photos: {sum(per_image)} of {len(per_image)} rows at or below 0.5x)")
    targets["a_pass"], targets["b_pass"] = all_pass_a, all_pass_b
    return {"summary": summary, "targets": targets}


def verdict(passed: bool | None) -> str:
    if passed is None:
        return "not evaluated (no data: see the options and the skipped lines)"
    return "PASS (every row)" if passed else "FAIL (see the rows marked FAIL)"


# --- main -------------------------------------------------------------------------------------

def versions(pngquant: str | None) -> dict:
    import imagequant
    import numba
    import PIL
    import skimage
    import sklearn

    import kmq

    v = imagequant.lib.liq_version()
    out = {"kmq": f"{kmq.__version__} (sources {kmq_source_digest()})",
           "scikit-learn": sklearn.__version__, "Pillow": PIL.__version__,
           "scikit-image": skimage.__version__,
           "libimagequant (imagequant)": f"{v // 10000}.{v // 100 % 100}.{v % 100}",
           "numba": numba.__version__, "numba threads": numba.get_num_threads()}
    if pngquant:
        run = subprocess.run([pngquant, "--version"], capture_output=True, text=True)
        out["pngquant"] = run.stdout.strip() or run.stderr.strip()
    return out


def warm_up(ks: list[int], methods: list[str], ctx) -> None:
    """One call of every in-process method on a small image: numba compilation, thread pools."""
    rng = np.random.default_rng(0)
    # ~100k distinct colors: above kmq's histogram size for coarse cells (65536), so the cell
    # levels' kernels are compiled here too, not in the first timed run; read-only as the
    # images read from files are (a read-only array is another signature for numba)
    pil = Image.fromarray(rng.integers(0, 256, (320, 320, 3), dtype=np.uint8))
    small = np.asarray(pil)
    for method in methods:
        if method in {"pngquant", "imagequant-pil"}:
            continue
        for k in ks:
            RUNNERS[method](small, pil, k, ctx)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="?", default=str(DEFAULT_IMAGES),
                   help=f"folder of images, searched recursively (default {DEFAULT_IMAGES})")
    p.add_argument("--quick", action="store_true", help="only the 3 smallest images")
    p.add_argument("--min-mp", type=float, default=0.0,
                   help=f"only images of at least this many megapixels ({LARGE_MP:g}: the photos "
                        "of target (b))")
    p.add_argument("--k", default="16,64,256", help="comma-separated palette sizes")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per method (best is kept)")
    p.add_argument("--slow-seconds", type=float, default=5.0,
                   help="a run slower than this is not repeated")
    p.add_argument("--sklearn-max-mp", type=float, default=3.0,
                   help="skip the full scikit-learn fit above this many megapixels")
    p.add_argument("--kmq-threads", type=int,
                   help="numba threads for kmq (default: numba's, one per CPU); the imagequant "
                        "wheel is single-threaded, the pngquant CLI uses OpenMP")
    p.add_argument("--markdown", action="store_true", help="summary tables in Markdown")
    p.add_argument("--out", help="write every measurement to this JSON file")
    args = p.parse_args(argv)
    args.ks = [int(k) for k in args.k.split(",")]
    args.method_list = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.method_list) - set(METHODS)
    if unknown or "kmq" not in args.method_list:
        p.error(f"--methods must include kmq and only names from {', '.join(METHODS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", module="sklearn")
    paths = [p for p in find_images(args.images) if megapixels(p) >= args.min_mp]
    if args.quick:
        paths = paths[:3]
    pngquant = shutil.which("pngquant")
    if args.kmq_threads:
        import numba

        numba.set_num_threads(args.kmq_threads)
    vers = versions(pngquant)
    print(f"# bench_quantize: {len(paths)} images, K = {args.ks}")
    print(f"# {machine()}")
    print("# " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    if not pngquant and "pngquant" in args.method_list:
        print("# pngquant not on PATH: its rows are skipped")
    print(f"# times: best of {args.repeat} interleaved rounds (1 run for "
          f"{', '.join(sorted(SINGLE_RUN))} and for any run over {args.slow_seconds:g} s); "
          "'kmq/x time' < 1 means kmq is faster")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="kmq-bench-") as tmp:
        ctx = {"tmp": Path(tmp), "pngquant": pngquant}
        warm_up(args.ks, args.method_list, ctx)
        for path in paths:
            results += bench_image(path, args.ks, args.method_list, args, ctx)
    report = summarize(results, args.ks, args.method_list, args.markdown)
    if args.out:
        payload = {"machine": machine(), "versions": vers, "args": vars(args),
                   "results": [asdict(r) | {"mp": r.mp} for r in results], **report}
        Path(args.out).write_text(json.dumps(payload, indent=1, default=str) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
