"""Sample photographs for the demo, from the images scikit-image installs with itself.

They need no network: ``astronaut``, ``coffee`` and ``chelsea`` ship inside the scikit-image
package (``skimage/data``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Name -> one-line credit (from scikit-image's documentation of each image).
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
        raise ValueError(f"expected a sample name in {sorted(SAMPLES)}; got {name!r}")
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())


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
        image = Image.fromarray(load(name))
        path = folder / f"{name}.png"
        write_atomic(path, lambda fh, im=image: im.save(fh, format="PNG"), overwrite=overwrite)
        paths.append(path)
    return paths


__all__ = ["SAMPLES", "load", "write"]
