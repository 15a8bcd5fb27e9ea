"""Draw the README's pictures: one photo at K=16 in each mode (original, sRGB, OKLab, dithered).

    python docs/make_figures.py        # writes docs/images/modes.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data

import kmq

OUT = Path(__file__).resolve().parent / "images" / "modes.png"


def main() -> None:
    photo = np.ascontiguousarray(data.astronaut()[20:276, 130:386])  # 256x256, offline sample
    k = 16
    panels = [("original", photo)]
    for label, options in [("sRGB, K=16", {}), ("OKLab, K=16", {"color_space": "oklab"}),
                           ("sRGB, K=16, dithered", {"dither": 1.0})]:
        q = kmq.quantize(photo, k, seed=0, **options)
        panels.append((f"{label}  PSNR {q.psnr:.1f} dB", q.to_rgb()))
    h, w = photo.shape[:2]
    sheet = Image.new("RGB", (len(panels) * (w + 8) - 8, h + 22), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, rgb) in enumerate(panels):
        sheet.paste(Image.fromarray(rgb), (i * (w + 8), 22))
        draw.text((i * (w + 8) + 2, 4), label, fill="black")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(OUT, optimize=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
