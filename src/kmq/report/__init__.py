"""A self-contained HTML report: an image quantized at several K, against JPEG and WebP.

:func:`make_report` quantizes one image at every K asked for (one color histogram serves them
all), encodes each result as the indexed PNG ``kmq compress`` writes, and measures it. For each
K it then looks for the JPEG quality and the lossy WebP quality whose file is the largest one
not above the kmq PNG's size, and measures those files too, so every comparison is made at
(nearly) equal file size. The lossless WebP and the ``.kmq`` container of the very same indices
are sized as well. The result, a :class:`Report`, renders as one HTML file
(:meth:`Report.html`, :meth:`Report.write_html`) whose pictures and plots are all embedded as
``data:`` URIs. The plots are also written beside the HTML as PNG files, in ``<name>-files/``.

The modules, in the order the work runs: :mod:`~kmq.report.measure` (quantize, encode, match
sizes, measure), :mod:`~kmq.report.plots` (matplotlib figures), :mod:`~kmq.report.words`
(verdicts, summary, the terminal's table), :mod:`~kmq.report.html` (the page) and
:mod:`~kmq.report.output` (where the files go, and writing them).

Examples
--------
>>> import numpy as np
>>> from kmq.report import make_report
>>> img = np.zeros((24, 32, 3), np.uint8); img[:, 16:] = [200, 40, 40]; img[12:, :8] = 90
>>> report = make_report(img, [2, 4], figures=False)
>>> [(r.k, r.quantized.k) for r in report.results]
[(2, 2), (4, 3)]
>>> report.results[1].png.psnr   # three colors, all kept: lossless
inf
>>> "<img" in report.html() and "http" not in report.html()
True
"""

from kmq.report.measure import (
    DEFAULT_KS,
    JPEG_OPTIONS,
    JPEG_QUALITIES,
    WEBP_LOSSY_OPTIONS,
    WEBP_QUALITIES,
    Encoded,
    KResult,
    Report,
    encode_jpeg,
    encode_webp_lossy,
    make_report,
    match_size,
    parse_ks,
)
from kmq.report.output import output_paths
from kmq.report.plots import FIGURES
from kmq.report.words import CODEC_NAMES, overall, summary_lines

__all__ = ["CODEC_NAMES", "DEFAULT_KS", "FIGURES", "JPEG_OPTIONS", "JPEG_QUALITIES",
           "WEBP_LOSSY_OPTIONS", "WEBP_QUALITIES", "Encoded", "KResult", "Report", "encode_jpeg",
           "encode_webp_lossy", "make_report", "match_size", "output_paths", "overall",
           "parse_ks", "summary_lines"]
