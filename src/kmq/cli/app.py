"""The ``kmq`` typer application: the root command, ``--version`` and the exit-code table.

Command families register themselves on :data:`app` from their own modules (:mod:`kmq.cli`
imports them); this module imports nothing heavy, so ``kmq --help`` stays quick.
"""

from __future__ import annotations

import typer

from kmq import __version__
from kmq.errors import EXIT_CODES

#: The exit-code table, as ``kmq --help`` ends (``\b`` keeps click from refilling its lines).
EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code:>3}  {text}" for code, text in EXIT_CODES.items()) + (
    "\n\nWith several inputs, all are attempted and the exit code is the first failure's.")

app = typer.Typer(
    name="kmq",
    rich_markup_mode=None,
    help="Compress images by k-means color quantization into indexed PNG, lossless WebP, GIF "
         "or kmq's own .kmq files; decompress and inspect .kmq files; extract an image's "
         "dominant colors; many files at once, a report, a local web page.",
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
    """Compress images by k-means color quantization."""
