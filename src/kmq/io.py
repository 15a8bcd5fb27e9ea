"""Reading images into RGB or RGBA arrays, and writing files atomically: the primitives of
kmq's file layer (:mod:`kmq.files`).

Any image Pillow opens is accepted, from a path (regular files only: a FIFO, a device or a
folder is refused before anything is read), bytes or an open binary file. EXIF orientation is
applied; an embedded ICC profile other than sRGB (Display P3, Adobe RGB, a CMYK press
profile...) is converted to sRGB by LittleCMS (Pillow's ImageCms, relative colorimetric intent,
as browsers do), so that colors do not shift; grayscale, palette, CMYK, YCbCr and other modes
become RGB; 16- and 32-bit samples are scaled to 8 bits, float samples from [0, 1] (or [0, 255]
when they exceed 1). Transparency (an alpha channel, a PNG ``tRNS`` chunk, a GIF transparent
index) is kept by :func:`read_image` and :func:`as_pixels`, which return (H, W, 4) when some pixel
is not opaque; :func:`read_rgb` and :func:`as_rgb` drop it with an :class:`AlphaDroppedWarning`.
An image with more pixels than ``max_pixels`` is refused before its pixels are decoded. Every
failure to read is an :class:`kmq.ImageReadError` whose message names the input.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kmq.errors import (
    AlphaDroppedWarning,
    ArgumentError,
    ArgumentTypeError,
    FirstFrameWarning,
    ImageReadError,
    ImageTooLargeError,
    NonFiniteWarning,
    OutputExistsError,
    ProfileIgnoredWarning,
    one_line,
)

#: Default limit on the pixels of one input image (100 megapixels, 300 MB as RGB).
DEFAULT_MAX_PIXELS = 100_000_000

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_WIDE_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
_EXIF_ORIENTATION = 0x0112


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
    if out is None:  # Pillow transformed in place: not with these arguments
        return im
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


def _float_to_uint8(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """Float samples to 8 bits: from [0, 1] when the finite samples stay within it, else from
    [0, 255]; rounded and clipped. NaN and infinite samples do not choose the scale: NaN becomes
    0, an infinity the end of the range, with a :class:`NonFiniteWarning`."""
    arr = np.asarray(arr, np.float64)
    finite = np.isfinite(arr)
    all_finite = bool(finite.all())
    top = float(arr[finite].max()) if finite.any() else 0.0
    scale = 255.0 if top <= 1.0 else 1.0
    if not all_finite:
        bad = int(arr.size - np.count_nonzero(finite))
        warnings.warn(f"{name}: {bad:,} NaN or infinite samples clipped to the image's range",
                      NonFiniteWarning, stacklevel=4)
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0 / scale, neginf=0.0)
    return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)


def pil_to_array(im: Image.Image, name: str = "image", *, alpha: bool = True) -> np.ndarray:
    """A Pillow image as an (H, W, 3) uint8 array, or (H, W, 4) when ``alpha`` and some pixel is
    not fully opaque (see the module docstring for the rules)."""
    im = to_srgb(im, name)
    mode = im.mode
    if mode in _WIDE_MODES or mode == "F":
        arr = np.asarray(im)
        gray = _float_to_uint8(arr, name) if mode == "F" else _wide_to_uint8(arr)
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


def open_input(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading, or raise :class:`ImageReadError` saying why not: no
    such file, a folder, not a regular file (a FIFO or a device is never read, so it cannot
    hang), permission denied, or another OS error.

    Examples
    --------
    >>> import tempfile
    >>> from kmq.io import open_input
    >>> open_input(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    kmq.errors.ImageReadError: /...: is a directory, not an image file
    """
    name = os.fspath(path)
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _read_error(name, exc) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ImageReadError(f"{name}: is a directory, not an image file")
        if not stat.S_ISREG(mode):
            raise ImageReadError(f"{name}: not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_error(name: str, exc: OSError) -> ImageReadError:
    """The one-line :class:`ImageReadError` for an OS error met while reading ``name``."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return ImageReadError(f"{name}: no such file")
    if isinstance(exc, IsADirectoryError):
        return ImageReadError(f"{name}: is a directory, not an image file")
    if isinstance(exc, PermissionError):
        return ImageReadError(f"{name}: permission denied")
    return ImageReadError(f"{name}: cannot read ({exc.strerror or one_line(exc)})")


def _decode(fh: BinaryIO, *, max_pixels: int, alpha: bool, name: str) -> np.ndarray:
    """Decode an image from an open binary file (see the module docstring)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as opened:
                _check_size(opened.width, opened.height, max_pixels, name)
                frames = getattr(opened, "n_frames", 1)
                if frames > 1:
                    warnings.warn(f"{name}: {frames} frames or pages; the first is used",
                                  FirstFrameWarning, stacklevel=4)
                opened.load()
                im: Image.Image = opened
                if im.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                    im = ImageOps.exif_transpose(im)
                return pil_to_array(im, name, alpha=alpha)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{name}: not an image file Pillow can read") from exc
    except ImageReadError:
        raise
    except OSError as exc:
        if exc.errno is not None:  # the system's, not the decoder's
            raise _read_error(name, exc) from exc
        raise ImageReadError(f"{name}: cannot decode image ({one_line(exc)})") from exc
    except (SyntaxError, ValueError, EOFError, MemoryError, IndexError, KeyError, TypeError,
            ZeroDivisionError, OverflowError, struct.error) as exc:
        # what Pillow's decoders raise on damaged files (found by tests/properties'
        # image fuzz: a cut GIF, a TIFF with a damaged second page)
        raise ImageReadError(f"{name}: cannot decode image ({one_line(exc) or type(exc).__name__})"
                             ) from exc


def _source_name(source, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    given = getattr(source, "name", None)
    return given if isinstance(given, str) else "image"


def read_image(source: str | os.PathLike | bytes | BinaryIO, *,
               max_pixels: int = DEFAULT_MAX_PIXELS, alpha: bool = True,
               name: str | None = None) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB, or (H, W, 4) RGBA when it has transparency (some
    pixel not fully opaque) and ``alpha`` is true.

    ``source`` is a path (a regular file), the file's bytes, or an open binary file (e.g.
    ``io.BytesIO`` of an upload); ``name`` is what error messages call it (by default the path).

    Raises
    ------
    ImageReadError
        Missing, not a regular file, unreadable, not an image, damaged.
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
    label = _source_name(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise ImageReadError(f"{label}: empty file")
        return _decode(io.BytesIO(source), max_pixels=max_pixels, alpha=alpha, name=label)
    if not isinstance(source, (str, os.PathLike)):  # an open binary file
        return _decode(source, max_pixels=max_pixels, alpha=alpha, name=label)
    with open_input(source) as fh:
        return _decode(fh, max_pixels=max_pixels, alpha=alpha, name=label)


@dataclass(frozen=True)
class SourceImage:
    """An image read from a file, with what the file layer reports about it.

    Attributes
    ----------
    pixels : ndarray of uint8, shape (H, W, 3) or (H, W, 4)
    name : str
        What messages call it (the path, or the name given).
    n_bytes : int
        Size of the file (or of the bytes) read.
    warnings : tuple of str
        Warnings met while reading, one line each (the first frame used, a profile ignored...).
    """

    pixels: np.ndarray
    name: str
    n_bytes: int
    warnings: tuple[str, ...] = ()


#: ``warnings.catch_warnings`` changes process-wide state: reads that record warnings take turns.
_WARNINGS_LOCK = threading.Lock()


def load_image(source: str | os.PathLike | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               alpha: bool = True, name: str | None = None) -> SourceImage:
    """:func:`read_image` of a path or bytes, with the input's size and the warnings met while
    reading returned (not emitted) in a :class:`SourceImage`."""
    label = _source_name(source, name)
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(source, (bytes, bytearray, memoryview)):
            pixels, n_bytes = read_image(source, max_pixels=max_pixels, alpha=alpha,
                                         name=label), len(source)
        else:
            with open_input(source) as fh:
                n_bytes = os.fstat(fh.fileno()).st_size
                pixels = _decode(fh, max_pixels=max_pixels, alpha=alpha, name=label)
    messages = tuple(dict.fromkeys(one_line(w.message) for w in caught))
    return SourceImage(pixels=pixels, name=label, n_bytes=n_bytes, warnings=messages)


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
    not fully opaque) and ``alpha`` is true; from an array, a Pillow image, a path, an image
    file's bytes or an open binary file.

    Arrays may be (H, W) gray or (H, W, 1|3|4), of dtype uint8 (as is), uint16 (scaled to 8
    bits), bool, or float: in [0, 1] as scikit-image holds images (in [0, 255] when some
    sample exceeds 1; NaN and infinities are clipped with a warning). An (H, W, 4) array whose
    alpha is 255 everywhere comes back as RGB. A C-ordered (H, W, 3) uint8 array comes back as
    it is (no copy).

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
    >>> as_pixels(np.full((1, 1, 3), 0.5))[0, 0].tolist()  # float in [0, 1]
    [128, 128, 128]
    """
    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(
            image, "read"):
        return read_image(image, max_pixels=max_pixels, alpha=alpha)
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, max_pixels, "image")
        return pil_to_array(image, alpha=alpha)
    if not isinstance(image, np.ndarray):
        raise ArgumentTypeError(f"expected an image: a numpy array, a PIL.Image.Image, a path, "
                                f"bytes or a binary file; got {type(image).__name__}")
    arr = image
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or (
            arr.size == 0):
        raise ArgumentError(f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4); "
                            f"got shape {arr.shape}")
    _check_size(arr.shape[1], arr.shape[0], max_pixels, "image")
    if arr.dtype == np.uint16:
        arr = _wide_to_uint8(arr)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        arr = _float_to_uint8(arr)
    elif arr.dtype != np.uint8:
        raise ArgumentError(f"expected an image array of dtype uint8, uint16, bool or float; "
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
    if not overwrite and os.path.exists(target):
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


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object], *,
                 overwrite: bool = False) -> int:
    """Write a file through ``write(fileobj)`` atomically; returns the number of bytes written."""
    with atomic_output(path, overwrite=overwrite) as fh:
        write(fh)
        size = fh.tell()
    return size
