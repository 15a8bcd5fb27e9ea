"""``kmq serve``: the local web page (:mod:`kmq.web`)."""

from __future__ import annotations

import typer

from kmq.cli.app import app
from kmq.cli.common import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, fail
from kmq.io import DEFAULT_MAX_PIXELS

_SERVE_HELP = (
    "Serve a local web page to try kmq on an image: drop or pick an image, choose K, color "
    "space, dithering and output format, compare original and result in a split view with "
    "zoom, see the palette, the file sizes, PSNR, SSIM and time, and download the result."
    "\n\n"
    "It listens on 127.0.0.1 (this machine only) unless --host says otherwise, and keeps "
    "everything in memory (nothing is written to disk). Stop it with Ctrl+C. Exit code 2 if "
    "HOST cannot be resolved or the web extra is not installed (pip install 'kmq[web]'), 1 if "
    "the address cannot be listened on (e.g. the port is in use)."
)


@app.command(help=_SERVE_HELP)
def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="HOST",
        help="Address to listen on. Anything but loopback (127.0.0.1, ::1, localhost) makes the "
             "page, which has no authentication, reachable from other machines."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, metavar="PORT",
                             help="TCP port; 0 picks a free one."),
    max_upload_mb: float = typer.Option(25.0, "--max-upload-mb", min=0.001, metavar="MB",
                                        help="Refuse (HTTP 413) uploads larger than this."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", min=1, metavar="N",
                                   help="Refuse (HTTP 413) images with more pixels than this."),
    upload_timeout: float = typer.Option(
        5.0, "--upload-timeout", min=0.001, metavar="SECONDS",
        help="Drop (HTTP 408) an upload that sends nothing for this long."),
    max_cache_mb: float = typer.Option(
        256.0, "--max-cache-mb", min=0.001, metavar="MB",
        help="Decoded images kept in memory (3-4 bytes a pixel), least recently used dropped "
             "first."),
    max_work_mb: float = typer.Option(
        2000.0, "--max-work-mb", min=0.001, metavar="MB",
        help="Working memory of the images being decoded and quantized at once, estimated from "
             "their size; more waits for nothing: it is refused (HTTP 503)."),
) -> None:
    """``kmq serve``: see ``_SERVE_HELP``."""
    import socket

    from kmq.errors import MissingExtraError, require

    try:  # FastAPI and uvicorn are the optional extra kmq[web]
        from kmq import web

        require("uvicorn", "web", "the web page (kmq serve)")
    except MissingExtraError as exc:
        raise fail(str(exc), exc.exit_code) from None
    from kmq.cli.warmup import compile_if_missing

    compile_if_missing(quiet=False)  # the first run: said and done before the page is served
    try:
        sock = web.bind(host, port)
    except socket.gaierror as exc:
        typer.echo(f"kmq: error: cannot resolve --host {host!r} ({exc.strerror or exc})",
                   err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:
        typer.echo(f"kmq: error: cannot listen on {host}:{port} ({exc.strerror or exc})",
                   err=True)
        raise typer.Exit(EXIT_INTERNAL) from None
    local = web.is_loopback(host)
    if not local:
        typer.echo(f"kmq: warning: listening on {host}: the page has no authentication and is "
                   f"reachable from other machines (--host 127.0.0.1 keeps it local)", err=True)
    config = web.ServerConfig(max_upload_bytes=max(1, round(max_upload_mb * 1_000_000)),
                              max_pixels=max_pixels, upload_idle_seconds=upload_timeout,
                              max_upload_bytes_in_flight=4 * max(1, round(
                                  max_upload_mb * 1_000_000)),
                              max_cache_bytes=max(1, round(max_cache_mb * 1_000_000)),
                              max_work_bytes=max(1, round(max_work_mb * 1_000_000)),
                              allowed_hosts=(*web.LOOPBACK_HOSTS, host) if local else None)
    typer.echo(f"kmq: serving on {web.url_of(sock)} (Ctrl+C to stop)", err=True)
    try:
        web.serve(sock, web.create_app(config))
    except KeyboardInterrupt:  # Ctrl+C is how the page is stopped: not an error
        pass
    raise typer.Exit(EXIT_OK)
