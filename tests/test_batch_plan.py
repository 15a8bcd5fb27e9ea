"""``kmq.batch.plan``: inputs (folders, globs, files) to jobs that keep their layout under the
output folder, output names from the codec registry, and the cleanup of temporary files an
interrupted run left."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmq import batch as kb
from kmq import codecs


def test_inputs_are_walked_and_their_layout_kept(tmp_path):
    root = tmp_path / "in"
    (root / "a" / "b").mkdir(parents=True)
    for rel in ("x.png", "y.JPG", "a/z.png", "a/b/w.webp", "notes.txt", ".hidden.png",
                "a/.x.png.abc123.tmp"):
        (root / rel).write_bytes(b"")
    out = root / "out"
    (out).mkdir()
    (out / "old.png").write_bytes(b"")  # the output folder is never an input

    def rel(jobs):
        return sorted((Path(j.source).relative_to(root).as_posix(),
                       Path(j.output).relative_to(out).as_posix()) for j in jobs)

    assert rel(kb.plan_batch([root], out)) == [("x.png", "x.png"), ("y.JPG", "y.png")]
    assert rel(kb.plan_batch([root], out, recursive=True, format="kmq")) == [
        ("a/b/w.webp", "a/b/w.kmq"), ("a/z.png", "a/z.kmq"), ("x.png", "x.kmq"),
        ("y.JPG", "y.kmq")]
    assert rel(kb.plan_batch([f"{root}/**/*.png"], out)) == [("a/z.png", "a/z.png"),
                                                            ("x.png", "x.png")]
    # a file named directly goes to the top of OUT_DIR; a file named twice is done once
    assert rel(kb.plan_batch([root / "a" / "b" / "w.webp", root / "a/b/../b/w.webp"], out)) == [
        ("a/b/w.webp", "w.png")]


def test_outputs_take_the_extension_of_their_format(tmp_path):
    source = tmp_path / "in" / "photo.jpeg"
    source.parent.mkdir()
    source.write_bytes(b"")
    expected = {"png": "photo.png", "webp": "photo.webp", "gif": "photo.gif",
                "kmq": "photo.kmq"}
    assert set(expected) == set(codecs.names())  # every registered format is checked
    for name, output in expected.items():
        (job,) = kb.plan_batch([source], tmp_path / "out", format=name.upper())
        assert Path(job.output) == tmp_path / "out" / output
    with pytest.raises(codecs.UnknownFormatError, match="jpeg"):
        kb.plan_batch([source], tmp_path / "out", format="jpeg")


def test_temporaries_of_an_interrupted_run_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    # names as kmq.io.atomic_output makes them: ".<name>.<random>.tmp" beside <name>
    stale = [out / ".a.png.k2j4x9.tmp", out / ".a.png.q0w8e7.tmp", out / "sub" / ".b.png.z.tmp"]
    kept = [out / "a.png", out / ".c.png.k2j4x9.tmp", out / ".a.png.notes",
            out / "sub" / "b.png"]
    for path in stale + kept:
        path.write_bytes(b"x")
    outputs = [out / "a.png", out / "sub" / "b.png", tmp_path / "missing" / "d.png"]
    assert kb.remove_stale_temporaries(outputs) == len(stale)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(kept)
