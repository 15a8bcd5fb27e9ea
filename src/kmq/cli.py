"""The ``kmq`` command: compress images to indexed PNG by k-means color quantization.

A thin layer over the library: options, one results table, progress and exit codes. Heavy
modules (the numba kernels, scikit-image) are imported inside the commands, so ``kmq --help`` and
``kmq --version`` stay quick.

Commands
--------
``kmq compress INPUT... [-k K] [-o OUTPUT] [--seed N] [--force] [--quiet] [--max-pixels N]``
    One indexed PNG per input, ``photo.jpg`` -> ``photo-kmq.png`` beside it unless ``-o`` says
    otherwise; then a table of the results on stdout.
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
0  success: every input was compressed
1  unexpected error (a bug, or an output file that could not be written)
2  invalid usage or argument value (reported by the option parser)
3  an input could not be read: missing, not an image, damaged (:class:`kmq.ImageReadError`)
4  an input has more pixels than ``--max-pixels`` (:class:`kmq.ImageTooLargeError`)
5  an output exists and ``--force`` was not given, or it would replace an input
   (:class:`kmq.OutputExistsError`)

With several inputs every one is attempted; the exit code is that of the first failure. Set
``KMQ_DEBUG=1`` to get a traceback instead of a one-line message for an unexpected error.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import typer

from kmq import __version__
from kmq.errors import ImageReadError, ImageTooLargeError, KmqError, OutputExistsError
from kmq.io import DEFAULT_MAX_PIXELS

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_READ = 3
EXIT_TOO_LARGE = 4
EXIT_EXISTS = 5

#: Suffix of default output names: ``photo.jpg`` -> ``photo-kmq.png``.
OUTPUT_SUFFIX = "-kmq.png"

EXIT_CODES_HELP = (
    "Exit codes: "
    "0 success; "
    "1 unexpected error (or an output could not be written); "
    "2 invalid usage or argument; "
    "3 an input could not be read; "
    "4 an input is over the pixel limit (--max-pixels); "
    "5 an output exists and --force was not given, or it would replace an input. "
    "With several inputs, all are attempted and the exit code is the first failure's."
)

app = typer.Typer(
    name="kmq",
    help="Compress images by k-means color quantization into indexed (palette) PNG files.",
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
    """Compress images by k-means color quantization into indexed (palette) PNG files."""


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


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an error raised while compressing one file."""
    if isinstance(exc, ImageTooLargeError):
        return EXIT_TOO_LARGE
    if isinstance(exc, ImageReadError):
        return EXIT_READ
    if isinstance(exc, OutputExistsError):
        return EXIT_EXISTS
    return EXIT_INTERNAL


def default_output(source: Path, directory: Path | None = None) -> Path:
    """Default output of ``source``: ``<stem>-kmq.png`` beside it (or in ``directory``)."""
    return (source.parent if directory is None else directory) / f"{source.stem}{OUTPUT_SUFFIX}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


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


def compress_file(source: Path, output: Path, *, k: int, seed: int, force: bool,
                  max_pixels: int, reporter: _Reporter) -> Row:
    """Read, quantize, write (atomically) and measure one image; raises on failure."""
    from kmq import metrics
    from kmq.codecs.png import save_png
    from kmq.io import read_rgb
    from kmq.pipeline import quantize

    if not force and output.exists():
        raise OutputExistsError(f"{output}: exists (use --force to overwrite)")
    start = time.perf_counter()
    reporter.file(source.name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = read_rgb(source, max_pixels=max_pixels)
        input_bytes = source.stat().st_size
        result = quantize(rgb, k, seed=seed, progress=reporter.callback)
    for message in dict.fromkeys(_one_line(w.message) for w in caught):
        reporter.message(f"kmq: warning: {message}")
    reporter.stage("writing")
    try:
        n_bytes = save_png(output, result.palette, result.indices, overwrite=force)
    except OSError as exc:
        raise _WriteError(f"{output}: cannot write ({exc.strerror or exc})") from exc
    seconds = time.perf_counter() - start
    reporter.stage("measuring")
    n_pixels = rgb.shape[0] * rgb.shape[1]
    mse = metrics.mse_indexed(rgb, result.palette, result.indices)
    ssim = (metrics.ssim_indexed(rgb, result.palette, result.indices)
            if min(rgb.shape[:2]) >= 7 else math.nan)
    return Row(source=source, output=output, k=result.k, psnr=metrics.psnr_from_mse(mse),
               ssim=ssim, bits_per_pixel=metrics.bits_per_pixel(n_bytes, n_pixels),
               ratio_raw=metrics.compression_ratio(n_bytes, 3 * n_pixels),
               ratio_input=metrics.compression_ratio(n_bytes, input_bytes), seconds=seconds)


# ---------------------------------------------------------------------------------------------
# Many files and the table


#: Caption of the results table: what each column means.
TABLE_CAPTION = (
    "K: colors used; PSNR in dB and SSIM against the input; bpp: bits per pixel of the "
    "written PNG; vs raw, vs input: times smaller than raw 24-bit RGB and than the input file; "
    "sec: seconds to read, quantize and write."
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


def run_batch(jobs: list[tuple[Path, Path]], *, k: int, seed: int, force: bool, max_pixels: int,
              quiet: bool) -> int:
    """Compress every (source, output) pair, print the table; returns the exit code."""
    sources = [source for source, _ in jobs]
    written: dict[Path, Path] = {}
    rows: list[Row] = []
    first_failure = EXIT_OK
    failures = 0
    show_progress = not quiet and sys.stderr.isatty()
    with _Reporter(show_progress, len(jobs)) as reporter:
        for source, output in jobs:
            try:
                clash = next((s for s in sources if _same_file(output, s)), None)
                if clash is not None:
                    raise OutputExistsError(f"{output}: is an input file ({clash}); "
                                            f"refusing to overwrite it")
                key = output.resolve()
                if key in written:
                    raise OutputExistsError(f"{output}: already written for {written[key]} "
                                            f"in this run; not overwriting it")
                rows.append(compress_file(source, output, k=k, seed=seed, force=force,
                                          max_pixels=max_pixels, reporter=reporter))
                written[key] = source
            except (KmqError, _WriteError) as exc:
                code = exit_code(exc)
                reporter.message(f"kmq: error: {_one_line(exc)}")
            except Exception as exc:
                if os.environ.get("KMQ_DEBUG"):
                    raise
                code = EXIT_INTERNAL
                reporter.message(f"kmq: error: {source}: internal error: "
                                 f"{type(exc).__name__}: {_one_line(exc)}")
            else:
                code = EXIT_OK
            if code != EXIT_OK:
                failures += 1
                first_failure = first_failure or code
            reporter.done()
    if rows:
        _print_table(rows)
    if failures and len(jobs) > 1:
        typer.echo(f"kmq: {failures} of {len(jobs)} files failed", err=True)
    return first_failure


# ---------------------------------------------------------------------------------------------
# Commands

_K_HELP = "Number of colors of the palette, 2..256 (fewer are used if the image has fewer)."


_COMPRESS_HELP = (
    "Compress each INPUT into an indexed PNG of at most K colors and print a results table."
    "\n\n"
    "The table (stdout) gives per file: K used, PSNR (dB) and SSIM against the input, bits per "
    "pixel of the written PNG, its compression ratio against raw 24-bit RGB and against the "
    "input file, and the seconds to read, quantize and write. Outputs are written atomically "
    "and never replace an existing file without --force. A file that fails is reported on "
    "stderr and the others are still compressed."
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
             "Transparency is dropped with a warning."),
    k: int = typer.Option(256, "-k", "--colors", min=2, max=256, metavar="K", help=_K_HELP),
    output: Path | None = typer.Option(
        None, "-o", "--output", metavar="OUTPUT", show_default=False,
        help="Output PNG file (only with one INPUT), or an existing directory to write every "
             f"output into under its default name. Default: beside each input, '<name>"
             f"{OUTPUT_SUFFIX}'."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N",
                             help="Random seed; the same input, K and seed give identical bytes."),
    force: bool = typer.Option(False, "--force", "-f",
                               help="Overwrite existing output files (an input file is never "
                                    "overwritten)."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="No progress display (it is shown only on a terminal anyway); "
                                    "warnings, errors and the table are still printed."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   help="Refuse (exit 4) an input with more pixels than this."),
) -> None:
    """``kmq compress``: see ``_COMPRESS_HELP``."""
    out_dir = None
    if output is not None:
        if output.is_dir():
            out_dir = output
        elif len(inputs) > 1:
            raise typer.BadParameter(
                f"with {len(inputs)} inputs, OUTPUT must be an existing directory; "
                f"'{output}' is not one", param_hint="'-o' / '--output'")
        elif not (output.parent if str(output.parent) else Path(".")).is_dir():
            raise typer.BadParameter(f"the directory of '{output}' does not exist",
                                     param_hint="'-o' / '--output'")
    jobs = [(src, output if output is not None and out_dir is None
             else default_output(src, out_dir)) for src in inputs]
    code = run_batch(jobs, k=k, seed=seed, force=force, max_pixels=max_pixels, quiet=quiet)
    raise typer.Exit(code)


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
                   f"({exc.strerror or _one_line(exc)})", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None
    jobs = [(src, default_output(src)) for src in sources]
    code = run_batch(jobs, k=k, seed=0, force=True, max_pixels=DEFAULT_MAX_PIXELS, quiet=False)
    raise typer.Exit(code)


def main() -> None:
    """Entry point of the ``kmq`` executable."""
    try:
        app()
    except Exception as exc:  # a bug outside the per-file handling: one line, exit 1
        if os.environ.get("KMQ_DEBUG"):
            raise
        typer.echo(f"kmq: error: internal error: {type(exc).__name__}: {_one_line(exc)}",
                   err=True)
        sys.exit(EXIT_INTERNAL)


__all__ = ["EXIT_EXISTS", "EXIT_INTERNAL", "EXIT_OK", "EXIT_READ", "EXIT_TOO_LARGE",
           "EXIT_USAGE", "app", "compress_file", "default_output", "exit_code", "main",
           "run_batch"]
