"""kmq's file layer: an image file in, a compressed file out, and what happened.

:func:`compress_file` reads one image (any format Pillow reads; regular files only), quantizes it
as :class:`CompressOptions` say, encodes it in one of the registered formats (:mod:`kmq.codecs`)
and writes it atomically (a temporary file renamed into place: an output is whole or absent).
It never replaces an existing file without ``force`` and never replaces its input. It returns a
:class:`FileResult`: sizes in and out, K, PSNR (and SSIM when asked), seconds and warnings.
Failures raise a :class:`kmq.KmqError` whose ``exit_code`` the ``kmq`` command exits with.

:func:`compress_image` is the same work on an image already in memory (bytes in, bytes out:
the web page uses it); :mod:`kmq.indexed_files` turns ``.kmq`` files back into images and saves
and loads palette images. The ``kmq`` command, every batch worker (local or Dask), the report
and the web page go through these two modules (and :mod:`kmq.io` below them); nothing else
reads or writes image files.

Examples
--------
>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> from PIL import Image
>>> from kmq.files import CompressOptions, compress_file
>>> folder = Path(tempfile.mkdtemp())
>>> rng = np.random.default_rng(0)
>>> Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(folder / "a.png")
>>> result = compress_file(folder / "a.png", folder / "a.gif", CompressOptions(k=16))
>>> result.status, result.k, result.format, result.width, result.height
('done', 16, 'gif', 48, 32)
>>> result.output_bytes == (folder / "a.gif").stat().st_size
True
>>> compress_file(folder / "a.png", folder / "a.gif", CompressOptions(k=16))
Traceback (most recent call last):
...
kmq.errors.OutputExistsError: /.../a.gif: exists (use --force to overwrite)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kmq import codecs
from kmq.errors import (
    ArgumentError,
    CancelledError,
    KmqError,
    OutputExistsError,
    OutputWriteError,
    error_kind,
    one_line,
)
from kmq.io import DEFAULT_MAX_PIXELS, SourceImage, load_image, write_atomic
from kmq.quantized import Quantized

#: ``progress(stage, fraction) -> bool | None``: a truthy return cancels.
Progress = Callable[[str, float], "bool | None"]

#: Statuses of a :class:`FileResult`.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"
K_MIN, K_MAX = 2, 256
#: PNG writer efforts, fastest first.
EFFORTS = ("fast", "default", "max")
#: Added to an input's stem for its default output name: ``photo.jpg`` -> ``photo-kmq.png``.
OUTPUT_TAG = "-kmq"


@dataclass(frozen=True)
class CompressOptions:
    """How to compress an image (plain data: batch tasks send it to their workers).

    Attributes
    ----------
    k : int
        Colors, 2..256 (the cap of the ``psnr`` and ``max_bytes`` searches).
    format : str or None
        A format of :mod:`kmq.codecs` (``png``, ``webp``, ``gif``, ``kmq``); None: from the
        output's extension.
    seed : int
        The same image, options and seed give the same bytes.
    color_space : {"srgb", "wsrgb", "linear", "oklab"}
    dither : float
        Error diffusion strength, 0 (off) to 1.
    psnr : (float, float) or None
        ``(min_psnr, max_psnr)`` in dB: the fewest colors (at most ``k``) reaching
        ``max_psnr``, failing (:class:`kmq.QualityTooLowError`) below ``min_psnr`` (see
        :func:`kmq.quantize_to_quality`; :mod:`kmq.quality` converts pngquant's 0-100 scale).
    max_bytes : int or None
        A byte budget: the most colors (at most ``k``) whose file is at most this long
        (:func:`kmq.targets.quantize_to_size`); :class:`kmq.SizeBudgetError` when even 2 colors
        make a larger file.
    palette : ndarray of uint8, shape (K, 3) or (K, 4), or None
        Map every image onto this palette instead of fitting one.
    effort : {"fast", "default", "max"}
        How hard the PNG writer works for small files (:func:`kmq.codecs.png.encode_png`):
        ``fast`` skips the search, ``max`` tries more (ten times slower, a little smaller).
    force : bool
        Replace an existing output (never an input).
    skip_if_larger : bool
        Write nothing when the output would be larger than the input file (status
        ``skipped``).
    ssim : bool
        Measure SSIM against the input (it costs about as much as a fast quantize).
    max_pixels : int
        Larger inputs are refused (:class:`kmq.ImageTooLargeError`).
    """

    k: int = 256
    format: str | None = None
    seed: int = 0
    color_space: str = "srgb"
    dither: float = 0.0
    psnr: tuple[float, float] | None = None
    max_bytes: int | None = None
    palette: np.ndarray | None = field(default=None, compare=False)
    effort: str = "default"
    force: bool = False
    skip_if_larger: bool = False
    ssim: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        from kmq.colorspace import check_space

        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or not (
                K_MIN <= self.k <= K_MAX):
            raise ArgumentError(f"expected k, an int in {K_MIN}..{K_MAX}; got {self.k!r}")
        if self.format is not None:
            object.__setattr__(self, "format", codecs.get(self.format).name)
        object.__setattr__(self, "color_space", check_space(self.color_space))
        if isinstance(self.dither, bool) or not isinstance(self.dither, (int, float)) or not (
                0.0 <= self.dither <= 1.0):
            raise ArgumentError(f"expected dither, a strength in 0..1; got {self.dither!r}")
        if self.effort not in EFFORTS:
            raise ArgumentError(f"expected effort in {EFFORTS}; got {self.effort!r}")
        if self.psnr is not None:
            low, high = self.psnr
            if not 0 <= low <= high:
                raise ArgumentError(f"expected psnr (min, max) in dB with 0 <= min <= max; "
                                    f"got {self.psnr!r}")
        if self.max_bytes is not None and (isinstance(self.max_bytes, bool) or not isinstance(
                self.max_bytes, (int, np.integer)) or self.max_bytes < 1):
            raise ArgumentError(f"expected max_bytes, an int >= 1; got {self.max_bytes!r}")
        targets = [name for name, value in (("psnr", self.psnr), ("max_bytes", self.max_bytes),
                                            ("palette", self.palette)) if value is not None]
        if len(targets) > 1:
            raise ArgumentError(f"expected at most one of psnr, max_bytes and palette; got "
                                f"{' and '.join(targets)}")
        if self.palette is not None:
            from kmq.nearest import check_palette

            object.__setattr__(self, "palette", check_palette(self.palette, alpha=True))
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or (
                self.max_pixels < 1):
            raise ArgumentError(f"expected max_pixels, an int >= 1; got {self.max_pixels!r}")


@dataclass
class FileResult:
    """What happened to one file.

    Attributes
    ----------
    source, output : str
    status : {"done", "skipped", "failed"}
    reason : str
        Why it was skipped or failed (one line; empty when done).
    error : str
        The kind of failure (:attr:`kmq.KmqError.kind`: ``read``, ``too_large``, ``exists``,
        ``write``, ``corrupt``, ``quality``, ``budget``, ...); for a file skipped because its
        output would be larger than the input, ``larger``; empty otherwise.
    format : str
        The output's format (a :mod:`kmq.codecs` name, or a Pillow format for a decompressed
        file).
    input_bytes, output_bytes : int
        Sizes of the input file and of the output (0 when none was made; the size it would have
        had when it was not written for being larger than the input).
    width, height, channels : int
        The image's size, and 3 (RGB) or 4 (RGBA: an image with transparency).
    k : int
        Palette colors used.
    psnr, ssim : float
        Against the input, dB and mean SSIM; ``nan`` when not measured.
    seconds : float
        Time spent on the file (read, quantize, encode, write; not SSIM).
    warnings : tuple of str
        Warnings met on the way, one line each.
    """

    source: str
    output: str
    status: str = DONE
    reason: str = ""
    error: str = ""
    format: str = ""
    input_bytes: int = 0
    output_bytes: int = 0
    width: int = 0
    height: int = 0
    channels: int = 3
    k: int = 0
    psnr: float = math.nan
    ssim: float = math.nan
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def pixels(self) -> int:
        """Pixels of the image (0 when it was not read)."""
        return self.width * self.height

    @property
    def exit_code(self) -> int:
        """The ``kmq`` command's exit code for this file: 0 when done or skipped because its
        output exists, :data:`kmq.errors.EXIT_LARGER` when skipped because it would be larger,
        else its error's."""
        from kmq.errors import EXIT_BY_KIND, EXIT_LARGER

        if self.status == FAILED:
            return EXIT_BY_KIND.get(self.error, 1)
        return EXIT_LARGER if self.error == "larger" else 0

    @property
    def change(self) -> float:
        """Output size over input size, less one (-0.62: 62% smaller; ``nan`` when there is
        no output or no input size)."""
        size = self.output_bytes
        return size / self.input_bytes - 1.0 if size and self.input_bytes else math.nan

    def as_json(self) -> dict:
        """The result as a JSON-ready dict (``null`` for a number not measured, and for an
        exact result's infinite PSNR)."""
        from dataclasses import asdict

        out = asdict(self)
        out["warnings"] = list(self.warnings)
        out["change"] = self.change
        return {key: (None if isinstance(value, float) and not math.isfinite(value) else value)
                for key, value in out.items()}

    @property
    def bits_per_pixel(self) -> float:
        """Bits of the output per pixel (``nan`` when none was written)."""
        return 8.0 * self.output_bytes / self.pixels if self.output_bytes and self.pixels \
            else math.nan

    @property
    def ratio_raw(self) -> float:
        """Times smaller than raw 24-bit RGB (32-bit RGBA for an image with transparency)."""
        return self.channels * self.pixels / self.output_bytes if self.output_bytes \
            else math.nan

    @property
    def ratio_input(self) -> float:
        """Times smaller than the input file."""
        return self.input_bytes / self.output_bytes if self.output_bytes else math.nan

    @classmethod
    def failure(cls, source: str, output: str, exc: BaseException) -> FileResult:
        """A ``failed`` result for ``exc`` (its kind, and its message as the reason)."""
        reason = one_line(exc) if isinstance(exc, KmqError) else (
            f"{source}: internal error: {type(exc).__name__}: {one_line(exc)}")
        return cls(source, output, status=FAILED, reason=reason, error=error_kind(exc))


@dataclass(frozen=True)
class Compressed:
    """An image compressed in memory (:func:`compress_image`).

    Attributes
    ----------
    data : bytes
        The file's bytes.
    quantized : kmq.Quantized
        The palette and indices the file holds, with the error.
    pixels : ndarray of uint8
        The image as quantized (for GIF, alpha made binary first; without alpha when a given
        RGB palette dropped it): what PSNR and SSIM compare against.
    codec : kmq.codecs.Codec
    warnings : tuple of str
        What was changed on the way, one line each (transparency dropped by an RGB palette).
    """

    data: bytes = field(repr=False)
    quantized: Quantized
    pixels: np.ndarray = field(repr=False)
    codec: codecs.Codec
    warnings: tuple[str, ...] = ()


def _quantize(pixels: np.ndarray, options: CompressOptions, codec: codecs.Codec,
              progress: Progress | None) -> tuple:
    """The quantization ``options`` ask for (onto a given palette, to a quality, to a byte
    budget, or at K) and its file's bytes."""
    from kmq import pipeline, targets

    def encode(q) -> bytes:  # a palette the caller chose keeps its order in the file
        return codec.encode(q, effort=options.effort, keep_order=options.palette is not None)

    if options.palette is not None:
        q = pipeline.apply_palette(pixels, options.palette, color_space=options.color_space,
                                   dither=options.dither, max_pixels=options.max_pixels)
        return q, encode(q)
    seed, space, dither, cap = (options.seed, options.color_space, options.dither,
                                options.max_pixels)
    if options.max_bytes is not None:
        return targets.quantize_to_size(pixels, int(options.max_bytes), encode,
                                        max_colors=options.k, seed=seed, color_space=space,
                                        dither=dither, max_pixels=cap, progress=progress)
    if options.psnr is not None:
        q = targets.quantize_to_quality(pixels, *options.psnr, max_colors=options.k, seed=seed,
                                        color_space=space, dither=dither, max_pixels=cap,
                                        progress=progress)
    else:
        q = pipeline.quantize(pixels, options.k, seed=seed, color_space=space, dither=dither,
                              max_pixels=cap, progress=progress)
    _report(progress, "encoding", 1.0)
    return q, encode(q)


def compress_image(pixels: np.ndarray, options: CompressOptions = CompressOptions(), *,
                   name: str = "image", progress: Progress | None = None) -> Compressed:
    """Quantize and encode an image held in memory, as :func:`compress_file` does a file.

    Parameters
    ----------
    pixels : ndarray of uint8, shape (H, W, 3) or (H, W, 4)
        As :func:`kmq.io.read_image` returns them.
    options : CompressOptions
        ``options.format`` (PNG when None) chooses the encoder; the file options (``force``,
        ``skip_if_larger``) do not apply.
    name : str
        What warnings call the image.
    progress : callable(stage, fraction) -> bool, optional

    Returns
    -------
    Compressed
    """
    codec = codecs.get(options.format or codecs.DEFAULT)
    notes: tuple[str, ...] = ()
    if codec.alpha == "binary" and pixels.shape[2] == 4:
        from kmq.io import binary_alpha

        pixels = binary_alpha(pixels)
    if options.palette is not None and len(options.palette) > codec.max_colors:
        raise ArgumentError(f"a {codec.title} holds at most {codec.max_colors} colors; the "
                            f"palette has {len(options.palette)}")
    if options.palette is not None and options.palette.shape[1] > pixels.shape[2]:
        # an opaque image onto an RGBA palette: mapped, and measured, as opaque RGBA
        pixels = np.concatenate([pixels, np.full((*pixels.shape[:2], 1), 255, np.uint8)], axis=2)
    elif options.palette is not None and options.palette.shape[1] < pixels.shape[2]:
        pixels = np.ascontiguousarray(pixels[:, :, :3])
        notes = (f"{name}: transparency dropped (the palette given has no alpha)",)
    quantized, data = _quantize(pixels, options, codec, progress)
    return Compressed(data=data, quantized=quantized, pixels=pixels, codec=codec,
                      warnings=notes)


def measure_ssim(compressed: Compressed) -> float:
    """Mean SSIM of a compressed image against the pixels it was made from (``nan`` below
    7x7 pixels)."""
    from kmq import metrics

    q, pixels = compressed.quantized, compressed.pixels
    if min(pixels.shape[:2]) < 7:
        return math.nan
    return metrics.ssim_indexed(pixels, q.palette, q.indices)


def _report(progress: Progress | None, stage: str, fraction: float) -> None:
    if progress is not None and progress(stage, fraction):
        raise CancelledError(f"cancelled at: {stage}")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (or would: the same resolved path)."""
    try:
        return Path(a).resolve() == Path(b).resolve() or (
            os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))
    except OSError:
        return False


def check_output(output: str | os.PathLike, *, force: bool = False,
                 inputs: Sequence[str | os.PathLike] = (), replace_input: bool = False) -> None:
    """Raise :class:`kmq.OutputExistsError` when ``output`` is one of ``inputs`` (replaced only
    with ``replace_input`` and ``force``), or exists and ``force`` is false."""
    for source in inputs:
        if same_file(output, source) and not (replace_input and force):
            raise OutputExistsError(f"{os.fspath(output)}: is the input file "
                                    f"{os.fspath(source)}; refusing to overwrite it")
    if not force and os.path.lexists(output):
        raise OutputExistsError(f"{os.fspath(output)}: exists (use --force to overwrite)")


def write_bytes(output: str | os.PathLike, data: bytes, *, force: bool = False,
                inputs: Sequence[str | os.PathLike] = (), replace_input: bool = False) -> int:
    """Write ``data`` to ``output`` atomically after :func:`check_output`; returns the bytes
    written. An OS error is an :class:`kmq.OutputWriteError` that says why."""
    check_output(output, force=force, inputs=inputs, replace_input=replace_input)
    try:
        return write_atomic(output, lambda fh: fh.write(data), overwrite=force)
    except OutputExistsError:
        raise
    except OSError as exc:
        raise OutputWriteError(f"{os.fspath(output)}: cannot write "
                               f"({exc.strerror or one_line(exc)})") from exc


def output_codec(output: str | os.PathLike, options: CompressOptions) -> codecs.Codec:
    """The format of ``output``: ``options.format``, else from its extension."""
    return codecs.get(options.format) if options.format else codecs.for_path(output)


def default_output(source: str | os.PathLike, format: str = codecs.DEFAULT,
                   directory: str | os.PathLike | None = None) -> Path:
    """Where ``kmq compress`` writes ``source`` by default: ``<stem>-kmq.<ext>`` beside it (or
    in ``directory``): ``photo.jpg`` -> ``photo-kmq.png``."""
    source = Path(source)
    folder = source.parent if directory is None else Path(directory)
    return folder / f"{source.stem}{OUTPUT_TAG}{codecs.get(format).extension}"


def compress_file(source: str | os.PathLike, output: str | os.PathLike,
                  options: CompressOptions = CompressOptions(), *,
                  progress: Progress | None = None, replace_input: bool = False,
                  before_quantize: Callable[[], None] | None = None) -> FileResult:
    """Read, quantize, encode and atomically write one image file.

    Parameters
    ----------
    source : str or path-like
        An image file Pillow reads (a regular file).
    output : str or path-like
        The file to write; its format is ``options.format`` or its extension's.
    options : CompressOptions
    progress : callable(stage, fraction) -> bool, optional
        Called with ``reading``, the quantizer's stages, ``encoding``, ``writing``; a truthy
        return cancels (:class:`kmq.CancelledError`, nothing written).
    replace_input : bool
        With ``options.force``, ``output`` may be ``source`` itself: it is replaced atomically
        once its new version is written whole (``pngquant --ext .png --force``).
    before_quantize : callable, optional
        Called once the image is read, before any compiled kernel runs (the ``kmq`` command
        waits there for its kernels, loaded on a thread while the image decodes).

    Returns
    -------
    FileResult
        ``done``; or ``skipped`` when ``options.skip_if_larger`` and the output would be larger
        than the input (nothing is written).

    Raises
    ------
    ImageReadError, ImageTooLargeError
        The input cannot be read, or is over ``options.max_pixels``.
    OutputExistsError
        ``output`` exists (without ``options.force``) or is the input.
    OutputWriteError
        ``output`` cannot be written.
    QualityTooLowError, CancelledError
    """
    start = time.perf_counter()
    name, target = os.fspath(source), os.fspath(output)
    codec = output_codec(output, options)
    check_output(output, force=options.force, inputs=[source], replace_input=replace_input)
    _report(progress, "reading", 0.0)
    image = load_image(source, max_pixels=options.max_pixels)
    if before_quantize is not None:
        before_quantize()
    compressed = compress_image(image.pixels, _with_format(options, codec.name), name=name,
                                progress=progress)
    result = _result(name, target, image, compressed)
    if options.skip_if_larger and len(compressed.data) > image.n_bytes:
        result.status, result.error = SKIPPED, "larger"
        result.reason = (f"{target}: not written: {len(compressed.data):,} bytes would be "
                         f"larger than the input's {image.n_bytes:,}")
        result.seconds = time.perf_counter() - start
        return result
    _report(progress, "writing", 1.0)
    if not options.ssim:
        result.output_bytes = write_bytes(output, compressed.data, force=options.force,
                                          inputs=[source], replace_input=replace_input)
        result.seconds = time.perf_counter() - start
        return result
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:  # both release the GIL
        writing = pool.submit(write_bytes, output, compressed.data, force=options.force,
                              inputs=[source], replace_input=replace_input)
        result.ssim = measure_ssim(compressed)
        result.output_bytes = writing.result()
        result.seconds = time.perf_counter() - start
    return result


def _with_format(options: CompressOptions, name: str) -> CompressOptions:
    from dataclasses import replace

    return options if options.format == name else replace(options, format=name)


def _result(source: str, output: str, image: SourceImage, compressed: Compressed) -> FileResult:
    q, pixels = compressed.quantized, compressed.pixels
    return FileResult(source, output, format=compressed.codec.name, input_bytes=image.n_bytes,
                      output_bytes=len(compressed.data), width=pixels.shape[1],
                      height=pixels.shape[0], channels=pixels.shape[2], k=q.k, psnr=q.psnr,
                      warnings=image.warnings + compressed.warnings)


def compress_bytes(data: bytes, options: CompressOptions = CompressOptions(), *,
                   name: str = "image", progress: Progress | None = None,
                   ) -> tuple[Compressed, FileResult]:
    """:func:`compress_file` from an image file's bytes to the output's bytes (nothing touches
    the disk): the :class:`Compressed` image and its :class:`FileResult` (``output`` empty,
    SSIM measured when ``options.ssim``; with ``options.skip_if_larger``, ``skipped`` when the
    output is larger than ``data``)."""
    start = time.perf_counter()
    image = load_image(data, max_pixels=options.max_pixels, name=name)
    compressed = compress_image(image.pixels, options, name=name, progress=progress)
    result = _result(name, "", image, compressed)
    if options.skip_if_larger and len(compressed.data) > image.n_bytes:
        result.status, result.error = SKIPPED, "larger"
        result.reason = (f"{name}: not written: {len(compressed.data):,} bytes would be larger "
                         f"than the input's {image.n_bytes:,}")
    result.seconds = time.perf_counter() - start
    if options.ssim:
        result.ssim = measure_ssim(compressed)
    return compressed, result


__all__ = ["DONE", "EFFORTS", "FAILED", "SKIPPED", "CompressOptions", "Compressed", "FileResult",
           "check_output", "compress_bytes", "compress_file", "compress_image", "default_output",
           "measure_ssim", "output_codec", "same_file", "write_bytes"]
