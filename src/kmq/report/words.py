"""The report in words: numbers as the page prints them, each K's verdict, the summary and the
terminal's table. Shared by the HTML page and ``kmq report``'s output; kB are 1000 bytes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kmq.report.measure import Encoded, KResult, Report

#: Codec keys and their names in the report.
CODEC_NAMES = {
    "kmq-png": "kmq PNG",
    "kmq": "kmq .kmq",
    "webp-lossless": "lossless WebP of the indices",
    "jpeg": "JPEG",
    "webp": "lossy WebP",
}


def finite(value: float) -> float:
    """A measure to compare: ``nan`` (SSIM of a tiny image) ranks below everything."""
    return -math.inf if math.isnan(value) else value


def kb(n_bytes: int) -> str:
    """``512 B`` or ``12.3 kB``."""
    return f"{n_bytes} B" if n_bytes < 1000 else f"{n_bytes / 1000:.1f} kB"


def db(psnr: float) -> str:
    """``31.42 dB``, or ``lossless (PSNR inf)``."""
    return "lossless (PSNR inf)" if math.isinf(psnr) else f"{psnr:.2f} dB"


def ssim_text(value: float) -> str:
    """SSIM to 4 decimals, ``n/a`` when not measured."""
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _margin(a: float, b: float) -> str:
    if math.isinf(a) and not math.isinf(b):
        return "lossless, i.e. infinitely"
    return f"{a - b:.2f} dB"


def _cap(text: str) -> str:
    """Capitalized to start a sentence; kmq's name stays lower-case."""
    return text if text.startswith("kmq") else text[:1].upper() + text[1:]


def _ahead(own: Encoded, rivals, best: str, what: str = "kmq") -> str:
    """Sentences on who has the highest PSNR at ``own``'s size, with the margins."""
    rivals = [e for e in rivals if e.n_bytes <= own.n_bytes]
    subject = what if what == "kmq" else f"the {what}"
    if best == own.codec:
        if not rivals:
            return f"{_cap(subject)} is ahead: neither JPEG nor WebP makes a file this small."
        margins = " and ".join(f"{_margin(own.psnr, e.psnr)} above {CODEC_NAMES[e.codec]}"
                               for e in rivals)
        return f"{_cap(subject)} is ahead at this size: {margins}."
    winner = next(e for e in rivals if e.codec == best)
    text = (f"{_cap(CODEC_NAMES[best])} is ahead at this size, "
            f"{_margin(winner.psnr, own.psnr)} above {subject}")
    beaten = [e for e in rivals if finite(e.psnr) < finite(own.psnr)]
    if beaten:
        text += "; " + " and ".join(f"{subject} is {_margin(own.psnr, e.psnr)} above "
                                    f"{CODEC_NAMES[e.codec]}" for e in beaten)
    return text + "."


def verdict(r: KResult) -> str:
    """:meth:`KResult.verdict`: the sizes, the measures and who is ahead at kmq's sizes."""
    png = r.png
    text = [f"K = {r.k}: kmq's PNG is {kb(png.n_bytes)} at {db(png.psnr)} "
            f"(SSIM {ssim_text(png.ssim)})."]
    for enc in (r.jpeg, r.webp):
        name = CODEC_NAMES[enc.codec]
        if enc.n_bytes <= png.n_bytes:
            text.append(f"At {kb(enc.n_bytes)} {name} (quality {enc.quality}) reaches "
                        f"{db(enc.psnr)} (SSIM {ssim_text(enc.ssim)}).")
        else:
            text.append(f"{_cap(name)} cannot get this small: its smallest file (quality "
                        f"{enc.quality}) is {kb(enc.n_bytes)}, at {db(enc.psnr)}.")
    text.append(_ahead(png, (r.jpeg, r.webp), r.best("psnr")))
    best_ssim = r.best("ssim")
    if best_ssim != r.best("psnr") and not math.isnan(png.ssim):
        text.append(f"By SSIM {'kmq' if best_ssim == 'kmq-png' else CODEC_NAMES[best_ssim]} "
                    f"is ahead.")
    small = r.container
    text.append(f"kmq's own .kmq file of the same pixels is {kb(small.n_bytes)} (lossless "
                f"WebP of them: {kb(r.webp_lossless.n_bytes)}).")
    rivals = [e for e in (r.jpeg_small, r.webp_small) if e.n_bytes <= small.n_bytes]
    if rivals:
        text.append("At that size " + " and ".join(
            f"{CODEC_NAMES[e.codec]} (quality {e.quality}) reaches {db(e.psnr)}"
            for e in rivals) + ".")
    text.append(_ahead(small, rivals, r.best("psnr", container=True), ".kmq file"))
    return " ".join(text)


def _at(wins: list[int], total: int) -> str:
    if not wins:
        return "at no K tried"
    if len(wins) == total:
        return "at every K tried"
    return f"at K = {', '.join(map(str, wins))} of the {total} K tried"


def overall(report: Report) -> str:
    """The report's one-paragraph summary: at which K kmq's PNG and .kmq file have the highest
    PSNR among files of their size (against JPEG and lossy WebP)."""
    n = len(report.results)
    png = [r.k for r in report.results if r.best("psnr") == "kmq-png"]
    small = [r.k for r in report.results if r.best("psnr", container=True) == "kmq"]
    text = (f"kmq's PNG has the highest PSNR among files of its size (against JPEG and lossy "
            f"WebP) {_at(png, n)}; its .kmq file {_at(small, n)}.")
    if not png and not small:
        text += (" On this image palette compression does not pay off against lossy codecs at "
                 "these sizes; it does on graphics and images of few colors.")
    return text


def summary_lines(report: Report) -> list[str]:
    """A plain-text table of the report (one row per K) and its summary, for a terminal."""
    lines = [f"{'K':>4} {'kmq PNG B':>10} {'PSNR':>7} {'JPEG B':>9} {'PSNR':>7} {'WebP B':>9} "
             f"{'PSNR':>7}  ahead   {'.kmq B':>9}  ahead at .kmq size"]

    def psnr(value: float) -> str:
        return "inf" if math.isinf(value) else f"{value:.2f}"

    def who(codec: str) -> str:
        return "kmq" if codec in ("kmq", "kmq-png") else codec

    for r in report.results:
        lines.append(f"{r.k:>4} {r.png.n_bytes:>10,} {psnr(r.png.psnr):>7} {r.jpeg.n_bytes:>9,} "
                     f"{psnr(r.jpeg.psnr):>7} {r.webp.n_bytes:>9,} {psnr(r.webp.psnr):>7}  "
                     f"{who(r.best('psnr')):<7} {r.container.n_bytes:>9,}  "
                     f"{who(r.best('psnr', container=True))}")
    lines.append(overall(report))
    return lines


__all__ = ["CODEC_NAMES", "overall", "summary_lines", "verdict"]
