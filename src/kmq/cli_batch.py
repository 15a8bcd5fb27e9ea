"""``kmq batch``: compress many images (folders, globs) in parallel on this machine or a Dask
cluster, optionally onto one shared palette, with a progress bar, a summary and a report.

The work itself is :mod:`kmq.batch`; this module parses the options, draws the progress bar
(rich, on stderr, only on a terminal), prints one line per failed file and the summary table,
writes the report and maps failures to the exit codes of :mod:`kmq.cli`. It registers the
command on :data:`kmq.cli.app` when imported (``kmq.cli`` imports it at its end).
"""

from __future__ import annotations

import enum
import math
import os
import sys
import time
from pathlib import Path

import typer

from kmq.cli import (
    _FORCE_OPTION,
    _QUIET_OPTION,
    ERROR_EXIT_CODES,
    EXIT_CODES_HELP,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_READ,
    ColorSpace,
    OutputFormat,
    _load_palette,
    _parse_quality,
    app,
)
from kmq.errors import one_line
from kmq.io import DEFAULT_MAX_PIXELS


class EngineName(enum.StrEnum):
    """Engines of ``--engine``."""

    local = "local"
    dask = "dask"


class ReportFormat(enum.StrEnum):
    """Report formats, by the extension of ``--report``."""

    csv = "csv"
    json = "json"


_BATCH_HELP = (
    "Compress every image named by INPUTS (files, folders, glob patterns) into OUT_DIR, in "
    "parallel, keeping their relative layout, and print a summary."
    "\n\n"
    "A folder gives its image files (all the way down with --recursive); a glob ('photos/*.jpg', "
    "'shots/**/*.png', quoted so that kmq expands it) gives what it matches; each keeps its path "
    "relative to the folder (or the glob's fixed part) under OUT_DIR, with the format's "
    "extension: 'photos/2024/a.jpg' -> 'OUT_DIR/2024/a.png'. Outputs are written atomically "
    "(whole or not at all), so after an interruption (Ctrl-C, a killed process) the same command "
    "resumes: outputs already there are skipped unless --force. A file that fails is reported "
    "on stderr with its reason and the others go on; the exit code is then the first failure's. "
    "--shared-palette fits one palette to all the inputs together (their color histograms "
    "summed) and maps every image onto it. --engine dask runs on a dask.distributed cluster "
    "(--scheduler tcp://HOST:PORT, or a LocalCluster of --jobs processes); its workers read "
    "and write the same paths, so they need a shared file system. The summary table (stdout) "
    "gives files done, skipped and failed, bytes before and after (files done) and their ratio, "
    "the mean PSNR, megapixels and time; --report FILE.csv|FILE.json has one row per file."
)


def exit_for_records(records) -> int:
    """The exit code of the first failed record (in the inputs' order), else 0."""
    for r in records:
        if r.status == "failed":
            return ERROR_EXIT_CODES.get(r.error, EXIT_INTERNAL)
    return EXIT_OK


class _BatchProgress:
    """A rich progress bar on stderr (files, megapixels per second, ETA) and one line per
    failed file; a plain line per failure when the bar is off."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._bar = None
        self._tasks: dict[str, object] = {}
        self._pixels: dict[str, int] = {}
        self._start = time.perf_counter()

    def __enter__(self) -> _BatchProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def message(self, line: str) -> None:
        if self._bar is not None:
            from rich.text import Text

            self._bar.console.print(Text(line), soft_wrap=True)
        else:
            typer.echo(line, err=True)

    def __call__(self, stage: str, record) -> bool:
        """The library's ``progress(stage, record)``; never cancels."""
        # a file that cannot be read for its histogram comes back failed at "compress" too
        if record.status == "failed" and stage == "compress":
            self.message(f"kmq: error: {one_line(record.reason)}")
        elif record.warning and stage == "compress":
            self.message(f"kmq: warning: {one_line(record.warning)}")
        if self._bar is not None:
            if stage not in self._tasks:
                label = "counting colors" if stage == "histogram" else "compressing"
                self._tasks[stage] = self._bar.add_task(label, total=self.total, rate="")
                self._pixels[stage] = 0
                self._start = time.perf_counter()
            self._pixels[stage] += record.pixels
            elapsed = max(time.perf_counter() - self._start, 1e-9)
            self._bar.update(self._tasks[stage], advance=1,
                             rate=f"{self._pixels[stage] / 1e6 / elapsed:.2f} MP/s")
        return False


#: Caption of the summary table.
SUMMARY_CAPTION = ("bytes before/after and ratio: input and output files of the files done; "
                   "PSNR: mean over the files done (dB); MP/s: megapixels done per second of "
                   "wall time.")


def _print_summary(summary: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    out = sys.stdout
    console = Console(file=out) if out.isatty() else Console(file=out, width=100_000)
    table = Table(box=box.SIMPLE, pad_edge=False, caption=SUMMARY_CAPTION,
                  caption_justify="left")
    names = ("files", "done", "skipped", "failed", "bytes before", "bytes after", "ratio",
             "mean PSNR", "MP", "sec", "MP/s")
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)

    def num(value: float, spec: str) -> str:
        return "n/a" if not math.isfinite(value) else format(value, spec)

    s = summary
    table.add_row(str(s["files"]), str(s["done"]), str(s["skipped"]), str(s["failed"]),
                  f"{s['bytes_before']:,}", f"{s['bytes_after']:,}", num(s["ratio"], ".2f"),
                  num(s["mean_psnr"], ".2f"), f"{s['megapixels']:.2f}", f"{s['seconds']:.2f}",
                  num(s["megapixels_per_second"], ".2f"))
    console.print(table)


@app.command(help=_BATCH_HELP, epilog=EXIT_CODES_HELP)
def batch(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUTS", show_default=False,
        help="Image files, folders and glob patterns (quote them: '**' matches any depth)."),
    output: Path = typer.Option(
        ..., "-o", "--output", metavar="OUT_DIR", file_okay=False, show_default=False,
        help="Folder for the outputs (created if needed); the inputs' layout is kept in it."),
    recursive: bool = typer.Option(False, "--recursive", "-r",
                                   help="Walk input folders all the way down."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.png, "--format", "-F", case_sensitive=False,
        help="png (indexed), webp (lossless), gif or kmq (kmq's container)."),
    k: int = typer.Option(256, "-k", "--colors", min=2, max=256, metavar="K",
                          help="Colors per image (or of the shared palette), 2..256."),
    quality: str | None = typer.Option(
        None, "--quality", metavar="MIN-MAX", show_default=False,
        help="Per image, the fewest colors (at most K) whose PSNR reaches MAX dB; an image "
             "whose K colors miss MIN dB fails (exit 7) and nothing is written for it."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N",
                             help="Random seed; the same input, K and seed give identical "
                                  "bytes on every engine."),
    color_space: ColorSpace = typer.Option(
        ColorSpace.srgb, "--colorspace", case_sensitive=False,
        help="Where color distances are measured: srgb, wsrgb, linear or oklab."),
    dither: float = typer.Option(0.0, "--dither", min=0.0, max=1.0, metavar="S",
                                 help="Dithering strength, 0..1 (adaptive error diffusion)."),
    palette_file: Path | None = typer.Option(
        None, "--palette", metavar="FILE", show_default=False,
        help="Map every image onto this palette (.gpl, JSON, or an image's colors)."),
    shared: bool = typer.Option(
        False, "--shared-palette",
        help="Fit one palette of K colors to all the inputs together and map every image onto "
             "it (every input is read once more for its histogram, also on a resumed run)."),
    optimize: bool = typer.Option(False, "--optimize",
                                  help="Recompress PNG outputs with oxipng."),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, metavar="N", show_default=False,
        help="Worker processes (default: the number of CPUs; with --scheduler the cluster's "
             "workers are used)."),
    engine: EngineName = typer.Option(
        EngineName.local, "--engine", case_sensitive=False,
        help="local: processes on this machine; dask: a dask.distributed cluster."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", metavar="ADDRESS", show_default=False,
        help="Dask scheduler address, tcp://HOST:PORT (with --engine dask; without it a "
             "LocalCluster is started)."),
    skip_if_larger: bool = typer.Option(
        False, "--skip-if-larger",
        help="Do not write an output that would be larger than its input (counted as "
             "skipped)."),
    force: bool = _FORCE_OPTION,
    report: Path | None = typer.Option(
        None, "--report", metavar="FILE", show_default=False,
        help="Write one row per file (status, reason, bytes, PSNR, seconds, worker) to "
             "FILE.csv or FILE.json (replaced if it exists)."),
    quiet: bool = _QUIET_OPTION,
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   help="Fail (exit 4) an input with more pixels than this."),
) -> None:
    """``kmq batch``: see ``_BATCH_HELP``."""
    from kmq import batch as kb
    from kmq.errors import ImageReadError

    if scheduler and engine is not EngineName.dask:
        raise typer.BadParameter("a scheduler address needs --engine dask",
                                 param_hint="'--scheduler'")
    if report is not None and report.suffix.lower().lstrip(".") not in ReportFormat.__members__:
        raise typer.BadParameter(f"'{report}': give the report a .csv or .json extension",
                                 param_hint="'--report'")
    if output.exists() and not output.is_dir():
        raise typer.BadParameter(f"'{output}' exists and is not a folder",
                                 param_hint="'-o' / '--output'")
    parsed_quality = _parse_quality(quality)
    given = _load_palette(palette_file) if palette_file is not None else None
    if shared and (given is not None or parsed_quality is not None):
        raise typer.BadParameter("--shared-palette fits one palette of K colors: it does not "
                                 "go with --palette or --quality", param_hint="'--shared-palette'")
    options = kb.CompressOptions(
        k=k, fmt=output_format.value, seed=seed, color_space=color_space.value, dither=dither,
        quality=parsed_quality, palette=given, optimize=optimize, force=force,
        skip_if_larger=skip_if_larger, max_pixels=max_pixels)
    job_list = kb.plan_batch(inputs, output, fmt=output_format.value, recursive=recursive)
    if not job_list:
        typer.echo("kmq: error: no input images found (a folder gives the image files in it; "
                   "use --recursive for its subfolders)", err=True)
        raise typer.Exit(EXIT_READ)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        typer.echo(f"kmq: error: {output}: cannot create the folder "
                   f"({exc.strerror or one_line(exc)})", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None
    show = not quiet and sys.stderr.isatty()
    try:
        runner = kb.make_engine(engine.value, workers=jobs, scheduler=scheduler)
    except Exception as exc:  # an unreachable scheduler, a bad address
        if os.environ.get("KMQ_DEBUG"):
            raise
        typer.echo(f"kmq: error: cannot start the {engine.value} engine: "
                   f"{type(exc).__name__}: {one_line(exc)}", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None
    try:
        with runner, _BatchProgress(show, len(job_list)) as progress:
            result = kb.compress_batch(job_list, options, engine=runner, shared_palette=shared,
                                       progress=progress)
    except KeyboardInterrupt:
        typer.echo("kmq: interrupted; the outputs written are complete, and running the same "
                   "command again resumes", err=True)
        raise typer.Exit(130) from None
    except ImageReadError as exc:  # --shared-palette and no input could be read
        typer.echo(f"kmq: error: {one_line(exc)}", err=True)
        raise typer.Exit(EXIT_READ) from None
    summary = result.summary()
    _print_summary(summary)
    if report is not None:
        try:
            kb.write_report(report, result)
        except OSError as exc:
            typer.echo(f"kmq: error: {report}: cannot write the report "
                       f"({exc.strerror or one_line(exc)})", err=True)
            raise typer.Exit(EXIT_INTERNAL) from None
    if summary["failed"]:
        typer.echo(f"kmq: {summary['failed']} of {summary['files']} files failed", err=True)
    raise typer.Exit(exit_for_records(result.records))


def shared_dominant_colors(sources: list[str], k: int, *, seed: int, max_pixels: int,
                           jobs: int | None):
    """``kmq palette`` with several inputs (files, folders, globs): the K colors of all their
    pixels together and their shares, largest first, and the exit code of the first input
    that could not be read (reported on stderr; the others still count).

    Raises
    ------
    kmq.ImageReadError
        No input could be read.
    """
    import numpy as np

    from kmq import batch as kb

    paths = [os.fspath(path) for path, _ in kb.collect_inputs(sources)]
    if not paths:
        raise kb.ImageReadError(f"no input images found in {', '.join(sources)}")
    with kb.LocalEngine(min(jobs or os.cpu_count() or 1, len(paths))) as engine:
        fitted = kb.shared_palette(paths, k, seed=seed, max_pixels=max_pixels, engine=engine)
    for r in fitted.records:
        if r.status == "failed":
            typer.echo(f"kmq: error: {one_line(r.reason)}", err=True)
        elif r.warning:
            typer.echo(f"kmq: warning: {one_line(r.warning)}", err=True)
    order = np.argsort(-fitted.counts, kind="stable")
    counts = fitted.counts[order].astype(np.float64)
    return fitted.palette[order], counts / counts.sum(), exit_for_records(fitted.records)


__all__ = ["batch", "exit_for_records", "shared_dominant_colors"]
