"""Reading images into RGB arrays, and writing files atomically.

Any file Pillow opens is accepted. EXIF orientation is applied; grayscale, palette, CMYK, YCbCr
and other modes become RGB; 16- and 32-bit samples are scaled to 8 bits; an alpha channel is
dropped with a :class:`AlphaDroppedWarning` (alpha support is planned). An image with more pixels
than ``max_pixels`` is refused before its pixels are decoded.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kmq.errors import ImageReadError, ImageTooLargeError, OutputExistsError

#: Default limit on the pixels of one input image (100 megapixels, 300 MB as RGB).
DEFAULT_MAX_PIXELS = 100_000_000

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_WIDE_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_EXIF_ORIENTATION = 0x0112


class AlphaDroppedWarning(UserWarning):
    """The input had transparency, which this version of kmq drops."""


def _check_size(width: int, height: int, max_pixels: int, name: str) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} = {width * height:,} pixels is over the limit of "
            f"{max_pixels:,} pixels (raise it with max_pixels / --max-pixels)")


def _wide_to_uint8(arr: np.ndarray) -> np.ndarray:
    """16/32-bit integer samples (0..65535) to 8 bits, rounding to nearest (x / 257)."""
    wide = np.clip(arr.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _float_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Float samples: [0, 1] if the image stays within it, else [0, 255]; then rounded."""
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0)
    scale = 255.0 if arr.size and np.nanmax(arr) <= 1.0 else 1.0
    return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)


def pil_to_rgb(im: Image.Image, name: str = "image") -> np.ndarray:
    """A Pillow image as an (H, W, 3) uint8 array (see the module docstring for the rules)."""
    mode = im.mode
    if mode in _WIDE_MODES or mode == "F":
        arr = np.asarray(im)
        gray = _float_to_uint8(arr) if mode == "F" else _wide_to_uint8(arr)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in im.info) or (
            mode in {"L", "RGB"} and "transparency" in im.info):
        warnings.warn(f"{name}: transparency dropped (alpha is not supported yet)",
                      AlphaDroppedWarning, stacklevel=3)
    if mode != "RGB":
        im = im.convert("RGBA" if mode == "P" and "transparency" in im.info else "RGB")
        if im.mode == "RGBA":
            im = im.convert("RGB")
    return np.asarray(im)


def read_rgb(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array.

    Raises
    ------
    ImageReadError
        The file is missing, unreadable, not an image or damaged.
    ImageTooLargeError
        It has more than ``max_pixels`` pixels.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from kmq.io import read_rgb
    >>> path = tempfile.mkdtemp() + "/gray.png"
    >>> Image.fromarray(np.full((2, 3), 200, np.uint8)).save(path)
    >>> read_rgb(path).shape, int(read_rgb(path)[0, 0, 1])
    ((2, 3, 3), 200)
    """
    name = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(name) as im:
                _check_size(im.width, im.height, max_pixels, name)
                im.load()
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
                if orientation != 1:
                    im = ImageOps.exif_transpose(im)
                return pil_to_rgb(im, name)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: {exc}") from exc
    except FileNotFoundError as exc:
        raise ImageReadError(f"{name}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageReadError(f"{name}: is a directory, not an image") from exc
    except PermissionError as exc:
        raise ImageReadError(f"{name}: permission denied") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{name}: not an image file Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name}: cannot decode image ({exc})") from exc


def as_rgb(image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An (H, W, 3) uint8 array from an array, a Pillow image or a path.

    Arrays may be (H, W) gray or (H, W, 3|4), of dtype uint8 (as is), uint16 (scaled to 8 bits)
    or bool.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_rgb(image, max_pixels=max_pixels)
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, max_pixels, "image")
        return pil_to_rgb(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array, a PIL.Image.Image or a path; "
                        f"got {type(image).__name__}")
    arr = image
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or (
            arr.size == 0):
        raise ValueError(f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4); "
                         f"got shape {arr.shape}")
    _check_size(arr.shape[1], arr.shape[0], max_pixels, "image")
    if arr.dtype == np.uint16:
        arr = _wide_to_uint8(arr)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise ValueError(f"expected an image array of dtype uint8 (or uint16, bool); "
                         f"got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 4:
        warnings.warn("image: alpha channel dropped (alpha is not supported yet)",
                      AlphaDroppedWarning, stacklevel=2)
        arr = arr[:, :, :3]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


@contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success it is renamed onto ``path``.

    On any error the temporary file is removed and ``path`` is left as it was. Without
    ``overwrite`` an existing ``path`` raises :class:`OutputExistsError` (checked before writing
    and, without a race, again at the rename).
    """
    target = Path(path)
    if not overwrite and target.exists():
        raise OutputExistsError(f"{target}: exists (use --force to overwrite)")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_or_rename(tmp, target)
    except FileExistsError as exc:
        os.unlink(tmp)
        raise OutputExistsError(f"{target}: exists (use --force to overwrite)") from exc
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _link_or_rename(tmp: str, target: Path) -> None:
    """Put ``tmp`` at ``target`` without replacing a file that appeared meanwhile."""
    try:
        os.link(tmp, target)  # atomic, and fails if the target exists
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if target.exists():
            raise FileExistsError(target) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None], *,
                 overwrite: bool = False) -> int:
    """Write a file through ``write(fileobj)`` atomically; returns the number of bytes written."""
    with atomic_output(path, overwrite=overwrite) as fh:
        write(fh)
        size = fh.tell()
    return size
