"""``kmq report``: the HTML is self-contained and its numbers are right, JPEG/WebP matching,
the PNG figures, and the command end to end.

The numbers shown are checked against independent recomputations: images decoded by Pillow from
the page's own data: URIs, PSNR and SSIM by scikit-image, JPEG and WebP files re-encoded with
Pillow directly.
"""

from __future__ import annotations

import base64
import io
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from kmq import CancelledError, OutputExistsError, cli
from kmq.report import FIGURES, make_report, match_size, output_paths, parse_ks

KS = (4, 16, 64)
runner = CliRunner()


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
# Fixtures: a small photo and a small graphic of few flat colors


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """scikit-image's astronaut, downscaled to 64x64 (thousands of colors)."""
    return np.asarray(Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def graphic() -> np.ndarray:
    """A 64x64 flat-color drawing of 5 colors: what palette compression is for."""
    img = np.full((64, 64, 3), (250, 250, 245), np.uint8)
    img[8:30, 6:40] = (200, 30, 40)
    img[34:60, 20:58] = (30, 90, 200)
    yy, xx = np.mgrid[:64, :64]
    img[(yy - 20) ** 2 + (xx - 48) ** 2 < 100] = (250, 200, 0)
    img[50:54, :] = (20, 20, 20)
    return img


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
        shown = [s.attrs["data-color"] for s in swatches]
        assert shown == ["#{:02x}{:02x}{:02x}".format(*c) for c in palette]
        counts = np.bincount(indices.ravel(), minlength=len(palette))
        assert [int(s.attrs["data-count"]) for s in swatches] == counts.tolist()
        for span, count in zip(swatches, counts, strict=True):
            assert span.attrs["title"].endswith(f"{100 * count / indices.size:.2f}%")


@pytest.mark.parametrize("codec", ["jpeg", "webp"])
def test_matching_picks_the_largest_file_not_above_the_png(photo, photo_page, codec):
    def encode(quality: int) -> bytes:  # the settings the report states, through Pillow directly
        buf = io.BytesIO()
        if codec == "jpeg":
            Image.fromarray(photo).save(buf, "JPEG", quality=quality, optimize=True)
        else:
            Image.fromarray(photo).save(buf, "WEBP", quality=quality, method=6)
        return buf.getvalue()

    for k, section in sections(photo_page).items():
        target = int(section.find("figure", data_codec="kmq-png").attrs["data-bytes"])
        figure = section.find("figure", data_codec=codec)
        quality = int(figure.attrs["data-quality"])
        _, blob = data_uri_bytes(figure.find("img").attrs["src"])
        again = encode(quality)
        assert len(again) == len(blob) <= target, (k, quality)
        if codec == "jpeg":
            assert again == blob
        if quality < 100:
            assert len(encode(quality + 1)) > target, (k, quality)


def test_match_size_holds_for_non_monotonic_encoders():
    sizes = [5, 9, 7, 12, 11, 20, 15, 30, 31, 29, 40]

    def encode(q):
        return bytes(sizes[q])

    for target in range(0, 45):
        q, blob = match_size(encode, target, (0, len(sizes) - 1))
        assert blob == encode(q)
        if sizes[0] > target:
            assert q == 0
            continue
        assert sizes[q] <= target
        assert q == len(sizes) - 1 or sizes[q + 1] > target


def test_palette_compression_wins_on_a_graphic(graphic):
    report = make_report(graphic, [2, 8], figures=False)
    small, enough = report.results
    assert enough.quantized.k == 5 and math.isinf(enough.png.psnr)  # all 5 colors: lossless
    assert enough.best("psnr") == "kmq-png"
    assert "kmq is ahead" in enough.verdict().lower()
    assert small.quantized.k == 2 and small.png.psnr < 40
    page = parse(report.html())
    assert "lossless" in sections(page)[8].find("figure", data_codec="kmq-png").all_text()


def test_photo_verdict_names_the_codec_ahead(photo_report):
    for r in photo_report.results:
        best = r.best("psnr")
        winner = {"kmq-png": r.png, "jpeg": r.jpeg, "webp": r.webp}[best]
        assert winner.n_bytes <= r.png.n_bytes
        for enc in (r.png, r.jpeg, r.webp):
            if enc.n_bytes <= r.png.n_bytes:
                assert enc.psnr <= winner.psnr
        sentence = {"kmq-png": "kmq is ahead", "jpeg": "jpeg is ahead",
                    "webp": "lossy webp is ahead"}[best]
        assert sentence in r.verdict().lower()


def test_results_equal_quantize(photo, photo_report):
    import kmq

    for r in photo_report.results:
        q = kmq.quantize(photo, r.k, seed=0)
        assert np.array_equal(q.palette, r.quantized.palette)
        assert np.array_equal(q.indices, r.quantized.indices)


def test_figures_are_written_and_open(photo_report, tmp_path):
    path = tmp_path / "out" / "report.html"
    path.parent.mkdir()
    written = photo_report.write_html(path)
    assert written == [path, *output_paths(path).values()]
    assert [p.name for p in written[1:]] == [f"{name}.png" for name in FIGURES]
    for figure in written[1:]:
        assert figure.parent == tmp_path / "out" / "report-files"
        with Image.open(figure) as im:
            im.load()
            assert im.format == "PNG" and im.width >= 600 and im.height >= 100
    assert parse(path.read_text("utf-8")).find("title").all_text() == "kmq report: astronaut"
    before = {p: p.read_bytes() for p in written}
    with pytest.raises(OutputExistsError):
        photo_report.write_html(path)
    (tmp_path / "out" / "report.html").unlink()
    with pytest.raises(OutputExistsError):  # a figure alone is enough to refuse
        photo_report.write_html(path)
    assert not path.exists()
    assert photo_report.write_html(path, overwrite=True) == written
    assert all(p.read_bytes() == before[p] for p in written)


def test_progress_cancel_and_silence(photo, capsys):
    seen = []
    make_report(photo[:24, :24], [2, 4], figures=False,
                progress=lambda stage, f: seen.append((stage, f)))
    fractions = [f for _, f in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert any(stage.startswith("K = 4") for stage, _ in seen)
    with pytest.raises(CancelledError):
        make_report(photo[:24, :24], [2, 4], figures=False,
                    progress=lambda stage, f: stage.startswith("K = 4"))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_downscaling_is_stated(photo):
    report = make_report(photo, [4], max_side=32, figures=False)
    assert report.size == (32, 32) and report.original_size == (64, 64)
    assert report.results[0].quantized.indices.shape == (32, 32)
    assert "downscaled from 64x64" in report.html()


def test_parse_ks():
    assert parse_ks("256,4, 16,4") == [4, 16, 256]
    for bad in ("", "4,,8", "x", "1,4", "257", "4.5"):
        with pytest.raises(ValueError):
            parse_ks(bad)
    with pytest.raises(ValueError):
        make_report(np.zeros((8, 8, 3), np.uint8), [1])


# ---------------------------------------------------------------------------------------------
# The command


@pytest.fixture
def image_file(tmp_path, photo) -> Path:
    path = tmp_path / "astro.png"
    Image.fromarray(photo[:32, :32]).save(path)
    return path


def run(*args: object):
    return runner.invoke(cli.app, ["report", *map(str, args)])


def test_cli_writes_the_report(image_file, tmp_path):
    out = tmp_path / "r.html"
    result = run(image_file, "-k", "8,4", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    assert out.is_file()
    page = parse(out.read_text("utf-8"))
    assert sorted(sections(page)) == [4, 8]
    for figure in output_paths(out).values():
        with Image.open(figure) as im:
            assert im.format == "PNG"
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"^\s+\d+\s", line)]
    assert [row[0] for row in rows] == ["4", "8"]
    psnr_shown = {int(row[0]): float(row[2]) for row in rows}
    for k, section in sections(page).items():
        assert f"{psnr_shown[k]:.2f} dB" in section.find("figure", data_codec="kmq-png").all_text()


@pytest.mark.parametrize("ks", ["4,x", "1,4", "300", "4,,8"])
def test_cli_bad_k_list_is_a_usage_error(image_file, tmp_path, ks):
    result = run(image_file, "-k", ks, "-o", tmp_path / "r.html")
    assert result.exit_code == 2
    assert not (tmp_path / "r.html").exists()


def test_cli_unreadable_input(tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"this is not a PNG")
    for source in (bad, tmp_path / "missing.png"):
        result = run(source, "-k", "4", "-o", tmp_path / "r.html")
        assert result.exit_code == 3, result.output
        assert "kmq: error: " in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_cli_never_overwrites_without_force(image_file, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("keep me")
    result = run(image_file, "-k", "4", "-o", out)
    assert result.exit_code == 5 and "exists" in result.stderr
    assert out.read_text() == "keep me"
    out.unlink()
    figure = output_paths(out)["palettes"]
    figure.parent.mkdir()
    figure.write_bytes(b"keep me too")
    assert run(image_file, "-k", "4", "-o", out).exit_code == 5
    assert not out.exists() and figure.read_bytes() == b"keep me too"
    result = run(image_file, "-k", "4", "-o", out, "--force", "--quiet")
    assert result.exit_code == 0, result.output
    assert out.is_file() and figure.read_bytes().startswith(b"\x89PNG")


def test_cli_refuses_the_input_as_output_and_a_missing_directory(image_file, tmp_path):
    assert run(image_file, "-k", "4", "-o", image_file, "--force").exit_code == 5
    assert run(image_file, "-k", "4", "-o", tmp_path / "nope" / "r.html").exit_code == 2
