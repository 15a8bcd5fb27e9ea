"""Checks shared by the palette-image writers: a (K, 3) or (K, 4) uint8 palette and an (H, W)
index map."""

from __future__ import annotations

import numpy as np

from kmq.errors import ArgumentError, one_line


def check_indexed(palette, indices, max_colors: int) -> tuple[np.ndarray, np.ndarray]:
    """The palette as (K, 3) or (K, 4) (RGBA) uint8 and the indices as a C-contiguous (H, W)
    integer array with values in 0..K-1, or a ValueError that says what was expected and what
    came in."""
    palette = np.asarray(palette)
    indices = np.asarray(indices)
    if palette.dtype != np.uint8 or palette.ndim != 2 or palette.shape[1] not in (3, 4) or not (
            1 <= len(palette) <= max_colors):
        raise ArgumentError(f"expected palette to be a (K, 3) or (K, 4) uint8 array with 1 <= K <= "
                            f"{max_colors}; got shape {palette.shape} and dtype {palette.dtype}")
    if indices.ndim != 2 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ArgumentError(f"expected indices to be a non-empty (H, W) integer array; "
                            f"got shape {indices.shape} and dtype {indices.dtype}")
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= len(palette):
        raise ArgumentError(f"expected indices in 0..{len(palette) - 1} (the palette has "
                            f"{len(palette)} colors); got values in {low}..{high}")
    return palette, np.ascontiguousarray(indices)


def decode_with_pillow(data: bytes, fmt: str | None, max_colors: int, *,
                       max_pixels: int | None = None):
    """The palette and index map of a ``fmt`` file (a Pillow format name; None: any) as an
    :class:`kmq.quantized.IndexedImage`: a palette image's own palette and indices (its
    transparency as the palette's alpha), or the distinct colors of any other image, in order
    of first appearance. Raises :class:`kmq.ImageReadError` for a file that is not such an
    image or has more than ``max_colors`` colors, and :class:`kmq.ImageTooLargeError` for one
    of more than ``max_pixels`` pixels (checked before decoding)."""
    import io

    from PIL import Image, UnidentifiedImageError

    from kmq.errors import ImageReadError, ImageTooLargeError
    from kmq.quantized import IndexedImage

    what = f"{fmt} file" if fmt else "image file"
    try:
        with Image.open(io.BytesIO(data), formats=[fmt] if fmt else None) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise ImageTooLargeError(f"{im.width}x{im.height} = {im.width * im.height:,} "
                                         f"pixels is over the limit of {max_pixels:,} pixels")
            im.load()
            if im.mode == "P" and im.palette is not None:
                rgb = np.frombuffer(bytes(im.getpalette("RGB") or b""), np.uint8).reshape(-1, 3)
                indices = np.asarray(im)
                k = max(len(rgb), int(indices.max()) + 1)
                palette = np.zeros((k, 3), np.uint8)
                palette[:len(rgb)] = rgb[:k]
                alpha = _palette_alpha(im.info.get("transparency"), k)
                if alpha is not None:
                    palette = np.concatenate([palette, alpha[:, None]], axis=1)
                return IndexedImage(palette, indices.astype(np.uint8, copy=False))
            pixels = np.asarray(im.convert("RGBA" if "A" in im.getbands() or
                                           "transparency" in im.info else "RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"not a readable {what} ({one_line(exc)})") from exc
    flat = np.ascontiguousarray(pixels.reshape(-1, pixels.shape[2]))
    colors, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    if len(colors) > max_colors:
        raise ImageReadError(f"the {what} has {len(colors):,} colors, more than a palette "
                             f"of {max_colors:,} holds")
    order = np.argsort(first)  # entries in order of first appearance
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    dtype = np.uint8 if len(colors) <= 256 else np.uint16
    indices = rank[inverse.ravel()].astype(dtype).reshape(pixels.shape[:2])
    return IndexedImage(np.ascontiguousarray(colors[order]), indices)


def _palette_alpha(transparency, k: int) -> np.ndarray | None:
    """Alpha of each of ``k`` palette entries from Pillow's ``info["transparency"]`` (bytes for
    a PNG tRNS chunk, one index for a GIF), or None when every entry is opaque."""
    if transparency is None:
        return None
    alpha = np.full(k, 255, np.uint8)
    if isinstance(transparency, int):
        if transparency < k:
            alpha[transparency] = 0
    else:
        given = np.frombuffer(bytes(transparency), np.uint8)[:k]
        alpha[:len(given)] = given
    return alpha if (alpha != 255).any() else None
