"""Initial centers for k-means: weighted greedy k-means++ with explicit randomness."""

from __future__ import annotations

import numpy as np

from kmq._kernels import kmeans as _k


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, a Generator (used as is) or None (seed 0)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = 0
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"expected a seed that is a non-negative int or a Generator; got {seed!r}")
    return np.random.default_rng(int(seed))


def kmeans_plus_plus(points: np.ndarray, weights: np.ndarray, k: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Choose ``k`` of the (distinct) ``points`` as initial centers by greedy weighted k-means++.

    Each new center is the best of ``2 + ln k`` candidates drawn with probability proportional to
    ``weight * D(x)**2`` (Arthur and Vassilvitskii 2007, greedy variant as in scikit-learn).

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.seeding import kmeans_plus_plus
    >>> pts = np.array([[0, 0, 0], [1, 0, 0], [200, 200, 200]], float)
    >>> c = kmeans_plus_plus(pts, np.ones(3), 2, np.random.default_rng(0))
    >>> sorted(c[:, 0].tolist())[-1]
    200.0
    """
    return from_draws(points, weights, draws(k, rng))


def draws(k: int, rng: np.random.Generator) -> np.ndarray:
    """The uniform draws one :func:`kmeans_plus_plus` seeding of ``k`` centers takes from
    ``rng`` (drawing them first lets several seedings run in threads, reproducibly)."""
    return rng.random((k, 2 + int(np.log(k))))


def from_draws(points: np.ndarray, weights: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """:func:`kmeans_plus_plus` driven by :func:`draws`' draws (releases the GIL)."""
    n, k = len(points), len(uniforms)
    if not 1 <= k <= n:
        raise ValueError(f"expected 1 <= k <= number of points ({n}); got k={k}")
    chosen = _k.kmeanspp(np.ascontiguousarray(points, np.float64),
                         np.ascontiguousarray(weights, np.float64), k, uniforms)
    return points[chosen].astype(np.float64)
