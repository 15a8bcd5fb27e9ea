"""The report's plots, drawn by matplotlib as PNG files (:data:`FIGURES`).

matplotlib is an optional part, ``pip install 'kmq[report]'``: this module imports it only when
a figure is drawn (:func:`require_matplotlib`), so ``import kmq.report`` works without it.
Figures are drawn on matplotlib's Agg canvas, attached to each figure: ``matplotlib.pyplot`` is
never imported, so the process-wide backend of an interactive session is left alone. If
``MPLCONFIGDIR`` is unset it is pointed at a per-user folder under the temporary directory
before matplotlib is first imported.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kmq.errors import require
from kmq.report.words import CODEC_NAMES

if TYPE_CHECKING:
    from kmq.report.measure import Encoded, KResult

#: The PNG figures written beside the HTML, by name (without ``.png``), with their titles.
FIGURES = {
    "quality-vs-size": "PSNR and SSIM against file size: kmq, JPEG and WebP",
    "quality-vs-k": "PSNR, SSIM and file size against K",
    "palettes": "The palettes, each color as wide as its share of the pixels",
}

#: PSNR at which a lossless result is drawn on the plots (its PSNR is infinite).
_PLOT_PSNR_LOSSLESS = 60.0


def _matplotlib_config_dir() -> None:
    """Point ``MPLCONFIGDIR`` at a writable per-user folder when it is unset (before the first
    import of matplotlib; matplotlib reads it then)."""
    if "MPLCONFIGDIR" not in os.environ:
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        folder = Path(tempfile.gettempdir()) / f"kmq-matplotlib-{uid}"
        folder.mkdir(mode=0o700, exist_ok=True)
        os.environ["MPLCONFIGDIR"] = str(folder)


def require_matplotlib():
    """matplotlib, imported; or :class:`kmq.MissingExtraError` (exit 2) naming the extra that
    installs it, ``pip install 'kmq[report]'``."""
    _matplotlib_config_dir()
    return require("matplotlib", "report", "kmq report (for its plots)")


def _figure(width: float, height: float):
    """A matplotlib figure drawn by the Agg backend (set on the figure itself, no pyplot)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _plot_psnr(values) -> np.ndarray:
    return np.array([_PLOT_PSNR_LOSSLESS if math.isinf(v) else v for v in values])


#: Line style of each codec on the plots.
_STYLE: dict[str, dict[str, Any]] = {
    "kmq-png": {"color": "C0", "marker": "o", "linestyle": "-"},
    "kmq": {"color": "C0", "marker": "s", "linestyle": "--", "alpha": 0.6},
    "webp-lossless": {"color": "C2", "marker": "^", "linestyle": ":"},
    "jpeg": {"color": "C3", "marker": "x", "linestyle": "-"},
    "webp": {"color": "C1", "marker": "D", "linestyle": "-", "markersize": 4},
}

#: Round numbers for a log axis, from the sparsest series to the densest: the sparsest giving
#: at least :data:`_MIN_TICKS` ticks in the axis' range is used.
_MANTISSAS = ((1,), (1, 2, 5), (1, 2, 3, 5), (1, 1.5, 2, 3, 4, 5, 6, 8),
              (1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9))
_MIN_TICKS = 4
#: Share of the quality-vs-size axes' width kept right of kmq's largest PNG for its K label.
_LABEL_ROOM = 0.13


def size_ticks(lo: float, hi: float) -> list[float]:
    """Round values for a log axis from ``lo`` to ``hi`` (both > 0): 1-2-5 and denser series,
    enough of them for a range of less than a decade; values near the ends and the middle,
    rounded to as few digits as tell them apart, when even the densest series has too few.

    Examples
    --------
    >>> from kmq.report.plots import size_ticks
    >>> size_ticks(0.8, 150), size_ticks(28, 45)
    ([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0], [30.0, 35.0, 40.0, 45.0])
    """
    ticks: list[float] = []
    for mantissas in _MANTISSAS:
        ticks = [v for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                 for m in mantissas if lo <= (v := round(m * 10.0 ** e, 12)) <= hi]
        if len(ticks) >= _MIN_TICKS:
            return ticks
    if len(ticks) >= 2:
        return ticks
    for digits in range(2, 8):  # a range too narrow for the series: the ends and the middle
        ticks = sorted({v for v in (float(f"{x:.{digits}g}") for x in np.geomspace(lo, hi, 3))
                        if lo <= v <= hi})
        if len(ticks) >= 2:
            break
    return ticks


def kb_label(value: float, _position=None) -> str:
    """A size in kB as a plain number: ``0.5``, ``20``, ``1,500`` (no powers of ten).

    Examples
    --------
    >>> from kmq.report.plots import kb_label
    >>> [kb_label(v) for v in (0.25, 3.0, 35.0, 1500.0)]
    ['0.25', '3', '35', '1,500']
    """
    return f"{value:,.0f}" if value >= 1000 else f"{value:g}"


def _plain_numbers(ax, axis: str = "y") -> None:
    """Plain tick labels on a linear axis: no offset (``+0.98``) and no powers of ten."""
    ax.ticklabel_format(axis=axis, style="plain", useOffset=False)


def figures(results: list[KResult], name: str) -> dict:
    """The figures of :data:`FIGURES` as matplotlib :class:`~matplotlib.figure.Figure`
    objects, by name (on an Agg canvas; :func:`draw` makes the PNG files)."""
    require_matplotlib()
    return {"quality-vs-size": _quality_vs_size(results, name),
            "quality-vs-k": _quality_vs_k(results, name),
            "palettes": _palettes(results, name)}


def draw(results: list[KResult], name: str) -> dict[str, bytes]:
    """The figures of :data:`FIGURES` as PNG files, by name (:func:`require_matplotlib`)."""
    return {key: _png_bytes(fig) for key, fig in figures(results, name).items()}


def _matched(results: list[KResult], codec: str) -> list[Encoded]:
    """The distinct files of a lossy codec the report matched, by size."""
    files = {}
    for r in results:
        for enc in ((r.jpeg, r.jpeg_small) if codec == "jpeg" else (r.webp, r.webp_small)):
            files[enc.quality] = enc
    return sorted(files.values(), key=lambda e: e.n_bytes)


def _quality_vs_size(results: list[KResult], name: str):
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig = _figure(11, 4.6)
    axes = fig.subplots(1, 2)
    kmq_psnr = _plot_psnr([r.png.psnr for r in results])
    kmq_ssim = np.array([r.png.ssim for r in results])
    series: dict[str, tuple[Any, Any, Any]] = {
        "kmq-png": ([r.png.n_bytes for r in results], kmq_psnr, kmq_ssim),
        "kmq": ([r.container.n_bytes for r in results], kmq_psnr, kmq_ssim),
        "webp-lossless": ([r.webp_lossless.n_bytes for r in results], kmq_psnr, kmq_ssim),
    }
    for codec in ("jpeg", "webp"):
        files = _matched(results, codec)
        series[codec] = ([e.n_bytes for e in files], _plot_psnr([e.psnr for e in files]),
                         [e.ssim for e in files])
    labels = {"kmq-png": "kmq PNG", "kmq": "kmq .kmq (same pixels)",
              "webp-lossless": "lossless WebP (same pixels)",
              "jpeg": "JPEG at kmq's sizes", "webp": "lossy WebP at kmq's sizes"}
    sizes = np.concatenate([np.asarray(v[0], np.float64) for v in series.values()]) / 1000
    lo, hi = sizes.min() / 1.12, sizes.max() * 1.12  # room for the markers
    # and right of kmq's largest PNG, room for its K label: the labels sit right of and below
    # their points, where the other series (smaller at equal quality) do not go
    last = math.log(max(series["kmq-png"][0]) / 1000)
    hi = max(hi, math.exp((last - _LABEL_ROOM * math.log(lo)) / (1 - _LABEL_ROOM)))
    for ax, column, ylabel in ((axes[0], 1, "PSNR (dB)"), (axes[1], 2, "SSIM")):
        for codec, values in series.items():
            ax.plot(np.asarray(values[0]) / 1000, values[column], label=labels[codec],
                    **_STYLE[codec])
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_xticks(size_ticks(lo, hi))
        ax.xaxis.set_major_formatter(FuncFormatter(kb_label))
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor ticks draw grid lines only
        ax.margins(y=0.12)  # room for the K labels above and below the end points
        _plain_numbers(ax)
        for r, x, y in zip(results, series["kmq-png"][0], series["kmq-png"][column], strict=True):
            ax.annotate(f"K={r.k}", (x / 1000, y), textcoords="offset points", xytext=(5, -4),
                        ha="left", va="top", fontsize=8, color="C0")
        ax.set_xlabel("file size (kB = 1000 bytes, log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    if any(math.isinf(r.png.psnr) for r in results):
        axes[0].set_title(f"lossless results drawn at {_PLOT_PSNR_LOSSLESS:g} dB", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize=9,
               frameon=False)
    fig.suptitle(f"{name}: quality against file size (higher and further left is better)",
                 fontsize=11)
    return fig


def _quality_vs_k(results: list[KResult], name: str):
    from matplotlib.ticker import FuncFormatter

    fig = _figure(11, 3.6)
    axes = fig.subplots(1, 3)
    ks = [r.k for r in results]
    axes[0].plot(ks, _plot_psnr([r.png.psnr for r in results]), **_STYLE["kmq-png"])
    axes[0].set_ylabel("PSNR (dB)")
    if any(math.isinf(r.png.psnr) for r in results):
        axes[0].set_title(f"lossless drawn at {_PLOT_PSNR_LOSSLESS:g} dB", fontsize=9)
    axes[1].plot(ks, [r.png.ssim for r in results], **_STYLE["kmq-png"])
    axes[1].set_ylabel("SSIM")
    for codec, values in (("kmq-png", [r.png.n_bytes for r in results]),
                          ("kmq", [r.container.n_bytes for r in results]),
                          ("webp-lossless", [r.webp_lossless.n_bytes for r in results])):
        axes[2].plot(ks, np.asarray(values) / 1000, label=CODEC_NAMES[codec], **_STYLE[codec])
    axes[2].set_ylabel("file size (kB = 1000 bytes)")
    axes[2].yaxis.set_major_formatter(FuncFormatter(kb_label))
    top = max(max(r.png.n_bytes, r.webp_lossless.n_bytes) for r in results) / 1000
    axes[2].set_ylim(0, 1.5 * top)  # headroom: the legend goes where no line does
    axes[2].legend(fontsize=8, loc="best")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("K (colors)")
        ax.grid(True, alpha=0.3)
    for ax in axes[:2]:
        _plain_numbers(ax)
    fig.suptitle(f"{name}: kmq against K", fontsize=11)
    return fig


def _palettes(results: list[KResult], name: str):
    from matplotlib.ticker import PercentFormatter

    from kmq.palette_files import swatch_widths

    width = 1000
    strip = np.empty((len(results), width, 3), np.uint8)
    for row, r in enumerate(results):
        widths = swatch_widths(r.shares, width)
        strip[row] = np.repeat(r.quantized.palette, widths, axis=0)
    fig = _figure(11, 0.42 * len(results) + 1.0)
    ax = fig.subplots()
    ax.imshow(strip, aspect="auto", interpolation="nearest", extent=(0, 1, len(results) - 0.5,
                                                                      -0.5))
    ax.set_yticks(range(len(results)), [f"K={r.k}" for r in results])
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1))
    ax.set_xlabel("share of the pixels")
    ax.set_title(f"{name}: palettes, most used color first", fontsize=11)
    return fig


__all__ = ["FIGURES", "draw", "figures", "kb_label", "require_matplotlib", "size_ticks"]
