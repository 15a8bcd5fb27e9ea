"""The ``kmq`` command: a thin layer over the library, one module per command family.

``compress``, ``decompress``, ``info`` and ``demo`` (:mod:`kmq.cli.compress`), ``palette``
(:mod:`kmq.cli.palette`), ``batch`` (:mod:`kmq.cli.batch`), ``report`` (:mod:`kmq.cli.report`),
``serve`` (:mod:`kmq.cli.serve`) and ``warmup`` (:mod:`kmq.cli.warmup`) register on one typer
application (:mod:`kmq.cli.app`).
Heavy modules (the numba kernels, the optional parts) are imported inside the commands, so
``kmq --help`` and ``kmq --version`` stay quick. Warnings and errors go to stderr as one line
each, ``kmq: warning: ...`` and ``kmq: error: ...``; ``KMQ_DEBUG=1`` turns an unexpected error
into a traceback. Exit codes: :data:`kmq.errors.EXIT_CODES`.
"""

from __future__ import annotations

import os
import sys

import typer

from kmq._config import start_numba_without_unused
from kmq.cli import batch, compress, palette, report, serve, warmup  # noqa: F401  (commands)
from kmq.cli.app import app
from kmq.cli.common import EXIT_INTERNAL, EXIT_USAGE
from kmq.errors import one_line


def main() -> None:
    """Entry point of the ``kmq`` executable: every error is one line on stderr."""
    from typer.exceptions import TyperException

    start_numba_without_unused()  # this process compiles no linear algebra nor cffi calls
    try:
        code = app(standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("kmq: interrupted", err=True)
        sys.exit(130)
    except TyperException as exc:  # a bad option or value (click's usage errors): one line
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "kmq"
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: its help
            typer.echo(message, err=True)
            sys.exit(EXIT_USAGE)
        typer.echo(f"kmq: error: {where}: {one_line(message)} (see '{where} --help')",
                   err=True)
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
    except Exception as exc:  # a bug outside the per-file handling: one line, exit 1
        if os.environ.get("KMQ_DEBUG"):
            raise
        typer.echo(f"kmq: error: internal error: {type(exc).__name__}: {one_line(exc)}",
                   err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
