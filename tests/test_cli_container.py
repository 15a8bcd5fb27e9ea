"""The .kmq container through the CLI (compress --format, decompress, info) and kmq.save/load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.main import get_command
from typer.testing import CliRunner

import kmq
from kmq import cli
from kmq.codecs.container import HEADER_SIZE, read_header

runner = CliRunner()

def run(*args: object):
    return runner.invoke(cli.app, [str(a) for a in args])


def rows(stdout: str) -> dict[str, dict]:
    """The ``--json`` results of the files done, by input file."""
    found = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {row["source"]: row for row in found if row["status"] == "done"}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("kmq: error: ")]


def info_fields(stdout: str) -> dict[str, dict[str, str]]:
    """``kmq info``'s output: {file: {field: value}}."""
    out: dict[str, dict[str, str]] = {}
    current = None
    for line in stdout.splitlines():
        if line and not line.startswith(" "):
            current = out.setdefault(line, {})
        elif line.strip():
            name, value = re.match(r"^\s+(.+?)\s{2,}(\S.*)$", line).groups()
            current[name] = value
    return out


def rgb_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def quantized(small_photo):
    return kmq.quantize(small_photo, 12)


@pytest.fixture
def kmq_file(tmp_path, quantized) -> Path:
    path = tmp_path / "photo-kmq.kmq"
    kmq.save(path, quantized)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- compress -----------------------------------------------------------------------------------

def test_kmq_path_gives_exactly_the_png_paths_pixels_and_palette(image_folder, small_photo,
                                                                 tmp_path):
    source = image_folder / "cat.png"
    a, b, c = tmp_path / "a.png", tmp_path / "b.kmq", tmp_path / "c.png"
    to_png = run("compress", source, "-k", 16, "-o", a, "--json", "--ssim")
    to_kmq = run("compress", source, "-k", 16, "-o", b, "--json", "--ssim")
    assert to_png.exit_code == 0 and to_kmq.exit_code == 0, to_png.stderr + to_kmq.stderr
    assert b.read_bytes()[:4] == b"\x89KMQ"
    back = run("decompress", b, "-o", c)
    assert back.exit_code == 0, back.stderr
    with Image.open(a) as im_a, Image.open(c) as im_c:
        assert im_a.mode == im_c.mode == "P"
        assert im_a.getpalette() == im_c.getpalette()
        assert np.array_equal(np.asarray(im_a), np.asarray(im_c))
    assert np.array_equal(rgb_of(a), rgb_of(c))
    assert a.read_bytes() == c.read_bytes()  # decompress writes the PNG compress would write
    # ... and that is exactly palette[indices] of the quantization
    q = kmq.quantize(small_photo, 16)
    assert np.array_equal(rgb_of(c), q.palette[q.indices])
    decoded = kmq.load(b)
    assert np.array_equal(decoded.palette, q.palette)
    assert np.array_equal(decoded.indices, q.indices)
    # the results row describes the file written: .kmq here, smaller than the PNG
    row_png = rows(to_png.stdout)[str(source)]
    row_kmq = rows(to_kmq.stdout)[str(source)]
    assert row_kmq["output_bytes"] == b.stat().st_size
    assert row_png["output_bytes"] == a.stat().st_size
    assert row_kmq["input_bytes"] == row_png["input_bytes"] == source.stat().st_size
    assert b.stat().st_size < a.stat().st_size
    assert (row_png["psnr"], row_png["ssim"]) == (row_kmq["psnr"], row_kmq["ssim"])


def test_format_option_and_default_names(image_folder, tmp_path):
    source = image_folder / "cat.png"
    result = run("compress", source, "-k", 4, "--format", "kmq", "-q")
    assert result.exit_code == 0, result.stderr
    assert kmq.load(image_folder / "cat-kmq.kmq").k == 4
    assert not (image_folder / "cat-kmq.png").exists()
    # --format wins over the extension; the extension is case-insensitive
    assert run("compress", source, "-k", 4, "-F", "kmq", "-o", tmp_path / "x.bin").exit_code == 0
    assert kmq.load(tmp_path / "x.bin").k == 4
    assert run("compress", source, "-k", 4, "-o", tmp_path / "y.KMQ").exit_code == 0
    assert kmq.load(tmp_path / "y.KMQ").k == 4
    assert run("compress", source, "-k", 4, "--format", "png", "-o",
               tmp_path / "z.kmq").exit_code == 0
    with Image.open(tmp_path / "z.kmq") as im:
        assert im.format == "PNG"
    # a directory as OUTPUT: default names, in the chosen format
    out = tmp_path / "out"
    out.mkdir()
    both = run("compress", source, image_folder / "cup.jpg", "-k", 4, "-F", "kmq", "-o", out)
    assert both.exit_code == 0, both.stderr
    assert listing(out) == ["cat-kmq.kmq", "cup-kmq.kmq"]


@pytest.mark.parametrize("name", ["out.jpg", "out", "out.bmp"])
def test_unknown_output_extension_is_a_usage_error(image_folder, tmp_path, name):
    result = run("compress", image_folder / "cat.png", "-o", tmp_path / name)
    assert result.exit_code == 2 == 2
    assert "--format" in result.stderr and ".kmq" in result.stderr
    assert listing(tmp_path) == ["images"]
    assert run("compress", image_folder / "cat.png", "-F", "jpeg").exit_code == 2


# --- decompress ---------------------------------------------------------------------------------

def test_decompress_default_output_is_an_indexed_png_beside_the_input(kmq_file, quantized):
    result = run("decompress", kmq_file, "--json")
    assert result.exit_code == 0, result.stderr
    output = kmq_file.with_name("photo-kmq.png")
    with Image.open(output) as im:
        assert im.mode == "P" and len(im.getpalette()) == 3 * quantized.k
    assert np.array_equal(rgb_of(output), quantized.palette[quantized.indices])
    row = rows(result.stdout)[str(kmq_file)]
    h, w = quantized.indices.shape
    assert (row["output"], row["output_bytes"], row["width"], row["height"], row["k"]) == (
        str(output), output.stat().st_size, w, h, quantized.k)
    assert row["input_bytes"] == kmq_file.stat().st_size
    assert result.stderr == ""
    table = run("decompress", kmq_file, "--force").stdout
    assert str(output) in table and f"{w}x{h}" in table


@pytest.mark.parametrize(("suffix", "mode"), [(".webp", "RGB"), (".gif", "P"), (".bmp", "RGB"),
                                              (".tif", "RGB"), (".PNG", "P")])
def test_decompress_to_other_formats_keeps_every_pixel(kmq_file, quantized, suffix, mode):
    output = kmq_file.with_name("out" + suffix)
    result = run("decompress", kmq_file, "-o", output, "-q")
    assert result.exit_code == 0, result.stderr
    with Image.open(output) as im:
        assert im.format == Image.registered_extensions()[suffix.lower()]
        assert im.mode == mode
    assert np.array_equal(rgb_of(output), quantized.palette[quantized.indices])


def test_decompress_more_than_256_colors_writes_rgb(tmp_path):
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (300, 3), dtype=np.uint8)
    indices = rng.integers(0, 300, (20, 30)).astype(np.uint16)
    kmq.save(tmp_path / "many.kmq", palette, indices)
    result = run("decompress", tmp_path / "many.kmq", "--json")
    assert result.exit_code == 0, result.stderr
    with Image.open(tmp_path / "many.png") as im:
        assert im.mode == "RGB"
    assert np.array_equal(rgb_of(tmp_path / "many.png"), palette[indices])
    assert rows(result.stdout)[str(tmp_path / "many.kmq")]["k"] == 300


def test_decompress_to_a_non_image_extension_is_a_usage_error(kmq_file):
    for name in ("out.kmq", "out.txt", "out"):
        result = run("decompress", kmq_file, "-o", kmq_file.with_name(name))
        assert result.exit_code == 2, name
        assert "extension" in result.stderr
    assert listing(kmq_file.parent) == ["photo-kmq.kmq"]


def test_decompress_force_rules(kmq_file, quantized):
    output = kmq_file.with_name("photo-kmq.png")
    output.write_bytes(b"keep me")
    result = run("decompress", kmq_file)
    assert result.exit_code == kmq.OutputExistsError.exit_code == 5
    assert error_lines(result.stderr) == [f"kmq: error: {output}: exists (use --force to "
                                          f"overwrite)"]
    assert output.read_bytes() == b"keep me"
    forced = run("decompress", kmq_file, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert np.array_equal(rgb_of(output), quantized.palette[quantized.indices])
    # an input is never overwritten, even with --force: a .kmq file named like its own output
    disguised = kmq_file.with_name("disguised.png")
    disguised.write_bytes(kmq_file.read_bytes())
    result = run("decompress", disguised, "--force")
    assert result.exit_code == 5 and "input" in result.stderr
    assert disguised.read_bytes() == kmq_file.read_bytes()
    # two inputs with the same output name in one run: the second is refused
    other = kmq_file.parent / "other"
    other.mkdir()
    (other / kmq_file.name).write_bytes(kmq_file.read_bytes())
    out = kmq_file.parent / "out"
    out.mkdir()
    result = run("decompress", kmq_file, other / kmq_file.name, "-o", out)
    assert result.exit_code == 5 and "already written" in result.stderr
    assert listing(out) == ["photo-kmq.png"]


def corrupt_variants(good: bytes) -> dict[str, bytes]:
    flipped_payload = bytearray(good)
    flipped_payload[len(good) - 10] ^= 0x01
    flipped_header = bytearray(good)
    flipped_header[13] ^= 0x01  # width
    return {"truncated": good[:len(good) // 2], "truncated-header": good[:20],
            "flipped-payload-byte": bytes(flipped_payload),
            "flipped-header-byte": bytes(flipped_header),
            "text": b"this is a text file, renamed .kmq\n", "empty": b""}


@pytest.mark.parametrize("variant", ["truncated", "truncated-header", "flipped-payload-byte",
                                     "flipped-header-byte", "text", "empty"])
def test_corrupt_input_exits_6_in_one_line_and_leaves_nothing(kmq_file, variant):
    bad = kmq_file.with_name(f"{variant}.kmq")
    bad.write_bytes(corrupt_variants(kmq_file.read_bytes())[variant])
    for args in (["decompress", bad], ["decompress", bad, "-o", bad.with_suffix(".webp")]):
        result = run(*args)
        assert result.exit_code == kmq.CorruptFileError.exit_code == 6
        assert result.stderr.startswith(f"kmq: error: {bad}: ")
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stdout.strip() == ""
        assert listing(kmq_file.parent) == sorted([kmq_file.name, bad.name])  # no temp files
    info = run("info", bad)
    if variant == "flipped-payload-byte":  # info reads the header only, which is intact
        assert info.exit_code == 0, info.stderr
    else:
        assert info.exit_code == 6
        assert info.stderr.startswith(f"kmq: error: {bad}: ")
        assert len(info.stderr.strip().splitlines()) == 1


def test_missing_input_exits_3(tmp_path):
    missing = tmp_path / "missing.kmq"
    for command in ("decompress", "info"):
        result = run(command, missing)
        assert result.exit_code == kmq.ImageReadError.exit_code == 3
        assert error_lines(result.stderr) == [f"kmq: error: {missing}: no such file"]
    assert run("decompress", tmp_path).exit_code == 3  # a directory


def test_decompress_goes_past_a_bad_file_and_exits_with_the_first_failure(kmq_file, tmp_path):
    bad = tmp_path / "notes.kmq"
    bad.write_text("hello")
    second = tmp_path / "second.kmq"
    second.write_bytes(kmq_file.read_bytes())
    missing = tmp_path / "missing.kmq"
    result = run("decompress", kmq_file, bad, second, missing, "--json")
    assert result.exit_code == 6
    assert set(rows(result.stdout)) == {str(kmq_file), str(second)}
    assert (tmp_path / "photo-kmq.png").exists() and (tmp_path / "second.png").exists()
    assert len(error_lines(result.stderr)) == 2
    assert "2 of 4 files failed" in result.stderr
    assert run("decompress", missing, bad, "-f").exit_code == 3
    assert run("info", bad, missing, kmq_file).exit_code == 6
    assert run("info", missing, bad, kmq_file).exit_code == 3


def test_decompress_max_pixels_exits_4(kmq_file, quantized):
    n = quantized.indices.size
    result = run("decompress", kmq_file, "--max-pixels", n - 1)
    assert result.exit_code == kmq.ImageTooLargeError.exit_code == 4
    assert "over the limit" in result.stderr
    assert not kmq_file.with_name("photo-kmq.png").exists()
    assert run("decompress", kmq_file, "--max-pixels", n).exit_code == 0


def test_an_image_format_that_cannot_hold_the_image_exits_1(kmq_file):
    output = kmq_file.with_name("out.xbm")  # XBM is 1-bit only: Pillow refuses RGB
    result = run("decompress", kmq_file, "-o", output)
    assert result.exit_code == kmq.OutputWriteError.exit_code == 1
    assert error_lines(result.stderr) == [result.stderr.strip()]
    assert f"{output}: cannot write" in result.stderr
    assert listing(kmq_file.parent) == ["photo-kmq.kmq"]


# --- info ---------------------------------------------------------------------------------------

def test_info_prints_the_header(kmq_file, tmp_path, monkeypatch):
    other = tmp_path / "flat.kmq"
    kmq.save(other, np.array([[10, 20, 30]], np.uint8), np.zeros((7, 9), np.uint8))
    import kmq.codecs.container as container

    def no_decoding(*args, **kwargs):
        raise AssertionError("kmq info must not decode the payload")

    monkeypatch.setattr(container, "decode", no_decoding)
    monkeypatch.setattr(container, "read", no_decoding)
    result = run("info", kmq_file, other)
    assert result.exit_code == 0, result.stderr
    monkeypatch.undo()
    fields = info_fields(result.stdout)
    assert list(fields) == [str(kmq_file), str(other)]
    for path, f in fields.items():
        decoded = kmq.load(path)
        size = Path(path).stat().st_size
        header = read_header(Path(path).read_bytes()[:HEADER_SIZE])
        assert (int(f["width"]), int(f["height"]), int(f["K"])) == (
            decoded.width, decoded.height, decoded.k)
        assert decoded.indices.shape == (decoded.height, decoded.width)
        assert f["version"] == "1" and f["layout"] == "RGB"
        assert f["method"].startswith(f"{int(decoded.method)} (")
        assert f["index dtype"] == decoded.indices.dtype.name
        assert int(f["file bytes"]) == size
        assert int(f["payload bytes"]) == header.payload_size == size - 36 - 3 * decoded.k
        assert float(f["bits per pixel"]) == pytest.approx(
            8 * size / (decoded.width * decoded.height), abs=5e-4)
        assert float(f["vs raw"]) == pytest.approx(
            3 * decoded.width * decoded.height / size, abs=5e-3)
    assert fields[str(other)]["method"].startswith("0 (constant")


# --- help and the library -----------------------------------------------------------------------

def test_help_of_the_new_commands():
    group = get_command(cli.app)
    assert {"compress", "decompress", "info", "demo"} <= set(group.commands)
    for name in ("compress", "decompress", "info"):
        result = run(name, "--help")
        assert result.exit_code == 0
        for param in group.commands[name].params:
            if param.param_type_name == "option" and param.name != "help" and not param.hidden:
                assert param.help, f"{name} {param.opts} has no help text"
                assert param.opts[0] in result.stdout
    top = " ".join(run("--help").stdout.split())
    assert "decompress" in top and "info" in top and "6 a .kmq input is corrupt" in top
    assert "--format" in run("compress", "--help").stdout


def test_library_save_and_load(tmp_path, quantized):
    assert {"save", "load", "encode", "decode"} <= set(kmq.__all__)
    assert kmq.__all__ == sorted(kmq.__all__)
    n = kmq.save(tmp_path / "q.kmq", quantized)
    assert n == (tmp_path / "q.kmq").stat().st_size
    back = kmq.load(tmp_path / "q.kmq")
    assert np.array_equal(back.to_rgb(), quantized.palette[quantized.indices])
    kmq.save(tmp_path / "p.kmq", quantized.palette, quantized.indices)
    assert (tmp_path / "p.kmq").read_bytes() == (tmp_path / "q.kmq").read_bytes()
    assert kmq.encode(quantized.palette, quantized.indices) == (tmp_path / "q.kmq").read_bytes()
    assert np.array_equal(kmq.decode((tmp_path / "q.kmq").read_bytes()).indices,
                          quantized.indices)
    with pytest.raises(kmq.OutputExistsError):
        kmq.save(tmp_path / "q.kmq", quantized)
    assert kmq.save(tmp_path / "q.kmq", quantized, overwrite=True) == n
    with pytest.raises(TypeError, match="either"):
        kmq.save(tmp_path / "r.kmq", quantized, quantized.indices)
    with pytest.raises(TypeError, match="no indices"):
        kmq.save(tmp_path / "r.kmq", quantized.palette)
    with pytest.raises(kmq.CorruptFileError):
        kmq.decode(b"\x89KMQ\r\n\x1a\n" + b"\0" * 30)
    assert not (tmp_path / "r.kmq").exists()


@pytest.mark.parametrize("ext", ["webp", "gif"])
def test_compress_writes_webp_and_gif_by_extension_with_the_png_pixels(tmp_path, small_photo, ext):
    from PIL import Image
    from typer.testing import CliRunner

    from kmq.cli import app

    src = tmp_path / "cat.png"
    Image.fromarray(small_photo).save(src)
    runner = CliRunner()
    assert runner.invoke(app, ["compress", str(src), "-k", "32", "-o", str(tmp_path / "a.png"),
                               "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["compress", str(src), "-k", "32", "-o",
                                 str(tmp_path / f"a.{ext}"), "--quiet"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / f"a.{ext}") as im:
        assert im.format == ext.upper()
        pixels = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(tmp_path / "a.png").convert("RGB")))
    default = runner.invoke(app, ["compress", str(src), "-k", "8", "--format", ext, "--quiet"])
    assert default.exit_code == 0 and (tmp_path / f"cat-kmq.{ext}").exists()


def test_info_check_decodes_the_payload_and_finds_damage(kmq_file, tmp_path):
    damaged = tmp_path / "damaged.kmq"
    data = bytearray(kmq_file.read_bytes())
    data[-10] ^= 0x40  # in the payload: the header is intact
    damaged.write_bytes(bytes(data))
    assert run("info", damaged).exit_code == 0  # the header alone looks fine
    checked = run("info", "--check", damaged, kmq_file)
    assert checked.exit_code == kmq.CorruptFileError.exit_code == 6
    assert error_lines(checked.stderr) == [
        f"kmq: error: {damaged}: checksum mismatch (the file is damaged)"]
    assert "check" in info_fields(checked.stdout)[str(kmq_file)]
