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
