"""``kmq report``: one self-contained HTML report on an image quantized at several K
(:mod:`kmq.report`)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import typer

from kmq.cli.app import app
from kmq.cli.common import EXIT_OK, fail, force_option, progress_bar, quiet_option, warn
from kmq.errors import KmqError, exit_code, one_line
from kmq.files import check_output
from kmq.io import DEFAULT_MAX_PIXELS

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
    "The plots need matplotlib: pip install 'kmq[report]' (exit 2 without it). Files are "
    "written all or nothing (a failed run leaves none) and never replace existing ones "
    "without --force."
)


@app.command(help=_REPORT_HELP)
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
    force: bool = force_option(),
    quiet: bool = quiet_option(),
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
    if os.path.isdir(output) or not os.path.isdir(output.parent if str(output.parent)
                                                  else "."):
        raise typer.BadParameter(f"'{output}' is a directory, or its directory does not exist; "
                                 f"give an HTML file name", param_hint="'-o' / '--output'")
    bar = None
    if not quiet and sys.stderr.isatty():
        bar = progress_bar()
    try:
        for target in [output, *kmq_report.output_paths(output).values()]:
            check_output(target, force=force, inputs=[source])  # before the work, not after
        with bar or contextlib.nullcontext(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            task = bar.add_task("starting", total=1.0) if bar else None

            def progress(stage: str, fraction: float) -> bool:
                if bar is not None and task is not None:
                    bar.update(task, description=f"{source.name}: {stage}", completed=fraction)
                return False

            result = kmq_report.make_report(source, k_values, seed=seed, max_side=max_side,
                                            max_pixels=max_pixels, progress=progress)
        for message in dict.fromkeys([*result.warnings,
                                      *(one_line(w.message) for w in caught)]):
            warn(message)
        written = result.write_html(output, overwrite=force, inputs=[source])
    except KmqError as exc:
        raise fail(str(exc), exit_code(exc)) from None
    typer.echo("\n".join(kmq_report.summary_lines(result)))
    typer.echo(f"wrote {written[0]} and {len(written) - 1} plots in {written[-1].parent}/")
    raise typer.Exit(EXIT_OK)
