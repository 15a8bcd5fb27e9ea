"""A self-contained HTML report: an image quantized at several K, against JPEG and WebP.

:func:`make_report` quantizes one image at every K asked for (one color histogram serves them
all), writes each result as the indexed PNG ``kmq compress`` writes, and measures it. For each
K it then looks for the JPEG quality and the lossy WebP quality whose file is the largest one
not above the kmq PNG's size (bisection on the integer quality, Pillow's encoders), and measures
those files too, so every comparison is made at (nearly) equal file size. The lossless WebP and
the ``.kmq`` container of the very same indices are sized as well. The result, a
:class:`Report`, renders as one HTML file (:meth:`Report.html`, :meth:`Report.write_html`)
whose pictures and plots are all embedded as ``data:`` URIs: no network, no external CSS or
JavaScript. The plots are also written beside the HTML as PNG files, in ``<name>-files/``.

Measures are those of :mod:`kmq.metrics` on 8-bit sRGB: PSNR in dB, and SSIM as scikit-image
computes it (7x7 window, mean over the channels). A file size is the number of bytes of the
file; kB are 1000 bytes.

Plots are drawn by matplotlib on its Agg canvas, attached to each figure (``matplotlib.pyplot``
is never imported, so the process-wide backend of an interactive session is left alone); if
``MPLCONFIGDIR`` is unset it is pointed at a per-user folder under the temporary directory.

Examples
--------
>>> import numpy as np
>>> from kmq.report import make_report
>>> img = np.zeros((24, 32, 3), np.uint8); img[:, 16:] = [200, 40, 40]; img[12:, :8] = 90
>>> report = make_report(img, [2, 4], figures=False)
>>> [(r.k, r.quantized.k) for r in report.results]
[(2, 2), (4, 3)]
>>> report.results[1].png.psnr   # three colors, all kept: lossless
inf
>>> "<img" in report.html() and "http" not in report.html()
True
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from kmq.errors import CancelledError, OutputExistsError
from kmq.io import DEFAULT_MAX_PIXELS, as_rgb, write_atomic
from kmq.kmeans import Progress

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

#: The PNG figures written beside the HTML, by name (without ``.png``), with their titles.
FIGURES = {
    "quality-vs-size": "PSNR and SSIM against file size: kmq, JPEG and WebP",
    "quality-vs-k": "PSNR, SSIM and file size against K",
    "palettes": "The palettes, each color as wide as its share of the pixels",
}

#: PSNR at which a lossless result is drawn on the plots (its PSNR is infinite).
_PLOT_PSNR_LOSSLESS = 60.0

#: Codec keys and their names in the report.
CODEC_NAMES = {
    "kmq-png": "kmq PNG",
    "kmq": "kmq .kmq",
    "webp-lossless": "lossless WebP of the indices",
    "jpeg": "JPEG",
    "webp": "lossy WebP",
}


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Encoded:
    """One file of one image: its bytes and how close it decodes to the original.

    Attributes
    ----------
    codec : str
        A key of :data:`CODEC_NAMES`.
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
    quantized: object
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
        best, value = own.codec, _finite(getattr(own, measure))
        for enc in rivals:
            v = _finite(getattr(enc, measure))
            if enc.n_bytes <= own.n_bytes and v > value:
                best, value = enc.codec, v
        return best

    def verdict(self) -> str:
        """A paragraph in words: the sizes, the measures and who is ahead at kmq's sizes."""
        png = self.png
        text = [f"K = {self.k}: kmq's PNG is {_kb(png.n_bytes)} at {_db(png.psnr)} "
                f"(SSIM {_ssim(png.ssim)})."]
        for enc in (self.jpeg, self.webp):
            name = CODEC_NAMES[enc.codec]
            if enc.n_bytes <= png.n_bytes:
                text.append(f"At {_kb(enc.n_bytes)} {name} (quality {enc.quality}) reaches "
                            f"{_db(enc.psnr)} (SSIM {_ssim(enc.ssim)}).")
            else:
                text.append(f"{_cap(name)} cannot get this small: its smallest file (quality "
                            f"{enc.quality}) is {_kb(enc.n_bytes)}, at {_db(enc.psnr)}.")
        text.append(_ahead(png, (self.jpeg, self.webp), self.best("psnr")))
        best_ssim = self.best("ssim")
        if best_ssim != self.best("psnr") and not math.isnan(png.ssim):
            text.append(f"By SSIM {'kmq' if best_ssim == 'kmq-png' else CODEC_NAMES[best_ssim]} "
                        f"is ahead.")
        small = self.container
        text.append(f"kmq's own .kmq file of the same pixels is {_kb(small.n_bytes)} (lossless "
                    f"WebP of them: {_kb(self.webp_lossless.n_bytes)}).")
        rivals = [e for e in (self.jpeg_small, self.webp_small) if e.n_bytes <= small.n_bytes]
        if rivals:
            text.append("At that size " + " and ".join(
                f"{CODEC_NAMES[e.codec]} (quality {e.quality}) reaches {_db(e.psnr)}"
                for e in rivals) + ".")
        text.append(_ahead(small, rivals, self.best("psnr", container=True), ".kmq file"))
        return " ".join(text)


def _ahead(own: Encoded, rivals, best: str, what: str = "kmq") -> str:
    """Sentences on who has the highest PSNR at ``own``'s size, with the margins."""
    rivals = [e for e in rivals if e.n_bytes <= own.n_bytes]
    subject = what if what == "kmq" else f"the {what}"
    if best == own.codec:
        if not rivals:
            return f"{_cap(subject)} is ahead: neither JPEG nor WebP makes a file this small."
        margins = " and ".join(f"{_margin(own.psnr, e.psnr)} above {CODEC_NAMES[e.codec]}"
                               for e in rivals)
        return f"{_cap(subject)} is ahead at this size: {margins}."
    winner = next(e for e in rivals if e.codec == best)
    text = (f"{_cap(CODEC_NAMES[best])} is ahead at this size, "
            f"{_margin(winner.psnr, own.psnr)} above {subject}")
    beaten = [e for e in rivals if _finite(e.psnr) < _finite(own.psnr)]
    if beaten:
        text += "; " + " and ".join(f"{subject} is {_margin(own.psnr, e.psnr)} above "
                                    f"{CODEC_NAMES[e.codec]}" for e in beaten)
    return text + "."


def _cap(text: str) -> str:
    """Capitalized to start a sentence; kmq's name stays lower-case."""
    return text if text.startswith("kmq") else text[:1].upper() + text[1:]


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
        PNG files of the plots by name (see :data:`FIGURES`); empty if not drawn.
    seed : int
    seconds : float
        Time :func:`make_report` took.
    """

    name: str
    rgb: np.ndarray = field(repr=False)
    original_size: tuple[int, int]
    distinct_colors: int
    results: list[KResult]
    figures: dict[str, bytes] = field(repr=False)
    seed: int = 0
    seconds: float = 0.0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image analysed."""
        return self.rgb.shape[1], self.rgb.shape[0]

    def html(self) -> str:
        """The report as one self-contained HTML document (a string)."""
        return _render_html(self)

    def figure_paths(self, path: str | os.PathLike) -> dict[str, Path]:
        """Where :meth:`write_html` puts the PNG figures for an HTML file at ``path``:
        ``<stem>-files/<figure>.png`` beside it (see :func:`output_paths`)."""
        return {name: p for name, p in output_paths(path).items() if name in self.figures}

    def write_html(self, path: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
        """Write the HTML file and, beside it, the PNG figures; returns the paths written.

        Every file is written atomically (a temporary file, then a rename). Without
        ``overwrite``, if the HTML file or any figure exists already nothing is written and
        :class:`kmq.OutputExistsError` is raised.

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
        targets = [path, *figures.values()]
        if not overwrite:
            for target in targets:
                if target.exists():
                    raise OutputExistsError(f"{target}: exists (use --force to overwrite)")
        text = self.html().encode("utf-8")
        if figures:
            next(iter(figures.values())).parent.mkdir(exist_ok=True)
        for name, target in figures.items():
            data = self.figures[name]
            write_atomic(target, lambda fh, data=data: fh.write(data), overwrite=overwrite)
        write_atomic(path, lambda fh: fh.write(text), overwrite=overwrite)
        return [path, *figures.values()]


def output_paths(path: str | os.PathLike) -> dict[str, Path]:
    """The PNG figures written beside an HTML report at ``path``, by figure name:
    ``report.html`` -> ``report-files/quality-vs-size.png`` and so on.

    Examples
    --------
    >>> from kmq.report import output_paths
    >>> [str(p) for p in output_paths("out/report.html").values()]  # doctest: +NORMALIZE_WHITESPACE
    ['out/report-files/quality-vs-size.png', 'out/report-files/quality-vs-k.png',
     'out/report-files/palettes.png']
    """
    path = Path(path)
    folder = path.with_name(f"{path.stem}-files")
    return {name: folder / f"{name}.png" for name in FIGURES}


def parse_ks(text: str) -> list[int]:
    """K values from a comma-separated list (``"4,8,16"``), sorted, without duplicates.

    Raises ``ValueError`` saying what is wrong when an entry is not an integer in 2..256.

    Examples
    --------
    >>> from kmq.report import parse_ks
    >>> parse_ks("16, 4,8,4")
    [4, 8, 16]
    """
    from kmq.pipeline import K_MAX, K_MIN

    values = []
    for part in text.split(","):
        try:
            k = int(part.strip())
        except ValueError:
            raise ValueError(f"expected comma-separated integers in {K_MIN}..{K_MAX} "
                             f"(e.g. 4,16,64); got {text!r}") from None
        if not K_MIN <= k <= K_MAX:
            raise ValueError(f"expected each K in {K_MIN}..{K_MAX}; got {k} in {text!r}")
        values.append(k)
    return sorted(set(values))


def summary_lines(report: Report) -> list[str]:
    """A plain-text table of the report (one row per K) and its summary, for a terminal."""
    lines = [f"{'K':>4} {'kmq PNG B':>10} {'PSNR':>7} {'JPEG B':>9} {'PSNR':>7} {'WebP B':>9} "
             f"{'PSNR':>7}  ahead   {'.kmq B':>9}  ahead at .kmq size"]

    def db(value: float) -> str:
        return "inf" if math.isinf(value) else f"{value:.2f}"

    def who(codec: str) -> str:
        return "kmq" if codec in ("kmq", "kmq-png") else codec

    for r in report.results:
        lines.append(f"{r.k:>4} {r.png.n_bytes:>10,} {db(r.png.psnr):>7} {r.jpeg.n_bytes:>9,} "
                     f"{db(r.jpeg.psnr):>7} {r.webp.n_bytes:>9,} {db(r.webp.psnr):>7}  "
                     f"{who(r.best('psnr')):<7} {r.container.n_bytes:>9,}  "
                     f"{who(r.best('psnr', container=True))}")
    lines.append(overall(report))
    return lines


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


def _check_ks(ks) -> list[int]:
    from kmq.pipeline import _check_k

    try:
        values = sorted({_check_k(k) for k in ks})
    except TypeError:
        raise ValueError(f"expected a sequence of K values; got {ks!r}") from None
    if not values:
        raise ValueError("expected at least one K")
    return values


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
        Draw the plots (matplotlib); without them the HTML has the pictures and the numbers.
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
    The color histogram is made once and every K is fitted on it (as
    :func:`kmq.pipeline.quantize_to_quality` does), so each result equals
    ``kmq.quantize(image, k, seed=seed)``. JPEG and WebP files are made by Pillow with
    :data:`JPEG_OPTIONS` and :data:`WEBP_LOSSY_OPTIONS`; the files made while searching are kept
    for the next K. The kmq PNG is the one ``kmq compress`` writes without ``--optimize``.

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
    from kmq.codecs.container import encode as encode_kmq
    from kmq.codecs.png import encode_png
    from kmq.codecs.webp import encode_webp
    from kmq.histogram import histogram
    from kmq.pipeline import _finish, _fit_palette

    start = time.perf_counter()
    ks = _check_ks(ks)
    if name is None:
        name = Path(image).name if isinstance(image, (str, os.PathLike)) else "image"
    given = as_rgb(image, max_pixels=max_pixels)
    rgb = np.ascontiguousarray(_downscale(given, max_side))
    steps = 2 + 3 * len(ks) + (1 if figures else 0)
    done = 0

    def report(stage: str) -> None:
        if progress is not None and progress(stage, done / steps):
            raise CancelledError(f"cancelled at: {stage}")

    report("histogram")
    hist = histogram(rgb)
    done += 1
    jpeg = _Matcher("jpeg", rgb, encode_jpeg, JPEG_QUALITIES)
    webp = _Matcher("webp", rgb, encode_webp_lossy, WEBP_QUALITIES)
    results = []
    for k in ks:
        report(f"K = {k}: palette")

        def inner(stage: str, fraction: float, k=k, base=done / steps) -> bool:
            return bool(progress(f"K = {k}: {stage}", base))

        t0 = time.perf_counter()
        pal, labels, counts, mse, n_iter, converged = _fit_palette(
            hist, k, seed=seed, tol=1e-4, max_iter=300, color_space="srgb",
            progress=None if progress is None else inner)
        q = _finish(rgb, hist, pal, labels, counts, mse, n_iter=n_iter, converged=converged,
                    color_space="srgb", dither=0.0, max_pixels=max_pixels, start=t0,
                    k_requested=k)
        done += 1
        report(f"K = {k}: encoding and measuring")
        from kmq import metrics

        ssim = (metrics.ssim_indexed(rgb, q.palette, q.indices)
                if min(rgb.shape[:2]) >= 7 else math.nan)
        png = Encoded("kmq-png", encode_png(q.palette, q.indices), q.psnr, ssim)
        container = Encoded("kmq", encode_kmq(q.palette, q.indices), q.psnr, ssim)
        webp_lossless = Encoded("webp-lossless", encode_webp(q.palette, q.indices), q.psnr, ssim)
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
        drawn = _draw_figures(results, name)
        done += 1
    report("writing the page")
    done += 1
    if progress is not None:
        progress("done", 1.0)
    return Report(name=name, rgb=rgb, original_size=(given.shape[1], given.shape[0]),
                  distinct_colors=len(hist), results=results, figures=drawn, seed=seed,
                  seconds=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# Plots


def _matplotlib_config_dir() -> None:
    """Point ``MPLCONFIGDIR`` at a writable per-user folder when it is unset (before the first
    import of matplotlib; matplotlib reads it then)."""
    if "MPLCONFIGDIR" not in os.environ:
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        folder = Path(tempfile.gettempdir()) / f"kmq-matplotlib-{uid}"
        folder.mkdir(mode=0o700, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(folder)


def _figure(width: float, height: float):
    """A matplotlib figure drawn by the Agg backend (set on the figure itself, no pyplot)."""
    _matplotlib_config_dir()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _plot_psnr(values) -> np.ndarray:
    return np.array([_PLOT_PSNR_LOSSLESS if math.isinf(v) else v for v in values])


#: Line style of each codec on the plots.
_STYLE = {
    "kmq-png": {"color": "C0", "marker": "o", "linestyle": "-"},
    "kmq": {"color": "C0", "marker": "s", "linestyle": "--", "alpha": 0.6},
    "webp-lossless": {"color": "C2", "marker": "^", "linestyle": ":"},
    "jpeg": {"color": "C3", "marker": "x", "linestyle": "-"},
    "webp": {"color": "C1", "marker": "D", "linestyle": "-", "markersize": 4},
}


def _draw_figures(results: list[KResult], name: str) -> dict[str, bytes]:
    return {"quality-vs-size": _quality_vs_size(results, name),
            "quality-vs-k": _quality_vs_k(results, name),
            "palettes": _palettes(results, name)}


def _matched(results: list[KResult], codec: str) -> list[Encoded]:
    """The distinct files of a lossy codec the report matched, by size."""
    files = {}
    for r in results:
        for enc in ((r.jpeg, r.jpeg_small) if codec == "jpeg" else (r.webp, r.webp_small)):
            files[enc.quality] = enc
    return sorted(files.values(), key=lambda e: e.n_bytes)


def _quality_vs_size(results: list[KResult], name: str) -> bytes:
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2)
    kmq_psnr = _plot_psnr([r.png.psnr for r in results])
    kmq_ssim = np.array([r.png.ssim for r in results])
    series = {
        "kmq-png": ([r.png.n_bytes for r in results], kmq_psnr, kmq_ssim),
        "kmq": ([r.container.n_bytes for r in results], kmq_psnr, kmq_ssim),
        "webp-lossless": ([r.webp_lossless.n_bytes for r in results], kmq_psnr, kmq_ssim),
    }
    for codec in ("jpeg", "webp"):
        files = _matched(results, codec)
        series[codec] = ([e.n_bytes for e in files], _plot_psnr([e.psnr for e in files]),
                         [e.ssim for e in files])
    labels = {"kmq-png": "kmq PNG", "kmq": "kmq .kmq (same pixels)",
              "webp-lossless": "lossless WebP (same pixels)",
              "jpeg": "JPEG at kmq's sizes", "webp": "lossy WebP at kmq's sizes"}
    for ax, column, ylabel in ((axes[0], 1, "PSNR (dB)"), (axes[1], 2, "SSIM")):
        for codec, values in series.items():
            kb = np.asarray(values[0]) / 1000
            ax.plot(kb, values[column], label=labels[codec], **_STYLE[codec])
        for r, x, y in zip(results, series["kmq-png"][0], series["kmq-png"][column], strict=True):
            ax.annotate(f"K={r.k}", (x / 1000, y), textcoords="offset points", xytext=(4, -11),
                        fontsize=7, color="C0")
        ax.set_xscale("log")
        ax.set_xlabel("file size (kB, log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    if any(math.isinf(r.png.psnr) for r in results):
        axes[0].set_title(f"lossless results drawn at {_PLOT_PSNR_LOSSLESS:g} dB", fontsize=9)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{name}: quality against file size (higher and further left is better)",
                 fontsize=11)
    return _png_bytes(fig)


def _quality_vs_k(results: list[KResult], name: str) -> bytes:
    fig = _figure(11, 3.6)
    axes = fig.subplots(1, 3)
    ks = [r.k for r in results]
    axes[0].plot(ks, _plot_psnr([r.png.psnr for r in results]), **_STYLE["kmq-png"])
    axes[0].set_ylabel("PSNR (dB)")
    axes[1].plot(ks, [r.png.ssim for r in results], **_STYLE["kmq-png"])
    axes[1].set_ylabel("SSIM")
    for codec, values in (("kmq-png", [r.png.n_bytes for r in results]),
                          ("kmq", [r.container.n_bytes for r in results]),
                          ("webp-lossless", [r.webp_lossless.n_bytes for r in results])):
        axes[2].plot(ks, np.asarray(values) / 1000, label=CODEC_NAMES[codec], **_STYLE[codec])
    axes[2].set_ylabel("file size (kB)")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("K (colors)")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{name}: kmq against K", fontsize=11)
    return _png_bytes(fig)


def _palettes(results: list[KResult], name: str) -> bytes:
    from kmq.palettes import swatch_widths

    width = 1000
    strip = np.empty((len(results), width, 3), np.uint8)
    for row, r in enumerate(results):
        widths = swatch_widths(r.shares, width)
        strip[row] = np.repeat(r.quantized.palette, widths, axis=0)
    fig = _figure(11, 0.42 * len(results) + 1.0)
    ax = fig.subplots()
    ax.imshow(strip, aspect="auto", interpolation="nearest", extent=(0, 1, len(results) - 0.5,
                                                                      -0.5))
    ax.set_yticks(range(len(results)), [f"K={r.k}" for r in results])
    ax.set_xlabel("share of the pixels")
    ax.set_title(f"{name}: palettes, most used color first", fontsize=11)
    return _png_bytes(fig)


# ---------------------------------------------------------------------------------------------
# HTML


def _finite(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _kb(n_bytes: int) -> str:
    return f"{n_bytes} B" if n_bytes < 1000 else f"{n_bytes / 1000:.1f} kB"


def _db(psnr: float) -> str:
    return "lossless (PSNR inf)" if math.isinf(psnr) else f"{psnr:.2f} dB"


def _ssim(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _margin(a: float, b: float) -> str:
    if math.isinf(a) and not math.isinf(b):
        return "lossless, i.e. infinitely"
    return f"{a - b:.2f} dB"


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


_MIME = {"kmq-png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

_CSS = """
:root { color-scheme: light; --muted: #5b6470; --line: #d9dde3; --kmq: #1f77b4;
        --jpeg: #d62728; --webp: #ff7f0e; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1d232b; background: #f6f7f9; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 0 0 8px; }
.muted, small { color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px;
          margin: 18px 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums;
        font-size: 0.8rem; }
th, td { padding: 3px 6px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th[colspan] { text-align: center; border-left: 2px solid #fff; }
th { background: #eef1f5; font-weight: 600; }
td.win { font-weight: 700; }
.table-wrap { overflow-x: auto; }
.plot { width: 100%; max-width: 1100px; display: block; margin: 8px 0; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(230px, 1fr)); gap: 12px; }
figure { margin: 0; }
figure img, figure svg { width: 100%; height: auto; display: block; background: #eee;
                         image-rendering: pixelated; border: 1px solid var(--line); }
figcaption { font-size: 0.82rem; margin-top: 4px; font-variant-numeric: tabular-nums; }
figure[data-codec="kmq-png"] figcaption b { color: var(--kmq); }
figure[data-codec="jpeg"] figcaption b { color: var(--jpeg); }
figure[data-codec="webp"] figcaption b { color: var(--webp); }
.verdict { margin: 6px 0 12px; }
.verdict.kmq { border-left: 4px solid var(--kmq); padding-left: 10px; }
.verdict.other { border-left: 4px solid #999; padding-left: 10px; }
.swatches { display: flex; height: 26px; border: 1px solid var(--line); border-radius: 4px;
            overflow: hidden; margin: 6px 0 4px; }
.swatches span { display: block; height: 100%; min-width: 1px; }
.colors { font: 0.78rem/1.5 ui-monospace, monospace; color: var(--muted); margin-bottom: 10px; }
.colors .c { white-space: nowrap; }
.colors i { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em;
            border: 1px solid #0003; margin-right: 3px; }
.summary { font-size: 1rem; }
"""


def _caption(enc: Encoded, label: str, extra: str = "") -> str:
    quality = "" if enc.quality is None else f" q {enc.quality}"
    return (f"<figcaption><b>{html.escape(label)}{quality}</b>: "
            f'<span class="bytes">{enc.n_bytes:,} B</span> &middot; '
            f'<span class="psnr">{_db(enc.psnr)}</span> &middot; '
            f'SSIM <span class="ssim">{_ssim(enc.ssim)}</span>{extra}</figcaption>')


def _figure_html(enc: Encoded, label: str, alt: str, extra: str = "") -> str:
    quality = "" if enc.quality is None else f' data-quality="{enc.quality}"'
    return (f'<figure data-codec="{enc.codec}" data-bytes="{enc.n_bytes}"{quality} '
            f'data-psnr="{enc.psnr!r}" data-ssim="{enc.ssim!r}">'
            f'<img src="{_data_uri(enc.data, _MIME[enc.codec])}" alt="{html.escape(alt)}">'
            f"{_caption(enc, label, extra)}</figure>")


def _swatches_html(r: KResult) -> str:
    spans, listed = [], []
    for color, share, count in zip(r.quantized.palette, r.shares, r.quantized.counts,
                                   strict=True):
        hexcode = "#{:02x}{:02x}{:02x}".format(*(int(c) for c in color))
        spans.append(f'<span style="background:{hexcode};flex:{share:.6f}" '
                     f'data-color="{hexcode}" data-count="{int(count)}" '
                     f'title="{hexcode} {100 * share:.2f}%"></span>')
        listed.append(f'<span class="c"><i style="background:{hexcode}"></i>{hexcode} '
                      f"{100 * share:.2f}%</span>")
    shown = 16
    more = f" &hellip; and {len(listed) - shown} more" if len(listed) > shown else ""
    return (f'<div class="swatches" aria-label="palette of {r.quantized.k} colors">'
            f'{"".join(spans)}</div>'
            f'<div class="colors">{" &nbsp; ".join(listed[:shown])}{more}</div>')


def _summary_table(report: Report) -> str:
    groups = [("", 1), ("kmq PNG", 4), ("JPEG at the PNG's size", 4),
              ("lossy WebP at the PNG's size", 4), ("", 1), (".kmq file of the same pixels", 4)]
    columns = ["K", "B", "bpp", "PSNR", "SSIM", "q", "B", "PSNR", "SSIM", "q", "B", "PSNR", "SSIM",
               "ahead", "B", "JPEG PSNR", "WebP PSNR", "ahead"]
    head = ("<tr>" + "".join(f'<th colspan="{n}">{html.escape(g)}</th>' for g, n in groups)
            + '</tr><tr>' + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
    n_pixels = report.rgb.shape[0] * report.rgb.shape[1]
    rows = []
    for r in report.results:
        best, best_small = r.best("psnr"), r.best("psnr", container=True)

        def cell(enc: Encoded, winner: str) -> str:
            cls = ' class="win"' if enc.codec == winner else ""
            return f"<td{cls}>{_db(enc.psnr)}</td>"

        def name(codec: str) -> str:
            return {"kmq": "kmq", "kmq-png": "kmq", "jpeg": "JPEG", "webp": "WebP"}[codec]

        k = f"{r.k}" if r.quantized.k == r.k else f"{r.k} ({r.quantized.k} used)"
        rows.append(
            f'<tr data-k="{r.k}"><td>{k}</td>'
            f"<td>{r.png.n_bytes:,}</td><td>{8 * r.png.n_bytes / n_pixels:.3f}</td>"
            f"{cell(r.png, best)}<td>{_ssim(r.png.ssim)}</td>"
            f"<td>{r.jpeg.quality}</td><td>{r.jpeg.n_bytes:,}</td>{cell(r.jpeg, best)}"
            f"<td>{_ssim(r.jpeg.ssim)}</td>"
            f"<td>{r.webp.quality}</td><td>{r.webp.n_bytes:,}</td>{cell(r.webp, best)}"
            f"<td>{_ssim(r.webp.ssim)}</td><td>{name(best)}</td>"
            f"<td>{r.container.n_bytes:,}</td>"
            f"{cell(r.jpeg_small, best_small)}{cell(r.webp_small, best_small)}"
            f"<td>{name(best_small)}</td></tr>")
    return f'<div class="table-wrap"><table>{head}{"".join(rows)}</table></div>'


def _at(wins: list[int], total: int) -> str:
    if not wins:
        return "at no K tried"
    if len(wins) == total:
        return "at every K tried"
    return f"at K = {', '.join(map(str, wins))} of the {total} K tried"


def overall(report: Report) -> str:
    """The report's one-paragraph summary: at which K kmq's PNG and .kmq file have the highest
    PSNR among files of their size (against JPEG and lossy WebP)."""
    n = len(report.results)
    png = [r.k for r in report.results if r.best("psnr") == "kmq-png"]
    small = [r.k for r in report.results if r.best("psnr", container=True) == "kmq"]
    text = (f"kmq's PNG has the highest PSNR among files of its size (against JPEG and lossy "
            f"WebP) {_at(png, n)}; its .kmq file {_at(small, n)}.")
    if not png and not small:
        text += (" On this image palette compression does not pay off against lossy codecs at "
                 "these sizes; it does on graphics and images of few colors.")
    return text


def _render_html(report: Report) -> str:
    from kmq import __version__

    width, height = report.size
    original = io.BytesIO()
    Image.fromarray(report.rgb, "RGB").save(original, format="PNG")
    original_uri = _data_uri(original.getvalue(), "image/png")
    title = f"kmq report: {report.name}"
    scaled = ""
    if report.original_size != report.size:
        scaled = (f" (downscaled from {report.original_size[0]}x{report.original_size[1]}; "
                  f"every number is of the downscaled image)")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="muted">{width}x{height} pixels{html.escape(scaled)}, '
        f"{report.distinct_colors:,} distinct colors; raw 24-bit RGB is "
        f"{3 * width * height:,} bytes. K = {', '.join(str(r.k) for r in report.results)}, "
        f"seed {report.seed}; kmq {__version__}.</p>",
        f'<p class="summary">{html.escape(overall(report))}</p>',
        # the original, once: each K's row shows it through <use>
        '<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
        f'<image id="original" width="{width}" height="{height}" href="{original_uri}"/>'
        "</defs></svg>",
        "<section><h2>How they compare</h2>",
        "<p>For each K, kmq quantizes the image and writes the indexed PNG <code>kmq "
        "compress</code> writes. Then the JPEG quality and the lossy WebP quality are searched "
        "(by bisection) for the largest file not above that PNG's size, so each row compares "
        "files of nearly equal size; the same is done at the size of kmq's own <i>.kmq</i> "
        "file, which holds the same pixels as the PNG (same PSNR and SSIM) in fewer bytes. "
        "PSNR (dB) and SSIM are against the image below; the highest PSNR at each size is in "
        "bold; B is bytes, q the encoder's quality. The plots also show the lossless WebP of "
        "kmq's pixels.</p>",
        _summary_table(report),
    ]
    for name, title_text in FIGURES.items():
        if name in report.figures:
            parts.append(f'<img class="plot" data-figure="{name}" '
                         f'src="{_data_uri(report.figures[name], "image/png")}" '
                         f'alt="{html.escape(title_text)}">')
    parts.append("</section>")
    parts.append('<section><h2>The image</h2><figure data-codec="original" '
                 f'style="max-width:{min(width, 640)}px"><img src="{original_uri}" '
                 f'alt="the original image"><figcaption><b>original</b>: {width}x{height}, '
                 f"stored losslessly in this page</figcaption></figure></section>")
    for r in report.results:
        verdict_class = "kmq" if r.best("psnr") == "kmq-png" else "other"
        extra = (f"<br>{r.quantized.k} colors, {r.quantized.index_bits} bits per index; "
                 f".kmq {r.container.n_bytes:,} B, lossless WebP {r.webp_lossless.n_bytes:,} B")
        parts.append(
            f'<section class="result" id="k{r.k}" data-k="{r.k}"><h2>K = {r.k} '
            f"<small>({r.quantized.k} colors used)</small></h2>"
            f'<p class="verdict {verdict_class}">{html.escape(r.verdict())}</p>'
            f"{_swatches_html(r)}"
            '<div class="row">'
            '<figure data-codec="original-ref">'
            f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="original">'
            '<use href="#original"/></svg><figcaption><b>original</b></figcaption></figure>'
            + _figure_html(r.png, f"kmq PNG, K={r.k}", f"kmq at K={r.k}", extra)
            + _figure_html(r.jpeg, "JPEG", f"JPEG at quality {r.jpeg.quality}")
            + _figure_html(r.webp, "lossy WebP", f"lossy WebP at quality {r.webp.quality}")
            + "</div></section>")
    parts.append(
        '<p class="muted">JPEG: Pillow (libjpeg), 4:2:0 chroma, optimized Huffman tables. '
        "WebP: Pillow (libwebp), method 6. Sizes are whole files in bytes (1 kB = 1000 B). PSNR "
        "over the three 8-bit sRGB channels; SSIM as scikit-image computes it (7x7 window, data "
        f"range 255, mean over channels). Made in {report.seconds:.1f} s.</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


__all__ = ["CODEC_NAMES", "DEFAULT_KS", "FIGURES", "JPEG_OPTIONS", "JPEG_QUALITIES",
           "WEBP_LOSSY_OPTIONS", "WEBP_QUALITIES", "Encoded", "KResult", "Report", "encode_jpeg",
           "encode_webp_lossy", "make_report", "match_size", "output_paths", "overall",
           "parse_ks", "summary_lines"]
