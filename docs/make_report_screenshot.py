"""Screenshot the top of a ``kmq report`` page for the README: docs/images/report.png.

    python docs/make_report_screenshot.py          # needs chromium at /usr/bin/chromium

The report is made on scikit-image's astronaut (no download) at the default K values, opened in
headless Chromium through Playwright (the system's Chromium; no browser is downloaded). The top
of the page down to the first plot and the K = 16 section are captured, stacked, and stored as
an indexed PNG of 256 colors made by kmq itself.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

import kmq
from kmq.codecs.png import encode_png
from kmq.report import make_report

OUT = Path(__file__).resolve().parent / "images" / "report.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDTH = 1280
SECTION = "#k16"


def main() -> None:
    from playwright.sync_api import sync_playwright

    report = make_report(data.astronaut(), name="astronaut (skimage.data)", seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "report.html"
        report.write_html(page_path)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(page_path.as_uri())
            plot = page.locator('img[data-figure="quality-vs-size"]').bounding_box()
            section = page.locator(SECTION).bounding_box()
            top = page.screenshot(full_page=True, clip={
                "x": 0, "y": 0, "width": WIDTH, "height": plot["y"] + plot["height"] + 12})
            k_row = page.screenshot(full_page=True, clip={
                "x": 0, "y": section["y"] - 12, "width": WIDTH, "height": section["height"] + 24})
            browser.close()
    parts = [np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")) for shot in (top, k_row)]
    rgb = np.ascontiguousarray(np.concatenate(parts, axis=0))
    q = kmq.quantize(rgb, 256, seed=0)
    OUT.write_bytes(encode_png(q.palette, q.indices, optimize=True))
    print(f"{OUT}: {OUT.stat().st_size:,} bytes, {WIDTH}x{rgb.shape[0]}, PSNR {q.psnr:.1f} dB "
          f"against the screenshot", file=sys.stderr)


if __name__ == "__main__":
    main()
