"""What a batch's output folder remembers of the run that made it: the options that shape the
outputs, in a small JSON file (``.kmq-batch.json``). A rerun with the same options resumes; with
other options it would mix two kinds of files, so it stops and says which options differ
(``force`` redoes every file and records the new options)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from kmq.errors import KmqError, OutputWriteError, one_line

#: The manifest's file name in the output folder.
MANIFEST_NAME = ".kmq-batch.json"


class OptionsChangedError(KmqError):
    """The output folder was made with other options (rerun with ``force`` to redo it)."""

    kind = "usage"
    exit_code = 2


def options_record(options, *, shared_palette: bool = False) -> dict:
    """The options of ``options`` (:class:`kmq.CompressOptions`) that shape the outputs, as
    JSON-ready values (a given palette by its sha256)."""
    palette = options.palette
    return {
        "k": int(options.k), "format": options.format, "seed": int(options.seed),
        "color_space": options.color_space, "dither": float(options.dither),
        "psnr": list(options.psnr) if options.psnr is not None else None,
        "max_bytes": options.max_bytes, "effort": options.effort,
        "skip_if_larger": bool(options.skip_if_larger), "shared_palette": bool(shared_palette),
        "palette": None if palette is None else hashlib.sha256(palette.tobytes()).hexdigest(),
    }


def check_manifest(out_dir: str | os.PathLike, options, *, shared_palette: bool = False,
                   force: bool = False) -> None:
    """Raise :class:`OptionsChangedError` when ``out_dir``'s manifest records other options
    (unless ``force``); then record these (a folder without a manifest is taken as it is)."""
    from kmq import __version__
    from kmq.io import write_atomic

    path = Path(out_dir) / MANIFEST_NAME
    wanted = options_record(options, shared_palette=shared_palette)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("options", {})
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded == wanted:
        return
    if recorded is not None and not force:
        changed = [f"{key} {recorded.get(key)!r} -> {value!r}" for key, value in wanted.items()
                   if recorded.get(key) != value]
        raise OptionsChangedError(
            f"{out_dir}: made with other options ({'; '.join(changed)}); nothing done: rerun "
            f"with the same options to resume, or add --force to redo every file")
    data = json.dumps({"kmq": __version__, "options": wanted}, indent=1) + "\n"
    try:
        write_atomic(path, lambda fh: fh.write(data.encode()), overwrite=True)
    except OSError as exc:  # a folder kmq may not write in, a full disk
        raise OutputWriteError(f"{path}: cannot write ({exc.strerror or one_line(exc)})"
                               ) from exc


__all__ = ["MANIFEST_NAME", "OptionsChangedError", "check_manifest", "options_record"]
