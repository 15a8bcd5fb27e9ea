"""Where a report's files go, and writing them all or none.

An HTML report at ``report.html`` has its plots beside it as PNG files in ``report-files/``
(:func:`output_paths`). :func:`write_files` writes a report's files so that a failure (a full
disk, a folder without permission) leaves nothing behind: a rerun of the same command then
finds no file of the failed one in its way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from kmq import files
from kmq.errors import OutputExistsError, OutputWriteError, one_line
from kmq.report.plots import FIGURES


def output_paths(path: str | os.PathLike) -> dict[str, Path]:
    """The PNG figures written beside an HTML report at ``path``, by figure name:
    ``report.html`` -> ``report-files/quality-vs-size.png`` and so on.

    Examples
    --------
    >>> from kmq.report import output_paths
    >>> [str(p) for p in output_paths("out/report.html").values()]  # doctest: +NORMALIZE_WHITESPACE
    ['out/report-files/quality-vs-size.png', 'out/report-files/quality-vs-k.png',
     'out/report-files/palettes.png']
    """
    path = Path(path)
    folder = path.with_name(f"{path.stem}-files")
    return {name: folder / f"{name}.png" for name in FIGURES}


def write_files(outputs: Sequence[tuple[str | os.PathLike, bytes]], *, overwrite: bool = False,
                inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Write every ``(path, data)``, or none of them.

    Every path is checked first (:func:`kmq.files.check_output`: without ``overwrite`` an
    existing file is an :class:`kmq.OutputExistsError`; a path among ``inputs`` is never
    replaced). Each file is then written atomically by :func:`kmq.files.write_bytes` to a
    hidden temporary beside its place (a missing folder is made, one level only), and once all
    are written they are renamed into place, in order. If anything fails, the temporaries, the
    files this call already put in place and the folders it made are removed, and the error is
    raised (:class:`kmq.OutputWriteError` for an OS error). Existing files are left as they
    were; only a failure of the renames themselves, with ``overwrite``, can leave some of them
    replaced.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_files([(folder / "a-files" / "x.png", b"x"), (folder / "a.html", b"page")])
    >>> sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    ['a-files', 'a-files/x.png', 'a.html']
    """
    paths = [(Path(path), data) for path, data in outputs]
    for target, _ in paths:
        files.check_output(target, force=overwrite, inputs=inputs)
    token = secrets.token_hex(6)
    made: list[Path] = []  # folders this call made
    staged: list[Path] = []  # temporaries, one per output, in order
    placed: list[tuple[Path, bool]] = []  # outputs renamed into place, and whether one existed
    current = paths[0][0] if paths else Path()
    try:
        for current, data in paths:
            _make_folder(current.parent, made)
            staged.append(current.with_name(f".{current.name}.{token}.part"))
            files.write_bytes(staged[-1], data)
        for (current, _), stage in zip(paths, staged, strict=True):
            existed = os.path.lexists(current)
            _place(stage, current, overwrite)
            placed.append((current, existed))
    except BaseException as exc:
        for stage in staged:
            with contextlib.suppress(OSError):
                stage.unlink(missing_ok=True)
        for target, existed in placed:
            if not existed:
                with contextlib.suppress(OSError):
                    target.unlink()
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: nothing of anyone else's goes
        if isinstance(exc, FileExistsError):  # appeared since the check
            raise OutputExistsError(f"{current}: exists (use --force to overwrite)") from exc
        cause = exc.__cause__ if isinstance(exc, OutputWriteError) else exc
        if isinstance(cause, OSError):  # named after the output, not its temporary
            raise OutputWriteError(f"{current}: cannot write "
                                   f"({cause.strerror or one_line(cause)})") from cause
        raise


def _make_folder(folder: Path, made: list[Path]) -> None:
    """Make ``folder`` if it is missing (its parent must exist), noting it in ``made``."""
    if folder.is_dir():
        return
    try:
        folder.mkdir()
    except FileExistsError:
        if not folder.is_dir():  # a file of that name
            raise
        return
    made.append(folder)


def _place(stage: Path, target: Path, overwrite: bool) -> None:
    """Rename ``stage`` to ``target``; without ``overwrite``, never onto a file that appeared
    meanwhile (FileExistsError)."""
    if overwrite:
        os.replace(stage, target)
        return
    try:
        os.link(stage, target)  # atomic, and fails if the target exists
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise FileExistsError(target) from None
        os.replace(stage, target)
        return
    stage.unlink()


__all__ = ["output_paths", "write_files"]
