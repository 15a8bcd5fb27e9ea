"""Perceptual quality of kmq's modes beside libimagequant, with and without dithering.

For every image and K it quantizes with kmq in each color space (sRGB, linear, OKLab) and with
libimagequant, each without dithering and with full dithering (kmq's default adaptive
error diffusion at strength 1, libimagequant's at level 1), and prints PSNR, SSIM
(scikit-image, 8-bit, channel_axis=2), mean CIEDE2000 (scikit-image, on CIELAB of the sRGB
images), a low-pass CIEDE2000 (both images blurred by a Gaussian of sigma 1.5 px in linear
light first: the error seen from a distance, which dithering is meant to lower) and the
time to the palette and indices (what both libraries return: the lookup of each pixel's color
for the metrics is timed for neither), then per K and dithering the medians and, for each kmq
mode, on how many images it beats libimagequant on both SSIM and CIEDE2000.

    python benchmarks/bench_perceptual.py --markdown            # the 12 CQ100 photos
    python benchmarks/bench_perceptual.py --quick               # 3 of them
    python benchmarks/bench_perceptual.py --dither-only --spaces srgb,oklab --per-image
    # out of sample: images not used to choose wsrgb's weights (scikit-image's own photos and
    # the 1920x1280 Unsplash ones)
    python benchmarks/bench_perceptual.py ../shared/images/unsplash --max-mp 3 \
        --skimage coffee,chelsea,rocket,immunohistochemistry,hubble_deep_field,colorwheel
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.filters import gaussian
from skimage.metrics import structural_similarity

import kmq
from _common import (
    DEFAULT_IMAGES,
    find_images,
    kmq_source_digest,
    machine,
    megapixels,
    read_rgb,
    table,
)
from kmq.colorspace import check_space, linear_to_srgb, to_working

SPACES = ("srgb", "linear", "oklab")
#: Gaussian sigma (pixels) of the low-pass CIEDE2000.
BLUR_SIGMA = 1.5


def _blurred_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of ``rgb`` low-passed in linear light (what the eye averages from a distance)."""
    linear = to_working(rgb, "linear") / 255.0
    blurred = gaussian(linear, sigma=BLUR_SIGMA, channel_axis=-1, preserve_range=True)
    return rgb2lab(np.clip(linear_to_srgb(blurred), 0.0, 1.0))


def measure(rgb: np.ndarray, out: np.ndarray) -> tuple[float, float, float, float]:
    """PSNR, SSIM, mean CIEDE2000 and mean low-pass CIEDE2000 of ``out`` against ``rgb``."""
    mse = float(np.mean((rgb.astype(np.float64) - out) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
    ssim = structural_similarity(rgb, out, channel_axis=2, data_range=255)
    de = float(np.mean(deltaE_ciede2000(rgb2lab(rgb), rgb2lab(out))))
    de_low = float(np.mean(deltaE_ciede2000(_blurred_lab(rgb), _blurred_lab(out))))
    return psnr, ssim, de, de_low


def run_kmq(rgb, k, space, dither):
    t = time.perf_counter()
    q = kmq.quantize(rgb, k, color_space=space, dither=dither)
    seconds = time.perf_counter() - t
    return q.to_rgb(), seconds


def run_imagequant(rgb, k, dither):
    import imagequant

    h, w = rgb.shape[:2]
    rgba = np.dstack([rgb, np.full((h, w), 255, np.uint8)]).tobytes()
    t = time.perf_counter()
    out, palette = imagequant.quantize_raw_rgba_bytes(rgba, w, h, dithering_level=dither,
                                                      max_colors=k, min_quality=0,
                                                      max_quality=100)
    seconds = time.perf_counter() - t
    pal = np.array(palette, np.uint8).reshape(-1, 4)[:, :3]
    return pal[np.frombuffer(out, np.uint8).reshape(h, w)], seconds


def _images(args, ap) -> list[tuple[str, object]]:
    """(name, loader of the RGB array) of every image the options ask for."""
    folders = args.images or ([] if args.skimage else [str(DEFAULT_IMAGES / "cq100")])
    paths = [p for folder in folders for p in find_images(folder)
             if args.max_mp is None or megapixels(p) <= args.max_mp]
    images = [(p.name, lambda p=p: read_rgb(p)) for p in paths]
    import skimage.data

    for name in filter(None, args.skimage.split(",")):
        load = getattr(skimage.data, name, None)
        if load is None or not callable(load):
            ap.error(f"scikit-image has no sample image {name!r}")
        shape = load().shape
        if len(shape) != 3 or shape[2] != 3:
            ap.error(f"scikit-image's {name!r} is not an RGB image (shape {shape})")
        images.append((f"skimage:{name}", load))
    if not images:
        ap.error("no images")
    return images[:3 if args.quick else None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*",
                    help=f"image folders (default: {DEFAULT_IMAGES / 'cq100'}, unless --skimage)")
    ap.add_argument("--skimage", default="",
                    help="also these images bundled with scikit-image, comma-separated "
                         "names of skimage.data (RGB ones: coffee, chelsea, rocket...)")
    ap.add_argument("--max-mp", type=float, default=None,
                    help="skip images of more megapixels than this")
    ap.add_argument("--k", default="16,64,256")
    ap.add_argument("--quick", action="store_true", help="only 3 images")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--spaces", default=",".join(SPACES),
                    help="kmq color spaces to run, comma-separated (default: all three)")
    ap.add_argument("--dither-only", action="store_true",
                    help="only the dithered runs (kmq --dither 1, libimagequant at level 1)")
    ap.add_argument("--no-dither-only", action="store_true", help="only the undithered runs")
    ap.add_argument("--per-image", action="store_true",
                    help="also print one row per image, K, dithering and method")
    args = ap.parse_args()
    ks = [int(x) for x in args.k.split(",")]
    spaces = [check_space(s) for s in args.spaces.split(",")]
    if args.dither_only and args.no_dither_only:
        ap.error("--dither-only and --no-dither-only exclude each other")
    dithers = (1.0,) if args.dither_only else (0.0,) if args.no_dither_only else (0.0, 1.0)
    images = _images(args, ap)
    print(f"# bench_perceptual: {len(images)} images, K = {ks}; {machine()}; "
          f"kmq sources {kmq_source_digest()}")
    # compile (or load) every kernel before the first timed run: ~100k distinct colors take the
    # coarse-cell path too, in every space, with and without dithering
    # (read-only, as the photos read from files are: another signature for numba)
    warm = np.asarray(Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (320, 320, 3), dtype=np.uint8)))
    for space in spaces:
        for dither in dithers:
            kmq.quantize(warm, 256, color_space=space, dither=dither)
    results = defaultdict(list)  # (k, dither, method) -> [(image, psnr, ssim, de, de_low, s)]
    for name, load in images:
        rgb = load()
        for k in ks:
            for dither in dithers:
                runs = {f"kmq {s}": run_kmq(rgb, k, s, dither) for s in spaces}
                runs["imagequant"] = run_imagequant(rgb, k, dither)
                for method, (out, seconds) in runs.items():
                    results[(k, dither, method)].append((name, *measure(rgb, out), seconds))
        print(f"{name} done", flush=True)
    methods = [f"kmq {s}" for s in spaces] + ["imagequant"]
    if args.per_image:
        rows = [[name, k, "yes" if dither else "no", method, f"{psnr:.2f}", f"{ssim:.4f}",
                 f"{de:.3f}", f"{de_low:.3f}", f"{seconds:.3f}"]
                for k in ks for dither in dithers for method in methods
                for name, psnr, ssim, de, de_low, seconds in results[(k, dither, method)]]
        print()
        print(table(["image", "K", "dither", "method", "PSNR dB", "SSIM", "CIEDE2000",
                     "low-pass CIEDE2000", "seconds"], rows, markdown=args.markdown))
    rows = []
    for k in ks:
        for dither in dithers:
            iq = results[(k, dither, "imagequant")]
            for method in methods:
                r = results[(k, dither, method)]
                arr = np.array([x[1:] for x in r], float)
                wins = sum(1 for a, b in zip(r, iq, strict=True) if a[2] > b[2] and a[3] < b[3])
                rows.append([k, "yes" if dither else "no", method,
                             f"{np.median(arr[:, 0]):.2f}", f"{np.median(arr[:, 1]):.4f}",
                             f"{np.median(arr[:, 2]):.3f}", f"{np.median(arr[:, 3]):.3f}",
                             f"{np.median(arr[:, 4]):.3f}",
                             "-" if method == "imagequant" else f"{wins}/{len(r)}"])
    print()
    print(table(["K", "dither", "method", "PSNR dB", "SSIM", "CIEDE2000", "low-pass CIEDE2000",
                 "seconds", "beats imagequant on SSIM and CIEDE2000"], rows,
                markdown=args.markdown))


if __name__ == "__main__":
    main()
