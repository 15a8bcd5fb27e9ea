"""``kmq palette``: an image's dominant colors (or those of many images together) as text, JSON,
CSS, a GIMP palette or a PNG of swatches."""

from __future__ import annotations

import enum
import os
from pathlib import Path

import typer

from kmq.cli.app import app
from kmq.cli.common import EXIT_OK, error, fail, force_option, max_pixels_option, warn
from kmq.errors import KmqError, exit_code

#: ``--format`` choices (the formats of :mod:`kmq.palette_files`).
PaletteFormat = enum.StrEnum("PaletteFormat",  # type: ignore[misc]
                             {name: name for name in ("text", "json", "css", "gpl", "png")})

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


def shared_dominant_colors(sources: list[str], k: int, *, seed: int, max_pixels: int,
                           jobs: int | None):
    """The K colors of all the pixels of several inputs (files, folders, globs) together and
    their shares, largest first, and the exit code of the first input that could not be read
    (reported on stderr; the others still count).

    Raises
    ------
    kmq.ImageReadError
        No input could be read.
    """
    import numpy as np

    from kmq import batch
    from kmq.errors import ImageReadError

    paths = [os.fspath(path) for path, _ in batch.collect_inputs(sources)]
    if not paths:
        raise ImageReadError(f"no input images found in {', '.join(sources)}")
    with batch.LocalEngine(min(jobs or os.cpu_count() or 1, len(paths))) as engine:
        fitted = batch.shared_palette(paths, k, seed=seed, max_pixels=max_pixels, engine=engine)
    code = EXIT_OK
    for r in fitted.records:
        if r.status == "failed":
            error(r.reason)
            code = code or r.exit_code
        for line in r.warnings:
            warn(line)
    order = np.argsort(-fitted.counts, kind="stable")
    counts = fitted.counts[order].astype(np.float64)
    return fitted.palette[order], counts / counts.sum(), code


@app.command(help=_PALETTE_HELP)
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
    force: bool = force_option(),
    max_pixels: int = max_pixels_option(),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, metavar="N", show_default=False,
        help="With several inputs: worker processes counting their colors (default: CPUs)."),
) -> None:
    """``kmq palette``: see ``_PALETTE_HELP``."""
    from kmq import palette_files
    from kmq.files import check_output, write_bytes

    source = Path(sources[0])
    fmt = output_format.value if output_format is not None else None
    if fmt is None and output is not None:
        fmt = palette_files.EXTENSIONS.get(output.suffix.lower())
        if fmt is None:
            raise typer.BadParameter(
                f"cannot tell the format from '{output}': give it a .txt, .json, .css, .gpl or "
                f".png extension, or choose with --format", param_hint="'-o' / '--output'")
    fmt = palette_files.PaletteFormat(fmt or "text")
    if fmt is palette_files.PaletteFormat.png and output is None:
        raise typer.BadParameter("the png format is written to a file: give -o OUTPUT.png",
                                 param_hint="'--format'")
    if output is not None and os.path.isdir(output):
        raise typer.BadParameter(f"'{output}' is a directory; give a file name",
                                 param_hint="'-o' / '--output'")
    code = EXIT_OK
    try:
        if output is not None:
            check_output(output, force=force, inputs=sources)
        if len(sources) > 1 or os.path.isdir(source) or any(c in sources[0] for c in "*?["):
            colors, shares, code = shared_dominant_colors(sources, k, seed=seed,
                                                          max_pixels=max_pixels, jobs=jobs)
            source = Path("kmq") if len(sources) > 1 else source
        else:
            colors, shares, lines = palette_files.dominant_colors_of_file(
                source, k, seed=seed, max_pixels=max_pixels)
            for line in lines:
                warn(line)
        if fmt is palette_files.PaletteFormat.png:
            data = palette_files.swatches_png(colors, shares)
        else:
            data = palette_files.format_palette(colors, shares, fmt, name=source.stem).encode()
        if output is None:
            typer.echo(data.decode(), nl=False)
        else:
            write_bytes(output, data, force=force, inputs=sources)
    except KmqError as exc:
        raise fail(str(exc), exit_code(exc)) from None
    raise typer.Exit(code)
