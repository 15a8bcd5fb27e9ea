"""``kmq compress``, ``kmq decompress``, ``kmq info`` and ``kmq demo``: one file at a time, each
through :mod:`kmq.files`."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import typer

from kmq import codecs
from kmq.cli.app import app
from kmq.cli.common import (
    EXIT_INTERNAL,
    EXIT_OK,
    K_HELP,
    ColorSpace,
    OutputFormat,
    error,
    force_option,
    human_bytes,
    load_palette,
    max_pixels_option,
    number,
    output_directory,
    parse_psnr,
    parse_quality,
    parse_size,
    percent,
    print_table,
    run_files,
)
from kmq.errors import KmqError, exit_code, one_line
from kmq.files import OUTPUT_TAG
from kmq.io import DEFAULT_MAX_PIXELS

#: Extension of ``kmq decompress``'s default output: ``photo-kmq.kmq`` -> ``photo-kmq.png``.
DECOMPRESS_SUFFIX = ".png"

#: Caption of the results table: what each column means.
TABLE_CAPTION = (
    "K: colors used; PSNR (dB) and SSIM against the input (of premultiplied RGBA for an image "
    "with transparency); input, output: file sizes (1 kB = 1000 bytes); change: the output's "
    "size against the input's; sec: seconds to read, quantize and write."
)
TABLE_CAPTION_NO_SSIM = TABLE_CAPTION.replace(" and SSIM", "")
#: Caption of the decompress table.
DECOMPRESS_CAPTION = ("size: of the written image (1 kB = 1000 bytes); WxH: width x height "
                      "in pixels; K: palette colors; sec: seconds to read, decode and write.")


class KernelWarmUp:
    """numba's start-up and the quantizer's kernel loads (about a second in a new process, see
    :func:`kmq.pipeline.warm_up`) on a background thread, while the first image decodes (which
    releases the GIL). :meth:`wait` before quantizing: two threads must not run kernels at once.
    A failure here is left for the real call to meet and report. With ``ssim``, SSIM's kernel
    is loaded too.

    When a kernel is not in numba's cache yet (the first run), the thread says so through the
    reporter before compiling (:func:`kmq.cli.warmup.first_run_line`), and :meth:`wait` shows
    it as the stage, with the time elapsed, while it waits."""

    def __init__(self, ssim: bool = False) -> None:
        self._thread: threading.Thread | None = None
        self._ssim = ssim
        self._reporter = None
        self.compiling = False

    def start(self, reporter=None) -> None:
        """Start loading, once; ``reporter`` (:class:`kmq.cli.common.Reporter`) hears of a
        first-run compile."""
        if self._thread is None:
            self._reporter = reporter
            self._thread = threading.Thread(target=self._run, name="kmq-warm-up", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            import numpy as np

            from kmq import kernel_cache
            from kmq.cli.warmup import first_run_line

            modules = (kernel_cache.COMPRESS_MODULES if self._ssim
                       else kernel_cache.QUANTIZE_MODULES)
            gone = kernel_cache.missing(modules)
            if gone:
                self.compiling = True
                if self._reporter is not None:
                    self._reporter.message(first_run_line(quantizer_only=True))
            kernel_cache.compile_quantizer(gone=gone)  # loads them when they are cached
            if self._ssim:  # its kernel too
                from kmq.metrics import ssim

                ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))
        except Exception:  # the real call meets it again and reports it
            pass

    def wait(self) -> None:
        """Until the loading ends (at once if it never started)."""
        if self._thread is not None:
            if self.compiling and self._thread.is_alive() and self._reporter is not None:
                self._reporter.stage("compiling kmq's kernels (once)")
            self._thread.join()


def _larger_hint(result) -> str:
    """What to try when an output came out larger than its input."""
    if Path(result.source).suffix.lower() in (".jpg", ".jpeg"):
        return ("a photo from JPEG: try fewer colors (-k 64), --format webp, or keep the JPEG "
                "(--skip-if-larger)")
    return "try fewer colors (-k), --format kmq, or --skip-if-larger"


def _table_row(r, ssim: bool) -> list[str]:
    row = [r.source, str(r.k), number(r.psnr, ".2f", "inf")]
    if ssim:
        row.append(number(r.ssim, ".4f"))
    return [*row, human_bytes(r.input_bytes), human_bytes(r.output_bytes), percent(r.change),
            f"{r.seconds:.2f}"]


def compress_files(jobs: list[tuple[str, str]], options, *, quiet: bool = False,
                   json_lines: bool = False, replace_input: bool = False) -> int:
    """Compress every (source, output) pair with ``options`` (:class:`kmq.CompressOptions`)
    and report: a table, or one JSON object per file, on stdout (on stderr when stdout carries
    an image, ``-``); returns the exit code. ``-`` as a source is stdin."""
    from kmq.errors import ImageReadError
    from kmq.files import DONE, compress_bytes, compress_file, write_bytes
    from kmq.io import open_input

    to_stdout = any(output == "-" for _, output in jobs)
    warm_up = KernelWarmUp(ssim=options.ssim)

    def work(source: str, output: str, reporter):
        reporter.file("stdin" if source == "-" else Path(source).name)
        if source != "-" and os.path.isdir(source):
            raise ImageReadError(f"{source}: is a folder: 'kmq batch {source} -o OUT_DIR' "
                                 f"compresses the images in it")
        if source == "-" or os.path.exists(source):  # a missing input fails without kernels
            warm_up.start(reporter)
        if source != "-" and output != "-":
            return compress_file(source, output, options, progress=reporter.callback,
                                 replace_input=replace_input, before_quantize=warm_up.wait)
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            with open_input(source) as fh:
                data = fh.read()
        warm_up.wait()
        compressed, result = compress_bytes(data, options, name=source,
                                            progress=reporter.callback)
        result.output = output
        if result.status == DONE:
            if output == "-":
                sys.stdout.buffer.write(compressed.data)
                sys.stdout.buffer.flush()
            else:
                write_bytes(output, compressed.data, force=options.force)
        return result

    def report(result, reporter) -> None:
        if json_lines:
            line = json.dumps(result.as_json())
            print(line, file=sys.stderr if to_stdout else sys.stdout, flush=True)
        if quiet or result.status == "failed":
            return
        for line in result.warnings:
            reporter.message(f"kmq: warning: {one_line(line)}")
        if result.error == "larger":
            reporter.message(f"kmq: warning: {result.reason} ({_larger_hint(result)})")
        elif result.status == DONE and result.output_bytes > result.input_bytes > 0:
            reporter.message(
                f"kmq: warning: {result.output}: {human_bytes(result.output_bytes)} is larger "
                f"than the input's {human_bytes(result.input_bytes)} "
                f"({percent(result.change)}); {_larger_hint(result)}")

    results, code = run_files(jobs, work, quiet=quiet, on_result=report)
    warm_up.wait()  # never exit while it loads kernels
    shown = [r for r in results if r.status == DONE]
    if shown and not quiet and not json_lines:
        columns = ["file", "K", "PSNR", *(["SSIM"] if options.ssim else []), "input", "output",
                   "change", "sec"]
        print_table(columns, [_table_row(r, options.ssim) for r in shown],
                    TABLE_CAPTION if options.ssim else TABLE_CAPTION_NO_SSIM, stderr=to_stdout)
    return code


_COMPRESS_HELP = (
    "Compress each image INPUT ('-': stdin) to at most K colors; print K, PSNR, the sizes and "
    "the time."
    "\n\n"
    "Formats: png (indexed, the default), webp (lossless), gif and kmq (kmq's container), by "
    "--format or OUTPUT's extension. Outputs go beside each input as <name>-kmq.<ext>, are "
    "written atomically, and replace no file without --force. Folders: kmq batch. Exit codes: "
    "kmq --help."
)


@app.command(help=_COMPRESS_HELP, no_args_is_help=True)
def compress(
    inputs: list[str] = typer.Argument(..., metavar="INPUT", show_default=False, hidden=True),
    k: int = typer.Option(256, "-k", "--colors", min=2, max=256, metavar="K", show_default=False,
                          help="Colors, 2..256 (default 256; the cap of the targets below)."),
    output: str | None = typer.Option(
        None, "-o", "--output", metavar="OUTPUT", show_default=False,
        help="Output file, a folder, or '-' for stdout."),
    ext: str | None = typer.Option(
        None, "--ext", metavar="SUFFIX", show_default=False,
        help="Output name <name>SUFFIX; --ext .png --force replaces the input."),
    output_format: OutputFormat | None = typer.Option(
        None, "--format", "-F", case_sensitive=False, show_default=False, metavar="FORMAT",
        help="png, webp, gif or kmq."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing files."),
    skip_if_larger: bool = typer.Option(
        False, "--skip-if-larger", help="Write no output larger than its input (exit 8)."),
    quality: str | None = typer.Option(
        None, "--quality", metavar="MIN-MAX", show_default=False,
        help="pngquant's 0-100 scale: fewest colors reaching MAX; exit 7 below MIN."),
    psnr: str | None = typer.Option(
        None, "--psnr", metavar="MIN-MAX", show_default=False,
        help="The same as PSNR in dB (e.g. 35-40)."),
    max_size: str | None = typer.Option(
        None, "--max-size", metavar="SIZE", show_default=False,
        help="Most colors whose file fits SIZE (100kB, 1.5MB); else exit 9."),
    dither: float = typer.Option(
        0.0, "--dither", min=0.0, max=1.0, metavar="S", show_default=False,
        help="Dithering, 0 (none, default) to 1: smoother, larger."),
    no_dither: bool = typer.Option(False, "--nofs", "--no-dither", hidden=True),
    color_space: ColorSpace = typer.Option(
        "srgb", "--colorspace", case_sensitive=False, metavar="SPACE", show_default=False,
        help="srgb (lowest error, default), wsrgb (for the eye), linear, oklab."),
    palette_file: Path | None = typer.Option(
        None, "--palette", metavar="FILE", show_default=False,
        help="Map onto this palette (.gpl, .json, an image) instead."),
    no_optimize: bool = typer.Option(
        False, "--no-optimize", help="Skip the PNG optimization pass (faster, larger)."),
    optimize: bool = typer.Option(False, "--optimize",
                                  help="Optimize PNGs harder (slower, smaller)."),
    ssim: bool = typer.Option(True, "--ssim/--no-ssim", show_default=False,
                              help="Measure SSIM (default) or not."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N", show_default=False,
                             help="Random seed (default 0): same seed, same bytes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    json_lines: bool = typer.Option(False, "--json", help="One JSON object per file."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   show_default=False,
                                   help="Refuse larger inputs (default 100 MP; exit 4)."),
) -> None:
    """``kmq compress``: see ``_COMPRESS_HELP``."""
    from kmq.files import CompressOptions

    chosen = [name for name, value in (("--quality", quality), ("--psnr", psnr),
                                       ("--max-size", max_size), ("--palette", palette_file))
              if value is not None]
    if len(chosen) > 1:
        raise typer.BadParameter(f"{' and '.join(chosen)} do not go together: give one")
    if output is not None and ext is not None:
        raise typer.BadParameter("-o and --ext do not go together: give one", param_hint="'--ext'")
    to_stdout = output == "-"
    if to_stdout and len(inputs) > 1:
        raise typer.BadParameter("-o - writes one image to stdout: give one INPUT",
                                 param_hint="'-o' / '--output'")
    if inputs.count("-") > 1:
        raise typer.BadParameter("'-' (stdin) can be read once", param_hint="INPUT")
    out_dir = None if to_stdout or output is None else output_directory(Path(output), len(inputs))
    fmt = output_format.value if output_format is not None else None
    if fmt is None and output is not None and not to_stdout and out_dir is None:
        fmt = _format_of(output)
    elif fmt is None and ext is not None and Path(ext).suffix:
        fmt = _format_of(ext)
    fmt = fmt or codecs.DEFAULT
    options = CompressOptions(
        k=k, format=fmt, seed=seed, color_space=color_space.value,
        dither=0.0 if no_dither else dither, psnr=parse_quality(quality) or parse_psnr(psnr),
        max_bytes=parse_size(max_size),
        palette=load_palette(palette_file) if palette_file is not None else None,
        effort="max" if optimize else ("fast" if no_optimize else "default"), force=force,
        skip_if_larger=skip_if_larger, ssim=ssim, max_pixels=max_pixels)
    suffix = ext if ext is not None else f"{OUTPUT_TAG}{codecs.get(fmt).extension}"

    def target(source: str) -> str:
        if output is not None and out_dir is None:
            return output
        if source == "-":
            return "-"
        folder = Path(source).parent if out_dir is None else out_dir
        return str(folder / f"{Path(source).stem}{suffix}")

    jobs = [(source, target(source)) for source in inputs]
    replace_input = ext is not None and force
    raise typer.Exit(compress_files(jobs, options, quiet=quiet, json_lines=json_lines,
                                    replace_input=replace_input))


def _format_of(path: str) -> str:
    try:
        return codecs.for_path(path).name
    except codecs.UnknownFormatError as exc:
        raise typer.BadParameter(str(exc), param_hint="'-o' / '--output'") from None


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


@app.command(help=_DECOMPRESS_HELP)
def decompress(
    inputs: list[Path] = typer.Argument(
        ..., metavar="INPUT", show_default=False,
        help=".kmq files to decompress (written by 'kmq compress --format kmq' or kmq.save)."),
    output: Path | None = typer.Option(
        None, "-o", "--output", metavar="OUTPUT", show_default=False,
        help="Output image file (only with one INPUT), its format chosen by its extension, or "
             "an existing directory to write every output into as '<name>.png'. Default: "
             "beside each input, '<name>.png'."),
    force: bool = force_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    json_lines: bool = typer.Option(False, "--json", help="One JSON object per file."),
    max_pixels: int = max_pixels_option("Refuse"),
) -> None:
    """``kmq decompress``: see ``_DECOMPRESS_HELP``."""
    from kmq.indexed_files import decompress_file, image_format

    out_dir = output_directory(output, len(inputs))
    fmt: str | None = "PNG"
    if output is not None and out_dir is None:
        fmt = image_format(output)
        if fmt is None:
            raise typer.BadParameter(
                f"cannot tell the image format from '{output}': give it an extension of a "
                f"format Pillow writes (.png, .gif, .webp, .bmp, .tif, .jpg, ...)",
                param_hint="'-o' / '--output'")

    def target(src: Path) -> Path:
        if output is not None and out_dir is None:
            return output
        return (src.parent if out_dir is None else out_dir) / f"{src.stem}{DECOMPRESS_SUFFIX}"

    def work(source: str, output: str, reporter):
        reporter.file(Path(source).name)
        return decompress_file(source, output, force=force, max_pixels=max_pixels, format=fmt)

    def report(result, reporter) -> None:
        if json_lines:
            typer.echo(json.dumps(result.as_json()))
        elif not quiet and result.status != "failed":
            for line in result.warnings:
                reporter.message(f"kmq: warning: {one_line(line)}")

    results, code = run_files([(str(src), str(target(src))) for src in inputs], work,
                              quiet=quiet, on_result=report)
    done = [r for r in results if r.status == "done"]
    if done and not quiet and not json_lines:
        print_table(("file", "output", "size", "WxH", "K", "sec"),
                    [(r.source, r.output, human_bytes(r.output_bytes), f"{r.width}x{r.height}",
                      str(r.k), f"{r.seconds:.2f}") for r in done], DECOMPRESS_CAPTION,
                    left=2)
    raise typer.Exit(code)


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


_INFO_HELP = (
    "Print the header of each .kmq FILE: version, layout, method, width, height, K, index "
    "dtype, payload and file bytes, bits per pixel and the compression ratio against raw "
    "24-bit RGB."
    "\n\n"
    "Only the 32 header bytes and the file's size are read, unless --check decodes the payload "
    "and verifies its checksum. A damaged file exits 6."
)


@app.command(help=_INFO_HELP)
def info(
    files: list[Path] = typer.Argument(..., metavar="FILE", show_default=False,
                                       help=".kmq files to describe."),
    check: bool = typer.Option(False, "--check",
                               help="Decode the payload and verify the checksums too."),
    max_pixels: int = max_pixels_option(),
) -> None:
    """``kmq info``: see ``_INFO_HELP``."""
    from kmq.indexed_files import read_kmq, read_kmq_header

    first_failure = EXIT_OK
    printed = 0
    for path in files:
        try:
            header = read_kmq_header(path)
            if check:
                read_kmq(path, max_pixels=max_pixels)
        except KmqError as exc:
            error(str(exc))
            first_failure = first_failure or exit_code(exc)
            continue
        if printed:
            typer.echo("")
        lines = header_lines(path, header)
        if check:
            lines.append(f"  {'check':<15} ok: the payload decodes and the checksums match")
        typer.echo("\n".join(lines))
        printed += 1
    if printed < len(files) and len(files) > 1:
        typer.echo(f"kmq: {len(files) - printed} of {len(files)} files failed", err=True)
    raise typer.Exit(first_failure)


_DEMO_HELP = (
    "Compress three sample photographs (astronaut, coffee, chelsea) and print the table."
    "\n\n"
    "The originals are written to DIR as '<name>.png', their compressed versions as "
    "'<name>-kmq.png', and the same table as 'kmq compress' is printed."
)


@app.command(help=_DEMO_HELP)
def demo(
    output: Path = typer.Option(
        Path("demo-output"), "-o", "--output", metavar="DIR", file_okay=False,
        help="Directory for the sample images and their compressed versions (created if "
             "needed; files of the same names in it are replaced)."),
    k: int = typer.Option(64, "-k", "--colors", min=2, max=256, metavar="K", help=K_HELP),
) -> None:
    """``kmq demo``: see ``_DEMO_HELP``."""
    from kmq import samples
    from kmq.files import CompressOptions, default_output

    try:
        sources = samples.write(output)
    except (OSError, KmqError) as exc:
        error(f"{output}: cannot write the samples ({getattr(exc, 'strerror', None) or exc})")
        raise typer.Exit(EXIT_INTERNAL) from None
    jobs = [(str(src), str(default_output(src))) for src in sources]
    options = CompressOptions(k=k, format="png", force=True, ssim=True)
    raise typer.Exit(compress_files(jobs, options))
