"""What quantizing gives back: a palette and an index map (:class:`IndexedImage`), and with the
numbers of the fit, :class:`Quantized`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, repr=False)
class IndexedImage:
    """A palette image: K colors and, for every pixel, the index of its color.

    What :func:`kmq.load` and the codecs' ``decode`` return; :class:`Quantized` adds the
    numbers of the quantization.

    Attributes
    ----------
    palette : ndarray of uint8, shape (K, 3), or (K, 4) for an image with transparency
    indices : ndarray of uint8 (K <= 256) or uint16, shape (H, W)
    """

    palette: np.ndarray
    indices: np.ndarray

    @property
    def k(self) -> int:
        """Number of palette entries."""
        return len(self.palette)

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.indices.shape[1])

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.indices.shape[0])

    @property
    def has_alpha(self) -> bool:
        """Whether the palette is RGBA."""
        return self.palette.shape[1] == 4

    @property
    def index_bits(self) -> int:
        """Bits one index needs, ``ceil(log2 K)`` (at least 1)."""
        return max(1, math.ceil(math.log2(max(self.k, 2))))

    def to_array(self) -> np.ndarray:
        """The image as an (H, W, 3) or, with alpha, (H, W, 4) uint8 array."""
        return np.take(self.palette, self.indices, axis=0)

    def to_rgb(self) -> np.ndarray:
        """The image's colors as an (H, W, 3) uint8 array (alpha left out)."""
        return np.take(self.palette[:, :3], self.indices, axis=0)

    def to_image(self):
        """The image as a Pillow image: mode ``P`` with exactly the K palette entries (K <=
        256; an RGBA palette's alpha is kept, and saved as PNG ``tRNS``), else RGB or RGBA."""
        from PIL import Image

        if self.k > 256:
            return Image.fromarray(self.to_array(), "RGBA" if self.has_alpha else "RGB")
        from kmq.codecs.png import to_pil

        return to_pil(self.palette, self.indices)

    def _describe(self) -> str:
        alpha = ", RGBA" if self.has_alpha else ""
        return f"k={self.k}, {self.width}x{self.height}{alpha}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"


@dataclass(frozen=True, repr=False)
class Quantized(IndexedImage):
    """A quantized image: the palette, every pixel's index, and the error.

    Attributes
    ----------
    palette : ndarray of uint8, shape (K, 3), or (K, 4) for an image with transparency
        sRGB colors, most used first; RGBA palettes list their translucent entries first, and
        all fully transparent pixels share one entry, (0, 0, 0, 0).
    indices : ndarray of uint8 (K <= 256) or uint16, shape (H, W)
        Each pixel's palette entry. Without dithering, an opaque image's are its exactly nearest
        entries in the working color space, ties to the lower index: what
        ``kmq.remap(image, palette, color_space=...)`` gives.
    counts : ndarray of int64, shape (K,)
        Pixels per palette entry.
    mse : float
        Mean squared error over all pixels and channels, in 8-bit sRGB units; for RGBA, over
        the four channels of premultiplied sRGB (see :mod:`kmq.alpha`).
    distinct_colors : int
        Distinct colors in the input.
    n_iter, converged : int, bool
        k-means iterations on the exact histogram and whether it met its tolerance.
    seconds : float
        Time spent quantizing and remapping (not reading).
    """

    counts: np.ndarray
    mse: float
    distinct_colors: int
    n_iter: int = 0
    converged: bool = True
    seconds: float = 0.0
    k_requested: int = field(default=0)

    @property
    def psnr(self) -> float:
        """Peak signal-to-noise ratio in dB (8-bit sRGB); ``inf`` for an exact result."""
        from kmq.metrics import psnr_from_mse

        return psnr_from_mse(self.mse)

    def _describe(self) -> str:
        return f"{super()._describe()}, mse={self.mse:.4g}, psnr={self.psnr:.2f} dB"


__all__ = ["IndexedImage", "Quantized"]
