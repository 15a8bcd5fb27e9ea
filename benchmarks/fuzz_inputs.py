"""Damaged image files through kmq's file layer, by the ten thousand: how each is handled.

The mutations of ``tests/properties/test_image_fuzz.py`` (``tests/image_mutations.py``: cut
short, bits flipped, header bytes overwritten, bytes inserted, sizes forged in valid headers) on
small PNG, JPEG, GIF, WebP and TIFF files, each damaged file read by ``kmq.io.read_image`` and
compressed by ``kmq.compress_file``. Prints the count of each outcome (``ok``, each documented
error, ``unexpected``) per format and per mutation; an unexpected outcome (another exception, an
error message of several lines, the two paths disagreeing) is listed with its seed, and the
damaged file is kept with ``--keep DIR``. Exit status 1 when anything was unexpected. The
``noisy`` column counts the files on which a C decoder (libtiff) wrote lines of its own on the
process's stderr, which the ``kmq`` command would show above its one-line error; they are
caught here (file descriptor 2 goes to a temporary file during the run).

    python benchmarks/fuzz_inputs.py --count 20000
    python benchmarks/fuzz_inputs.py --seconds 60 --seed 7 --keep /tmp/fuzz-cases
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_mutations import (  # the tests' helpers, shared on purpose
    FORMATS,
    MUTATIONS,
    random_mutation,
    sample_files,
    through_file_layer,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="damaged files to try")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop after this long, whatever the count")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first file")
    parser.add_argument("--keep", type=Path, default=None,
                        help="folder to keep the unexpected cases in")
    args = parser.parse_args()

    samples = sample_files()
    by_format: dict[str, collections.Counter] = {f: collections.Counter() for f in FORMATS}
    by_kind: dict[str, collections.Counter] = {k: collections.Counter() for k in MUTATIONS}
    unexpected: list[str] = []
    noisy: collections.Counter = collections.Counter()
    start = time.perf_counter()
    done = 0
    sys.stderr.flush()
    saved_stderr, captured = os.dup(2), tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    try:
        done = _run(args, samples, by_format, by_kind, unexpected, noisy, captured)
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    seconds = time.perf_counter() - start

    outcomes = sorted({o for c in by_format.values() for o in c},
                      key=lambda o: (o != "ok", o == "unexpected", o))
    for title, table in (("format", by_format), ("mutation", by_kind)):
        print(f"| {title} | " + " | ".join(outcomes) + " | total | noisy |")
        print("|---" * (len(outcomes) + 3) + "|")
        for name, counts in table.items():
            print(f"| {name} | " + " | ".join(str(counts[o]) for o in outcomes)
                  + f" | {sum(counts.values())} | {noisy[name]} |")
        print()
    print(f"{done} damaged files, seeds {args.seed}..{args.seed + done - 1}, in {seconds:.1f} s "
          f"({1000 * seconds / max(done, 1):.1f} ms each); unexpected: {len(unexpected)}")
    for line in unexpected[:20]:
        print("  " + line)
    return 1 if unexpected else 0


def _run(args, samples, by_format, by_kind, unexpected, noisy, captured) -> int:
    """The trips, counted into the tables given; returns how many were made."""
    start = time.perf_counter()
    done = 0
    written = 0
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's and kmq's warnings are not outcomes
        for i in range(args.count):
            if args.seconds is not None and time.perf_counter() - start > args.seconds:
                break
            seed = args.seed + i
            fmt = FORMATS[i % len(FORMATS)]
            kind, data = random_mutation(fmt, samples[fmt], np.random.default_rng(seed))
            try:
                outcome = through_file_layer(data, folder)
            except Exception as exc:  # what the fuzz is looking for
                outcome = "unexpected"
                unexpected.append(f"seed {seed} {fmt} {kind}: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:200]}")
                if args.keep is not None:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    (args.keep / f"{seed}-{fmt}-{kind}.bin").write_bytes(data)
            by_format[fmt][outcome] += 1
            by_kind[kind][outcome] += 1
            size = os.fstat(captured.fileno()).st_size
            if size > written:
                noisy[fmt] += 1
                noisy[kind] += 1
                written = size
            done += 1
    return done


if __name__ == "__main__":
    sys.exit(main())
