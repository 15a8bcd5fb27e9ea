"""kmq.report.html: the page is self-contained and the numbers it shows are right.

The numbers shown are checked against independent recomputations: images decoded by Pillow from
the page's own data: URIs, PSNR and SSIM by scikit-image. The parser (a small tree from the
standard library's HTMLParser) and the fixtures here also serve tests/test_report_cli.py.
"""

from __future__ import annotations

import base64
import io
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from kmq.report import FIGURES, make_report

KS = (4, 16, 64)


# ---------------------------------------------------------------------------------------------
# A small tree of the HTML, from the standard library's parser


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text: list[str] = []

    def all_text(self) -> str:
        return "".join(self.text) + "".join(c.all_text() for c in self.children)

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


_VOID = {"img", "meta", "br", "input", "link", "hr", "source", "use", "image"}


class TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None, f"unmatched </{tag}>"
        self.current = node.parent

    def handle_data(self, text):
        self.current.text.append(text)


def parse(text: str) -> Node:
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def data_uri_bytes(uri: str) -> tuple[str, bytes]:
    match = re.fullmatch(r"data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)", uri)
    assert match, uri[:60]
    return match.group(1), base64.b64decode(match.group(2), validate=True)


def decode_rgb(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------------------------------------
# Fixtures: a small photo (the graphic of few flat colors is in conftest.py)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """scikit-image's astronaut, downscaled to 64x64 (thousands of colors)."""
    return np.asarray(Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def photo_report(photo):
    return make_report(photo, KS, name="astronaut")


@pytest.fixture(scope="module")
def photo_page(photo_report) -> Node:
    return parse(photo_report.html())


def sections(page: Node) -> dict[int, Node]:
    return {int(s.attrs["data-k"]): s for s in page.find_all("section")
            if s.attrs.get("class") == "result"}


def caption_numbers(figure: Node) -> tuple[int, str, str]:
    caption = figure.find("figcaption")
    spans = {s.attrs["class"]: s.all_text() for s in caption.find_all("span")}
    n_bytes = int(spans["bytes"].removesuffix(" B").replace(",", ""))
    return n_bytes, spans["psnr"], spans["ssim"]


def close_to_shown(shown: str, value: float, decimals: int) -> bool:
    """``shown`` is ``value`` printed with ``decimals`` (allowing for the last digit's rounding)."""
    number = float(shown.split()[0])
    return abs(number - value) <= 0.5 * 10.0 ** -decimals + 1e-9


# ---------------------------------------------------------------------------------------------
# The page


def test_html_is_self_contained(photo_report, photo_page):
    text = photo_report.html()
    assert not re.search(r"https?://", text), "no network address anywhere in the page"
    assert "@import" not in text and "url(" not in text
    assert not photo_page.find_all("link") and not photo_page.find_all("script")
    images = photo_page.find_all("img")
    assert len(images) == 1 + 3 * len(KS) + len(FIGURES)  # original, 3 per K, the plots
    for node in photo_page.iter():
        for name in ("src", "href", "xlink:href"):
            value = node.attrs.get(name)
            if value is None:
                continue
            assert value.startswith(("data:image/", "#")), (node.tag, value[:40])
    for img in images:
        mime, blob = data_uri_bytes(img.attrs["src"])
        with Image.open(io.BytesIO(blob)) as im:
            im.load()
            assert Image.MIME[im.format] == mime
    # the original, embedded once as <img> and once for the rows' <use href="#original">
    svg_image = photo_page.find("image", id="original")
    assert data_uri_bytes(svg_image.attrs["href"]) == data_uri_bytes(
        photo_page.find("figure", data_codec="original").find("img").attrs["src"])
    assert len(photo_page.find_all("use", href="#original")) == len(KS)


def test_one_result_per_k(photo_page):
    found = sections(photo_page)
    assert sorted(found) == list(KS)
    for k, section in found.items():
        codecs = [f.attrs["data-codec"] for f in section.find_all("figure")]
        assert codecs == ["original-ref", "kmq-png", "jpeg", "webp"], k
        assert section.find("p").all_text().startswith(f"K = {k}: ")


def test_numbers_shown_equal_recomputations(photo, photo_page):
    original = decode_rgb(data_uri_bytes(
        photo_page.find("figure", data_codec="original").find("img").attrs["src"])[1])
    assert np.array_equal(original, photo)  # embedded losslessly
    for k, section in sections(photo_page).items():
        for codec in ("kmq-png", "jpeg", "webp"):
            figure = section.find("figure", data_codec=codec)
            _, blob = data_uri_bytes(figure.find("img").attrs["src"])
            n_bytes, psnr_text, ssim_text = caption_numbers(figure)
            assert n_bytes == len(blob) == int(figure.attrs["data-bytes"]), (k, codec)
            decoded = decode_rgb(blob)
            psnr = peak_signal_noise_ratio(original, decoded, data_range=255)
            ssim = structural_similarity(original, decoded, channel_axis=2, data_range=255)
            assert psnr_text.endswith(" dB") and close_to_shown(psnr_text, psnr, 2), (k, codec)
            assert close_to_shown(ssim_text, ssim, 4), (k, codec)
            assert math.isclose(float(figure.attrs["data-psnr"]), psnr, rel_tol=1e-9)
        # the verdict's sentence on kmq states the same size and PSNR
        verdict = section.find("p").all_text()
        png_bytes, png_psnr, _ = caption_numbers(section.find("figure", data_codec="kmq-png"))
        said = re.match(rf"K = {k}: kmq's PNG is ([\d.]+) (kB|B) at ([\d.]+ dB)", verdict)
        assert said, verdict
        if said.group(2) == "B":
            assert int(said.group(1)) == png_bytes
        else:
            assert close_to_shown(said.group(1), png_bytes / 1000, 1)
        assert said.group(3) == png_psnr


def test_kmq_result_is_an_indexed_png_with_the_palette_shown(photo_page):
    for k, section in sections(photo_page).items():
        _, blob = data_uri_bytes(
            section.find("figure", data_codec="kmq-png").find("img").attrs["src"])
        with Image.open(io.BytesIO(blob)) as im:
            assert im.format == "PNG" and im.mode == "P"
            indices = np.asarray(im)
            palette = np.array(im.getpalette()[:3 * (int(indices.max()) + 1)]).reshape(-1, 3)
        assert len(palette) <= k
        swatches = section.find("div", **{"class": "swatches"}).find_all("span")
        counts = np.bincount(indices.ravel(), minlength=len(palette))
        in_file = {"#{:02x}{:02x}{:02x}".format(*c): int(n)
                   for c, n in zip(palette, counts, strict=True) if n}
        shown = {s.attrs["data-color"]: int(s.attrs["data-count"]) for s in swatches}
        assert shown == in_file  # the PNG may store its palette in any order
        shown_counts = [int(s.attrs["data-count"]) for s in swatches]
        assert shown_counts == sorted(shown_counts, reverse=True)  # most used first
        for span in swatches:
            share = int(span.attrs["data-count"]) / indices.size
            assert span.attrs["title"].endswith(f"{100 * share:.2f}%")


def test_a_lossless_result_says_so(graphic):
    page = parse(make_report(graphic, [2, 8], figures=False).html())
    figure = sections(page)[8].find("figure", data_codec="kmq-png")
    assert math.isinf(float(figure.attrs["data-psnr"]))
    assert "lossless (PSNR inf)" in figure.all_text()


def test_downscaling_is_stated(photo):
    report = make_report(photo, [4], max_side=32, figures=False)
    assert "downscaled from 64x64" in report.html()
    original = parse(report.html()).find("figure", data_codec="original").find("img")
    assert decode_rgb(data_uri_bytes(original.attrs["src"])[1]).shape == (32, 32, 3)


def test_reading_warnings_are_shown(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 3] = 128
    path = tmp_path / "see-through.png"
    Image.fromarray(rgba, "RGBA").save(path)
    page = parse(make_report(path, [2], figures=False).html())
    shown = [p.all_text() for p in page.find_all("p") if "warning" in p.attrs.get("class", "")]
    assert shown == [f"Reading the image: {path}: transparency dropped (this use needs RGB)"]
