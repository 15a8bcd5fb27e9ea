"""Helpers shared by the benchmark scripts: where the images are, reading them, small tables.

The benchmarks never download anything: they read the photographs in ``../shared/images`` beside
the project's root (or a folder given on the command line).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO_ROOT.parent / "shared" / "images"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}
#: Photos at least this large (in megapixels) are the "large photo" cases of the speed targets.
LARGE_MP = 2.0


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Every image file under ``folder``, smallest first (then by path), or SystemExit."""
    root = Path(folder)
    if not root.is_dir():
        raise SystemExit(f"image folder not found: {root} (pass the folder as an argument)")
    files = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise SystemExit(f"no images in {root}")

    def size(p: Path) -> int:
        with Image.open(p) as im:
            return im.width * im.height

    return sorted(files, key=lambda p: (size(p), str(p)))


def megapixels(path: Path) -> float:
    with Image.open(path) as im:
        return im.width * im.height / 1e6


def read_rgb(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 array (EXIF orientation applied)."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def kmq_source_digest() -> str:
    """A short hash of the kmq sources measured (the library changes while benchmarks run)."""
    import hashlib

    import kmq

    digest = hashlib.sha256()
    for path in sorted(Path(kmq.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> str:
    """One line describing the machine and the interpreter."""
    return (f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python "
            f"{sys.version.split()[0]}, NumPy {np.__version__}")


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *,
          markdown: bool = False) -> str:
    """A plain-text (right-aligned, first column left) or Markdown table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |",
                 "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    out = []
    for row in cells:
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                         strict=True)]
        out.append("  ".join(parts).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)
