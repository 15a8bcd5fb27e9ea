"""``kmq batch``: compress many images (folders, globs) in parallel on this machine or a Dask
cluster, optionally onto one shared palette, with a progress bar, a summary and a report.

The work itself is :mod:`kmq.batch`; this module parses the options, draws the progress bar
(rich, on stderr, only on a terminal), prints one line per failed file and the summary table,
writes the report and maps failures to exit codes.
"""

from __future__ import annotations

import enum
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from kmq.cli.app import app
from kmq.cli.common import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_READ,
    ColorSpace,
    OutputFormat,
    fail,
    load_palette,
    parse_psnr,
    parse_quality,
    parse_size,
    progress_bar,
)
from kmq.errors import KmqError, exit_code, one_line
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
    "Compress every image of INPUTS (files, folders, quoted glob patterns such as "
    "'photos/**/*.jpg') into OUT_DIR, in parallel, keeping their layout; print a summary."
    "\n\n"
    "Outputs are written whole or not at all, and OUT_DIR remembers the options: after an "
    "interruption the same command resumes, other options stop before any work (--force "
    "redoes every file). A bad file is reported and the others go on. --engine dask needs "
    "kmq[dask] and a file system shared by its workers. Exit codes: kmq --help."
)


def exit_for_records(records) -> int:
    """The exit code of the first record that has one (in the inputs' order), else 0."""
    return next((r.exit_code for r in records if r.exit_code), EXIT_OK)


class _BatchProgress:
    """A rich progress bar on stderr (files, megapixels per second, ETA) and one line per
    failed file; a plain line per failure when the bar is off."""

    def __init__(self, enabled: bool, total: int, *, quiet: bool = False) -> None:
        self.enabled = enabled
        self.quiet = quiet
        self.total = total
        self.records: list = []  # the files finished, for a report after an interruption
        self._bar: Any = None
        self._tasks: dict[str, object] = {}
        self._pixels: dict[str, int] = {}
        self._start = time.perf_counter()

    def __enter__(self) -> _BatchProgress:
        if self.enabled:
            self._bar = progress_bar(counted=True, rate=True)
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
        if stage == "compress":
            self.records.append(record)
        if record.status == "failed" and stage == "compress":
            self.message(f"kmq: error: {one_line(record.reason)}")
        elif stage == "compress" and not self.quiet:
            for line in record.warnings:
                self.message(f"kmq: warning: {one_line(line)}")
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
SUMMARY_CAPTION = ("input, output, change: sizes of the files done (1 kB = 1000 bytes); PSNR: "
                   "their mean (dB); MP/s: megapixels done per second of wall time.")


def _print_summary(summary: dict) -> None:
    from kmq.cli.common import human_bytes, number, percent, print_table

    s = summary
    change = s["bytes_after"] / s["bytes_before"] - 1 if s["bytes_before"] else math.nan
    print_table(("files", "done", "skipped", "failed", "input", "output", "change", "PSNR",
                 "MP", "sec", "MP/s"),
                [(str(s["files"]), str(s["done"]), str(s["skipped"]), str(s["failed"]),
                  human_bytes(s["bytes_before"]), human_bytes(s["bytes_after"]),
                  percent(change), number(s["mean_psnr"], ".2f"), f"{s['megapixels']:.2f}",
                  f"{s['seconds']:.2f}", number(s["megapixels_per_second"], ".2f"))],
                SUMMARY_CAPTION, left=0)


def _skipped_line(records) -> str | None:
    """Why files were skipped, in one line (None when none was)."""
    exist = sum(r.status == "skipped" and r.error != "larger" for r in records)
    larger = sum(r.status == "skipped" and r.error == "larger" for r in records)
    parts = [f"{exist} because their outputs exist (--force redoes them)"] if exist else []
    if larger:
        parts.append(f"{larger} because the output would be larger than the input")
    return f"kmq: skipped {' and '.join(parts)}" if parts else None


@app.command(help=_BATCH_HELP, no_args_is_help=True)
def batch(
    inputs: list[str] = typer.Argument(..., metavar="INPUTS", show_default=False, hidden=True),
    output: Path = typer.Option(..., "-o", "--output", metavar="OUT_DIR", file_okay=False,
                                show_default=False, help="Folder for the outputs."),
    recursive: bool = typer.Option(False, "--recursive", "-r",
                                   help="Walk input folders all the way down."),
    output_format: OutputFormat = typer.Option(
        "png", "--format", "-F", case_sensitive=False, metavar="FORMAT", show_default=False,
        help="png (default), webp, gif or kmq."),
    k: int = typer.Option(256, "-k", "--colors", min=2, max=256, metavar="K", show_default=False,
                          help="Colors per image (or shared), 2..256 (default 256)."),
    quality: str | None = typer.Option(
        None, "--quality", metavar="MIN-MAX", show_default=False,
        help="pngquant's 0-100 scale, per image; below MIN it fails (exit 7)."),
    psnr: str | None = typer.Option(None, "--psnr", metavar="MIN-MAX", show_default=False,
                                    help="The same as PSNR in dB."),
    max_size: str | None = typer.Option(
        None, "--max-size", metavar="SIZE", show_default=False,
        help="Most colors whose file fits SIZE (100kB), per image."),
    color_space: ColorSpace = typer.Option(
        "srgb", "--colorspace", case_sensitive=False, metavar="SPACE", show_default=False,
        help="srgb (default), wsrgb, linear or oklab."),
    dither: float = typer.Option(0.0, "--dither", min=0.0, max=1.0, metavar="S",
                                 show_default=False, help="Dithering, 0 (none) to 1."),
    palette_file: Path | None = typer.Option(
        None, "--palette", metavar="FILE", show_default=False,
        help="Map every image onto this palette (.gpl, .json, an image)."),
    shared: bool = typer.Option(False, "--shared-palette",
                                help="One palette of K colors for all the images."),
    no_optimize: bool = typer.Option(False, "--no-optimize",
                                     help="Skip the PNG optimization pass."),
    optimize: bool = typer.Option(False, "--optimize", help="Optimize PNGs harder."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N", show_default=False,
                             help="Random seed (default 0)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, metavar="N",
                                    show_default=False,
                                    help="Worker processes (default: the CPUs)."),
    engine: EngineName = typer.Option("local", "--engine", case_sensitive=False,
                                      metavar="ENGINE", show_default=False,
                                      help="local (default) or dask."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", metavar="ADDRESS", show_default=False,
        help="Dask scheduler tcp://HOST:PORT (else a local cluster)."),
    skip_if_larger: bool = typer.Option(False, "--skip-if-larger",
                                        help="Write no output larger than its input."),
    force: bool = typer.Option(False, "--force", "-f", help="Redo and overwrite outputs."),
    report: Path | None = typer.Option(None, "--report", metavar="FILE", show_default=False,
                                       help="One row per file to FILE.csv or FILE.json."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   show_default=False,
                                   help="Fail larger inputs (default 100 MP; exit 4)."),
) -> None:
    """``kmq batch``: see ``_BATCH_HELP``."""
    from kmq import batch as kb
    from kmq.errors import ImageReadError
    from kmq.files import CompressOptions

    if scheduler and engine is not EngineName.dask:
        raise typer.BadParameter("a scheduler address needs --engine dask",
                                 param_hint="'--scheduler'")
    if report is not None and report.suffix.lower().lstrip(".") not in ReportFormat.__members__:
        raise typer.BadParameter(f"'{report}': give the report a .csv or .json extension",
                                 param_hint="'--report'")
    if os.path.lexists(output) and not os.path.isdir(output):
        raise typer.BadParameter(f"'{output}' exists and is not a folder",
                                 param_hint="'-o' / '--output'")
    chosen = [name for name, value in (("--quality", quality), ("--psnr", psnr),
                                       ("--max-size", max_size), ("--palette", palette_file),
                                       ("--shared-palette", shared or None))
              if value is not None]
    if len(chosen) > 1:
        raise typer.BadParameter(f"{' and '.join(chosen)} do not go together: give one")
    options = CompressOptions(
        k=k, format=output_format.value, seed=seed, color_space=color_space.value,
        dither=dither, psnr=parse_quality(quality) or parse_psnr(psnr),
        max_bytes=parse_size(max_size),
        palette=load_palette(palette_file) if palette_file is not None else None,
        effort="max" if optimize else ("fast" if no_optimize else "default"), force=force,
        skip_if_larger=skip_if_larger, max_pixels=max_pixels)
    try:
        job_list = kb.plan_batch(inputs, output, format=output_format.value,
                                 recursive=recursive)
    except KmqError as exc:  # a folder that cannot be listed
        raise fail(str(exc), exit_code(exc)) from None
    if not job_list:
        typer.echo("kmq: error: no input images found (a folder gives the image files in it; "
                   "use --recursive for its subfolders)", err=True)
        raise typer.Exit(EXIT_READ)
    show = not quiet and sys.stderr.isatty()
    if engine.value == "local":  # compiled once here rather than once per worker process
        from kmq.cli.warmup import compile_if_missing

        compile_if_missing(quiet=quiet)
    try:
        runner = kb.make_engine(engine.value, workers=jobs, scheduler=scheduler)
    except KmqError as exc:  # Dask not installed: exit 2, naming the extra
        raise fail(str(exc), exit_code(exc)) from None
    except Exception as exc:  # an unreachable scheduler, a bad address
        if os.environ.get("KMQ_DEBUG"):
            raise
        typer.echo(f"kmq: error: cannot start the {engine.value} engine: "
                   f"{type(exc).__name__}: {one_line(exc)}", err=True)
        raise typer.Exit(EXIT_INTERNAL) from None
    try:
        with runner:
            try:
                output.mkdir(parents=True, exist_ok=True)
                kb.check_manifest(output, options, shared_palette=shared, force=force)
            except KmqError as exc:
                raise fail(str(exc), exit_code(exc)) from None
            except OSError as exc:
                raise fail(f"{output}: cannot create the folder "
                           f"({exc.strerror or one_line(exc)})", EXIT_INTERNAL) from None
            with _BatchProgress(show, len(job_list), quiet=quiet) as progress:
                result = kb.compress_batch(job_list, options, engine=runner,
                                           shared_palette=shared, progress=progress)
    except KeyboardInterrupt:
        if report is not None:  # what was done, so far
            _write_report(report, kb.BatchResult(records=progress.records))
        typer.echo("kmq: interrupted; the outputs written are complete, and running the same "
                   "command again resumes", err=True)
        raise typer.Exit(130) from None
    except ImageReadError as exc:  # --shared-palette and no input could be read
        typer.echo(f"kmq: error: {one_line(exc)}", err=True)
        raise typer.Exit(EXIT_READ) from None
    summary = result.summary()
    if not quiet:
        _print_summary(summary)
        line = _skipped_line(result.records)
        if line is not None:
            typer.echo(line, err=True)
    if report is not None:
        _write_report(report, result)
    if summary["failed"]:
        typer.echo(f"kmq: {summary['failed']} of {summary['files']} files failed", err=True)
    raise typer.Exit(exit_for_records(result.records))


def _write_report(path: Path, result) -> None:
    from kmq import batch as kb

    try:
        kb.write_report(path, result)
    except KmqError as exc:
        raise fail(str(exc), exit_code(exc)) from None
