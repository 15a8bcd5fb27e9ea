"""Independent references for the batch tests: one image compressed in this process through the
public library (no kmq.batch), and a shared palette fitted on histograms merged here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

import kmq
from kmq.codecs.png import encode_png
from kmq.color_histogram import histogram, merge
from kmq.io import read_rgb


def reference_png(path: Path, k: int, seed: int = 0) -> bytes:
    """What ``kmq compress path -k k`` writes: quantize in this process, encode as PNG."""
    q = kmq.quantize(read_rgb(path), k, seed=seed)
    return encode_png(q.palette, q.indices)


def reference_shared_palette(paths, k: int, seed: int = 0) -> np.ndarray:
    """The palette fitted to the sum of the images' histograms (kmq.color_histogram.merge)."""
    merged = merge([histogram(read_rgb(p)) for p in paths])
    return kmq.fit_palette(merged, k, seed=seed).palette


def decoded_png(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Palette (K, 3) and indices (H, W) of an indexed PNG, decoded by Pillow."""
    with Image.open(path) as im:
        assert im.mode == "P"
        indices = np.asarray(im)
        palette = np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)
    return palette, indices


def write_photos(folder: Path, n: int, size: int = 96, *, nested: bool = True) -> list[Path]:
    """``n`` small, distinct crops of scikit-image's sample photos as PNG files, every third one
    in ``sub/`` and every fifth in ``sub/deeper/`` when ``nested``."""
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    paths = []
    for i in range(n):
        photo = photos[i % 3]
        y = (37 * i) % (photo.shape[0] - size)
        x = (53 * i) % (photo.shape[1] - size)
        where = folder
        if nested and i % 5 == 4:
            where = folder / "sub" / "deeper"
        elif nested and i % 3 == 2:
            where = folder / "sub"
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"img{i:03d}.png"
        Image.fromarray(np.ascontiguousarray(photo[y:y + size, x:x + size])).save(path)
        paths.append(path)
    return paths
