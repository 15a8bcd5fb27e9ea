"""Checks shared by the palette-image writers: a (K, 3) or (K, 4) uint8 palette and an (H, W)
index map."""

from __future__ import annotations

import numpy as np


def check_indexed(palette, indices, max_colors: int) -> tuple[np.ndarray, np.ndarray]:
    """The palette as (K, 3) or (K, 4) (RGBA) uint8 and the indices as a C-contiguous (H, W)
    integer array with values in 0..K-1, or a ValueError that says what was expected and what
    came in."""
    palette = np.asarray(palette)
    indices = np.asarray(indices)
    if palette.dtype != np.uint8 or palette.ndim != 2 or palette.shape[1] not in (3, 4) or not (
            1 <= len(palette) <= max_colors):
        raise ValueError(f"expected palette to be a (K, 3) or (K, 4) uint8 array with 1 <= K <= "
                         f"{max_colors}; got shape {palette.shape} and dtype {palette.dtype}")
    if indices.ndim != 2 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"expected indices to be a non-empty (H, W) integer array; "
                         f"got shape {indices.shape} and dtype {indices.dtype}")
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= len(palette):
        raise ValueError(f"expected indices in 0..{len(palette) - 1} (the palette has "
                         f"{len(palette)} colors); got values in {low}..{high}")
    return palette, np.ascontiguousarray(indices)
