"""Do ``kmq compress`` outputs stay the same? Record them once, check them after a change.

Runs the ``kmq`` command as a user does on every photo in ``../shared/images`` (and one image
with translucent alpha made from one of them) at K = 16, 64 and 256, in every output format
(png, webp, gif, kmq), plain, dithered (``--dither 1``) and with ``--colorspace wsrgb``. For each
output it keeps the sha256 of the decoded pixels (RGBA, as Pillow or ``kmq.load`` decodes the
file) and the file's size in bytes.

    python benchmarks/golden_outputs.py record benchmarks/golden_outputs.json
    python benchmarks/golden_outputs.py check benchmarks/golden_outputs.json [--pixels-only]

``check`` prints every output whose pixels or size differ and exits 1 if any does. A change that
is meant to change the bytes but not the pixels (a better PNG writer, say) is checked with
``--pixels-only`` and then recorded again. The full run takes 15-25 minutes on 2 cores;
``--k``, ``--formats``, ``--modes`` and ``--images`` narrow it (a check compares only what it ran).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _common import DEFAULT_IMAGES, find_images

FORMATS = ("png", "webp", "gif", "kmq")
MODES = {"plain": [], "dither": ["--dither", "1"], "wsrgb": ["--colorspace", "wsrgb"]}
KS = (16, 64, 256)
RGBA_NAME = "translucent_rgba.png"


def kmq_command() -> list[str]:
    exe = Path(sys.executable).with_name("kmq")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kmq"]


def make_rgba(source: Path, folder: Path) -> Path:
    """A 384x256 crop of ``source`` with alpha: a transparent band, a translucent ramp and an
    opaque rest (so the RGBA engine, not the cut-out path, runs)."""
    with Image.open(source) as im:
        rgb = np.asarray(im.convert("RGB"))[:256, :384]
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :64] = 0
    alpha[:, 64:192] = np.linspace(0, 255, 128).round().astype(np.uint8)
    path = folder / RGBA_NAME
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return path


def decoded_digest(path: Path) -> str:
    """sha256 of the file's pixels as RGBA uint8, with the shape."""
    if path.suffix == ".kmq":
        import kmq

        pixels = kmq.load(path).to_array()
        if pixels.shape[2] == 3:
            pixels = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    else:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGBA"))
    digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    return f"{pixels.shape[1]}x{pixels.shape[0]}:{digest}"


def run_all(images: list[Path], ks, formats, modes, work: Path) -> dict[str, dict]:
    results: dict[str, dict] = {}
    exe = kmq_command()
    for k in ks:
        for mode in modes:
            for fmt in formats:
                out = work / f"k{k}-{mode}-{fmt}"
                out.mkdir()
                cmd = [*exe, "compress", *map(str, images), "-k", str(k), "--format", fmt,
                       *MODES[mode], "-o", str(out), "--force", "--quiet"]
                start = time.perf_counter()
                run = subprocess.run(cmd, capture_output=True, text=True)
                if run.returncode != 0:
                    raise SystemExit(f"{' '.join(cmd)} exited {run.returncode}:\n{run.stderr}")
                for image in images:
                    found = sorted(out.glob(f"{image.stem}*.{fmt}"))
                    if len(found) != 1:
                        raise SystemExit(f"expected one output for {image.name} in {out}; "
                                         f"found {[p.name for p in found]}")
                    key = f"{image.name} k={k} {mode} {fmt}"
                    results[key] = {"pixels": decoded_digest(found[0]),
                                    "bytes": found[0].stat().st_size}
                print(f"k={k:<3} {mode:<6} {fmt:<4} {time.perf_counter() - start:6.1f} s",
                      file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("reference", type=Path)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--k", default=",".join(map(str, KS)))
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--pixels-only", action="store_true",
                        help="check: compare decoded pixels only, not file sizes")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    formats = args.formats.split(",")
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="kmq-golden-") as tmp:
        work = Path(tmp)
        images = find_images(args.images)
        images.append(make_rgba(images[0], work))
        results = run_all(images, ks, formats, modes, work)
    if args.action == "record":
        args.reference.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(results)} outputs in {args.reference}")
        return
    reference = json.loads(args.reference.read_text())
    differ = 0
    for key, got in results.items():
        want = reference.get(key)
        if want is None:
            print(f"not in the reference: {key}")
            differ += 1
        elif got["pixels"] != want["pixels"]:
            print(f"pixels differ: {key}")
            differ += 1
        elif not args.pixels_only and got["bytes"] != want["bytes"]:
            print(f"size differs: {key}: {want['bytes']} -> {got['bytes']} bytes")
            differ += 1
    print(f"{len(results) - differ} of {len(results)} outputs identical"
          + (" in pixels" if args.pixels_only else " in pixels and size"))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
