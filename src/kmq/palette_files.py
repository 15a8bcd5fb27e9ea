"""Palettes as files: an image's dominant colors in text, JSON, CSS, GIMP and swatch-PNG form,
and reading a palette back from a GIMP ``.gpl``, a JSON palette or an image.

The dominant colors are k-means' clusters (:func:`kmq.quantize`) with their share of the pixels,
most used first. The formats:

``text``
    One color a line: ``#rrggbb  41.27%``.
``json``
    A list of ``{"hex": "#rrggbb", "rgb": [r, g, b], "share": 0.4127...}`` (shares at full
    precision; they sum to 1).
``css``
    Custom properties in ``:root``: ``--kmq-color-1: #rrggbb; /* 41.27% */``.
``gpl``
    A GIMP palette (also read by Inkscape, Krita, Aseprite): ``R G B<TAB>#rrggbb 41.27%``.
``png``
    A strip of swatches, each as wide as its share (at least one pixel), as an indexed PNG
    holding exactly the K colors.

Examples
--------
>>> import numpy as np
>>> from kmq.palette_files import dominant_colors, format_palette, parse_palette_text
>>> img = np.zeros((10, 10, 3), np.uint8); img[:3] = (255, 128, 0)   # 30% orange, 70% black
>>> colors, shares = dominant_colors(img, 2)
>>> print(format_palette(colors, shares, "text"), end="")
#000000  70.00%
#ff8000  30.00%
>>> parse_palette_text(format_palette(colors, shares, "gpl")).tolist()
[[0, 0, 0], [255, 128, 0]]
"""

from __future__ import annotations

import enum
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from kmq.errors import ArgumentError
from kmq.io import DEFAULT_MAX_PIXELS

#: Most colors a palette file may hold (the largest palette kmq remaps to).
MAX_COLORS = 65536
#: Size of the swatch PNG.
SWATCH_WIDTH, SWATCH_HEIGHT = 640, 120
#: Side of the checkerboard's squares behind translucent swatches.
_CHECKER = 10
#: Largest palette text read (65536 colors at about 80 bytes each, with room to spare).
_MAX_TEXT_BYTES = 16_000_000

_HEX = re.compile(r"#?([0-9a-fA-F]{6}(?:[0-9a-fA-F]{2})?)")
_GPL_MAGIC = "GIMP Palette"


class PaletteFormat(enum.StrEnum):
    """The formats :func:`format_palette` and ``kmq palette`` write."""

    text = "text"
    json = "json"
    css = "css"
    gpl = "gpl"
    png = "png"


#: Formats by (lower-case) file extension.
EXTENSIONS = {".txt": PaletteFormat.text, ".json": PaletteFormat.json,
              ".css": PaletteFormat.css, ".gpl": PaletteFormat.gpl, ".png": PaletteFormat.png}


def dominant_colors(image, k: int = 8, *, seed=0,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` dominant colors of an image and their shares of its pixels, largest first.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8, PIL.Image.Image or path
    k : int, 2..256
        Fewer colors are returned when the image has fewer.
    seed : int
        As for :func:`kmq.quantize`: the same image, k and seed give the same colors.
    max_pixels : int

    Returns
    -------
    colors : ndarray of uint8, shape (K, 3)
        The palette of ``kmq.quantize(image, k, seed=seed)``, sorted by share.
    shares : ndarray of float64, shape (K,)
        Fraction of the pixels nearest to each color; they sum to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.palette_files import dominant_colors
    >>> img = np.zeros((4, 4, 3), np.uint8); img[0, :2] = 255
    >>> colors, shares = dominant_colors(img, 4)
    >>> colors.tolist(), shares.tolist()
    ([[0, 0, 0], [255, 255, 255]], [0.875, 0.125])
    """
    from kmq.pipeline import quantize

    q = quantize(image, k, seed=seed, max_pixels=max_pixels)
    order = np.argsort(-q.counts, kind="stable")
    counts = q.counts[order].astype(np.float64)
    return q.palette[order], counts / counts.sum()


def dominant_colors_of_file(path: str | os.PathLike, k: int = 8, *, seed=0,
                            max_pixels: int = DEFAULT_MAX_PIXELS,
                            ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """:func:`dominant_colors` of an image file, read by :func:`kmq.io.load_image`, with the
    warnings met while reading (one line each) instead of emitted."""
    from kmq.io import load_image

    image = load_image(path, max_pixels=max_pixels)
    colors, shares = dominant_colors(image.pixels, k, seed=seed, max_pixels=max_pixels)
    return colors, shares, image.warnings


def _check_colors_shares(colors, shares) -> tuple[np.ndarray, np.ndarray]:
    colors = np.asarray(colors)
    shares = np.asarray(shares, dtype=np.float64)
    if colors.dtype != np.uint8 or colors.ndim != 2 or colors.shape[1] not in (3, 4) or not (
            1 <= len(colors) <= MAX_COLORS):
        raise ArgumentError(f"expected colors to be a (K, 3) or (K, 4) uint8 array with 1 <= K <= "
                            f"{MAX_COLORS}; got shape {colors.shape} and dtype {colors.dtype}")
    if shares.shape != (len(colors),) or not np.all(np.isfinite(shares)) or (shares < 0).any():
        raise ArgumentError(f"expected shares to be {len(colors)} non-negative numbers, one per "
                            f"color; got shape {shares.shape}")
    return colors, shares


def to_hex(color) -> str:
    """``#rrggbb`` (lower case) of an RGB triple; ``#rrggbbaa`` of an RGBA one.

    >>> from kmq.palette_files import to_hex
    >>> to_hex((255, 128, 0)), to_hex((255, 128, 0, 64))
    ('#ff8000', '#ff800040')
    """
    return "#" + "".join(f"{int(c):02x}" for c in color)


def _css(color) -> str:
    if len(color) == 3:
        return to_hex(color)
    r, g, b, a = (int(c) for c in color)
    return f"rgba({r}, {g}, {b}, {a / 255:.3f})"


def _percent(share: float) -> str:
    return f"{100 * share:.2f}%"


def format_palette(colors, shares, fmt: PaletteFormat | str, *, name: str = "kmq") -> str:
    """A palette with its shares as text in one of the text formats (not ``png``).

    Parameters
    ----------
    colors : ndarray of uint8, shape (K, 3), or (K, 4) with alpha
        With alpha: text and JSON give ``#rrggbbaa`` (and JSON ``"rgba"``), CSS ``rgba()``,
        and a GIMP palette, which has no alpha, gives it in each color's name.
    shares : array_like of float, shape (K,)
    fmt : {"text", "json", "css", "gpl"}
    name : str
        The palette's name (written by ``gpl``, in a comment by ``css``).

    Returns
    -------
    str
        Ending with a newline.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.palette_files import format_palette
    >>> colors = np.array([[255, 128, 0], [0, 0, 0]], np.uint8)
    >>> print(format_palette(colors, [0.75, 0.25], "css"), end="")
    /* kmq: 2 dominant colors, most used first */
    :root {
      --kmq-color-1: #ff8000; /* 75.00% */
      --kmq-color-2: #000000; /* 25.00% */
    }
    >>> print(format_palette(colors, [0.75, 0.25], "json"))  # doctest: +NORMALIZE_WHITESPACE
    [{"hex": "#ff8000", "rgb": [255, 128, 0], "share": 0.75},
     {"hex": "#000000", "rgb": [0, 0, 0], "share": 0.25}]
    """
    colors, shares = _check_colors_shares(colors, shares)
    fmt = PaletteFormat(fmt)
    hexes = [to_hex(c) for c in colors]
    key = "rgba" if colors.shape[1] == 4 else "rgb"
    if fmt is PaletteFormat.text:
        lines = [f"{h} {_percent(s):>7}" for h, s in zip(hexes, shares, strict=True)]
    elif fmt is PaletteFormat.json:
        entries = [json.dumps({"hex": h, key: [int(v) for v in c], "share": float(s)})
                   for h, c, s in zip(hexes, colors, shares, strict=True)]
        lines = ["[" + ",\n ".join(entries) + "]"]
    elif fmt is PaletteFormat.css:
        lines = [f"/* {_one_line(name)}: {len(colors)} dominant colors, most used first */",
                 ":root {"]
        lines += [f"  --kmq-color-{i}: {_css(c)}; /* {_percent(s)} */"
                  for i, (c, s) in enumerate(zip(colors, shares, strict=True), start=1)]
        lines.append("}")
    elif fmt is PaletteFormat.gpl:
        lines = [_GPL_MAGIC, f"Name: {_one_line(name)}", f"Columns: {min(len(colors), 8)}",
                 f"# {len(colors)} dominant colors, most used first (written by kmq)"]
        if key == "rgba":
            lines.append("# GIMP palettes hold no alpha: each color's is in its name")
        lines += [f"{c[0]:3d} {c[1]:3d} {c[2]:3d}\t{h} {_percent(s)}"
                  + (f" alpha {int(c[3])}" if key == "rgba" else "")
                  for c, h, s in zip(colors, hexes, shares, strict=True)]
    else:
        raise ArgumentError("the png format is binary: use swatches_png()")
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(str(text).replace("*/", "* /").split())


def swatch_widths(shares, width: int = SWATCH_WIDTH) -> np.ndarray:
    """Pixel widths proportional to ``shares`` that sum to ``width``, each at least 1.

    Largest-remainder rounding of ``width * share``; a color that would get no pixel gets one,
    taken from the widest swatch.

    Examples
    --------
    >>> from kmq.palette_files import swatch_widths
    >>> swatch_widths([0.5, 0.3, 0.2], 10).tolist(), swatch_widths([0.999, 0.001], 10).tolist()
    ([5, 3, 2], [9, 1])
    """
    shares = np.asarray(shares, dtype=np.float64)
    if width < len(shares):
        raise ArgumentError(f"expected a width of at least one pixel per color ({len(shares)}); "
                            f"got {width}")
    total = shares.sum()
    ideal = width * (shares / total if total > 0 else np.full(len(shares), 1 / len(shares)))
    widths = np.floor(ideal).astype(np.int64)
    remainder = ideal - widths
    extra = width - int(widths.sum())
    widths[np.argsort(-remainder, kind="stable")[:extra]] += 1
    for i in np.flatnonzero(widths == 0):
        widths[np.argmax(widths)] -= 1
        widths[i] = 1
    return widths


def swatches_png(colors, shares, *, width: int = SWATCH_WIDTH,
                 height: int = SWATCH_HEIGHT) -> bytes:
    """A PNG strip of swatches, left to right in the given order, widths by
    :func:`swatch_widths`, drawn with Pillow; an indexed PNG with exactly the K colors, or for
    RGBA colors an RGB PNG of each color composited over a gray checkerboard.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> from kmq.palette_files import swatches_png
    >>> data = swatches_png(np.array([[255, 0, 0], [0, 0, 255]], np.uint8), [0.75, 0.25])
    >>> im = Image.open(io.BytesIO(data))
    >>> im.size, sorted(im.convert("RGB").getcolors())
    ((640, 120), [(19200, (0, 0, 255)), (57600, (255, 0, 0))])
    """
    from PIL import ImageDraw

    from kmq.codecs.png import MAX_COLORS as PNG_MAX_COLORS
    from kmq.codecs.png import to_pil

    colors, shares = _check_colors_shares(colors, shares)
    if len(colors) > PNG_MAX_COLORS:
        raise ArgumentError(f"a swatch PNG holds at most {PNG_MAX_COLORS} colors; "
                            f"got {len(colors)}")
    widths = swatch_widths(shares, width)
    buf = io.BytesIO()
    if colors.shape[1] == 4:
        from PIL import Image

        index = np.repeat(np.arange(len(colors)), widths)[None, :].repeat(height, axis=0)
        color = colors[index].astype(np.float64)
        y, x = np.indices((height, width))
        checker = np.where(((y // _CHECKER) + (x // _CHECKER)) % 2 == 0, 204.0, 153.0)
        alpha = color[:, :, 3:] / 255.0
        over = color[:, :, :3] * alpha + checker[:, :, None] * (1.0 - alpha)
        Image.fromarray(np.rint(over).astype(np.uint8), "RGB").save(buf, format="PNG")
        return buf.getvalue()
    im = to_pil(colors, np.zeros((height, width), np.uint8))
    draw = ImageDraw.Draw(im)
    left = 0
    for i, w in enumerate(widths):
        draw.rectangle((left, 0, left + int(w) - 1, height - 1), fill=i)
        left += int(w)
    im.save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Reading


def _parse_byte(token: str, where: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise ArgumentError(f"{where}: expected an integer 0..255; got {token!r}") from None
    if not 0 <= value <= 255:
        raise ArgumentError(f"{where}: expected an integer 0..255; got {value}")
    return value


def _finish(colors: list, source: str) -> np.ndarray:
    """(K, 3) colors, or (K, 4) when one of them has alpha (the others then opaque)."""
    if not colors:
        raise ArgumentError(f"{source}: the palette has no colors")
    if len(colors) > MAX_COLORS:
        raise ArgumentError(f"{source}: the palette has {len(colors):,} colors; at most "
                            f"{MAX_COLORS:,} are allowed")
    if all(len(c) == 3 or c[3] == 255 for c in colors):
        return np.array([c[:3] for c in colors], dtype=np.uint8).reshape(-1, 3)
    return np.array([[*c[:3], c[3] if len(c) == 4 else 255] for c in colors], dtype=np.uint8)


def parse_palette_text(text: str, source: str = "palette") -> np.ndarray:
    """Colors of a GIMP palette (``.gpl``) or a JSON palette given as text; see
    :func:`read_palette`. ``source`` names the input in error messages."""
    body = text.lstrip("\ufeff")
    if body.startswith(_GPL_MAGIC):
        return _parse_gpl(body, source)
    if body.lstrip()[:1] in ("[", "{"):
        return _parse_json(body, source)
    raise ArgumentError(f"{source}: not a palette: expected a GIMP palette (first line "
                        f"'{_GPL_MAGIC}') or a JSON list of colors")


def _parse_gpl(text: str, source: str) -> np.ndarray:
    colors = []
    for number, raw in enumerate(text.splitlines()[1:], start=2):
        line = raw.strip()
        if not line or line.startswith("#") or re.match(r"(Name|Columns)\s*:", line):
            continue
        tokens = line.split()
        if len(tokens) < 3:
            raise ArgumentError(f"{source}: line {number}: expected 'R G B [name]'; got {raw!r}")
        where = f"{source}: line {number}"
        color = [_parse_byte(t, where) for t in tokens[:3]]
        alpha = re.search(r"\balpha\s+(\d+)", line)  # as format_palette writes it
        colors.append([*color, _parse_byte(alpha.group(1), where)] if alpha else color)
    return _finish(colors, source)


def _json_color(entry, where: str) -> list[int]:
    if isinstance(entry, str):
        return _hex_color(entry, where)
    if not isinstance(entry, dict) or not ({"rgb", "rgba", "hex"} & entry.keys()):
        raise ArgumentError(f"{where}: expected an object with 'rgb' [r, g, b] (or 'rgba') and/or "
                            f"'hex' '#rrggbb', or a '#rrggbb' string; got {json.dumps(entry)[:80]}")
    rgb = None
    for key, n in (("rgb", 3), ("rgba", 4)):
        if key not in entry:
            continue
        value = entry[key]
        if not isinstance(value, list) or len(value) != n or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ArgumentError(f"{where}: expected '{key}' to be {n} integers 0..255; got "
                                f"{json.dumps(value)[:80]}")
        rgb = [_parse_byte(str(v), where) for v in value]
    if "hex" in entry:
        from_hex = _hex_color(entry["hex"], where)
        if rgb is not None and len(rgb) == 4 and len(from_hex) == 3:
            from_hex = [*from_hex, 255]
        if rgb is not None and rgb != from_hex:
            raise ArgumentError(f"{where}: 'rgb' {rgb} and 'hex' {entry['hex']!r} disagree")
        rgb = from_hex
    return rgb or []  # never empty: 'rgb', 'rgba' or 'hex' was there


def _hex_color(value, where: str) -> list[int]:
    match = _HEX.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ArgumentError(f"{where}: expected a color '#rrggbb' or '#rrggbbaa'; got "
                            f"{json.dumps(value)[:80]}")
    digits = match.group(1)
    return [int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)]


def _parse_json(text: str, source: str) -> np.ndarray:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArgumentError(f"{source}: invalid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ArgumentError(f"{source}: expected a JSON list of colors; got a "
                            f"{type(data).__name__}")
    return _finish([_json_color(entry, f"{source}: entry {i}")
                    for i, entry in enumerate(data)], source)


def _image_colors(path: Path, max_pixels: int) -> np.ndarray:
    from kmq.errors import ImageReadError
    from kmq.io import load_image

    try:
        pixels = load_image(path, max_pixels=max_pixels).pixels  # RGBA when it has alpha
    except ImageReadError as exc:
        raise ArgumentError(f"{path}: not a GIMP palette, a JSON palette or an image "
                            f"({exc})") from None
    flat = np.ascontiguousarray(pixels.reshape(-1, pixels.shape[2]))
    _, first = np.unique(flat, axis=0, return_index=True)
    if len(first) > MAX_COLORS:
        raise ArgumentError(f"{path}: the image has {len(first):,} distinct colors; a palette "
                            f"image may have at most {MAX_COLORS:,}")
    return flat[np.sort(first)].copy()


def read_palette(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a palette: a GIMP ``.gpl``, a JSON palette, or the distinct colors of an image.

    The kind is told by the content: a file starting with ``GIMP Palette`` is a GIMP palette
    (a color's alpha read from ``alpha N`` in its name, as :func:`format_palette` writes it);
    one starting with ``[`` (or ``{``) a JSON list whose entries are objects with ``"rgb"``
    ``[r, g, b]`` (or ``"rgba"``) and/or ``"hex"`` ``"#rrggbb"`` (or ``"#rrggbbaa"``; the format
    :func:`format_palette` writes; other keys are ignored) or such hex strings; anything else
    is read as an image, whose distinct colors (at most 65536; RGBA when it has transparency)
    are the palette, in order of first appearance (row by row), so a swatch strip gives its
    colors left to right.

    Parameters
    ----------
    path : str or path-like
    max_pixels : int
        Larger images are refused.

    Returns
    -------
    ndarray of uint8, shape (K, 3), or (K, 4) when a color has alpha; 1 <= K <= 65536

    Raises
    ------
    ValueError
        The file is not one of these, or is one with a problem; the message names the file and
        the problem (and the line or entry).
    kmq.ImageReadError
        The file cannot be read (missing, not a regular file, no permission).

    Examples
    --------
    >>> import tempfile
    >>> from kmq.palette_files import read_palette
    >>> path = tempfile.mkdtemp() + "/p.gpl"
    >>> _ = open(path, "w").write("GIMP Palette\\nName: x\\n#\\n255 128   0\\torange\\n")
    >>> read_palette(path).tolist()
    [[255, 128, 0]]
    """
    from kmq.io import open_input

    path = Path(path)
    with open_input(path) as fh:
        data = fh.read(_MAX_TEXT_BYTES + 1)
    text_head = data[:64].lstrip(b"\xef\xbb\xbf").lstrip()
    if text_head.startswith(_GPL_MAGIC.encode()) or text_head[:1] in (b"[", b"{") or (
            path.suffix.lower() in (".gpl", ".json")):
        if len(data) > _MAX_TEXT_BYTES:
            raise ArgumentError(f"{path}: over {_MAX_TEXT_BYTES:,} bytes: too large for a palette")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ArgumentError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
                                ) from None
        return parse_palette_text(text, str(path))
    return _image_colors(path, max_pixels)


__all__ = ["EXTENSIONS", "MAX_COLORS", "PaletteFormat", "dominant_colors",
           "dominant_colors_of_file", "format_palette", "parse_palette_text", "read_palette",
           "swatch_widths", "swatches_png", "to_hex"]
