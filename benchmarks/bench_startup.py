"""The floor of ``kmq compress``: what a whole process costs before and around the real work.

Question: of the wall time of ``kmq compress`` on a small photo, how much is interpreter start-up,
imports and loading cached numba kernels, and how does the whole command compare with
``pngquant``?

Every measurement is a fresh process (wall time from the parent, median of ``--repeat`` runs; the
commands take turns within each round, so they share the machine's noise). One untimed round runs
first so that the numba kernel cache and the file-system cache are warm.

1. Processes: ``python -c pass``; ``import numpy, PIL.Image``; ``import numba``; ``import kmq``;
   ``import kmq.cli``; ``kmq --help``; the first ``kmq.quantize`` of a 24x24 image (imports, numba
   start-up, kernel cache loads); ``kmq compress IN.png -k K -o OUT.png --force --quiet`` and
   ``pngquant K --nofs --force --output OUT.png IN.png`` on the same 0.4 MP photo, with the ratio.
2. Imports of ``kmq compress``, from ``python -X importtime`` (``PYTHONPROFILEIMPORTTIME=1``):
   the self time of every module summed by top-level package (numpy, numba, scipy, skimage,
   typer, rich, kmq, ...), median over runs. Imports made on the CLI's warm-up thread (numba's
   start-up) are counted too, although they overlap the decoding of the image.
3. Stages: the steps of ``kmq compress`` run one after another through the library in a child
   process with a timer around each (imports, read, numba start-up and kernel cache loads,
   quantize, PNG encoding, writing, SSIM), with the new third-party packages each step imported.
   The command itself overlaps some of them (kernel loads with decoding, writing with SSIM), so
   the stages add up to more than its wall time.

With ``--src`` the rows that load kmq run once per source tree in every round, so an older
checkout (``git archive REV src | tar -x -C /tmp/old``) and the current one share the noise.

    python benchmarks/bench_startup.py [IMAGE_OR_FOLDER] [--k 64] [--repeat 7] [--markdown]
    python benchmarks/bench_startup.py --src before=/tmp/old/src --src after=src --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from PIL import Image

from _common import DEFAULT_IMAGES, find_images, machine, megapixels, read_rgb, table
from bench_cli import kmq_command

PY = sys.executable

#: The library steps of ``kmq compress`` (see kmq.cli.compress_file), one timer each. Prints one
#: JSON line: [[stage, seconds, [new top-level packages]], ...].
STAGES = r"""
import sys, time, json
t = time.perf_counter()
out = []
seen = {m.split(".")[0] for m in sys.modules}

def mark(name):
    global t, seen
    now = time.perf_counter()
    top = {m.split(".")[0] for m in sys.modules}
    new = sorted(m for m in top - seen
                 if m not in sys.stdlib_module_names and not m.startswith("_"))
    out.append([name, now - t, new])
    seen = top
    t = time.perf_counter()

src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
import numpy, PIL.Image
mark("import numpy, PIL.Image")
import kmq.cli
mark("import kmq.cli (typer)")
from kmq.io import read_image
rgb = read_image(src)
mark("read and decode the PNG")
import kmq.pipeline
mark("import kmq.pipeline (numba)")
kmq.pipeline.warm_up()
mark("numba start-up, quantizer kernel cache loads")
q = kmq.pipeline.quantize(rgb, k, seed=0)
mark("quantize")
from kmq.codecs.png import encode_png
data = encode_png(q.palette, q.indices)
mark("encode PNG")
with open(dst, "wb") as f:
    f.write(data)
mark("write")
from kmq import metrics
metrics.ssim_indexed(rgb, q.palette, q.indices, fast=True)  # as kmq.cli calls it
mark("SSIM (first call)")
import rich.console, rich.table
mark("import rich (the results table)")
metrics.ssim_indexed(rgb, q.palette, q.indices, fast=True)
mark("SSIM again (not part of compress)")
print(json.dumps(out))
"""

FIRST_QUANTIZE = ("import numpy as np, kmq; "
                  "kmq.quantize(np.random.default_rng(0).integers(0, 256, (24, 24, 3), "
                  "dtype=np.uint8), 8)")

_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")


def run(cmd: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {done.returncode}:\n{done.stderr}")
    return elapsed, done


def import_times(stderr: str) -> dict[str, float]:
    """Seconds of import self time per top-level package, from ``-X importtime`` output."""
    totals: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            totals[m.group(2).split(".")[0]] += int(m.group(1)) / 1e6
    return totals


def pick_photo(path: Path) -> Path:
    if path.is_file():
        return path
    photos = [p for p in find_images(path) if 0.3 <= megapixels(p) <= 0.5]
    if not photos:
        raise SystemExit(f"no photo of about 0.4 MP in {path}")
    return photos[0]


#: Always listed in the imports table (0 when not imported), then any other package above 2%.
KEY_PACKAGES = ["numpy", "PIL", "numba", "llvmlite", "scipy", "skimage", "typer", "pydantic",
                "rich", "kmq"]


def source_trees(specs: list[str] | None) -> list[tuple[str, dict]]:
    """(label, environment) per ``--src [LABEL=]DIR`` (DIR first on PYTHONPATH), or the kmq the
    interpreter imports as it is."""
    if not specs:
        return [("kmq", dict(os.environ))]
    trees = []
    for spec in specs:
        label, _, folder = spec.rpartition("=")
        folder_path = Path(folder).resolve()
        if not (folder_path / "kmq" / "__init__.py").is_file():
            raise SystemExit(f"--src {spec}: no kmq package in {folder_path}")
        path = os.pathsep.join(filter(None, [str(folder_path), os.environ.get("PYTHONPATH")]))
        trees.append((label or folder, {**os.environ, "PYTHONPATH": path}))
    return trees


def med(values) -> float:
    return statistics.median(values)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("image", nargs="?", default=str(DEFAULT_IMAGES / "cq100"),
                   help="a PNG photo, or a folder (its first photo of 0.3-0.5 MP)")
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--repeat", type=int, default=7, help="runs per measurement (median)")
    p.add_argument("--src", action="append", metavar="[LABEL=]DIR",
                   help="a source tree holding the kmq package (e.g. an older checkout's src), "
                        "put first on PYTHONPATH; repeat to compare trees in the same rounds")
    p.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = p.parse_args(argv)
    md = args.markdown

    photo = pick_photo(Path(args.image))
    trees = source_trees(args.src)
    labels = [label for label, _ in trees]
    kmq = kmq_command()
    kmq_cmd = [kmq] if kmq else [PY, "-m", "kmq"]
    pngquant = shutil.which("pngquant")
    digests = []
    for label, env in trees:
        digest = subprocess.run([PY, "-c", "from _common import kmq_source_digest as d; "
                                 "print(d())"], env=env, capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=True).stdout.strip()
        digests.append(f"{label} {digest}" if len(trees) > 1 else digest)
    print(f"# bench_startup: {photo.name} ({megapixels(photo):.2f} MP), K={args.k}, median of "
          f"{args.repeat} runs; {machine()}; kmq sources {', '.join(digests)}; load average "
          f"{os.getloadavg()[0]:.1f} at the start\n")

    with tempfile.TemporaryDirectory(prefix="kmq-startup-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "in.png"
        if photo.suffix.lower() == ".png":  # the same file for both
            shutil.copyfile(photo, src)
        else:  # pngquant reads PNG only
            Image.fromarray(read_rgb(photo)).save(src)
        out_k, out_p, out_s = tmp / "kmq.png", tmp / "pngquant.png", tmp / "stages.png"
        compress = f"kmq compress -k {args.k}"
        shared = {  # the same for every source tree
            "python -c pass": [PY, "-c", "pass"],
            "import numpy, PIL.Image": [PY, "-c", "import numpy, PIL.Image"],
            "import numba": [PY, "-c", "import numba"],
        }
        per_tree = {
            "import kmq": [PY, "-c", "import kmq"],
            "import kmq.cli": [PY, "-c", "import kmq.cli"],
            "kmq --help": [*kmq_cmd, "--help"],
            "first kmq.quantize, 24x24": [PY, "-c", FIRST_QUANTIZE],
            compress: [*kmq_cmd, "compress", str(src), "-k", str(args.k), "-o", str(out_k),
                       "--force", "--quiet"],
        }
        pngquant_name = f"pngquant {args.k} --nofs"
        if pngquant:
            shared[pngquant_name] = [pngquant, str(args.k), "--nofs", "--force", "--output",
                                     str(out_p), str(src)]
        stages_cmd = [PY, "-c", STAGES, str(src), str(out_s), str(args.k)]

        times: dict[tuple[str, str], list[float]] = defaultdict(list)
        imports: dict[str, list[dict[str, float]]] = defaultdict(list)
        stages: dict[str, list[list]] = defaultdict(list)
        for round_ in range(args.repeat + 1):  # round 0: untimed warm-up
            jobs = [(name, cmd, "", None) for name, cmd in shared.items()]
            jobs += [(name, cmd, label, env) for label, env in trees
                     for name, cmd in per_tree.items()]
            for name, cmd, label, env in jobs:
                elapsed, _ = run(cmd, env)
                if round_:
                    times[name, label].append(elapsed)
            for label, env in trees:
                # PYTHONPROFILEIMPORTTIME=1 is python -X importtime, for the kmq executable too
                _, done = run(per_tree[compress], {**env, "PYTHONPROFILEIMPORTTIME": "1"})
                if round_:
                    imports[label].append(import_times(done.stderr))
                _, done = run(stages_cmd, env)
                if round_:
                    stages[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {round_}/{args.repeat} done", file=sys.stderr, flush=True)
    print(f"(load average {os.getloadavg()[0]:.1f} at the end: the machine's other work)\n")

    base = med(times["python -c pass", ""])
    rows = []
    for name in [*list(shared)[:3], *per_tree, *list(shared)[3:]]:
        cells = [med(times[name, ""])] * len(trees) if name in shared else [
            med(times[name, label]) for label in labels]
        rows.append([name, *(f"{c:.3f}" for c in cells), *(f"{c - base:.3f}" for c in cells)])
    header = ["process", *(f"{label} s" if len(trees) > 1 else "s" for label in labels),
              *(f"{label} s above `python -c pass`" if len(trees) > 1
                else "s above `python -c pass`" for label in labels)]
    print("Whole processes (wall seconds, median; rows without kmq are shared by every "
          "column):\n")
    print(table(header, rows, markdown=md))
    if pngquant:
        print()
        for label in labels:
            ratio = med(k / q for k, q in zip(times[compress, label], times[pngquant_name, ""],
                                              strict=True))
            print(f"{label + ': ' if len(trees) > 1 else ''}kmq compress / pngquant "
                  f"{ratio:.2f}x (median of the per-round ratios)")
    for label in labels[1:]:
        ratio = med(b / a for a, b in zip(times[compress, labels[0]], times[compress, label],
                                          strict=True))
        print(f"kmq compress, {label} / {labels[0]}: {ratio:.3f}x (median of the per-round "
              f"ratios)")

    per_pkg = {label: {pkg: med(r.get(pkg, 0.0) for r in imports[label])
                       for pkg in {pkg for r in imports[label] for pkg in r}} for label in labels}
    totals = {label: med(sum(r.values()) for r in imports[label]) for label in labels}
    shown = list(KEY_PACKAGES)
    for label in labels:
        shown += [pkg for pkg, s in sorted(per_pkg[label].items(), key=lambda kv: -kv[1])
                  if s >= 0.02 * totals[label] and pkg not in shown]
    rows = [[pkg, *(f"{per_pkg[label].get(pkg, 0.0) * 1e3:.0f}" for label in labels)]
            for pkg in shown]
    rest = [totals[label] - sum(per_pkg[label].get(pkg, 0.0) for pkg in shown)
            for label in labels]
    rows.append(["(all others: stdlib, small packages)", *(f"{r * 1e3:.0f}" for r in rest)])
    rows.append(["total", *(f"{totals[label] * 1e3:.0f}" for label in labels)])
    print("\nImports of `kmq compress` by top-level package (python -X importtime, self time, "
          "ms, median):\n")
    print(table(["package", *(f"{label} ms" if len(trees) > 1 else "ms" for label in labels)],
                rows, markdown=md))

    rows = []
    names = [name for name, _, _ in stages[labels[0]][0]]
    for i, name in enumerate(names):
        ms = [f"{med(run_[i][1] for run_ in stages[label]) * 1e3:.0f}" for label in labels]
        new = [", ".join(sorted({pkg for run_ in stages[label] for pkg in run_[i][2]})) or "-"
               for label in labels]
        rows.append([name, *ms, *new])
    print("\nStages of `kmq compress` run one by one through the library (ms, median; the new "
          "third-party packages each one imported):\n")
    one = len(trees) == 1
    print(table(["stage", *("ms" if one else f"{label} ms" for label in labels),
                 *("imports" if one else f"{label} imports" for label in labels)], rows,
                markdown=md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
