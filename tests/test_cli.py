"""The ``kmq`` command end to end: files written, numbers printed, exit codes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity
from typer.main import get_command
from typer.testing import CliRunner

import kmq
from kmq import cli
from kmq.errors import EXIT_CODES

runner = CliRunner()
KMQ_EXE = Path(sys.executable).with_name("kmq")

def run(*args: object):
    return runner.invoke(cli.app, [str(a) for a in args])


def compress(*args: object):
    """``kmq compress ARGS --json --ssim``: one JSON object per file on stdout."""
    return run("compress", *args, "--json", "--ssim")


def table(stdout: str) -> dict[str, dict]:
    """The JSON results of the files done, by input file."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {row["source"]: row for row in rows if row["status"] == "done"}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("kmq: error: ")]


def png_depth_and_type(path: Path) -> tuple[int, int]:
    """IHDR bit depth and color type, read from the bytes (signature 8 + length 4 + type 4 + 8)."""
    data = path.read_bytes()
    assert data[12:16] == b"IHDR"
    return data[24], data[25]


def expected_depth(k: int) -> int:
    return next(bits for bits in (1, 2, 4, 8) if k <= 1 << bits)


def decoded(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Palette, indices and RGB of a written PNG, decoded by Pillow."""
    with Image.open(path) as im:
        assert im.mode == "P"
        indices = np.asarray(im)
        palette = np.array(im.getpalette(), np.uint8).reshape(-1, 3)
        rgb = np.asarray(im.convert("RGB"))
    return palette, indices, rgb


def numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def check_row_against_files(row: dict, original: np.ndarray, source: Path,
                            output: Path, k_max: int) -> None:
    """Every reported number equals one recomputed independently from the files."""
    palette, indices, rgb = decoded(output)
    k_used = int(row["k"])
    assert 2 <= k_used <= k_max
    assert len(palette) == k_used  # exactly K PLTE entries
    assert len(np.unique(indices)) <= k_used
    assert png_depth_and_type(output) == (expected_depth(k_used), 3)
    assert row["psnr"] == pytest.approx(numpy_psnr(original, rgb), abs=1e-9)
    ref_ssim = structural_similarity(original, rgb, channel_axis=2, data_range=255)
    assert abs(row["ssim"] - ref_ssim) <= 1e-6
    assert row["output_bytes"] == output.stat().st_size
    assert row["input_bytes"] == source.stat().st_size
    assert row["change"] == pytest.approx(output.stat().st_size / source.stat().st_size - 1)
    assert (row["width"], row["height"]) == original.shape[1::-1]


def test_compress_png_writes_an_indexed_png_and_prints_true_numbers(image_folder, small_photo):
    source = image_folder / "cat.png"
    result = compress(source, "-k", 16)
    assert result.exit_code == 0, result.stderr
    output = image_folder / "cat-kmq.png"
    rows = table(result.stdout)
    assert list(rows) == [str(source)]
    check_row_against_files(rows[str(source)], small_photo, source, output, 16)
    assert result.stderr == ""


@pytest.mark.parametrize("k", [2, 5, 64])
def test_compress_jpeg_bit_depth_follows_k(image_folder, k):
    source = image_folder / "cup.jpg"
    with Image.open(source) as im:
        original = np.asarray(im.convert("RGB"))
    result = compress(source, "--colors", k)
    assert result.exit_code == 0, result.stderr
    row = table(result.stdout)[str(source)]
    assert int(row["k"]) == k  # the photo has far more than k colors
    check_row_against_files(row, original, source, image_folder / "cup-kmq.png", k)


def test_compress_grayscale_input(image_folder):
    source = image_folder / "cup_gray.png"
    with Image.open(source) as im:
        original = np.asarray(im.convert("RGB"))
    result = compress(source, "-k", 8)
    assert result.exit_code == 0, result.stderr
    output = image_folder / "cup_gray-kmq.png"
    check_row_against_files(table(result.stdout)[str(source)], original, source, output, 8)
    _, _, rgb = decoded(output)
    assert (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all()


def test_same_seed_gives_identical_bytes(image_folder, tmp_path):
    source = image_folder / "cat.png"
    for name in ("a.png", "b.png"):
        assert run("compress", source, "-k", 32, "--seed", 7, "-o", tmp_path / name,
                   "-q").exit_code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_no_overwrite_without_force(image_folder):
    source, output = image_folder / "cat.png", image_folder / "cat-kmq.png"
    output.write_bytes(b"keep me")
    result = compress(source, "-k", 4)
    assert result.exit_code == kmq.OutputExistsError.exit_code == 5
    assert output.read_bytes() == b"keep me"
    assert error_lines(result.stderr) == [result.stderr.strip()]
    assert "--force" in result.stderr and "cat-kmq.png" in result.stderr
    assert table(result.stdout) == {}
    forced = compress(source, "-k", 4, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert decoded(output)[0].shape == (4, 3)


def test_input_is_never_overwritten_even_with_force(image_folder):
    source = image_folder / "cat.png"
    before = source.read_bytes()
    result = run("compress", source, "-o", source, "--force", "-k", 4)
    assert result.exit_code == 5
    assert "input" in result.stderr
    assert source.read_bytes() == before


def test_an_output_that_is_another_input_is_refused(image_folder):
    """`kmq compress cat.png cat-kmq.png` must not replace the second input before reading it."""
    first, second = image_folder / "cat.png", image_folder / "cat-kmq.png"
    Image.open(image_folder / "cup.jpg").save(second)
    before = second.read_bytes()
    result = run("compress", first, second, "--force", "-k", 4)
    assert result.exit_code == 5
    assert second.read_bytes() == before
    assert (image_folder / "cat-kmq-kmq.png").exists()  # the second input was still compressed


def test_two_inputs_with_one_default_output_are_not_both_written(image_folder, small_photo):
    Image.fromarray(small_photo).save(image_folder / "cat.bmp")
    result = compress(image_folder / "cat.png", image_folder / "cat.bmp", "-k", 4,
                 "--force")
    assert result.exit_code == 5
    assert list(table(result.stdout)) == [str(image_folder / "cat.png")]
    assert "already written" in result.stderr


@pytest.mark.parametrize(("content", "message"), [(b"plain text, no pixels\n", "not an image"),
                                                  (None, "no such file")])
def test_unreadable_input_exits_3_with_one_line(image_folder, content, message):
    path = image_folder / "broken.png"
    if content is not None:
        path.write_bytes(content)
    result = run("compress", path)
    assert result.exit_code == kmq.ImageReadError.exit_code == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"kmq: error: {path}") and message in result.stderr
    assert not (image_folder / "broken-kmq.png").exists()


def test_too_many_pixels_exits_4(image_folder, small_photo):
    n = small_photo.shape[0] * small_photo.shape[1]
    result = run("compress", image_folder / "cat.png", "--max-pixels", n - 1)
    assert result.exit_code == kmq.ImageTooLargeError.exit_code == 4
    assert "over the limit" in result.stderr
    assert not (image_folder / "cat-kmq.png").exists()
    assert run("compress", image_folder / "cat.png", "--max-pixels", n, "-k",
               4).exit_code == 0


@pytest.mark.parametrize("k", [0, 1, 257, -3])
def test_k_outside_2_to_256_exits_2(image_folder, k):
    result = run("compress", image_folder / "cat.png", "-k", k)
    assert result.exit_code == 2
    assert not (image_folder / "cat-kmq.png").exists()


def test_k_256_is_accepted(image_folder):
    result = run("compress", image_folder / "cat.png", "-k", 256)
    assert result.exit_code == 0, result.stderr
    assert png_depth_and_type(image_folder / "cat-kmq.png")[0] == 8


def test_batch_goes_past_a_bad_file_and_exits_with_its_code(image_folder):
    bad = image_folder / "notes.png"
    bad.write_text("hello")
    good = [image_folder / "cat.png", image_folder / "cup.jpg"]
    result = compress(good[0], bad, good[1], "-k", 8)
    assert result.exit_code == 3
    assert set(table(result.stdout)) == {str(p) for p in good}
    assert (image_folder / "cat-kmq.png").exists() and (image_folder / "cup-kmq.png").exists()
    assert error_lines(result.stderr) == [f"kmq: error: {bad}: not an image file Pillow can read"]
    assert "1 of 3 files failed" in result.stderr


def test_batch_exit_code_is_the_first_failures(image_folder):
    missing = image_folder / "missing.png"
    (image_folder / "cat-kmq.png").write_bytes(b"existing")
    cat = image_folder / "cat.png"
    assert run("compress", missing, cat, "-k", 4).exit_code == 3
    assert run("compress", cat, missing, "-k", 4).exit_code == 5


def test_output_option_with_several_inputs_needs_a_directory(image_folder, tmp_path):
    inputs = [image_folder / "cat.png", image_folder / "cup.jpg"]
    result = run("compress", *inputs, "-o", tmp_path / "one.png")
    assert result.exit_code == 2
    assert "directory" in result.stderr
    assert not (tmp_path / "one.png").exists()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run("compress", *inputs, "-o", out_dir, "-k", 4)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["cat-kmq.png", "cup-kmq.png"]


def test_output_in_a_missing_directory_is_a_usage_error(image_folder, tmp_path):
    result = run("compress", image_folder / "cat.png", "-o", tmp_path / "nowhere" / "x.png")
    assert result.exit_code == 2


def test_transparency_is_kept_without_a_warning(tmp_path, small_photo):
    rgba = np.dstack([small_photo, np.full(small_photo.shape[:2], 128, np.uint8)])
    source = tmp_path / "glass.png"
    Image.fromarray(rgba).save(source)
    result = compress(source, "-k", 4)
    assert result.exit_code == 0
    assert "warning" not in result.stderr
    written = np.asarray(Image.open(tmp_path / "glass-kmq.png").convert("RGBA"))
    assert (written[:, :, 3] == 128).all()
    assert str(source) in table(result.stdout)


def test_an_rgb_palette_drops_transparency_with_a_one_line_warning(tmp_path, small_photo):
    rgba = np.dstack([small_photo, np.full(small_photo.shape[:2], 128, np.uint8)])
    source = tmp_path / "glass.png"
    Image.fromarray(rgba).save(source)
    palette = tmp_path / "two.gpl"
    palette.write_text("GIMP Palette\nName: two\n#\n  0   0   0 black\n255 255 255 white\n")
    result = run("compress", source, "--palette", palette)
    assert result.exit_code == 0, result.stderr
    warning_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("kmq: warning: ")]
    assert len(warning_lines) == 1 and "transparency" in warning_lines[0]


def test_unexpected_error_exits_1_in_one_line_and_the_batch_goes_on(image_folder, monkeypatch):
    import kmq.pipeline

    real = kmq.pipeline.quantize

    def flaky(image, k, **kwargs):
        if image.shape[:2] == (61, 83):  # the cat only
            raise RuntimeError("simulated bug\nwith a second line")
        return real(image, k, **kwargs)

    monkeypatch.setattr(kmq.pipeline, "quantize", flaky)
    monkeypatch.delenv("KMQ_DEBUG", raising=False)
    result = compress(image_folder / "cat.png", image_folder / "cup.jpg", "-k", 4)
    assert result.exit_code == kmq.KmqError.exit_code == 1
    assert error_lines(result.stderr) == [
        f"kmq: error: {image_folder / 'cat.png'}: internal error: RuntimeError: simulated bug "
        "with a second line"]
    assert list(table(result.stdout)) == [str(image_folder / "cup.jpg")]


def test_an_output_that_cannot_be_written_exits_1(image_folder, monkeypatch):
    import errno

    import kmq.files

    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(kmq.files, "write_atomic", full_disk)
    result = run("compress", image_folder / "cat.png", "-k", 4)
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [
        f"kmq: error: {image_folder / 'cat-kmq.png'}: cannot write (No space left on device)"]


def test_an_image_smaller_than_the_ssim_window_reports_no_ssim(tmp_path, small_photo):
    source = tmp_path / "tiny.png"
    Image.fromarray(np.ascontiguousarray(small_photo[:5, :9])).save(source)
    result = compress(source, "-k", 4)
    assert result.exit_code == 0, result.stderr
    row = table(result.stdout)[str(source)]
    assert row["ssim"] is None and row["psnr"] > 0


def test_library_progress_reaches_the_reporter(image_folder, tmp_path):
    stages = []

    def progress(stage, fraction):
        stages.append(stage)

    kmq.compress_file(image_folder / "cat.png", tmp_path / "x.png", kmq.CompressOptions(k=4),
                      progress=progress)
    own = {"reading", "encoding", "writing"}
    assert own <= set(stages)
    assert set(stages) - own  # stages reported by the library itself (histogram, k-means ...)


def test_every_command_and_option_has_help():
    group = get_command(cli.app)
    assert set(group.commands) == {"compress", "decompress", "info", "demo", "palette", "batch",
                                   "report", "serve", "warmup"}
    table_line = f"5 {EXIT_CODES[5]}"
    for name, command in group.commands.items():
        result = run(name, "--help")
        assert result.exit_code == 0
        text = " ".join(result.stdout.split())
        assert table_line not in text  # the exit-code table is in kmq --help only
        assert len(result.stdout.splitlines()) <= 42, f"kmq {name} --help is too long"
        assert "<bool>" not in result.stdout  # flags show as flags
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help" and not param.hidden:
                assert param.help, f"{name} {param.opts} has no help text"
                assert param.opts[0] in result.stdout
    top = run("--help")
    assert top.exit_code == 0
    text = " ".join(top.stdout.split())
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {meaning}" in text
    assert "compress" in top.stdout and "demo" in top.stdout


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kmq {kmq.__version__}"


def test_demo_writes_samples_and_their_compressed_versions(tmp_path):
    out = tmp_path / "demo"
    for _ in range(2):  # a second run replaces its own files
        result = run("demo", "-o", out, "-k", 4)
        assert result.exit_code == 0, result.stderr
        printed = {Path(line.split()[0]).name for line in result.stdout.splitlines()
                   if line.split() and line.split()[0].endswith(".png")}
        assert printed == {"astronaut.png", "coffee.png", "chelsea.png"}
    for name in ("astronaut", "coffee", "chelsea"):
        palette, _, _ = decoded(out / f"{name}-kmq.png")
        assert len(palette) == 4
        with Image.open(out / f"{name}.png") as im:
            assert im.mode == "RGB"


def test_cli_module_does_not_import_heavy_modules():
    code = ("import sys, kmq.cli; print(','.join(m for m in ('skimage', 'rich.progress', "
            "'rich.table', 'kmq.metrics', 'kmq.codecs.png') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


COMPRESS_IMPORTS_PROBE = """
import atexit, sys
from kmq.cli import main

def report():
    loaded = {m.split(".")[0] for m in sys.modules}
    import scipy.linalg, cffi  # hidden from numba only while it started: still importable
    print(",".join(sorted(loaded & {"scipy", "skimage", "cffi", "pycparser", "matplotlib"})))

atexit.register(report)
sys.argv = ["kmq", "compress", sys.argv[1], "-k", "8", "-o", sys.argv[2], "--quiet"]
main()
"""


def test_compress_imports_neither_scipy_nor_scikit_image_nor_cffi(tmp_path):
    """The command hides the packages numba would import but kmq never uses (scipy's linear
    algebra, cffi's C parser); the library, which a program may use with its own numba code,
    does not."""
    pytest.importorskip("scipy")
    pytest.importorskip("cffi")
    source, output = tmp_path / "in.png", tmp_path / "out.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(source)
    proc = subprocess.run([sys.executable, "-c", COMPRESS_IMPORTS_PROBE, str(source),
                           str(output)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
    assert len(decoded(output)[0]) == 8
    library = ("import kmq, numpy as np, sys; kmq.quantize(np.zeros((4, 4, 3), np.uint8), 2); "
               "from numba.core.typing import cffi_utils; print(cffi_utils.SUPPORTED)")
    out = subprocess.run([sys.executable, "-c", library], capture_output=True, text=True,
                         timeout=600, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.shared_images
def test_executable_compresses_a_shared_photo(shared_images, tmp_path):
    source = shared_images / "cq100" / "shopping_bags.png"
    if not source.exists():
        pytest.skip(f"{source} is absent")
    output = tmp_path / "bags.png"
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.run([str(KMQ_EXE), "compress", str(source), "-o", str(output), "-k", "8",
                           "--json", "--ssim"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    with Image.open(source) as im:
        original = np.asarray(im.convert("RGB"))
    check_row_against_files(table(proc.stdout)[str(source)], original, source, output, 8)


def test_executable_reports_errors_in_one_line(tmp_path):
    missing = tmp_path / "missing.jpg"
    proc = subprocess.run([str(KMQ_EXE), "compress", str(missing)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.splitlines() == [f"kmq: error: {missing}: no such file"]
    assert proc.stdout == ""
    version = subprocess.run([sys.executable, "-m", "kmq", "--version"], capture_output=True,
                             text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"kmq {kmq.__version__}"


WARM_UP_PROBE = """
import sys
import numpy as np
from numba.core import dispatcher
loads = []
real = dispatcher.Dispatcher.compile
def spy(self, sig):
    loads.append(self.py_func.__name__)
    return real(self, sig)
dispatcher.Dispatcher.compile = spy
from kmq.pipeline import quantize, warm_up
if sys.argv[1] == "warm":
    warm_up()
    loads.clear()
image = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
quantize(image, 16)
print(len(loads))
"""


def test_warm_up_leaves_no_kernel_to_load_for_a_small_image():
    # a fresh process each: after warm_up() (kmq compress runs it beside the first decode) the
    # first quantize loads nothing more; without it, it loads its kernels itself
    def loads(mode: str) -> int:
        run = subprocess.run([sys.executable, "-c", WARM_UP_PROBE, mode], capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, run.stderr
        return int(run.stdout)

    assert loads("cold") > 10
    assert loads("warm") == 0
