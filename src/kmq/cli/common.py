"""What the command families share: option types, progress on stderr, one-line messages, the
loop over input files, tables on stdout, exit codes.

Rich is imported only when something is drawn, so a quiet run does not pay for it.
"""

from __future__ import annotations

import enum
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from kmq import codecs
from kmq.colorspace import SPACES
from kmq.errors import KmqError, one_line
from kmq.io import DEFAULT_MAX_PIXELS

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_READ = 0, 1, 2, 3

#: ``--format`` choices: the registered formats.
OutputFormat = enum.StrEnum("OutputFormat",  # type: ignore[misc]
                            {name: name for name in codecs.names()})
#: ``--colorspace`` choices.
ColorSpace = enum.StrEnum("ColorSpace", {name: name for name in SPACES})  # type: ignore[misc]

FORMAT_TITLES = ", ".join(f"{c.name} ({c.title})" for c in codecs.CODECS.values())
K_HELP = "Number of colors of the palette, 2..256 (fewer are used if the image has fewer)."


def force_option() -> bool:
    return typer.Option(False, "--force", "-f",
                        help="Overwrite existing output files (an input file is never "
                             "overwritten).")


def quiet_option() -> bool:
    return typer.Option(False, "--quiet", "-q",
                        help="No progress display (it is shown only on a terminal anyway); "
                             "warnings, errors and the table are still printed.")


def max_pixels_option(verb: str = "Refuse") -> int:
    return typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                        help=f"{verb} (exit 4) an input with more pixels than this.")


def seed_option() -> int:
    return typer.Option(0, "--seed", min=0, metavar="N",
                        help="Random seed; the same input, K and seed give identical bytes.")


def warn(line: str) -> None:
    typer.echo(f"kmq: warning: {one_line(line)}", err=True)


def error(line: str) -> None:
    typer.echo(f"kmq: error: {one_line(line)}", err=True)


def fail(line: str, code: int) -> typer.Exit:
    """Print ``kmq: error: line`` and return the :class:`typer.Exit` to raise."""
    error(line)
    return typer.Exit(code)


class Reporter:
    """Progress on stderr (rich, only when enabled) and one-line messages above it."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Any = None
        self._task: Any = None
        self._name = ""

    def __enter__(self) -> Reporter:
        if self.enabled:
            self._progress = progress_bar(counted=True)
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


def progress_bar(*, counted: bool = False, rate: bool = False):
    """A rich progress bar on stderr, gone when it stops: a spinner, the task's description, a
    bar, with ``counted`` the count done of the total, with ``rate`` the task's ``rate`` field,
    the time elapsed and, with ``rate``, the time remaining."""
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

    columns: list = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    if counted:
        columns.append(MofNCompleteColumn())
    if rate:
        columns.append(TextColumn("{task.fields[rate]}"))
    columns.append(TimeElapsedColumn())
    if rate:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=Console(stderr=True), transient=True)


def run_files(jobs: Sequence[tuple[str, str]], work: Callable, *, quiet: bool,
              on_result: Callable | None = None) -> tuple[list, int]:
    """Run ``work(source, output, reporter) -> FileResult`` on every pair; returns every
    file's result (a failure as a ``failed`` one) and the exit code (the first file's that is
    not 0).

    A failure is reported on stderr in one line and the others still run. An output that is
    another input, or that was already written in this run, is refused (exit 5).
    ``on_result(result, reporter)`` is called as each file ends.
    """
    from kmq.errors import OutputExistsError
    from kmq.files import FileResult, same_file

    sources = [source for source, _ in jobs]
    written: dict[str, str] = {}
    results: list = []
    first = EXIT_OK
    with Reporter(not quiet and sys.stderr.isatty(), len(jobs)) as reporter:
        for source, output in jobs:
            try:
                clash = next((s for s in sources if s != source and s != "-"
                              and output != "-" and same_file(output, s)), None)
                if clash is not None:
                    raise OutputExistsError(f"{output}: is an input file ({clash}); "
                                            f"refusing to overwrite it")
                key = os.path.realpath(output) if output != "-" else "-"
                if key in written and key != "-":
                    raise OutputExistsError(f"{output}: already written for {written[key]} "
                                            f"in this run; not overwriting it")
                result = work(source, output, reporter)
                written[key] = source
            except KmqError as exc:
                result = FileResult.failure(source, output, exc)
                reporter.message(f"kmq: error: {one_line(exc)}")
            except Exception as exc:
                if os.environ.get("KMQ_DEBUG"):
                    raise
                result = FileResult.failure(source, output, exc)
                reporter.message(f"kmq: error: {result.reason}")
            results.append(result)
            first = first or result.exit_code
            if on_result is not None:
                on_result(result, reporter)
            reporter.done()
    failures = sum(r.status == "failed" for r in results)
    if failures and len(jobs) > 1:
        typer.echo(f"kmq: {failures} of {len(jobs)} files failed", err=True)
    return results, first


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], caption: str, *,
                left: int = 1, stderr: bool = False) -> None:
    """A table on stdout (on stderr with ``stderr``; rich, simple box): the first ``left``
    columns left-aligned and folded when long, the others right-aligned; as wide as it needs
    off a terminal."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = sys.stderr if stderr else sys.stdout
    console = Console(file=out) if out.isatty() else Console(file=out, width=100_000)
    table = Table(box=box.SIMPLE, pad_edge=False, caption=caption, caption_justify="left")
    for i, name in enumerate(columns):
        if i < left:
            table.add_column(name, overflow="fold", min_width=12)
        else:
            table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(c) if i < left else c for i, c in enumerate(row)))
    console.print(table)


def number(value: float, spec: str, missing: str = "n/a") -> str:
    """``value`` formatted, or ``missing`` when it is NaN."""
    return missing if math.isnan(value) else format(value, spec)


def parse_psnr(text: str | None) -> tuple[float, float] | None:
    """``--psnr MIN-MAX`` (dB) as (min, max), or a usage error."""
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
                                 f"MAX alone; got {text!r}", param_hint="'--psnr'")
    return parts[0], parts[1]


def parse_quality(text: str | None) -> tuple[float, float] | None:
    """``--quality MIN-MAX`` on pngquant's 0-100 scale (``80`` alone: 0-80) as (min, max) PSNR
    in dB (:mod:`kmq.quality`), or a usage error."""
    if text is None:
        return None
    from kmq.quality import psnr_range

    parts = text.split("-")
    if len(parts) == 1:
        parts = ["0", parts[0]]
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts) or not (
            0 <= int(parts[0]) <= int(parts[1]) <= 100):
        raise typer.BadParameter(f"expected MIN-MAX on pngquant's 0-100 scale with MIN <= MAX "
                                 f"(e.g. 65-80) or MAX alone; got {text!r}",
                                 param_hint="'--quality'")
    return psnr_range(int(parts[0]), int(parts[1]))


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "kib": 1024,
          "mib": 1024**2}


def parse_size(text: str | None) -> int | None:
    """A byte count: ``20000``, ``100kB``, ``1.5MB`` (1000-based), ``64KiB`` (1024-based)."""
    if text is None:
        return None
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise typer.BadParameter(f"expected a size such as 100kB, 1.5MB or 20000 (bytes); got "
                                 f"{text!r}", param_hint="'--max-size'")
    return int(float(match.group(1)) * _UNITS[unit])


def human_bytes(n: int) -> str:
    """A size in B, kB or MB (1000-based), three significant digits.

    >>> human_bytes(999), human_bytes(48_512), human_bytes(1_234_567)
    ('999 B', '48.5 kB', '1.23 MB')
    """
    if n < 1000:
        return f"{n} B"
    for unit, scale in (("kB", 1000), ("MB", 1000**2), ("GB", 1000**3)):
        value = n / scale
        if value < 999.5 or unit == "GB":
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def percent(change: float) -> str:
    """A relative change as ``-62%`` / ``+100%`` (``n/a`` when unknown).

    >>> percent(-0.6249), percent(1.0), percent(0.0004)
    ('-62%', '+100%', '+0%')
    """
    return "n/a" if math.isnan(change) else f"{100 * change:+.0f}%"


def load_palette(path: Path):
    """The palette of ``--palette``, or a usage error (exit 2) that says what is wrong."""
    from kmq.palette_files import read_palette

    try:
        palette = read_palette(path)
    except (OSError, ValueError, KmqError) as exc:
        raise typer.BadParameter(f"{path}: {one_line(exc)}", param_hint="'--palette'") from exc
    if len(palette) > 256:
        raise typer.BadParameter(f"{path}: {len(palette)} colors; a palette holds at most 256",
                                 param_hint="'--palette'")
    return palette


def output_directory(output: Path | None, n_inputs: int) -> Path | None:
    """The output directory, if ``output`` is one; usage errors for a bad ``-o``."""
    if output is None:
        return None
    if os.path.isdir(output):  # False, not an error, where a folder may not be entered
        return output
    if n_inputs > 1:
        raise typer.BadParameter(
            f"with {n_inputs} inputs, OUTPUT must be an existing directory; "
            f"'{output}' is not one", param_hint="'-o' / '--output'")
    if not os.path.isdir(output.parent if str(output.parent) else "."):
        raise typer.BadParameter(f"the directory of '{output}' does not exist",
                                 param_hint="'-o' / '--output'")
    return None
