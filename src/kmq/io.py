"""Reading images into RGB or RGBA arrays, and writing files atomically.

Any file Pillow opens is accepted. EXIF orientation is applied; an embedded ICC profile other than
sRGB (Display P3, Adobe RGB, a CMYK press profile...) is converted to sRGB by LittleCMS (Pillow's
ImageCms, relative colorimetric intent, as browsers do), so that colors do not shift; grayscale,
palette, CMYK, YCbCr and other modes become RGB; 16- and 32-bit samples are scaled to 8 bits.
Transparency (an alpha channel, a PNG ``tRNS`` chunk, a GIF transparent index) is kept by
:func:`read_image` and :func:`as_pixels`, which return (H, W, 4) when some pixel is not opaque;
:func:`read_rgb` and :func:`as_rgb` drop it with an :class:`AlphaDroppedWarning`. An image with
more pixels than ``max_pixels`` is refused before its pixels are decoded.
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

from kmq.errors import ImageReadError, ImageTooLargeError, OutputExistsError, one_line

#: Default limit on the pixels of one input image (100 megapixels, 300 MB as RGB).
DEFAULT_MAX_PIXELS = 100_000_000

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_WIDE_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_EXIF_ORIENTATION = 0x0112


class AlphaDroppedWarning(UserWarning):
    """The input had transparency, which the caller asked to drop (an RGB-only use)."""


class ProfileIgnoredWarning(UserWarning):
    """The input's embedded ICC profile could not be used; its colors were read as sRGB."""


def _has_transparency(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or (
        im.mode in {"P", "L", "RGB", "1"} and "transparency" in im.info)


def _srgb_profile():
    from PIL import ImageCms

    global _SRGB
    if _SRGB is None:
        _SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB


_SRGB = None
#: Colors run through a profile to tell whether it is sRGB in all but name (then nothing is done).
_PROBE = np.array(np.meshgrid(*[np.linspace(0, 255, 9).round()] * 3), np.uint8).reshape(3, -1).T


def to_srgb(im: Image.Image, name: str = "image") -> Image.Image:
    """``im`` converted from its embedded ICC profile to sRGB; as it is without one.

    Profiles that map colors to sRGB within one level (sRGB itself under any name) are left
    alone, so sRGB files are not rounded twice. RGB and RGBA images keep their mode (alpha is not
    touched); CMYK and grayscale images with a profile become RGB. A damaged profile gives a
    warning (:class:`ProfileIgnoredWarning`) and the colors are read as sRGB, as browsers do.

    Examples
    --------
    >>> from PIL import Image
    >>> from kmq.io import to_srgb
    >>> im = Image.new("RGB", (2, 2), (200, 10, 10))
    >>> to_srgb(im) is im  # no profile: already sRGB
    True
    """
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in {"RGB", "RGBA", "CMYK", "L", "LA"}:
        return im
    import io as _io

    from PIL import ImageCms

    in_mode = "L" if im.mode == "LA" else im.mode
    out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
    try:
        source = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
        transform = ImageCms.buildTransform(
            source, _srgb_profile(), in_mode, out_mode,
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        warnings.warn(f"{name}: embedded ICC profile ignored, colors read as sRGB "
                      f"({one_line(exc) or type(exc).__name__})", ProfileIgnoredWarning,
                      stacklevel=4)
        return im
    if in_mode in {"RGB", "RGBA"}:
        probe = _PROBE if in_mode == "RGB" else np.concatenate(
            [_PROBE, np.full((len(_PROBE), 1), 255, np.uint8)], axis=1)
        mapped = np.asarray(ImageCms.applyTransform(Image.fromarray(probe[:, None, :]),
                                                    transform))[:, 0, :3]
        if int(np.abs(mapped.astype(np.int16) - _PROBE).max()) <= 1:
            return im  # sRGB already, whatever its name
    alpha = im.getchannel("A") if im.mode == "LA" else None
    out = ImageCms.applyTransform(im.convert(in_mode) if in_mode != im.mode else im, transform)
    if alpha is not None:
        out.putalpha(alpha)
    out.info = {k: v for k, v in im.info.items() if k != "icc_profile"}
    return out


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


def pil_to_array(im: Image.Image, name: str = "image", *, alpha: bool = True) -> np.ndarray:
    """A Pillow image as an (H, W, 3) uint8 array, or (H, W, 4) when ``alpha`` and some pixel is
    not fully opaque (see the module docstring for the rules)."""
    im = to_srgb(im, name)
    mode = im.mode
    if mode in _WIDE_MODES or mode == "F":
        arr = np.asarray(im)
        gray = _float_to_uint8(arr) if mode == "F" else _wide_to_uint8(arr)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if _has_transparency(im):
        rgba = np.asarray(im if mode == "RGBA" else im.convert("RGBA"))
        if not (rgba[:, :, 3] == 255).all():
            if alpha:
                return rgba
            warnings.warn(f"{name}: transparency dropped (this use needs RGB)",
                          AlphaDroppedWarning, stacklevel=3)
        return np.ascontiguousarray(rgba[:, :, :3])
    return np.asarray(im if mode == "RGB" else im.convert("RGB"))


def read_image(path: str | os.PathLike | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               alpha: bool = True, name: str | None = None) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, or (H, W, 4) RGBA when it has transparency
    (some pixel not fully opaque) and ``alpha`` is true.

    ``path`` may also be an open binary file (e.g. ``io.BytesIO`` of an upload); ``name`` is
    what error messages call it (by default the path).

    Raises
    ------
    ImageReadError
        The file is missing, unreadable, not an image, damaged, or has a broken ICC profile.
    ImageTooLargeError
        It has more than ``max_pixels`` pixels.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> from kmq.io import read_image
    >>> path = tempfile.mkdtemp() + "/dot.png"
    >>> rgba = np.zeros((2, 2, 4), np.uint8); rgba[0, 0] = [255, 0, 0, 255]
    >>> Image.fromarray(rgba).save(path)
    >>> read_image(path).shape, read_image(path)[0, 0].tolist()
    ((2, 2, 4), [255, 0, 0, 255])
    """
    source = path if hasattr(path, "read") else os.fspath(path)
    name = name or (source if isinstance(source, str) else "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                _check_size(im.width, im.height, max_pixels, name)
                im.load()
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
                if orientation != 1:
                    im = ImageOps.exif_transpose(im)
                return pil_to_array(im, name, alpha=alpha)
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
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{name}: cannot decode image ({exc})") from exc


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
    return read_image(path, max_pixels=max_pixels, alpha=False)


def as_pixels(image, *, max_pixels: int = DEFAULT_MAX_PIXELS, alpha: bool = True) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array, or (H, W, 4) RGBA when the image has transparency (some pixel
    not fully opaque) and ``alpha`` is true; from an array, a Pillow image or a path.

    Arrays may be (H, W) gray or (H, W, 1|3|4), of dtype uint8 (as is), uint16 (scaled to 8 bits)
    or bool. An (H, W, 4) array whose alpha is 255 everywhere comes back as RGB.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.io import as_pixels
    >>> rgba = np.full((2, 2, 4), 255, np.uint8)
    >>> as_pixels(rgba).shape  # opaque everywhere: RGB
    (2, 2, 3)
    >>> rgba[0, 0, 3] = 0
    >>> as_pixels(rgba).shape
    (2, 2, 4)
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, max_pixels=max_pixels, alpha=alpha)
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, max_pixels, "image")
        return pil_to_array(image, alpha=alpha)
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
        if (arr[:, :, 3] == 255).all():
            arr = arr[:, :, :3]
        elif not alpha:
            warnings.warn("image: transparency dropped (this use needs RGB)",
                          AlphaDroppedWarning, stacklevel=3)
            arr = arr[:, :, :3]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def binary_alpha(pixels: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Pixels with alpha only 0 or 255, for formats with one transparent color (GIF): alpha below
    ``threshold`` becomes 0, the rest 255. An RGB array, or one left opaque, comes back as RGB.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.io import binary_alpha
    >>> px = np.array([[[9, 9, 9, 0], [9, 9, 9, 100], [9, 9, 9, 200]]], np.uint8)
    >>> binary_alpha(px)[..., 3].tolist()
    [[0, 0, 255]]
    """
    if pixels.shape[2] == 3:
        return pixels
    out = pixels.copy()
    out[:, :, 3] = np.where(pixels[:, :, 3] < threshold, 0, 255)
    return out if (out[:, :, 3] == 0).any() else np.ascontiguousarray(out[:, :, :3])


def as_rgb(image, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An (H, W, 3) uint8 array from an array, a Pillow image or a path; transparency is dropped
    with an :class:`AlphaDroppedWarning` (see :func:`as_pixels`, which keeps it)."""
    return as_pixels(image, max_pixels=max_pixels, alpha=False)


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
