"""The report as one self-contained HTML page (:meth:`kmq.report.Report.html`).

Every picture and plot is embedded as a ``data:`` URI: no network, no external CSS or
JavaScript. The original image is embedded once, losslessly, and each K's row shows it again
through an SVG ``<use>``. Numbers are printed by :mod:`kmq.report.words`.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

from PIL import Image

from kmq import codecs
from kmq.report import plots, words

if TYPE_CHECKING:
    from kmq.report.measure import Encoded, KResult, Report


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


#: MIME type of each file shown as a picture.
_MIME = {"kmq-png": codecs.get("png").mime, "jpeg": "image/jpeg", "webp": "image/webp"}

_CSS = """
:root { color-scheme: light; --muted: #5b6470; --line: #d9dde3; --kmq: #1f77b4;
        --jpeg: #d62728; --webp: #ff7f0e; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1d232b; background: #f6f7f9; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 0 0 8px; }
.muted, small { color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px;
          margin: 18px 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums;
        font-size: 0.8rem; }
th, td { padding: 3px 6px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th[colspan] { text-align: center; border-left: 2px solid #fff; }
th { background: #eef1f5; font-weight: 600; }
td.win { font-weight: 700; }
.table-wrap { overflow-x: auto; }
.plot { width: 100%; max-width: 1100px; display: block; margin: 8px 0; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(230px, 1fr)); gap: 12px; }
figure { margin: 0; }
figure img, figure svg { width: 100%; height: auto; display: block; background: #eee;
                         image-rendering: pixelated; border: 1px solid var(--line); }
figcaption { font-size: 0.82rem; margin-top: 4px; font-variant-numeric: tabular-nums; }
figure[data-codec="kmq-png"] figcaption b { color: var(--kmq); }
figure[data-codec="jpeg"] figcaption b { color: var(--jpeg); }
figure[data-codec="webp"] figcaption b { color: var(--webp); }
.verdict { margin: 6px 0 12px; }
.verdict.kmq { border-left: 4px solid var(--kmq); padding-left: 10px; }
.verdict.other { border-left: 4px solid #999; padding-left: 10px; }
.swatches { display: flex; height: 26px; border: 1px solid var(--line); border-radius: 4px;
            overflow: hidden; margin: 6px 0 4px; }
.swatches span { display: block; height: 100%; min-width: 1px; }
.colors { font: 0.78rem/1.5 ui-monospace, monospace; color: var(--muted); margin-bottom: 10px; }
.colors .c { white-space: nowrap; }
.colors i { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em;
            border: 1px solid #0003; margin-right: 3px; }
.summary { font-size: 1rem; }
"""


def _caption(enc: Encoded, label: str, extra: str = "") -> str:
    quality = "" if enc.quality is None else f" q {enc.quality}"
    return (f"<figcaption><b>{html.escape(label)}{quality}</b>: "
            f'<span class="bytes">{enc.n_bytes:,} B</span> &middot; '
            f'<span class="psnr">{words.db(enc.psnr)}</span> &middot; '
            f'SSIM <span class="ssim">{words.ssim_text(enc.ssim)}</span>{extra}</figcaption>')


def _figure_html(enc: Encoded, label: str, alt: str, extra: str = "") -> str:
    quality = "" if enc.quality is None else f' data-quality="{enc.quality}"'
    return (f'<figure data-codec="{enc.codec}" data-bytes="{enc.n_bytes}"{quality} '
            f'data-psnr="{enc.psnr!r}" data-ssim="{enc.ssim!r}">'
            f'<img src="{_data_uri(enc.data, _MIME[enc.codec])}" alt="{html.escape(alt)}">'
            f"{_caption(enc, label, extra)}</figure>")


def _swatches_html(r: KResult) -> str:
    spans, listed = [], []
    for color, share, count in zip(r.quantized.palette, r.shares, r.quantized.counts,
                                   strict=True):
        hexcode = "#{:02x}{:02x}{:02x}".format(*(int(c) for c in color))
        spans.append(f'<span style="background:{hexcode};flex:{share:.6f}" '
                     f'data-color="{hexcode}" data-count="{int(count)}" '
                     f'title="{hexcode} {100 * share:.2f}%"></span>')
        listed.append(f'<span class="c"><i style="background:{hexcode}"></i>{hexcode} '
                      f"{100 * share:.2f}%</span>")
    shown = 16
    more = f" &hellip; and {len(listed) - shown} more" if len(listed) > shown else ""
    return (f'<div class="swatches" aria-label="palette of {r.quantized.k} colors">'
            f'{"".join(spans)}</div>'
            f'<div class="colors">{" &nbsp; ".join(listed[:shown])}{more}</div>')


def _summary_table(report: Report) -> str:
    groups = [("", 1), ("kmq PNG", 4), ("JPEG at the PNG's size", 4),
              ("lossy WebP at the PNG's size", 4), ("", 1), (".kmq file of the same pixels", 4)]
    columns = ["K", "B", "bpp", "PSNR", "SSIM", "q", "B", "PSNR", "SSIM", "q", "B", "PSNR", "SSIM",
               "ahead", "B", "JPEG PSNR", "WebP PSNR", "ahead"]
    head = ("<tr>" + "".join(f'<th colspan="{n}">{html.escape(g)}</th>' for g, n in groups)
            + '</tr><tr>' + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
    n_pixels = report.rgb.shape[0] * report.rgb.shape[1]
    rows = []
    for r in report.results:
        best, best_small = r.best("psnr"), r.best("psnr", container=True)

        def cell(enc: Encoded, winner: str) -> str:
            cls = ' class="win"' if enc.codec == winner else ""
            return f"<td{cls}>{words.db(enc.psnr)}</td>"

        def name(codec: str) -> str:
            return {"kmq": "kmq", "kmq-png": "kmq", "jpeg": "JPEG", "webp": "WebP"}[codec]

        k = f"{r.k}" if r.quantized.k == r.k else f"{r.k} ({r.quantized.k} used)"
        rows.append(
            f'<tr data-k="{r.k}"><td>{k}</td>'
            f"<td>{r.png.n_bytes:,}</td><td>{8 * r.png.n_bytes / n_pixels:.3f}</td>"
            f"{cell(r.png, best)}<td>{words.ssim_text(r.png.ssim)}</td>"
            f"<td>{r.jpeg.quality}</td><td>{r.jpeg.n_bytes:,}</td>{cell(r.jpeg, best)}"
            f"<td>{words.ssim_text(r.jpeg.ssim)}</td>"
            f"<td>{r.webp.quality}</td><td>{r.webp.n_bytes:,}</td>{cell(r.webp, best)}"
            f"<td>{words.ssim_text(r.webp.ssim)}</td><td>{name(best)}</td>"
            f"<td>{r.container.n_bytes:,}</td>"
            f"{cell(r.jpeg_small, best_small)}{cell(r.webp_small, best_small)}"
            f"<td>{name(best_small)}</td></tr>")
    return f'<div class="table-wrap"><table>{head}{"".join(rows)}</table></div>'



def render(report: Report) -> str:
    """The report as one self-contained HTML document: every picture and plot a ``data:`` URI,
    no network, no external CSS or JavaScript."""
    from kmq import __version__

    width, height = report.size
    original = io.BytesIO()
    Image.fromarray(report.rgb, "RGB").save(original, format="PNG")
    original_uri = _data_uri(original.getvalue(), "image/png")
    title = f"kmq report: {report.name}"
    scaled = ""
    if report.original_size != report.size:
        scaled = (f" (downscaled from {report.original_size[0]}x{report.original_size[1]}; "
                  f"every number is of the downscaled image)")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="muted">{width}x{height} pixels{html.escape(scaled)}, '
        f"{report.distinct_colors:,} distinct colors; raw 24-bit RGB is "
        f"{3 * width * height:,} bytes. K = {', '.join(str(r.k) for r in report.results)}, "
        f"seed {report.seed}; kmq {__version__}.</p>",
        f'<p class="summary">{html.escape(words.overall(report))}</p>',
        *(f'<p class="muted warning">Reading the image: {html.escape(w)}</p>'
          for w in report.warnings),
        # the original, once: each K's row shows it through <use>
        '<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
        f'<image id="original" width="{width}" height="{height}" href="{original_uri}"/>'
        "</defs></svg>",
        "<section><h2>How they compare</h2>",
        "<p>For each K, kmq quantizes the image and writes the indexed PNG <code>kmq "
        "compress</code> writes. Then the JPEG quality and the lossy WebP quality are searched "
        "(by bisection) for the largest file not above that PNG's size, so each row compares "
        "files of nearly equal size; the same is done at the size of kmq's own <i>.kmq</i> "
        "file, which holds the same pixels as the PNG (same PSNR and SSIM) in fewer bytes. "
        "PSNR (dB) and SSIM are against the image below; the highest PSNR at each size is in "
        "bold; B is bytes, q the encoder's quality. The plots also show the lossless WebP of "
        "kmq's pixels.</p>",
        _summary_table(report),
    ]
    for name, title_text in plots.FIGURES.items():
        if name in report.figures:
            parts.append(f'<img class="plot" data-figure="{name}" '
                         f'src="{_data_uri(report.figures[name], "image/png")}" '
                         f'alt="{html.escape(title_text)}">')
    parts.append("</section>")
    parts.append('<section><h2>The image</h2><figure data-codec="original" '
                 f'style="max-width:{min(width, 640)}px"><img src="{original_uri}" '
                 f'alt="the original image"><figcaption><b>original</b>: {width}x{height}, '
                 f"stored losslessly in this page</figcaption></figure></section>")
    for r in report.results:
        verdict_class = "kmq" if r.best("psnr") == "kmq-png" else "other"
        extra = (f"<br>{r.quantized.k} colors, {r.quantized.index_bits} bits per index; "
                 f".kmq {r.container.n_bytes:,} B, lossless WebP {r.webp_lossless.n_bytes:,} B")
        parts.append(
            f'<section class="result" id="k{r.k}" data-k="{r.k}"><h2>K = {r.k} '
            f"<small>({r.quantized.k} colors used)</small></h2>"
            f'<p class="verdict {verdict_class}">{html.escape(r.verdict())}</p>'
            f"{_swatches_html(r)}"
            '<div class="row">'
            '<figure data-codec="original-ref">'
            f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="original">'
            '<use href="#original"/></svg><figcaption><b>original</b></figcaption></figure>'
            + _figure_html(r.png, f"kmq PNG, K={r.k}", f"kmq at K={r.k}", extra)
            + _figure_html(r.jpeg, "JPEG", f"JPEG at quality {r.jpeg.quality}")
            + _figure_html(r.webp, "lossy WebP", f"lossy WebP at quality {r.webp.quality}")
            + "</div></section>")
    parts.append(
        '<p class="muted">JPEG: Pillow (libjpeg), 4:2:0 chroma, optimized Huffman tables. '
        "WebP: Pillow (libwebp), method 6. Sizes are whole files in bytes (1 kB = 1000 B). PSNR "
        "over the three 8-bit sRGB channels; SSIM as scikit-image computes it (7x7 window, data "
        f"range 255, mean over channels). Made in {report.seconds:.1f} s.</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


__all__ = ["render"]
