"""scikit-learn's full k-means error on the shared images, recorded once and compared with kmq.

The quality bar of kmq's engine is scikit-learn's k-means fitted on every pixel:
``KMeans(k, init="k-means++", n_init=1, random_state=0)`` on the pixels scaled to 0..1, its
centers rounded to uint8 (as a file holds them) and every pixel given its nearest rounded
center; the MSE is over all pixels and channels in 8-bit sRGB. Those fits take about an hour on
2 cores, so they are made once and stored in ``sklearn_reference.json`` (image, K, scikit-learn
version, MSE; also the MSE of scikit-learn's own labels on the rounded centers and of its float
centers, for reference). One thread (``threadpoolctl``): the fit does not depend on the thread
count then, and a second core stays free.

    # regenerate the reference (the 15 shared images and the small scikit-image photos)
    python benchmarks/sklearn_reference.py --write
    # kmq against it: per K the median and worst kmq/scikit-learn MSE, and every pair above 1
    python benchmarks/sklearn_reference.py
    python benchmarks/sklearn_reference.py --k 256 --images skimage:chelsea,fruits.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _common import DEFAULT_IMAGES, find_images, machine, read_rgb

REFERENCE = Path(__file__).with_name("sklearn_reference.json")
KS = (16, 64, 256)
#: scikit-image's RGB photos of 0.1-0.5 MP (``cat`` is ``chelsea``; ``colorwheel`` is not a
#: photo), the small-image cases beside the 0.39 MP CQ100 photos.
SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry")


def images(folder: Path = DEFAULT_IMAGES) -> list[tuple[str, object]]:
    """(name, loader of the (H, W, 3) uint8 array): the scikit-image photos (named
    ``skimage:NAME``), then the shared ones, smallest first."""
    import skimage.data

    out = [(f"skimage:{name}", getattr(skimage.data, name)) for name in SKIMAGE_PHOTOS]
    return out + [(p.name, lambda p=p: read_rgb(p)) for p in find_images(folder)]


def mse_nearest(rgb: np.ndarray, palette: np.ndarray) -> float:
    """MSE of every pixel mapped to its nearest ``palette`` entry, by brute force over the
    distinct colors (independent of kmq's search)."""
    flat = rgb.reshape(-1, 3)
    colors, counts = np.unique(flat, axis=0, return_counts=True)
    pal = palette.astype(np.float64)
    total = 0.0
    for start in range(0, len(colors), 4096):
        c = colors[start:start + 4096].astype(np.float64)
        d2 = ((c[:, None, :] - pal[None, :, :]) ** 2).sum(axis=2)
        total += float(counts[start:start + 4096] @ d2.min(axis=1))
    return total / flat.size


def sklearn_fit(rgb: np.ndarray, k: int) -> dict:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    pixels = rgb.reshape(-1, 3) / 255.0
    t = time.perf_counter()
    with threadpool_limits(limits=1):
        km = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=0).fit(pixels)
    seconds = time.perf_counter() - t
    centers = km.cluster_centers_ * 255.0
    palette = np.clip(np.rint(centers), 0, 255).astype(np.uint8)
    flat = rgb.reshape(-1, 3).astype(np.float64)
    own = palette[km.labels_].astype(np.float64)
    return {"mse": mse_nearest(rgb, palette),
            "mse_labels": float(((own - flat) ** 2).mean()),
            "mse_float": float(((centers[km.labels_] - flat) ** 2).mean()),
            "n_iter": int(km.n_iter_), "seconds": round(seconds, 1)}


def write(args) -> None:
    import sklearn

    done = {}
    if REFERENCE.exists() and not args.fresh:  # resume: keep what is there
        for row in json.loads(REFERENCE.read_text())["results"]:
            done[(row["image"], row["k"])] = row
    selected = _selected(args)
    for name, load in selected:
        ks = [k for k in args.ks if (name, k) not in done]
        if not ks:
            continue
        rgb = load()
        if args.max_mp and rgb.shape[0] * rgb.shape[1] > args.max_mp * 1e6:
            print(f"{name}: skipped (> {args.max_mp:g} MP)", flush=True)
            continue
        for k in ks:
            row = {"image": name, "k": k, "sklearn": sklearn.__version__} | sklearn_fit(rgb, k)
            done[(name, k)] = row
            print(f"{name} K={k}: MSE {row['mse']:.4f} ({row['n_iter']} iterations, "
                  f"{row['seconds']} s)", flush=True)
            _save(done)


def _save(done: dict) -> None:
    rows = sorted(done.values(), key=lambda r: (r["image"], r["k"]))
    payload = {"what": "scikit-learn KMeans(k, init='k-means++', n_init=1, random_state=0) on "
                       "every pixel / 255, centers * 255 rounded to uint8, each pixel to its "
                       "nearest rounded center: MSE over pixels and channels (8-bit sRGB); "
                       "mse_labels: scikit-learn's own labels on the rounded centers; "
                       "mse_float: its float centers. One thread.",
               "machine": machine(), "results": rows}
    REFERENCE.write_text(json.dumps(payload, indent=1) + "\n")


def _selected(args) -> list[tuple[str, object]]:
    every = images(Path(args.folder))
    if not args.images:
        return every
    wanted = args.images.split(",")
    return [(n, load) for n, load in every if n in wanted]


def compare(args) -> int:
    import kmq

    ref = {(r["image"], r["k"]): r["mse"] for r in json.loads(REFERENCE.read_text())["results"]}
    ratios: dict[int, list[tuple[float, str]]] = {k: [] for k in args.ks}
    for name, load in _selected(args):
        if not any((name, k) in ref for k in args.ks):
            continue
        rgb = load()
        for k in args.ks:
            if (name, k) not in ref:
                continue
            q = kmq.quantize(rgb, k, seed=0)
            ratios[k].append((q.mse / ref[(name, k)], name))
            if args.verbose:
                print(f"{name:28s} K={k:3d}  kmq {q.mse:9.4f}  sklearn {ref[(name, k)]:9.4f}  "
                      f"{q.mse / ref[(name, k)]:.4f}", flush=True)
    worst_all = 0.0
    for k in args.ks:
        if not ratios[k]:
            continue
        values = [r for r, _ in ratios[k]]
        worst, worst_name = max(ratios[k])
        worst_all = max(worst_all, worst)
        above = [f"{n} {r:.4f}" for r, n in ratios[k] if r > 1.0]
        print(f"K={k:3d}: {len(values)} images, kmq/sklearn MSE median "
              f"{statistics.median(values):.4f}, worst {worst:.4f} ({worst_name})"
              + (f"; above 1: {', '.join(above)}" if above else ""))
    return 1 if worst_all > 1.0 else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true",
                    help="fit scikit-learn and (re)write the reference (missing pairs only, "
                         "unless --fresh)")
    ap.add_argument("--fresh", action="store_true", help="with --write: refit every pair")
    ap.add_argument("--folder", default=str(DEFAULT_IMAGES), help="the shared images' folder")
    ap.add_argument("--images", default="", help="only these, comma-separated names "
                                                  "(file names, or skimage:NAME)")
    ap.add_argument("--k", default=",".join(map(str, KS)))
    ap.add_argument("--max-mp", type=float, default=None,
                    help="with --write: skip images of more megapixels")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per image and K")
    args = ap.parse_args(argv)
    args.ks = [int(k) for k in args.k.split(",")]
    if args.write:
        write(args)
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
