"""kmq's palette against scikit-learn's KMeans at the same K: error at or below, on every image.

scikit-learn runs as its color-quantization example does it but fitted on all pixels: k-means++
initialization, one run (n_init=1), its default tolerance. Both errors are those of an 8-bit image
that a file can hold: scikit-learn's centers are rounded to 8 bits and every pixel takes its
nearest rounded center (the most favourable mapping for it), exactly as kmq's palette is made.
The images are halved to keep the suite quick.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import kmq
import naive

sklearn_cluster = pytest.importorskip("sklearn.cluster")

K_VALUES = (16, 64, 256)


def _half(rgb: np.ndarray) -> np.ndarray:
    im = Image.fromarray(rgb)
    return np.asarray(im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS))


def _sklearn_mse(rgb: np.ndarray, k: int) -> float:
    pixels = rgb.reshape(-1, 3).astype(np.float64)
    km = sklearn_cluster.KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=0)
    palette = np.clip(np.rint(km.fit(pixels).cluster_centers_), 0, 255).astype(np.uint8)
    return float(np.mean((palette[naive.nearest(pixels, palette)] - pixels) ** 2))


def _check(rgb: np.ndarray, k: int) -> None:
    q = kmq.quantize(rgb, k, seed=0)
    recomputed = float(np.mean((q.to_rgb().astype(np.float64) - rgb) ** 2))
    assert q.mse == pytest.approx(recomputed, rel=1e-12)
    reference = _sklearn_mse(rgb, k)
    assert q.mse <= reference, f"kmq {q.mse:.4f} > scikit-learn {reference:.4f} at K={k}"


@pytest.mark.parametrize("k", K_VALUES)
@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_error_at_or_below_sklearn_on_bundled_photos(name, k):
    from skimage import data

    _check(_half(getattr(data, name)()), k)


@pytest.mark.shared_images
@pytest.mark.parametrize("k", K_VALUES)
@pytest.mark.parametrize("name", ["cq100/fruits.png", "cq100/macaws.png"])
def test_error_at_or_below_sklearn_on_shared_photos(shared_images, name, k):
    _check(_half(np.asarray(Image.open(shared_images / name).convert("RGB"))), k)
