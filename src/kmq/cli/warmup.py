"""``kmq warmup``, and the first-run notice of every command that quantizes: numba compiles kmq's
kernels on their first use (see :mod:`kmq.kernel_cache`), tens of seconds once, so a command
that finds them missing says so on stderr before the work, with a spinner on a terminal."""

from __future__ import annotations

import sys
import time

import typer

from kmq.cli.app import app
from kmq.cli.common import EXIT_OK, progress_bar, quiet_option


def first_run_line(*, quantizer_only: bool = False) -> str:
    """The one line a command prints on stderr when it is about to compile the kernels (all of
    them, or those of quantizing an opaque image)."""
    from kmq.kernel_cache import expected_seconds

    seconds = expected_seconds(quantizer_only=quantizer_only)
    return (f"kmq: compiling kmq's kernels once, about {seconds} s (later runs load them from "
            f"the cache; 'kmq warmup' does this ahead of time)")


def compile_if_missing(*, quiet: bool) -> bool:
    """Compile the kernels here and now if any is missing from the cache, after the first-run
    line and with a spinner and the time elapsed on a terminal (unless ``quiet``); returns
    whether it compiled. For commands whose work runs in other processes (``kmq batch``, which
    would otherwise compile once per worker) or in the background (``kmq serve``)."""
    from kmq import kernel_cache

    gone = kernel_cache.missing()
    if not gone:
        return False
    typer.echo(first_run_line(), err=True)  # like a warning: printed with --quiet too
    with Spinner(not quiet and sys.stderr.isatty(), "compiling kmq's kernels") as spinner:
        kernel_cache.compile_all(progress=spinner.update, gone=gone)
    return True


class Spinner:
    """A transient rich spinner on stderr with a description and the time elapsed (nothing
    when disabled)."""

    def __init__(self, enabled: bool, description: str) -> None:
        self._progress = progress_bar() if enabled else None
        self._description = description
        self._task = None

    def __enter__(self) -> Spinner:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self._description, total=None)
        return self

    def update(self, step: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self._description}: {step}")

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


_WARMUP_HELP = (
    "Compile kmq's kernels, or load them when they are already compiled, and print each step "
    "and its time. The first command after an install otherwise compiles them (about "
    "20-30 seconds on 2 cores, once); run this when building an image or container so that "
    "no user waits. The compiled code is cached beside the package when its folder is "
    "writable, else in ~/.cache/kmq/numba; NUMBA_CACHE_DIR overrides both."
)


@app.command(help=_WARMUP_HELP)
def warmup(quiet: bool = quiet_option()) -> None:
    """``kmq warmup``: see ``_WARMUP_HELP``."""
    from kmq import kernel_cache

    start = time.perf_counter()
    missing = kernel_cache.missing()
    total = len(kernel_cache.kernels())
    verb = "compiling" if missing else "loading"
    with Spinner(not quiet and sys.stderr.isatty(), f"{verb} kmq's kernels") as spinner:
        steps = kernel_cache.compile_all(progress=spinner.update, gone=missing)
    left = kernel_cache.missing()
    elapsed = time.perf_counter() - start
    for step, seconds in steps:
        typer.echo(f"{step:<34}{seconds:7.2f} s")
    done = (f"compiled {len(missing)} of {total} kernels" if missing
            else f"all {total} kernels were already compiled; loaded them")
    typer.echo(f"{done} in {elapsed:.1f} s")
    if left:  # numba could not write its cache (a read-only folder): say where it failed
        typer.echo(f"kmq: warning: {len(left)} kernels are still not cached ({left[0]}, ...): "
                   f"is the cache folder writable? (NUMBA_CACHE_DIR sets it)", err=True)
    raise typer.Exit(EXIT_OK)
