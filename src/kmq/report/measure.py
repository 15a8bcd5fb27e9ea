"""Making a report: quantize at each K, encode, and match JPEG and WebP files to kmq's sizes.

:func:`make_report` fits every K on one color histogram (:class:`kmq.pipeline.Fitter`, as
:func:`kmq.quantize` fits it), encodes each result through the codec
registry (the indexed PNG ``kmq compress`` writes, the ``.kmq`` file and the lossless WebP of
the same indices) and measures it. For each K it then looks for the JPEG quality and the lossy
WebP quality whose file is the largest one not above the PNG's size, and again above the
``.kmq`` file's (:func:`match_size`: bisection on the integer quality, Pillow's encoders), and
measures those files too. The numbers go into a :class:`Report`.

Measures are those of :mod:`kmq.metrics` on 8-bit sRGB: PSNR in dB, and SSIM as scikit-image
computes it (7x7 window, mean over the channels; ``nan`` below 7x7 pixels). A file size is the
number of bytes of the file.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from kmq import codecs
from kmq.errors import ArgumentError, CancelledError
from kmq.files import K_MAX, K_MIN, Progress
from kmq.io import DEFAULT_MAX_PIXELS, as_rgb, load_image
from kmq.pipeline import Fitter
from kmq.quantized import Quantized
from kmq.report import html as page
from kmq.report import output, plots, words

#: The K values of ``kmq report`` by default.
DEFAULT_KS = (4, 8, 16, 32, 64, 128, 256)

#: Pillow settings of the JPEG and lossy WebP files the report compares against. JPEG: Pillow's
#: default 4:2:0 chroma subsampling, Huffman tables optimized per image. WebP: libwebp's most
#: thorough method.
JPEG_OPTIONS: dict = {"optimize": True}
WEBP_LOSSY_OPTIONS: dict = {"method": 6}
#: Quality ranges searched (inclusive).
JPEG_QUALITIES = (1, 100)
WEBP_QUALITIES = (0, 100)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Encoded:
    """One file of one image: its bytes and how close it decodes to the original.

    Attributes
    ----------
    codec : str
        A key of :data:`kmq.report.CODEC_NAMES`.
    data : bytes
        The whole file.
    psnr : float
        dB against the original; ``inf`` when it decodes to it exactly.
    ssim : float
        Mean SSIM against the original; ``nan`` below 7x7 pixels.
    quality : int or None
        The encoder's quality setting, for JPEG and lossy WebP.
    """

    codec: str
    data: bytes = field(repr=False)
    psnr: float
    ssim: float
    quality: int | None = None

    @property
    def n_bytes(self) -> int:
        """Size of the file in bytes."""
        return len(self.data)


@dataclass(frozen=True)
class KResult:
    """Everything the report says about one K.

    Attributes
    ----------
    k : int
        The K asked for (``quantized.k`` colors are used, fewer when the image has fewer).
    quantized : kmq.Quantized
    png : Encoded
        The indexed PNG, as ``kmq compress`` writes it.
    container : Encoded
        The ``.kmq`` file of the same palette and indices (same pixels, smaller).
    webp_lossless : Encoded
        The lossless WebP of the same pixels, as ``kmq compress --format webp`` writes it.
    jpeg, webp : Encoded
        The largest JPEG and lossy WebP files not above ``png.n_bytes`` (the smallest ones they
        make, if even those are larger).
    jpeg_small, webp_small : Encoded
        The same, matched to the size of the ``.kmq`` file, ``container.n_bytes``.
    """

    k: int
    quantized: Quantized
    png: Encoded
    container: Encoded
    webp_lossless: Encoded
    jpeg: Encoded
    webp: Encoded
    jpeg_small: Encoded
    webp_small: Encoded

    @property
    def shares(self) -> np.ndarray:
        """Fraction of the pixels of each palette color, in palette order (most used first)."""
        counts = np.asarray(self.quantized.counts, dtype=np.float64)
        return counts / counts.sum()

    def best(self, measure: str = "psnr", *, container: bool = False) -> str:
        """The codec key with the highest ``measure`` among kmq's file (the PNG, or the .kmq
        file with ``container``) and the JPEG and lossy WebP files matched to its size that are
        not larger than it; ties go to kmq."""
        own, rivals = ((self.container, (self.jpeg_small, self.webp_small)) if container
                       else (self.png, (self.jpeg, self.webp)))
        best, value = own.codec, words.finite(getattr(own, measure))
        for enc in rivals:
            v = words.finite(getattr(enc, measure))
            if enc.n_bytes <= own.n_bytes and v > value:
                best, value = enc.codec, v
        return best

    def verdict(self) -> str:
        """A paragraph in words: the sizes, the measures and who is ahead at kmq's sizes."""
        return words.verdict(self)


@dataclass(frozen=True)
class Report:
    """An image quantized at several K and compared with JPEG and WebP at equal sizes.

    Made by :func:`make_report`; rendered by :meth:`html` and written by :meth:`write_html`.

    Attributes
    ----------
    name : str
        Shown in the title (a file name, or ``"image"``).
    rgb : ndarray of uint8, shape (H, W, 3)
        The image analysed (downscaled if ``max_side`` asked for it).
    original_size : tuple of int
        (width, height) of the image given, before any downscaling.
    distinct_colors : int
    results : list of KResult
        One per K, ascending.
    figures : dict of str to bytes
        PNG files of the plots by name (see :data:`kmq.report.FIGURES`); empty if not drawn.
    seed : int
    seconds : float
        Time :func:`make_report` took.
    warnings : tuple of str
        What reading the input file changed (transparency dropped, an ICC profile ignored, the
        first frame taken), one line each; they are returned here, not emitted.
    """

    name: str
    rgb: np.ndarray = field(repr=False)
    original_size: tuple[int, int]
    distinct_colors: int
    results: list[KResult]
    figures: dict[str, bytes] = field(repr=False)
    seed: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image analysed."""
        return self.rgb.shape[1], self.rgb.shape[0]

    def html(self) -> str:
        """The report as one self-contained HTML document (a string)."""
        return page.render(self)

    def figure_paths(self, path: str | os.PathLike) -> dict[str, Path]:
        """Where :meth:`write_html` puts the PNG figures for an HTML file at ``path``:
        ``<stem>-files/<figure>.png`` beside it (see :func:`kmq.report.output_paths`)."""
        return {name: p for name, p in output.output_paths(path).items()
                if name in self.figures}

    def write_html(self, path: str | os.PathLike, *, overwrite: bool = False,
                   inputs: Sequence[str | os.PathLike] = ()) -> list[Path]:
        """Write the HTML file and, beside it, the PNG figures; returns the paths written.

        All or nothing (:func:`kmq.report.output.write_files`): every file is written to a
        temporary beside its place first and renamed into place once all are written; when
        anything fails, what this call wrote is removed (and the figures' folder, if it made
        it) and existing files are left as they were. Without ``overwrite``, if the HTML file or
        any figure exists already nothing is written and :class:`kmq.OutputExistsError` is
        raised; a path among ``inputs`` is never replaced. An OS error is a
        :class:`kmq.OutputWriteError`.

        Examples
        --------
        >>> import tempfile, numpy as np
        >>> from kmq.report import make_report
        >>> img = np.zeros((16, 16, 3), np.uint8); img[8:] = 255
        >>> path = tempfile.mkdtemp() + "/report.html"
        >>> [p.name for p in make_report(img, [2], figures=False).write_html(path)]
        ['report.html']
        """
        path = Path(path)
        figures = self.figure_paths(path)
        # the figures first and the page last: a page on disk means the figures are there
        files = [(target, self.figures[name]) for name, target in figures.items()]
        files.append((path, self.html().encode("utf-8")))
        output.write_files(files, overwrite=overwrite, inputs=inputs)
        return [path, *figures.values()]


# ---------------------------------------------------------------------------------------------
# Encoding and matching sizes


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """A JPEG of ``rgb`` at ``quality`` with :data:`JPEG_OPTIONS` (Pillow, libjpeg)."""
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=int(quality), **JPEG_OPTIONS)
    return buf.getvalue()


def encode_webp_lossy(rgb: np.ndarray, quality: int) -> bytes:
    """A lossy WebP of ``rgb`` at ``quality`` with :data:`WEBP_LOSSY_OPTIONS` (Pillow, libwebp)."""
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="WEBP", quality=int(quality),
                                     **WEBP_LOSSY_OPTIONS)
    return buf.getvalue()


def match_size(encode: Callable[[int], bytes], target: int,
               qualities: tuple[int, int]) -> tuple[int, bytes]:
    """The highest quality whose file is at most ``target`` bytes, found by bisection.

    ``encode(quality) -> bytes`` should make larger files at higher qualities, as image
    encoders nearly always do; the answer holds whether or not they do: the file at the quality
    returned is at most ``target`` bytes and the file one quality step higher is larger (unless
    the quality returned is the top of the range). When even the lowest quality gives a larger
    file, that quality and its file are returned.

    Parameters
    ----------
    encode : callable(int) -> bytes
    target : int
        Bytes.
    qualities : (int, int)
        Lowest and highest quality to try.

    Returns
    -------
    quality : int
    data : bytes
        ``encode(quality)``.

    Examples
    --------
    >>> from kmq.report import match_size
    >>> match_size(lambda q: bytes(10 * q), 55, (1, 100))[0]
    5
    >>> match_size(lambda q: bytes(10 * q), 5, (1, 100))[0]   # even quality 1 is above
    1
    """
    lo, hi = qualities
    cache: dict[int, bytes] = {}

    def size(quality: int) -> int:
        if quality not in cache:
            cache[quality] = encode(quality)
        return len(cache[quality])

    if size(hi) <= target:
        return hi, cache[hi]
    if size(lo) > target:
        return lo, cache[lo]
    while hi - lo > 1:  # size(lo) <= target < size(hi)
        mid = (lo + hi) // 2
        if size(mid) <= target:
            lo = mid
        else:
            hi = mid
    return lo, cache[lo]


def _measure(rgb: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    from kmq import metrics

    ssim = metrics.ssim(rgb, decoded) if min(rgb.shape[:2]) >= 7 else math.nan
    return metrics.psnr(rgb, decoded), ssim


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


class _Matcher:
    """One lossy codec: its files by quality, kept across K, and the matched, measured file."""

    def __init__(self, codec: str, rgb: np.ndarray, encode, qualities: tuple[int, int]):
        self.codec, self.rgb, self.qualities = codec, rgb, qualities
        self._encode = encode
        self._files: dict[int, bytes] = {}
        self._measured: dict[int, Encoded] = {}

    def file(self, quality: int) -> bytes:
        if quality not in self._files:
            self._files[quality] = self._encode(self.rgb, quality)
        return self._files[quality]

    def match(self, target: int) -> Encoded:
        quality, data = match_size(self.file, target, self.qualities)
        if quality not in self._measured:
            psnr, ssim = _measure(self.rgb, _decode(data))
            self._measured[quality] = Encoded(self.codec, data, psnr, ssim, quality)
        return self._measured[quality]


# ---------------------------------------------------------------------------------------------
# Making the report


def parse_ks(text: str) -> list[int]:
    """K values from a comma-separated list (``"4,8,16"``), sorted, without duplicates.

    Raises ``ValueError`` saying what is wrong when an entry is not an integer in 2..256.

    Examples
    --------
    >>> from kmq.report import parse_ks
    >>> parse_ks("16, 4,8,4")
    [4, 8, 16]
    """
    values = []
    for part in text.split(","):
        try:
            k = int(part.strip())
        except ValueError:
            raise ArgumentError(f"expected comma-separated integers in {K_MIN}..{K_MAX} "
                                f"(e.g. 4,16,64); got {text!r}") from None
        if not K_MIN <= k <= K_MAX:
            raise ArgumentError(f"expected each K in {K_MIN}..{K_MAX}; got {k} in {text!r}")
        values.append(k)
    return sorted(set(values))


def _check_ks(ks) -> list[int]:
    """The K values, sorted and without duplicates, all checked before any work starts."""
    try:
        values = list(ks)
    except TypeError:
        raise ArgumentError(f"expected a sequence of K values; got {ks!r}") from None
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (
                K_MIN <= k <= K_MAX):
            raise ArgumentError(f"expected each K, a number of colors, to be an int in "
                                f"{K_MIN}..{K_MAX}; got {k!r}")
    if not values:
        raise ArgumentError("expected at least one K")
    return sorted({int(k) for k in values})


def _read(image, max_pixels: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """The image as RGB, and for a file the warnings met reading it (the file layer's way)."""
    if isinstance(image, (str, os.PathLike)):
        source = load_image(image, max_pixels=max_pixels, alpha=False)
        return source.pixels, source.warnings
    return as_rgb(image, max_pixels=max_pixels), ()


def _downscale(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side is None or max_side <= 0 or max(rgb.shape[:2]) <= max_side:
        return rgb
    height, width = rgb.shape[:2]
    scale = max_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb, "RGB").resize(size, Image.Resampling.LANCZOS,
                                                          reducing_gap=3.0))


def make_report(image, ks: Sequence[int] = DEFAULT_KS, *, seed: int = 0, name: str | None = None,
                max_side: int | None = None, figures: bool = True,
                max_pixels: int = DEFAULT_MAX_PIXELS,
                progress: Progress | None = None) -> Report:
    """Quantize ``image`` at every K in ``ks`` and compare each result with JPEG and WebP files
    of (nearly) the same size.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8, PIL.Image.Image or path
        A path is read by :func:`kmq.io.load_image` (a regular file; its warnings go to
        :attr:`Report.warnings`); arrays and Pillow images by :func:`kmq.io.as_rgb`.
    ks : sequence of int
        K values, each in 2..256; duplicates are dropped and they are sorted.
    seed : int
        As for :func:`kmq.quantize`; the palettes are the ones it gives.
    name : str, optional
        Shown in the title; by default the file name of a path, else ``"image"``.
    max_side : int, optional
        Downscale the image first (Lanczos) so that its longer side is at most this many pixels;
        ``None`` or 0 keeps it as it is. The report states it.
    figures : bool
        Draw the plots. They need matplotlib (``pip install 'kmq[report]'``); without it a
        :class:`kmq.MissingExtraError` is raised before any work. Without figures the HTML has
        the pictures and the numbers.
    max_pixels : int
        Larger images are refused (:class:`kmq.ImageTooLargeError`).
    progress : callable(stage, fraction) -> bool, optional
        Called as work advances with a description and the fraction done of the whole report
        (0 to 1); a truthy return cancels (:class:`kmq.CancelledError`).

    Returns
    -------
    Report

    Notes
    -----
    The color histogram is made once and every K is fitted on it, so each result equals
    ``kmq.quantize(image, k, seed=seed)``. JPEG and WebP files are made by Pillow with
    :data:`JPEG_OPTIONS` and :data:`WEBP_LOSSY_OPTIONS`; the files made while searching are kept
    for the next K. The kmq PNG is the one ``kmq compress`` writes by default.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.report import make_report
    >>> rng = np.random.default_rng(0)
    >>> img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> r = make_report(img, [16, 4], figures=False).results
    >>> [x.k for x in r], all(x.jpeg.n_bytes <= x.png.n_bytes for x in r)
    ([4, 16], True)
    """
    from kmq import metrics

    start = time.perf_counter()
    ks = _check_ks(ks)
    if figures:
        plots.require_matplotlib()  # a missing extra fails before any work
    if name is None:
        name = Path(image).name if isinstance(image, (str, os.PathLike)) else "image"
    given, notes = _read(image, max_pixels)
    rgb = np.ascontiguousarray(_downscale(given, max_side))
    steps = 2 + 3 * len(ks) + (1 if figures else 0)
    done = 0

    def report(stage: str) -> None:
        if progress is not None and progress(stage, done / steps):
            raise CancelledError(f"cancelled at: {stage}")

    report("histogram")
    fitter = Fitter(rgb, seed=seed, max_pixels=max_pixels)
    done += 1
    png_codec, kmq_codec, webp_codec = (codecs.get(c) for c in ("png", "kmq", "webp"))
    jpeg = _Matcher("jpeg", rgb, encode_jpeg, JPEG_QUALITIES)
    webp = _Matcher("webp", rgb, encode_webp_lossy, WEBP_QUALITIES)
    results = []
    for k in ks:
        report(f"K = {k}: palette")

        def inner(stage: str, fraction: float, k=k, base=done / steps) -> bool:
            return bool(progress is not None and progress(f"K = {k}: {stage}", base))

        q = fitter.quantize(k, progress=None if progress is None else inner)
        done += 1
        report(f"K = {k}: encoding and measuring")
        ssim = (metrics.ssim_indexed(rgb, q.palette, q.indices)
                if min(rgb.shape[:2]) >= 7 else math.nan)
        png = Encoded("kmq-png", png_codec.encode(q), q.psnr, ssim)
        container = Encoded("kmq", kmq_codec.encode(q), q.psnr, ssim)
        webp_lossless = Encoded("webp-lossless", webp_codec.encode(q), q.psnr, ssim)
        done += 1
        report(f"K = {k}: JPEG and WebP at {png.n_bytes:,} and {container.n_bytes:,} bytes")
        results.append(KResult(k=k, quantized=q, png=png, container=container,
                               webp_lossless=webp_lossless,
                               jpeg=jpeg.match(png.n_bytes), webp=webp.match(png.n_bytes),
                               jpeg_small=jpeg.match(container.n_bytes),
                               webp_small=webp.match(container.n_bytes)))
        done += 1
    drawn: dict[str, bytes] = {}
    if figures:
        report("drawing the plots")
        drawn = plots.draw(results, name)
        done += 1
    report("writing the page")
    done += 1
    if progress is not None:
        progress("done", 1.0)
    return Report(name=name, rgb=rgb, original_size=(given.shape[1], given.shape[0]),
                  distinct_colors=fitter.distinct_colors, results=results, figures=drawn, seed=seed,
                  seconds=time.perf_counter() - start, warnings=notes)


__all__ = ["DEFAULT_KS", "JPEG_OPTIONS", "JPEG_QUALITIES", "WEBP_LOSSY_OPTIONS",
           "WEBP_QUALITIES", "Encoded", "KResult", "Report", "encode_jpeg", "encode_webp_lossy",
           "make_report", "match_size", "parse_ks"]
