"""The closed set of errors kmq raises.

Every error derives from :class:`KmqError`; the CLI maps each class to a stable exit code
(see ``kmq --help`` and the README).
"""

from __future__ import annotations


class KmqError(Exception):
    """Base class of every error kmq raises on purpose."""


class ImageReadError(KmqError):
    """An input could not be read as an image (missing, unreadable, not an image, corrupt)."""


class ImageTooLargeError(ImageReadError):
    """An input image has more pixels than the allowed limit (decompression-bomb guard)."""


class OutputExistsError(KmqError):
    """An output file exists and overwriting was not allowed."""


class CorruptFileError(KmqError):
    """A .kmq container is truncated, damaged or not a .kmq file."""


class QualityTooLowError(KmqError):
    """The requested minimum quality could not be reached with the allowed number of colors."""


class CancelledError(KmqError):
    """A progress callback asked to stop the work."""


def error_kind(exc: BaseException) -> str:
    """What went wrong, as a short word: ``corrupt``, ``too_large``, ``read``, ``exists``,
    ``quality`` or ``internal`` (the CLI maps each to its exit code)."""
    if isinstance(exc, CorruptFileError):
        return "corrupt"
    if isinstance(exc, ImageTooLargeError):
        return "too_large"
    if isinstance(exc, ImageReadError):
        return "read"
    if isinstance(exc, OutputExistsError):
        return "exists"
    if isinstance(exc, QualityTooLowError):
        return "quality"
    return "internal"


def one_line(text: object) -> str:
    """``text`` as one line, runs of whitespace made single spaces (messages, warnings)."""
    return " ".join(str(text).split())
