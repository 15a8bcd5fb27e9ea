"""What a batch does, before any work: the input files, where each output goes, and the
temporary files an interrupted run left.

A batch keeps its inputs' layout under the output folder: ``photos/2024/a.jpg``, given as the
folder ``photos``, becomes ``OUT/2024/a.png``. Jobs are plain strings, so they travel to any
worker.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kmq import codecs
from kmq.errors import ImageReadError, one_line


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes (both as strings: plain, picklable).

    Attributes
    ----------
    source, output : str
    """

    source: str
    output: str


def image_extensions() -> frozenset[str]:
    """Lower-case extensions of the image files Pillow opens (what a folder walk picks)."""
    from PIL import Image

    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def collect_inputs(inputs: Sequence[str | os.PathLike], *, recursive: bool = False,
                   exclude: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """Every input file as ``(path, relative path)``, the relative path being the layout to
    keep under the output folder.

    An existing folder gives its image files (by extension; hidden files are left out), all
    the way down with ``recursive``, relative to itself; a glob pattern (``*``, ``?``, ``[``;
    ``**`` for any depth) gives what it matches, relative to its fixed leading folders; any
    other name is taken as a file, by its name (a missing one then fails as unreadable).
    Files found under ``exclude`` (the output folder) by a walk or a glob are left out, and a
    file named twice is kept once, at its first place.

    Parameters
    ----------
    inputs : sequence of str or path-like
        Files, folders and glob patterns.
    recursive : bool
        Walk folders all the way down.
    exclude : str or path-like, optional
        A folder whose files walks and globs leave out.

    Returns
    -------
    list of (Path, Path)
    """
    exts = image_extensions()
    skip = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path, walked: bool = True) -> None:
        key = path.resolve()
        if key not in seen and not (walked and _inside(key, skip)):
            seen.add(key)
            found.append((path, rel))

    def walk(folder: Path, base: Path) -> None:
        # depth first over sorted entries: the order of sorting every path found; hidden files
        # and folders are left out, symbolic links to folders are not followed
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:  # a folder that cannot be listed (no permission): said, not
            raise ImageReadError(f"{folder}: cannot list the folder "  # silently skipped
                                 f"({exc.strerror or one_line(exc)})") from exc
        for path in entries:
            if path.name.startswith("."):
                continue
            if recursive and os.path.isdir(path) and not os.path.islink(path):
                walk(path, base)
            elif os.path.isfile(path) and path.suffix.lower() in exts:
                add(path, path.relative_to(base))

    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if os.path.isdir(path):  # False where a folder may not be entered: then a file
            walk(path, path)
        elif glob.has_magic(text):
            parts = path.parts
            fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
            base = Path(*parts[:fixed]) if fixed else Path(".")
            for match in sorted(glob.glob(text, recursive=True)):
                m = Path(match)
                if os.path.isdir(m):
                    walk(m, base)
                elif os.path.isfile(m) and not m.name.startswith("."):
                    add(m, m.relative_to(base))
        else:
            add(path, Path(path.name), walked=False)
    return found


def output_path(rel: str | os.PathLike, out_dir: str | os.PathLike,
                format: str = codecs.DEFAULT) -> Path:
    """Where the input at ``rel`` (relative to its input folder) goes: the same folders and
    stem under ``out_dir``, with the extension of ``format`` (a :mod:`kmq.codecs` name).

    Examples
    --------
    >>> from kmq.batch import output_path
    >>> output_path("2024/a.jpg", "out", "webp").as_posix()
    'out/2024/a.webp'
    """
    rel = Path(rel)
    return Path(out_dir) / rel.parent / f"{rel.stem}{codecs.get(format).extension}"


def plan_batch(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
               format: str = codecs.DEFAULT, recursive: bool = False) -> list[Job]:
    """The jobs of a batch: :func:`collect_inputs` (leaving ``out_dir`` out), each mapped to
    :func:`output_path` under ``out_dir``.

    Raises
    ------
    kmq.codecs.UnknownFormatError
        ``format`` is not a registered format.
    """
    codecs.get(format)  # an unknown format fails here, not once per file
    return [Job(os.fspath(src), os.fspath(output_path(rel, out_dir, format)))
            for src, rel in collect_inputs(inputs, recursive=recursive, exclude=out_dir)]


def remove_stale_temporaries(outputs: Iterable[str | os.PathLike]) -> int:
    """Delete the temporary files (``.<name>.*.tmp``, see :func:`kmq.io.atomic_output`) that an
    interrupted run left beside ``outputs``; returns how many. Do not run two batches into one
    folder at once: one would delete the other's files in progress."""
    by_folder: dict[Path, set[str]] = {}
    for out in outputs:
        path = Path(out)
        by_folder.setdefault(path.parent, set()).add(path.name)
    removed = 0
    for folder, names in by_folder.items():
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(".") and entry.endswith(".tmp"):
                name = entry[1:-4].rsplit(".", 1)[0]
                if name in names:
                    try:
                        os.unlink(folder / entry)
                        removed += 1
                    except OSError:
                        pass
    return removed


__all__ = ["Job", "collect_inputs", "image_extensions", "output_path", "plan_batch",
           "remove_stale_temporaries"]
