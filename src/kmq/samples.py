"""Sample photographs for the demo and the web page, shipped with kmq (``sample_images/``).

``astronaut``, ``coffee`` and ``chelsea``, the photographs scikit-image ships in ``skimage.data``,
stored losslessly as WebP inside the package: no network, and no scikit-image at run time.
"""

from __future__ import annotations

import io
import os
from functools import partial
from pathlib import Path

import numpy as np

from kmq.errors import ArgumentError

#: Name -> one-line credit.
SAMPLES: dict[str, str] = {
    "astronaut": "Eileen Collins, NASA (public domain), 512x512",
    "coffee": "Rachel Michetti, a cup of coffee (CC0), 600x400",
    "chelsea": "Stefan van der Walt, Chelsea the cat (CC0), 451x300",
}


def load(name: str) -> np.ndarray:
    """One sample image as an (H, W, 3) uint8 RGB array.

    Examples
    --------
    >>> from kmq.samples import load
    >>> load("coffee").shape
    (400, 600, 3)
    """
    if name not in SAMPLES:
        raise ArgumentError(f"expected a sample name in {sorted(SAMPLES)}; got {name!r}")
    from importlib.resources import files

    from kmq.io import read_image

    data = files("kmq").joinpath("sample_images", f"{name}.webp").read_bytes()
    return read_image(data, name=f"{name}.webp")


def write(directory: str | os.PathLike, names=tuple(SAMPLES), *,
          overwrite: bool = True) -> list[Path]:
    """Write sample images as RGB PNG files ``<name>.png`` in ``directory`` (created if needed).

    The files are written atomically; with ``overwrite`` (the default) files of the same names
    are replaced. Returns the paths written, in the order of ``names``.

    Examples
    --------
    >>> import tempfile
    >>> from kmq.samples import write
    >>> [p.name for p in write(tempfile.mkdtemp(), ["chelsea"])]
    ['chelsea.png']
    """
    from PIL import Image

    from kmq.io import write_atomic

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        buf = io.BytesIO()
        Image.fromarray(load(name)).save(buf, format="PNG")
        path = folder / f"{name}.png"
        write_atomic(path, partial(_write, buf.getvalue()), overwrite=overwrite)
        paths.append(path)
    return paths


def _write(data: bytes, fh) -> None:
    fh.write(data)


__all__ = ["SAMPLES", "load", "write"]
