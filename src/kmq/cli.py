"""The ``kmq`` command: compress images by k-means color quantization; read .kmq files.

A thin layer over the library: options, one results table, progress and exit codes. Heavy
modules (the numba kernels, scikit-image) are imported inside the commands, so ``kmq --help`` and
``kmq --version`` stay quick.

Commands
--------
``kmq compress INPUT... [-k K] [-o OUTPUT] [--format png|kmq|webp|gif]
[--colorspace srgb|wsrgb|linear|oklab] [--dither S | --no-dither] [--palette FILE] [--optimize]
[--seed N] [--force] [--quiet] [--max-pixels N]``
    One indexed PNG or .kmq file (``docs/FORMAT.md``) per input, chosen by the extension of
    ``-o`` or forced with ``--format``: ``photo.jpg`` -> ``photo-kmq.png`` (``photo-kmq.kmq``
    with ``--format kmq``) beside it unless ``-o`` says otherwise; then a table of the results
    on stdout.
``kmq decompress INPUT.kmq... [-o OUTPUT] [--force] [--quiet] [--max-pixels N]``
    One image per .kmq input in any format Pillow writes, chosen by the output's extension:
    ``photo-kmq.kmq`` -> ``photo-kmq.png`` by default. PNG and GIF are written indexed with the
    exact palette when K <= 256, other formats (and K > 256) as RGB; WebP is written lossless.
    Then a table (file, output, size, WxH, K, seconds) on stdout.
``kmq info FILE.kmq...``
    The header of each .kmq file, its bits per pixel and its compression ratio against raw
    24-bit RGB, from the 32 header bytes and the file's size only (the payload is not read).
``kmq palette INPUT [-k K] [--format text|json|css|gpl|png] [-o OUTPUT] [--seed N] [--force]
[--max-pixels N]``
    The K dominant colors of an image (k-means clusters, 8 by default) with their shares of the
    pixels, largest first: as text (hex and percent), JSON, CSS custom properties, a GIMP
    palette, or a PNG strip of swatches as wide as their shares. Text formats go to stdout
    unless ``-o`` is given; the format follows ``-o``'s extension (.txt, .json, .css, .gpl,
    .png) unless ``--format`` says otherwise.
``kmq batch INPUTS... -o OUT_DIR [--recursive] [--shared-palette] [--engine local|dask] ...``
    Many files in parallel (processes, or a Dask cluster), the relative layout kept under
    OUT_DIR, resumable; see ``kmq batch --help``.
``kmq report INPUT [-k 4,8,...] [-o report.html]``
    A self-contained HTML report: the results at each K beside JPEG and WebP of the same size,
    palettes, and plots of quality against size.
``kmq serve [--host 127.0.0.1] [--port 8000]``
    A local web page to try kmq on an image (split view, K slider, download).
``kmq demo [-o DIR] [-k K]``
    Compresses three sample photographs that ship with scikit-image.

Output
------
The table on stdout has one row per compressed file: the input, K (colors used), PSNR (dB),
SSIM, bits per pixel (bpp) of the written file, its compression ratio against raw 24-bit RGB and
against the input file, and the seconds spent reading, quantizing and writing (measuring the
PSNR and SSIM afterwards is not counted). Progress goes to stderr (only on a terminal, and not
with ``--quiet``); warnings and errors go to stderr as one line each, ``kmq: warning: ...`` and
``kmq: error: ...``.

Exit codes
----------
0  success: every input was processed
1  unexpected error (a bug, or an output file that could not be written)
2  invalid usage or argument value (reported by the option parser)
3  an input could not be read: missing, not an image, damaged (:class:`kmq.ImageReadError`)
4  an input has more pixels than ``--max-pixels`` (:class:`kmq.ImageTooLargeError`)
5  an output exists and ``--force`` was not given, or it would replace an input
   (:class:`kmq.OutputExistsError`)
6  a .kmq input is corrupt: truncated, damaged, or not a .kmq file
   (:class:`kmq.CorruptFileError`)
7  ``--quality``: even the largest K misses the minimum PSNR; nothing is written
   (:class:`kmq.QualityTooLowError`)

``kmq palette`` uses the same codes (3 and 4 for its input, 5 for ``-o``, 1 if it cannot be
written). With several inputs every one is attempted; the exit code is that of the first
failure. Set
``KMQ_DEBUG=1`` to get a traceback instead of a one-line message for an unexpected error.
"""

from __future__ import annotations

import enum
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import typer

from kmq import __version__
from kmq.errors import (
    CorruptFileError,
    ImageReadError,
    ImageTooLargeError,
    KmqError,
    OutputExistsError,
    error_kind,
    one_line,
)
from kmq.io import DEFAULT_MAX_PIXELS
from kmq.palettes import PaletteFormat

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_READ = 3
EXIT_TOO_LARGE = 4
EXIT_EXISTS = 5
EXIT_CORRUPT = 6
EXIT_QUALITY = 7

#: Suffix of default output names: ``photo.jpg`` -> ``photo-kmq.png``.
OUTPUT_SUFFIX = "-kmq.png"
#: Extension of the default output of ``kmq decompress``: ``photo-kmq.kmq`` -> ``photo-kmq.png``.
DECOMPRESS_SUFFIX = ".png"


class ColorSpace(enum.StrEnum):
    """Working color spaces of ``--colorspace``."""

    srgb = "srgb"
    wsrgb = "wsrgb"
    linear = "linear"
    oklab = "oklab"


class OutputFormat(enum.StrEnum):
    """What ``kmq compress`` writes."""

    png = "png"
    kmq = "kmq"
    webp = "webp"
    gif = "gif"


#: Output formats of ``kmq compress`` by (lower-case) file extension.
COMPRESS_EXTENSIONS = {f".{f.value}": f for f in OutputFormat}

#: ``--force`` and ``--quiet``, the same on every command that writes files.
_FORCE_OPTION = typer.Option(False, "--force", "-f",
                             help="Overwrite existing output files (an input file is never "
                                  "overwritten).")
_QUIET_OPTION = typer.Option(False, "--quiet", "-q",
                             help="No progress display (it is shown only on a terminal anyway); "
                                  "warnings, errors and the table are still printed.")

EXIT_CODES_HELP = (
    "Exit codes: "
    "0 success; "
    "1 unexpected error (or an output could not be written); "
    "2 invalid usage or argument; "
    "3 an input could not be read; "
    "4 an input is over the pixel limit (--max-pixels); "
    "5 an output exists and --force was not given, or it would replace an input; "
    "6 a .kmq input is corrupt, truncated or not a .kmq file; "
    "7 --quality: even the largest K misses the minimum (nothing is written). "
    "With several inputs, all are attempted and the exit code is the first failure's."
)

app = typer.Typer(
    name="kmq",
    help="Compress images by k-means color quantization into indexed PNG or .kmq files; "
         "decompress and inspect .kmq files; extract an image's dominant colors.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"kmq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", is_eager=True,
                                 callback=_version_callback,
                                 help="Print kmq's version and exit."),
) -> None:
    """Compress images by k-means color quantization; decompress and inspect .kmq files."""


# ---------------------------------------------------------------------------------------------
# One file


@dataclass(frozen=True)
class Row:
    """The numbers of one compressed file, as printed in the results table."""

    source: Path
    output: Path
    k: int
    psnr: float
    ssim: float  # nan when the image is smaller than SSIM's 7x7 window
    bits_per_pixel: float
    ratio_raw: float
    ratio_input: float
    seconds: float


class _WriteError(Exception):
    """An output file could not be written (exit code 1, with a clean message)."""


#: Exit code for each kind of failure (:func:`kmq.errors.error_kind`, and a batch's "write" and
#: "worker" failures).
ERROR_EXIT_CODES = {"read": EXIT_READ, "too_large": EXIT_TOO_LARGE, "exists": EXIT_EXISTS,
                    "corrupt": EXIT_CORRUPT, "quality": EXIT_QUALITY, "write": EXIT_INTERNAL,
                    "worker": EXIT_INTERNAL, "internal": EXIT_INTERNAL}


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an error raised while processing one file."""
    return ERROR_EXIT_CODES[error_kind(exc)]


def default_output(source: Path, directory: Path | None = None,
                   fmt: OutputFormat | str = OutputFormat.png) -> Path:
    """Default output of ``source``: ``<stem>-kmq.png`` (or ``<stem>-kmq.kmq``) beside it (or in
    ``directory``)."""
    suffix = f"-kmq.{OutputFormat(fmt).value}"
    return (source.parent if directory is None else directory) / f"{source.stem}{suffix}"


def default_decompressed(source: Path, directory: Path | None = None) -> Path:
    """Default output of ``kmq decompress``: ``photo-kmq.kmq`` -> ``photo-kmq.png``."""
    return (source.parent if directory is None else directory) / (
        f"{source.stem}{DECOMPRESS_SUFFIX}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


class _Reporter:
    """Progress on stderr (rich, only when enabled) and one-line messages."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._progress = None
        self._task = None
        self._name = ""

    def __enter__(self) -> _Reporter:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                      BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("starting", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def file(self, name: str) -> None:
        self._name = name
        self.stage("reading")

    def stage(self, stage: str, fraction: float | None = None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self._name}: {stage}")

    def callback(self, stage: str, fraction: float) -> bool:
        """The library's ``progress(stage, fraction)`` hook; never cancels."""
        self.stage(stage, fraction)
        return False

    def done(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def message(self, line: str) -> None:
        if self._progress is not None:
            from rich.text import Text

            self._progress.console.print(Text(line), soft_wrap=True)
        else:
            typer.echo(line, err=True)


def _writer(fmt: OutputFormat, optimize: bool = False):
    """``save(path, palette, indices, *, overwrite) -> bytes written`` for an output format;
    ``optimize`` recompresses a PNG with oxipng."""
    if fmt is OutputFormat.png and optimize:
        from functools import partial

        from kmq.codecs.png import save_png

        return partial(save_png, optimize=True)
    if fmt is OutputFormat.kmq:
        from kmq.codecs.container import save
    elif fmt is OutputFormat.webp:
        from kmq.codecs.webp import save_webp as save
    elif fmt is OutputFormat.gif:
        from kmq.codecs.gif import save_gif as save
    else:
        from kmq.codecs.png import save_png as save
    return save


class _KernelWarmUp:
    """numba's start-up and the quantizer's kernel loads (about a second in a new process, see
    :func:`kmq.pipeline.warm_up`) on a background thread, while the first image decodes (which
    releases the GIL). :meth:`wait` before quantizing: two threads must not run kernels at once.
    A failure here is left for the real call to meet and report."""

    def __init__(self) -> None:
        self._thread = None

    def start(self) -> None:
        """Start loading, once."""
        if self._thread is None:
            import threading

            self._thread = threading.Thread(target=self._run, name="kmq-warm-up", daemon=True)
            self._thread.start()

    @staticmethod
    def _run() -> None:
        try:
            from kmq.pipeline import warm_up

            warm_up()
        except Exception:  # the real call meets it again and reports it
            pass

    def wait(self) -> None:
        """Until the loading ends (at once if it never started)."""
        if self._thread is not None:
            self._thread.join()


def compress_file(source: Path, output: Path, *, k: int, seed: int, force: bool,
                  max_pixels: int, reporter: _Reporter,
                  fmt: OutputFormat | str = OutputFormat.png, color_space: str = "srgb",
                  dither: float = 0.0, palette=None, optimize: bool = False,
                  quality: tuple[float, float] | None = None,
                  warm_up: _KernelWarmUp | None = None) -> Row:
    """Read, quantize, write (atomically, as PNG or .kmq) and measure one image; raises on
    failure. The row's bits per pixel and ratios are those of the file written. ``warm_up``,
    if given, is started before reading (when the input exists) and waited for after.

    The file is written on a second thread while SSIM is measured (both release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from kmq.io import binary_alpha, read_image

    if not force and output.exists():
        raise OutputExistsError(f"{output}: exists (use --force to overwrite)")
    start = time.perf_counter()
    reporter.file(source.name)
    if warm_up is not None and source.is_file():  # not for a missing input: it fails at once
        warm_up.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = read_image(source, max_pixels=max_pixels)  # RGBA when it has transparency
        if warm_up is not None:
            warm_up.wait()
        from kmq import metrics
        from kmq.pipeline import quantize

        if OutputFormat(fmt) is OutputFormat.gif:  # one transparent color, no translucency
            rgb = binary_alpha(rgb)
        input_bytes = source.stat().st_size
        if palette is None and quality is not None:
            from kmq.pipeline import quantize_to_quality

            result = quantize_to_quality(rgb, *quality, max_colors=k, seed=seed,
                                         color_space=color_space, dither=dither,
                                         progress=reporter.callback)
        elif palette is None:
            result = quantize(rgb, k, seed=seed, color_space=color_space, dither=dither,
                              progress=reporter.callback)
        else:
            from kmq.pipeline import apply_palette

            result = apply_palette(rgb, palette, color_space=color_space, dither=dither)
            if result.palette.shape[1] < rgb.shape[2]:  # an RGB palette: alpha was dropped
                rgb = rgb[:, :, :3].copy()
    for message in dict.fromkeys(one_line(w.message) for w in caught):
        reporter.message(f"kmq: warning: {message}")
    reporter.stage("writing")
    save = _writer(OutputFormat(fmt), optimize)

    def write() -> tuple[int, float]:
        n = save(output, result.palette, result.indices, overwrite=force)
        return n, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=1) as pool:
        writing = pool.submit(write)
        reporter.stage("measuring")
        ssim = (metrics.ssim_indexed(rgb, result.palette, result.indices, fast=True)
                if min(rgb.shape[:2]) >= 7 else math.nan)
        try:
            n_bytes, seconds = writing.result()
        except OSError as exc:
            raise _WriteError(f"{output}: cannot write ({exc.strerror or exc})") from exc
    n_pixels = rgb.shape[0] * rgb.shape[1]
    return Row(source=source, output=output, k=result.k, psnr=result.psnr,
               ssim=ssim, bits_per_pixel=metrics.bits_per_pixel(n_bytes, n_pixels),
               ratio_raw=metrics.compression_ratio(n_bytes, rgb.shape[2] * n_pixels),
               ratio_input=metrics.compression_ratio(n_bytes, input_bytes), seconds=seconds)


# ---------------------------------------------------------------------------------------------
# Many files and the table


#: Caption of the results table: what each column means.
TABLE_CAPTION = (
    "K: colors used; PSNR in dB and SSIM against the input; bpp: bits per pixel of the "
    "written file; vs raw, vs input: times smaller than raw 24-bit RGB (32-bit RGBA for an "
    "image with transparency, whose PSNR and SSIM are of premultiplied RGBA) and than the input "
    "file; sec: seconds to read, quantize and write."
)


def _print_table(rows: list[Row]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = sys.stdout
    # Off a terminal (a pipe, a file, a test) never fold: the table is as wide as it needs.
    console = Console(file=out) if out.isatty() else Console(file=out, width=100_000)
    table = Table(box=box.SIMPLE, pad_edge=False, caption=TABLE_CAPTION, caption_justify="left")
    table.add_column("file", overflow="fold", min_width=12)
    for name in ("K", "PSNR", "SSIM", "bpp", "vs raw", "vs input", "sec"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(Text(str(r.source)), str(r.k), f"{r.psnr:.2f}",
                      "n/a" if math.isnan(r.ssim) else f"{r.ssim:.4f}", f"{r.bits_per_pixel:.3f}",
                      f"{r.ratio_raw:.2f}", f"{r.ratio_input:.2f}", f"{r.seconds:.2f}")
    console.print(table)


def _run_jobs(jobs: list[tuple[Path, Path]], work, *, quiet: bool, precheck=None,
              ) -> tuple[list, int]:
    """Run ``work(source, output, reporter)`` on every pair; returns the rows and the exit code.

    Each failure is reported on stderr as one line and the others still run. An output that is
    one of the inputs, or that was already written in this run, is refused (exit 5).
    ``precheck(source)``, when given, runs first so that a bad input is reported as such.
    """
    sources = [source for source, _ in jobs]
    written: dict[Path, Path] = {}
    rows: list = []
    first_failure = EXIT_OK
    show_progress = not quiet and sys.stderr.isatty()
    with _Reporter(show_progress, len(jobs)) as reporter:
        for source, output in jobs:
            try:
                if precheck is not None:
                    precheck(source)
                clash = next((s for s in sources if _same_file(output, s)), None)
                if clash is not None:
                    raise OutputExistsError(f"{output}: is an input file ({clash}); "
                                            f"refusing to overwrite it")
                key = output.resolve()
                if key in written:
                    raise OutputExistsError(f"{output}: already written for {written[key]} "
                                            f"in this run; not overwriting it")
                rows.append(work(source, output, reporter))
                written[key] = source
            except (KmqError, _WriteError) as exc:
                code = exit_code(exc)
                reporter.message(f"kmq: error: {one_line(exc)}")
            except Exception as exc:
                if os.environ.get("KMQ_DEBUG"):
                    raise
                code = EXIT_INTERNAL
                reporter.message(f"kmq: error: {source}: internal error: "
                                 f"{type(exc).__name__}: {one_line(exc)}")
            else:
                code = EXIT_OK
            first_failure = first_failure or code
            reporter.done()
    return rows, first_failure


def _summary(rows: list, n_jobs: int) -> None:
    """``kmq: N of M files failed`` on stderr, with several inputs and a failure."""
    failures = n_jobs - len(rows)
    if failures and n_jobs > 1:
        typer.echo(f"kmq: {failures} of {n_jobs} files failed", err=True)


def run_batch(jobs: list[tuple[Path, Path]], *, k: int, seed: int, force: bool, max_pixels: int,
              quiet: bool, fmt: OutputFormat | str = OutputFormat.png,
              color_space: str = "srgb", dither: float = 0.0, palette=None,
              optimize: bool = False, quality: tuple[float, float] | None = None) -> int:
    """Compress every (source, output) pair, print the table; returns the exit code."""

    warm_up = _KernelWarmUp()  # started by the first input that exists

    def work(source: Path, output: Path, reporter: _Reporter) -> Row:
        return compress_file(source, output, k=k, seed=seed, force=force, max_pixels=max_pixels,
                             reporter=reporter, fmt=fmt, color_space=color_space,
                             dither=dither, palette=palette, optimize=optimize,
                             quality=quality, warm_up=warm_up)

    rows, code = _run_jobs(jobs, work, quiet=quiet)
    warm_up.wait()  # when no file got as far as quantizing: never exit while it loads kernels
    if rows:
        _print_table(rows)
    _summary(rows, len(jobs))
    return code


# ---------------------------------------------------------------------------------------------
# .kmq files: header, decompress


@dataclass(frozen=True)
class DecompressedRow:
    """One decompressed file, as printed in the decompress table."""

    source: Path
    output: Path
    size: int  # bytes of the written image
    width: int
    height: int
    k: int
    seconds: float


#: Formats written indexed (mode P, the exact palette) when K <= 256.
PALETTE_FORMATS = frozenset({"PNG", "GIF"})
#: Formats that keep an alpha channel; others get the colors only (JPEG, BMP...).
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "GIF", "TGA"})
#: Pillow save options per format: lossless where the format has a choice.
SAVE_OPTIONS = {
    "WEBP": {"lossless": True, "quality": 100, "method": 4},
    "GIF": {"optimize": False},
    "JPEG": {"quality": 95},
}


def image_format(path: Path) -> str | None:
    """The Pillow format that writes ``path``, from its extension (``None`` if none does)."""
    from PIL import Image

    Image.init()
    name = Image.registered_extensions().get(path.suffix.lower())
    return name if name in Image.SAVE else None


def read_kmq_header(path: Path):
    """The checked header of a .kmq file, from its first 32 bytes and its size.

    Raises :class:`ImageReadError` when the file cannot be read and :class:`CorruptFileError`
    when it is not an intact .kmq header or its size is not the one the header states.
    """
    from kmq.codecs.container import HEADER_SIZE, read_header

    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_SIZE)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageReadError(f"{path}: is a directory, not a .kmq file") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        header = read_header(head)
    except CorruptFileError as exc:
        raise CorruptFileError(f"{path}: {exc}") from exc
    if size != header.file_size:
        raise CorruptFileError(f"{path}: {'truncated' if size < header.file_size else 'too long'}:"
                               f" {size:,} bytes where the header states {header.file_size:,}")
    return header


def _check_kmq_input(source: Path, max_pixels: int) -> None:
    header = read_kmq_header(source)
    if header.pixels > max_pixels:
        raise ImageTooLargeError(
            f"{source}: {header.width}x{header.height} = {header.pixels:,} pixels is over the "
            f"limit of {max_pixels:,} pixels (raise it with --max-pixels)")


def encode_image(decoded, fmt: str) -> bytes:
    """A decoded .kmq image as the bytes of a ``fmt`` file (a Pillow format name)."""
    import io

    from PIL import Image

    from kmq.codecs import png

    alpha = decoded.palette.shape[1] == 4
    if decoded.k <= png.MAX_COLORS and fmt == "PNG":
        return png.encode_png(decoded.palette, decoded.indices)  # as `kmq compress` writes it
    if decoded.k <= png.MAX_COLORS and fmt == "GIF":
        from kmq.codecs.gif import encode_gif

        try:
            return encode_gif(decoded.palette, decoded.indices)
        except ValueError:  # translucent entries: Pillow makes what a GIF can hold of them
            im = Image.fromarray(decoded.to_array(), "RGBA")
    elif decoded.k <= png.MAX_COLORS and fmt in PALETTE_FORMATS:
        im = png.to_pil(decoded.palette, decoded.indices)
    elif alpha and fmt in ALPHA_FORMATS:
        im = Image.fromarray(decoded.to_array(), "RGBA")
    else:
        im = Image.fromarray(decoded.to_rgb(), "RGB")
    buf = io.BytesIO()
    im.save(buf, format=fmt, **SAVE_OPTIONS.get(fmt, {}))
    return buf.getvalue()


def decompress_file(source: Path, output: Path, *, fmt: str, force: bool, max_pixels: int,
                    reporter: _Reporter) -> DecompressedRow:
    """Read and decode one .kmq file and write it (atomically) as a ``fmt`` image."""
    from kmq.codecs.container import load
    from kmq.io import write_atomic

    if not force and output.exists():
        raise OutputExistsError(f"{output}: exists (use --force to overwrite)")
    start = time.perf_counter()
    reporter.file(source.name)
    decoded = load(source, max_pixels=max_pixels)
    if fmt == "GIF" and decoded.k > 256:
        reporter.message(f"kmq: warning: {output}: GIF holds at most 256 colors; Pillow reduces "
                         f"the {decoded.k} colors of {source}")
    reporter.stage("writing")
    try:
        data = encode_image(decoded, fmt)
        n_bytes = write_atomic(output, lambda fh: fh.write(data), overwrite=force)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        raise _WriteError(f"{output}: cannot write ({reason})") from exc
    return DecompressedRow(source=source, output=output, size=n_bytes, width=decoded.width,
                           height=decoded.height, k=decoded.k,
                           seconds=time.perf_counter() - start)


#: Caption of the decompress table.
DECOMPRESS_CAPTION = ("size: bytes of the written image; WxH: width x height in pixels; K: "
                      "palette colors; sec: seconds to read, decode and write.")


def _print_decompress_table(rows: list[DecompressedRow]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = sys.stdout
    console = Console(file=out) if out.isatty() else Console(file=out, width=100_000)
    table = Table(box=box.SIMPLE, pad_edge=False, caption=DECOMPRESS_CAPTION,
                  caption_justify="left")
    table.add_column("file", overflow="fold", min_width=12)
    table.add_column("output", overflow="fold", min_width=12)
    for name in ("size", "WxH", "K", "sec"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(Text(str(r.source)), Text(str(r.output)), str(r.size),
                      f"{r.width}x{r.height}", str(r.k), f"{r.seconds:.2f}")
    console.print(table)


_METHOD_NAMES = {0: "constant (K = 1, no payload)", 1: "bit-packed, zstd",
                 2: "context model, range coder"}


def header_lines(path: Path, header) -> list[str]:
    """``kmq info``'s lines for one file."""
    fields = [
        ("version", str(header.version)),
        ("layout", header.layout),
        ("method", f"{int(header.method)} ({_METHOD_NAMES.get(int(header.method), '?')})"),
        ("width", str(header.width)),
        ("height", str(header.height)),
        ("K", str(header.k)),
        ("index dtype", header.index_dtype),
        ("payload bytes", str(header.payload_size)),
        ("file bytes", str(header.file_size)),
        ("bits per pixel", f"{header.bits_per_pixel:.3f}"),
        ("vs raw", f"{header.channels * header.pixels / header.file_size:.2f}"),
    ]
    return [str(path)] + [f"  {name:<15} {value}" for name, value in fields]


# ---------------------------------------------------------------------------------------------
# Commands

_K_HELP = "Number of colors of the palette, 2..256 (fewer are used if the image has fewer)."


_COMPRESS_HELP = (
    "Compress each INPUT into an indexed PNG or a .kmq file of at most K colors and print a "
    "results table."
    "\n\n"
    "The format follows the extension of OUTPUT (.png or .kmq) or --format; PNG by default. "
    ".kmq is kmq's own format, smaller than PNG (see 'kmq decompress' and 'kmq info'). "
    "The table (stdout) gives per file: K used, PSNR (dB) and SSIM against the input, bits per "
    "pixel of the written file, its compression ratio against raw 24-bit RGB and against the "
    "input file, and the seconds to read, quantize and write. Outputs are written atomically "
    "and never replace an existing file without --force. A file that fails is reported on "
    "stderr and the others are still compressed."
)

_DECOMPRESS_HELP = (
    "Decompress each .kmq INPUT into an image file and print a table (file, output, size, "
    "WxH, K, seconds)."
    "\n\n"
    "The output format follows OUTPUT's extension: any format Pillow writes (.png, .gif, "
    ".webp, .bmp, .tif, .jpg, ...); by default '<name>.png' beside the input, so "
    "'photo-kmq.kmq' gives 'photo-kmq.png'. PNG and GIF are written indexed with the exact "
    "palette (K <= 256), WebP lossless, other formats as RGB. Outputs are written atomically "
    "and never replace an existing file without --force, nor an input. A corrupt .kmq file "
    "exits 6; the other inputs are still decompressed."
)

_INFO_HELP = (
    "Print the header of each .kmq FILE: version, layout, method, width, height, K, index "
    "dtype, payload and file bytes, bits per pixel and the compression ratio against raw "
    "24-bit RGB."
    "\n\n"
    "Only the 32 header bytes and the file's size are read: the payload is neither decoded nor "
    "checksummed ('kmq decompress' does that). A damaged header or a wrong size exits 6."
)

_DEMO_HELP = (
    "Compress three sample photographs (astronaut, coffee, chelsea) and print the table."
    "\n\n"
    "The originals (from scikit-image's bundled data) are written to DIR as '<name>.png', "
    "their compressed versions as '<name>-kmq.png', and the same table as 'kmq compress' is "
    "printed."
)


@app.command(help=_COMPRESS_HELP, epilog=EXIT_CODES_HELP)
def compress(
    inputs: list[Path] = typer.Argument(
        ..., metavar="INPUT", show_default=False,
        help="Image files to compress: any format Pillow reads (PNG, JPEG, TIFF, WebP, ...). "
             "Transparency is kept (an RGBA palette; GIF keeps one fully transparent "
             "color)."),
    k: int = typer.Option(256, "-k", "--colors", min=2, max=256, metavar="K", help=_K_HELP),
    output: Path | None = typer.Option(
        None, "-o", "--output", metavar="OUTPUT", show_default=False,
        help="Output file, .png, .kmq, .webp or .gif (only with one INPUT), or an existing "
             "directory to "
             f"write every output into under its default name. Default: beside each input, "
             f"'<name>{OUTPUT_SUFFIX}' ('<name>-kmq.kmq' with --format kmq, and so on)."),
    output_format: OutputFormat | None = typer.Option(
        None, "--format", "-F", case_sensitive=False, show_default=False,
        help="Write this format whatever OUTPUT's extension: 'png' (indexed PNG), 'kmq' "
             "(kmq's container, smaller), 'webp' (lossless) or 'gif'. Default: from OUTPUT's "
             "extension, else png."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N",
                             help="Random seed; the same input, K and seed give identical bytes."),
    color_space: ColorSpace = typer.Option(
        ColorSpace.srgb, "--colorspace", case_sensitive=False,
        help="Where color distances are measured while clustering and mapping: 'srgb' (the "
             "error PSNR measures), 'wsrgb' (sRGB with red and blue weighted less: better "
             "SSIM and CIEDE2000), 'linear' (light) or 'oklab' (perceptual). The palette is "
             "sRGB either way."),
    dither: float = typer.Option(
        0.0, "--dither", min=0.0, max=1.0, metavar="S",
        help="Dithering strength, 0 (none) to 1 (full): adaptive error diffusion (full in flat "
             "gradients, less on edges): smoother gradients, higher MSE, larger files."),
    no_dither: bool = typer.Option(False, "--no-dither", help="No dithering (the default)."),
    palette_file: Path | None = typer.Option(
        None, "--palette", metavar="FILE", show_default=False,
        help="Map onto this palette instead of fitting one (-k is then ignored): a GIMP .gpl, "
             "a JSON palette as 'kmq palette -F json' writes, or an image whose distinct "
             "colors (at most 256) are the palette."),
    quality: str | None = typer.Option(
        None, "--quality", metavar="MIN-MAX", show_default=False,
        help="Use the fewest colors whose PSNR reaches MAX dB (at most K, see --max-colors); if "
             "even K colors miss MIN dB, write nothing and exit 7. 'MAX' alone means MIN=0. "
             "The K chosen is in the table."),
    max_colors: int | None = typer.Option(
        None, "--max-colors", min=2, max=256, metavar="K", show_default=False,
        help="Cap on the colors --quality may use (the same as -k)."),
    optimize: bool = typer.Option(
        False, "--optimize", help="Recompress PNG output with oxipng (smaller, slower; the "
                                  "pixels and palette stay the same)."),
    force: bool = _FORCE_OPTION,
    quiet: bool = _QUIET_OPTION,
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   help="Refuse (exit 4) an input with more pixels than this."),
) -> None:
    """``kmq compress``: see ``_COMPRESS_HELP``."""
    out_dir = _check_output_option(output, len(inputs))
    fmt = output_format
    if fmt is None and output is not None and out_dir is None:
        fmt = COMPRESS_EXTENSIONS.get(output.suffix.lower())
        if fmt is None:
            raise typer.BadParameter(
                f"cannot tell the output format from '{output}': give it a .png, .kmq, .webp "
                f"or .gif extension, or choose with --format", param_hint="'-o' / '--output'")
    fmt = fmt or OutputFormat.png
    given_palette = None
    if palette_file is not None:
        given_palette = _load_palette(palette_file)
    jobs = [(src, output if output is not None and out_dir is None
             else default_output(src, out_dir, fmt)) for src in inputs]
    if max_colors is not None:
        k = max_colors
    code = run_batch(jobs, k=k, seed=seed, force=force, max_pixels=max_pixels, quiet=quiet,
                     fmt=fmt, color_space=color_space.value,
                     dither=0.0 if no_dither else dither, palette=given_palette,
                     optimize=optimize, quality=_parse_quality(quality))
    raise typer.Exit(code)


def _parse_quality(text: str | None) -> tuple[float, float] | None:
    """``--quality`` as (min, max) PSNR in dB, or a usage error."""
    if text is None:
        return None
    try:
        parts = [float(p) for p in text.split("-")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = [0.0, parts[0]]
    if len(parts) != 2 or not 0 <= parts[0] <= parts[1] or parts[1] > 200:
        raise typer.BadParameter(f"expected MIN-MAX in dB with 0 <= MIN <= MAX (e.g. 30-40) or "
                                 f"MAX alone; got {text!r}", param_hint="'--quality'")
    return parts[0], parts[1]


def _load_palette(path: Path):
    """The palette of ``--palette``, or a usage error (exit 2) that says what is wrong."""
    from kmq.palettes import read_palette

    try:
        palette = read_palette(path)
    except (OSError, ValueError, KmqError) as exc:
        raise typer.BadParameter(f"{path}: {one_line(exc)}", param_hint="'--palette'") from exc
    if len(palette) > 256:
        raise typer.BadParameter(f"{path}: {len(palette)} colors; a palette holds at most 256",
                                 param_hint="'--palette'")
    return palette


def _check_output_option(output: Path | None, n_inputs: int) -> Path | None:
    """The output directory, if ``output`` is one; usage errors for a bad ``-o``."""
    if output is None:
        return None
    if output.is_dir():
        return output
    if n_inputs > 1:
        raise typer.BadParameter(
            f"with {n_inputs} inputs, OUTPUT must be an existing directory; "
            f"'{output}' is not one", param_hint="'-o' / '--output'")
    if not (output.parent if str(output.parent) else Path(".")).is_dir():
        raise typer.BadParameter(f"the directory of '{output}' does not exist",
                                 param_hint="'-o' / '--output'")
    return None


@app.command(help=_DECOMPRESS_HELP, epilog=EXIT_CODES_HELP)
def decompress(
    inputs: list[Path] = typer.Argument(
        ..., metavar="INPUT", show_default=False,
        help=".kmq files to decompress (written by 'kmq compress --format kmq' or kmq.save)."),
    output: Path | None = typer.Option(
        None, "-o", "--output", metavar="OUTPUT", show_default=False,
        help="Output image file (only with one INPUT), its format chosen by its extension, or "
             "an existing directory to write every output into as '<name>.png'. Default: "
             "beside each input, '<name>.png'."),
    force: bool = _FORCE_OPTION,
    quiet: bool = _QUIET_OPTION,
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   help="Refuse (exit 4) an input stating more pixels than this."),
) -> None:
    """``kmq decompress``: see ``_DECOMPRESS_HELP``."""
    out_dir = _check_output_option(output, len(inputs))
    fmt = "PNG"
    if output is not None and out_dir is None:
        fmt = image_format(output)
        if fmt is None:
            raise typer.BadParameter(
                f"cannot tell the image format from '{output}': give it an extension of a "
                f"format Pillow writes (.png, .gif, .webp, .bmp, .tif, .jpg, ...)",
                param_hint="'-o' / '--output'")
    jobs = [(src, output if output is not None and out_dir is None
             else default_decompressed(src, out_dir)) for src in inputs]

    def work(source: Path, target: Path, reporter: _Reporter) -> DecompressedRow:
        return decompress_file(source, target, fmt=fmt, force=force, max_pixels=max_pixels,
                               reporter=reporter)

    rows, code = _run_jobs(jobs, work, quiet=quiet,
                           precheck=lambda source: _check_kmq_input(source, max_pixels))
    if rows:
        _print_decompress_table(rows)
    _summary(rows, len(jobs))
    raise typer.Exit(code)


@app.command(help=_INFO_HELP, epilog=EXIT_CODES_HELP)
def info(
    files: list[Path] = typer.Argument(..., metavar="FILE", show_default=False,
                                       help=".kmq files to describe."),
) -> None:
    """``kmq info``: see ``_INFO_HELP``."""
    first_failure = EXIT_OK
    printed = 0
    for path in files:
        try:
            header = read_kmq_header(path)
        except KmqError as exc:
            typer.echo(f"kmq: error: {one_line(exc)}", err=True)
            first_failure = first_failure or exit_code(exc)
            continue
        if printed:
            typer.echo("")
        typer.echo("\n".join(header_lines(path, header)))
        printed += 1
    if printed < len(files) and len(files) > 1:
        typer.echo(f"kmq: {len(files) - printed} of {len(files)} files failed", err=True)
    raise typer.Exit(first_failure)


_PALETTE_HELP = (
    "Print or write the K dominant colors of INPUT with their shares of the pixels, largest "
    "first."
    "\n\n"
    "The colors are the k-means clusters of 'kmq compress' (the same K and seed give the same "
    "colors). Formats: text (#rrggbb and percent per line), json (a list of {hex, rgb, share}), "
    "css (custom properties --kmq-color-1 ...), gpl (a GIMP palette, also read by Inkscape and "
    "Krita) and png (a strip of swatches, each as wide as its share; needs -o). Text formats "
    "go to stdout unless -o is given. Outputs are written atomically and never replace an "
    "existing file without --force."
)


@app.command(help=_PALETTE_HELP, epilog=EXIT_CODES_HELP)
def palette(
    sources: list[str] = typer.Argument(
        ..., metavar="INPUT", show_default=False,
        help="Image file: any format Pillow reads. Several files, folders or glob patterns: "
             "one palette for all their pixels together (see 'kmq batch --shared-palette')."),
    k: int = typer.Option(8, "-k", "--colors", min=2, max=256, metavar="K",
                          help="Number of colors, 2..256 (fewer if the image has fewer)."),
    output_format: PaletteFormat | None = typer.Option(
        None, "--format", "-F", case_sensitive=False, show_default=False,
        help="text, json, css, gpl or png. Default: from OUTPUT's extension (.txt, .json, "
             ".css, .gpl, .png), else text."),
    output: Path | None = typer.Option(
        None, "-o", "--output", metavar="OUTPUT", show_default=False,
        help="Write to this file instead of stdout (required for png)."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N",
                             help="Random seed; the same input, K and seed give the same colors."),
    force: bool = typer.Option(False, "--force", "-f",
                               help="Overwrite OUTPUT if it exists (never the input)."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   help="Refuse (exit 4) an input with more pixels than this."),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, metavar="N", show_default=False,
        help="With several inputs: worker processes counting their colors (default: CPUs)."),
) -> None:
    """``kmq palette``: see ``_PALETTE_HELP``."""
    from kmq import palettes

    source = Path(sources[0])
    first_failure = EXIT_OK
    fmt = output_format
    if fmt is None and output is not None:
        fmt = palettes.EXTENSIONS.get(output.suffix.lower())
        if fmt is None:
            raise typer.BadParameter(
                f"cannot tell the format from '{output}': give it a .txt, .json, .css, .gpl or "
                f".png extension, or choose with --format", param_hint="'-o' / '--output'")
    fmt = PaletteFormat(fmt or PaletteFormat.text)
    if fmt is PaletteFormat.png and output is None:
        raise typer.BadParameter("the png format is written to a file: give -o OUTPUT.png",
                                 param_hint="'--format'")
    if output is not None and _check_output_option(output, 1) is not None:
        raise typer.BadParameter(f"'{output}' is a directory; give a file name",
                                 param_hint="'-o' / '--output'")
    try:
        if output is not None:
            if any(_same_file(output, Path(s)) for s in sources):
                raise OutputExistsError(f"{output}: is an input file; refusing to overwrite it")
            if not force and output.exists():
                raise OutputExistsError(f"{output}: exists (use --force to overwrite)")
        if len(sources) > 1 or source.is_dir() or any(c in sources[0] for c in "*?["):
            from kmq.cli_batch import shared_dominant_colors

            colors, shares, first_failure = shared_dominant_colors(sources, k, seed=seed,
                                                                   max_pixels=max_pixels,
                                                                   jobs=jobs)
            source = Path("kmq") if len(sources) > 1 else source
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                colors, shares = palettes.dominant_colors(source, k, seed=seed,
                                                          max_pixels=max_pixels)
            for message in dict.fromkeys(one_line(w.message) for w in caught):
                typer.echo(f"kmq: warning: {message}", err=True)
        if fmt is PaletteFormat.png:
            data = palettes.swatches_png(colors, shares)
        else:
            data = palettes.format_palette(colors, shares, fmt, name=source.stem).encode()
        if output is None:
            typer.echo(data.decode(), nl=False)
        else:
            from kmq.io import write_atomic

            try:
                write_atomic(output, lambda fh: fh.write(data), overwrite=force)
            except OSError as exc:
                raise _WriteError(f"{output}: cannot write ({exc.strerror or exc})") from exc
    except (KmqError, _WriteError) as exc:
        typer.echo(f"kmq: error: {one_line(exc)}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    raise typer.Exit(first_failure)


@app.command(help=_DEMO_HELP, epilog=EXIT_CODES_HELP)
def demo(
    output: Path = typer.Option(
        Path("demo-output"), "-o", "--output", metavar="DIR", file_okay=False,
        help="Directory for the sample images and their compressed versions (created if "
             "needed; files of the same names in it are replaced)."),
    k: int = typer.Option(64, "-k", "--colors", min=2, max=256, metavar="K", help=_K_HELP),
) -> None:
    """``kmq demo``: see ``_DEMO_HELP``."""
    from kmq import samples

    try:
        sources = samples.write(output)
    except OSError as exc:
        typer.echo(f"kmq: error: {output}: cannot write the samples "
                   f"({exc.strerror or one_line(exc)})", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None
    jobs = [(src, default_output(src)) for src in sources]
    code = run_batch(jobs, k=k, seed=0, force=True, max_pixels=DEFAULT_MAX_PIXELS, quiet=False)
    raise typer.Exit(code)


_SERVE_HELP = (
    "Serve a local web page to try kmq on an image: drop or pick an image, choose K, color "
    "space, dithering and output format, compare original and result in a split view with "
    "zoom, see the palette, the file sizes, PSNR, SSIM and time, and download the result."
    "\n\n"
    "It listens on 127.0.0.1 (this machine only) unless --host says otherwise, and keeps "
    "everything in memory (nothing is written to disk). Stop it with Ctrl+C. Exit code 2 if "
    "HOST cannot be resolved, 1 if the address cannot be listened on (e.g. the port is in use)."
)


@app.command(help=_SERVE_HELP, epilog=EXIT_CODES_HELP)
def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="HOST",
        help="Address to listen on. Anything but loopback (127.0.0.1, ::1, localhost) makes the "
             "page, which has no authentication, reachable from other machines."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, metavar="PORT",
                             help="TCP port; 0 picks a free one."),
    max_upload_mb: float = typer.Option(25.0, "--max-upload-mb", min=0.001, metavar="MB",
                                        help="Refuse (HTTP 413) uploads larger than this."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   help="Refuse (HTTP 413) images with more pixels than this."),
) -> None:
    """``kmq serve``: see ``_SERVE_HELP``."""
    import socket

    from kmq import web

    try:
        sock = web.bind(host, port)
    except socket.gaierror as exc:
        typer.echo(f"kmq: error: cannot resolve --host {host!r} ({exc.strerror or exc})",
                   err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:
        typer.echo(f"kmq: error: cannot listen on {host}:{port} ({exc.strerror or exc})",
                   err=True)
        raise typer.Exit(EXIT_INTERNAL) from None
    local = web.is_loopback(host)
    if not local:
        typer.echo(f"kmq: warning: listening on {host}: the page has no authentication and is "
                   f"reachable from other machines (--host 127.0.0.1 keeps it local)", err=True)
    config = web.ServerConfig(max_upload_bytes=max(1, round(max_upload_mb * 1_000_000)),
                              max_pixels=max_pixels,
                              allowed_hosts=(*web.LOOPBACK_HOSTS, host) if local else None)
    typer.echo(f"kmq: serving on {web.url_of(sock)} (Ctrl+C to stop)", err=True)
    try:
        web.serve(sock, web.create_app(config))
    except KeyboardInterrupt:  # Ctrl+C is how the page is stopped: not an error
        pass
    raise typer.Exit(EXIT_OK)


_REPORT_HELP = (
    "Write one self-contained HTML report on INPUT quantized at several K, against JPEG and "
    "WebP files of the same size, and print its table."
    "\n\n"
    "For each K: the original beside kmq's PNG and the largest JPEG and lossy WebP files not "
    "above its size (found by bisection on their quality), the palette with each color's "
    "share, PSNR, SSIM, the sizes of the .kmq and lossless WebP files of the same pixels, and "
    "a verdict in words; plots of PSNR and SSIM against file size and against K. Every picture "
    "is embedded in the HTML (it needs no network and no other file); the plots are also "
    "written as PNG files in '<OUTPUT name>-files/' beside it (report.html -> report-files/). "
    "Files are written atomically and never replace existing ones without --force."
)


@app.command(help=_REPORT_HELP, epilog=EXIT_CODES_HELP)
def report(
    source: Path = typer.Argument(..., metavar="INPUT", show_default=False,
                                  help="Image file: any format Pillow reads."),
    ks: str = typer.Option("4,8,16,32,64,128,256", "-k", "--colors", metavar="K,K,...",
                           help="K values, comma-separated, each 2..256."),
    output: Path = typer.Option(Path("report.html"), "-o", "--output", metavar="OUTPUT",
                                help="The HTML file; the plots go to '<name>-files/' beside it."),
    max_side: int = typer.Option(
        1024, "--max-side", min=0, metavar="N",
        help="Downscale INPUT first so that its longer side is at most N pixels (the report "
             "says so); 0 keeps it at full size (slower on large photos)."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N",
                             help="Random seed, as for 'kmq compress'."),
    force: bool = _FORCE_OPTION,
    quiet: bool = _QUIET_OPTION,
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   help="Refuse (exit 4) an input with more pixels than this."),
) -> None:
    """``kmq report``: see ``_REPORT_HELP``."""
    import contextlib

    from kmq import report as kmq_report

    try:
        k_values = kmq_report.parse_ks(ks)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'-k' / '--colors'") from None
    if output.is_dir() or not (output.parent if str(output.parent) else Path(".")).is_dir():
        raise typer.BadParameter(f"'{output}' is a directory, or its directory does not exist; "
                                 f"give an HTML file name", param_hint="'-o' / '--output'")
    bar = None
    if not quiet and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                       TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    try:
        for target in [output, *kmq_report.output_paths(output).values()]:
            if _same_file(target, source):
                raise OutputExistsError(f"{target}: is the input file; refusing to overwrite it")
            if not force and target.exists():
                raise OutputExistsError(f"{target}: exists (use --force to overwrite)")
        with bar or contextlib.nullcontext(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            task = bar.add_task("starting", total=1.0) if bar else None

            def progress(stage: str, fraction: float) -> bool:
                if bar is not None:
                    bar.update(task, description=f"{source.name}: {stage}", completed=fraction)
                return False

            result = kmq_report.make_report(source, k_values, seed=seed, max_side=max_side,
                                            max_pixels=max_pixels, progress=progress)
        for message in dict.fromkeys(one_line(w.message) for w in caught):
            typer.echo(f"kmq: warning: {message}", err=True)
        try:
            written = result.write_html(output, overwrite=force)
        except OSError as exc:
            raise _WriteError(f"{output}: cannot write ({exc.strerror or exc})") from exc
    except (KmqError, _WriteError) as exc:
        typer.echo(f"kmq: error: {one_line(exc)}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    typer.echo("\n".join(kmq_report.summary_lines(result)))
    typer.echo(f"wrote {written[0]} and {len(written) - 1} plots in {written[-1].parent}/")
    raise typer.Exit(EXIT_OK)


def main() -> None:
    """Entry point of the ``kmq`` executable."""
    try:
        app()
    except Exception as exc:  # a bug outside the per-file handling: one line, exit 1
        if os.environ.get("KMQ_DEBUG"):
            raise
        typer.echo(f"kmq: error: internal error: {type(exc).__name__}: {one_line(exc)}",
                   err=True)
        sys.exit(EXIT_INTERNAL)


__all__ = ["EXIT_CORRUPT", "EXIT_EXISTS", "EXIT_INTERNAL", "EXIT_OK", "EXIT_QUALITY", "EXIT_READ",
           "EXIT_TOO_LARGE", "EXIT_USAGE", "OutputFormat", "app", "compress_file",
           "decompress_file", "default_decompressed", "default_output", "encode_image",
           "exit_code", "image_format", "main", "palette", "read_kmq_header", "run_batch"]

from kmq import cli_batch  # noqa: E402, F401  (registers 'kmq batch' on app; needs the above)
