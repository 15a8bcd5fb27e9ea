"""``kmq serve``'s page in a real browser: Playwright (sync API) driving Debian's chromium.

The browser is never downloaded: the tests use ``/usr/bin/chromium`` (``make test`` installs it
with apt when missing) and skip with a reason where it is absent, unless ``CI`` is set, where a
missing browser fails. A screenshot of the page is saved to ``test-artifacts/serve.png``.

Run as a script to draw the README's picture (a full photo at 16 colors)::

    .venv/bin/python tests/test_web_browser.py docs/images/serve.png
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import kmq
from kmq.web import BackgroundServer, ServerConfig, create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "test-artifacts" / "serve.png"
VIEWPORT = {"width": 1280, "height": 800}
#: A phone held upright.
PHONE = {"width": 390, "height": 844}
#: The README's picture: tall enough to show the palette.
DOC_VIEWPORT = {"width": 1400, "height": 1000}
#: Milliseconds to wait for a result in the page.
WAIT_MS = 60_000


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"chromium not found at {CHROMIUM} (make browser, or apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the browser tests cannot run: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(create_app(ServerConfig(max_upload_bytes=5_000_000))) as running:
        yield running


@pytest.fixture
def open_page(browser, server):
    """Open the page at a viewport size, once its settings are loaded; checks afterwards that
    it raised no JavaScript error."""
    contexts, errors = [], []

    def opened(viewport: dict = VIEWPORT):
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        wait_for_state(page, "empty")
        return page

    yield opened
    for context in contexts:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(open_page):
    return open_page()


def wait_for_state(page, state: str) -> None:
    page.wait_for_function("(s) => document.body.dataset.state === s", arg=state,
                           timeout=WAIT_MS)


def stats(page) -> dict[str, str]:
    """The numbers on display, as their raw ``data-value``s, by cell id."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#stats td')]
        .map((td) => [td.id, td.dataset.value]))""")


def wait_for_result(page, k: int, fmt: str = "png") -> None:
    """Wait until the page shows the result for K colors in ``fmt``, and no request of the
    page is still on its way (every answer that could come has come)."""
    page.wait_for_function(
        """([k, fmt]) => document.body.dataset.state === 'ready'
            && document.body.dataset.requests === '0'
            && document.getElementById('result').dataset.k === String(k)
            && document.getElementById('result').dataset.format === fmt""",
        arg=[k, fmt], timeout=WAIT_MS)


def kb(n_bytes: int) -> str:
    """Bytes as the page prints them: decimal kB, as kmq's report."""
    return f"{n_bytes} B" if n_bytes < 1000 else (
        f"{n_bytes / 1000:.1f} kB" if n_bytes < 1_000_000 else f"{n_bytes / 1e6:.2f} MB")


def shown_change(page) -> int:
    """The size change the page prints, in percent: "-62%" or "+100%"."""
    text = page.inner_text("#stat-change")
    assert re.fullmatch(r"[+-]\d+%", text), text
    return int(text[:-1])


def shown_larger(page) -> bool:
    """Whether the page marks the result as larger than the input."""
    return page.eval_on_selector("#stat-change", "(el) => el.classList.contains('larger')")


def photo_file(tmp_path: Path, name: str, crop=(slice(0, 256), slice(128, 384)),
               **save) -> Path:
    path = tmp_path / name
    Image.fromarray(np.ascontiguousarray(data.astronaut()[crop])).save(path, **save)
    return path


def download(page, tmp_path: Path) -> Path:
    with page.expect_download() as info:
        page.click("#download")
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return target


def test_upload_slider_result_download(page, tmp_path):
    # a file that is not an image: a one-line error, and the page keeps working
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                          "buffer": b"not an image\n"}])
    wait_for_state(page, "error")
    assert "not an image file" in page.inner_text("#status")

    photo = photo_file(tmp_path, "astronaut.png")
    page.set_input_files("#file", str(photo))
    wait_for_result(page, 64)
    at_64 = stats(page)
    assert at_64["stat-size"] == str(256 * 256)
    assert at_64["stat-input-bytes"] == str(photo.stat().st_size)
    assert page.inner_text("#stat-input-bytes") == kb(photo.stat().st_size)
    assert 2 < int(at_64["stat-k"]) <= 64 and float(at_64["stat-psnr"]) > 25
    assert page.locator("#palette li").count() == int(at_64["stat-k"])

    # the K slider, by keyboard: each key press is a new request, the older ones are dropped
    page.focus("#k")
    page.keyboard.press("Home")
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    assert page.input_value("#k") == "8"
    wait_for_result(page, 8)
    at_8 = stats(page)
    assert int(at_8["stat-k"]) <= 8 and page.locator("#palette li").count() == int(at_8["stat-k"])
    assert float(at_8["stat-psnr"]) < float(at_64["stat-psnr"])
    assert int(at_8["stat-output-bytes"]) < int(at_64["stat-output-bytes"])
    assert "8 colors" in page.inner_text("#result-tag")
    # sizes in decimal kB, and the change in percent: smaller here
    out = int(at_8["stat-output-bytes"])
    assert page.inner_text("#stat-output-bytes") == f"{kb(out)} (png)"
    assert shown_change(page) == pytest.approx(100 * (out / photo.stat().st_size - 1), abs=0.5)
    assert page.inner_text("#stat-change").startswith("-") and not shown_larger(page)
    assert float(at_8["stat-change"]) == pytest.approx(out / photo.stat().st_size - 1, abs=1e-6)
    shares = page.locator("#palette .share").all_inner_texts()
    assert all(text.endswith("%") for text in shares)

    png = download(page, tmp_path)
    assert png.name == "astronaut-kmq.png" and png.stat().st_size == int(at_8["stat-output-bytes"])
    with Image.open(png) as im:
        assert im.size == (256, 256)
        rgb = np.asarray(im.convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) == int(at_8["stat-k"]) <= 8

    # .kmq: the container downloads, a PNG preview is displayed
    page.select_option("#format", "kmq")
    wait_for_result(page, 8, "kmq")
    assert page.get_attribute("#result", "src").startswith("data:image/png;base64,")
    container = kmq.decode(download(page, tmp_path).read_bytes())
    assert (container.width, container.height) == (256, 256) and len(container.palette) <= 8
    assert np.array_equal(container.to_rgb(), rgb)

    # zoom (buttons and wheel), pan when zoomed, and the split line
    scale = float(page.get_attribute("#zoom-value", "data-value"))
    page.click("#zoom-in")
    zoomed = float(page.get_attribute("#zoom-value", "data-value"))
    assert zoomed == pytest.approx(scale * 1.5, rel=1e-6)
    box = page.locator("#viewer").bounding_box()
    cx, cy = box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_function("(z) => Number(document.getElementById('zoom-value').dataset.value)"
                           " > z", arg=zoomed)
    before = page.evaluate("document.getElementById('layer').style.transform")
    page.mouse.down()
    page.mouse.move(cx - 120, cy - 80, steps=4)
    page.mouse.up()
    assert page.evaluate("document.getElementById('layer').style.transform") != before
    clip = page.evaluate("document.getElementById('result').style.clipPath")
    handle = page.locator("#handle").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.25, cy, steps=4)
    page.mouse.up()
    assert page.get_attribute("#handle", "aria-valuenow") == "25"
    assert page.evaluate("document.getElementById('result').style.clipPath") != clip

    # back to a view that shows both sides, and a picture of the page as a test artifact
    page.click("#zoom-fit")
    ARTIFACT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACT))
    with Image.open(ARTIFACT) as shot:
        assert shot.size == (VIEWPORT["width"], VIEWPORT["height"])
    print(f"screenshot: {ARTIFACT}")


def test_max_size_gives_a_file_within_it_or_says_why_not(page, tmp_path):
    photo = photo_file(tmp_path, "astronaut.png")
    page.set_input_files("#file", str(photo))
    wait_for_result(page, 64)
    full = int(stats(page)["stat-output-bytes"])
    budget_kb = round(full / 2000, 1)  # half the 64-color file, in kB
    page.fill("#max-kb", str(budget_kb))
    page.wait_for_function(
        """(b) => document.body.dataset.state === 'ready'
            && document.body.dataset.requests === '0'
            && document.getElementById('result').dataset.maxBytes === String(b)""",
        arg=round(budget_kb * 1000), timeout=WAIT_MS)
    fitted = stats(page)
    assert int(fitted["stat-output-bytes"]) <= budget_kb * 1000 < full
    assert 2 <= int(fitted["stat-k"]) < 64 and "≤" in page.inner_text("#result-tag")
    png = download(page, tmp_path)
    assert png.stat().st_size == int(fitted["stat-output-bytes"]) <= budget_kb * 1000
    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) == int(fitted["stat-k"])

    page.fill("#max-kb", "0.05")  # 50 bytes: not even 2 colors
    wait_for_state(page, "error")
    assert "even 2 colors make a file of" in page.inner_text("#status")
    page.fill("#max-kb", "")  # cleared: K colors again
    wait_for_result(page, 64)
    assert int(stats(page)["stat-output-bytes"]) == full


def test_stale_answers_are_never_shown(page, server, tmp_path):
    photo = tmp_path / "coffee.png"
    Image.fromarray(np.ascontiguousarray(data.coffee()[150:278, 250:378])).save(photo)
    page.set_input_files("#file", str(photo))
    wait_for_result(page, 64)
    assert page.get_attribute("#k", "min") == "2" and page.get_attribute("#k", "max") == "256"
    shown: list = page.evaluate("""() => {
        window.shownK = [];
        new MutationObserver(() => window.shownK.push(
            document.getElementById('result').dataset.k))
          .observe(document.getElementById('result'), {attributes: true,
                                                      attributeFilter: ['data-k']});
        return window.shownK; }""")
    assert shown == []
    # a burst of changes, faster than the server answers: keys send 'change' events (a request
    # each, the previous one aborted), a drag sends only 'input' events (debounced)
    page.focus("#k")
    for key in ["End", "Home", "ArrowRight"]:
        page.keyboard.press(key)
    page.evaluate("""() => { const k = document.getElementById('k');
        for (const v of ['4', '9', '5']) { k.value = v; k.dispatchEvent(new Event('input')); } }""")
    wait_for_result(page, 5)  # and every request of the burst has been answered or aborted
    shown = page.evaluate("window.shownK")
    assert shown and shown[-1] == "5", shown
    assert page.get_attribute("#result", "data-k") == page.input_value("#k") == "5"
    assert int(stats(page)["stat-k"]) <= 5

    # the server forgets the image (evicted, or restarted): the page uploads it again
    server.app.state.store.clear()
    page.keyboard.press("ArrowRight")
    wait_for_result(page, 6)
    assert len(server.app.state.store) == 1


def test_a_larger_result_is_shown_as_an_increase_in_a_warning_color(page, tmp_path):
    # a small JPEG: the lossless indexed PNG of its 64 colors takes more bytes
    photo = photo_file(tmp_path, "small.jpg", quality=30)
    page.set_input_files("#file", str(photo))
    wait_for_result(page, 64)
    out, size = int(stats(page)["stat-output-bytes"]), photo.stat().st_size
    assert out > size
    assert page.inner_text("#stat-change").startswith("+") and shown_larger(page)
    assert shown_change(page) == pytest.approx(100 * (out / size - 1), abs=0.5)
    assert page.inner_text("#stat-input-bytes") == kb(size)
    colors = page.evaluate("""() => ['stat-change', 'stat-psnr'].map(
        (id) => getComputedStyle(document.getElementById(id)).color)""")
    assert colors[0] != colors[1], colors


#: For each element given by a selector: scrolled into view, is it inside the viewport, with
#: no ancestor clipping it, its own text not cut off? And which boxes of the page scroll by
#: themselves (there should be none: the page scrolls)?
_REACHABLE = """(selectors) => {
  const problems = [];
  const targets = selectors.flatMap((sel) => [...document.querySelectorAll(sel)]);
  for (const el of targets) {
    el.scrollIntoView({ block: "center", inline: "nearest" });
    const r = el.getBoundingClientRect();
    const name = `${el.id || el.className || el.tagName} "${el.textContent.trim().slice(0, 20)}"`;
    if (r.width <= 0 || r.height <= 0 || r.left < 0 || r.top < 0
        || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) {
      problems.push(`${name}: outside the viewport after scrollIntoView`);
    }
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.overflowX === "visible" && style.overflowY === "visible") continue;
      const b = a.getBoundingClientRect();
      if (r.left < b.left - 0.5 || r.right > b.right + 0.5 || r.top < b.top - 0.5
          || r.bottom > b.bottom + 0.5) problems.push(`${name}: clipped by ${a.className}`);
    }
    if (getComputedStyle(el).display !== "inline" && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${name}: text cut off`);
    }
  }
  const scrollers = [...document.querySelectorAll("body *")].filter((a) => {
    const style = getComputedStyle(a);
    return /(auto|scroll)/.test(style.overflowX + style.overflowY)
      && (a.scrollHeight > a.clientHeight + 1 || a.scrollWidth > a.clientWidth + 1);
  }).map((a) => a.id || a.className);
  return { count: targets.length, problems, scrollers };
}"""


@pytest.mark.parametrize("viewport", [PHONE, VIEWPORT], ids=["phone", "desktop"])
def test_numbers_palette_and_download_are_reached_by_scrolling_the_page(open_page, tmp_path,
                                                                        viewport):
    from playwright.sync_api import expect

    page = open_page(viewport)
    page.set_input_files("#file", str(photo_file(tmp_path, "astronaut.png")))
    wait_for_result(page, 64)
    page.focus("#k")
    page.keyboard.press("End")  # 256 colors: the longest palette
    wait_for_result(page, 256)
    n_colors = int(stats(page)["stat-k"])
    assert page.locator("#palette li").count() == n_colors > 200

    found = page.evaluate(_REACHABLE, ["#stats th", "#stats td", "#palette li code",
                                       "#palette li .share", "#share-bar", "#download",
                                       "#file-info", "#k-value"])
    assert found["count"] == 2 * 9 + 2 * n_colors + 4
    assert found["problems"] == [] and found["scrollers"] == []
    # the page scrolls, not sideways
    size = page.evaluate("""() => [document.documentElement.scrollWidth,
                                   document.documentElement.scrollHeight]""")
    assert size[0] <= viewport["width"] and size[1] > viewport["height"]
    # Playwright's own view of it, for the last of each
    for locator in (page.locator("#palette li").last, page.locator("#stat-time"),
                    page.locator("#download")):
        locator.scroll_into_view_if_needed()
        expect(locator).to_be_in_viewport(ratio=1)
    expect(page.locator("#download")).to_have_attribute("aria-disabled", "false")
    with page.expect_download() as info:
        page.click("#download")
    assert info.value.suggested_filename == "astronaut-kmq.png"


def capture_screenshot(target: Path, k: int = 16) -> Path:
    """Draw the README's picture of the page: the astronaut photo at ``k`` colors."""
    reason = _missing_browser()
    if reason is not None:
        raise SystemExit(f"cannot draw the screenshot: {reason}")
    from playwright.sync_api import sync_playwright

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    with BackgroundServer(create_app()) as running, sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = launched.new_page(viewport=DOC_VIEWPORT)
        page.goto(running.url + "/")
        wait_for_state(page, "empty")
        page.evaluate(f"""() => {{ const k = document.getElementById('k');
            k.value = '{k}'; k.dispatchEvent(new Event('input')); }}""")
        page.set_input_files("#file", files=[{"name": "astronaut.png", "mimeType": "image/png",
                                              "buffer": buf.getvalue()}])
        wait_for_result(page, k)
        shot = page.screenshot()
        launched.close()
    # the picture itself at 256 colors, by kmq: a third of the size, the same to the eye
    q = kmq.quantize(Image.open(io.BytesIO(shot)).convert("RGB"), 256)
    target.parent.mkdir(parents=True, exist_ok=True)
    kmq.save(target, q, format="png", overwrite=True, effort="max")
    return target


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "serve.png"
    print(capture_screenshot(out))
