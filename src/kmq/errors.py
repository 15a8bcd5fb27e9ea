"""The closed set of errors kmq raises, each with its kind and its command-line exit code.

Every error derives from :class:`KmqError`. Each class states a short ``kind`` (used in batch
reports and JSON output) and the ``exit_code`` the ``kmq`` command exits with; the table is
:data:`EXIT_CODES` and ``kmq --help`` prints it.
"""

from __future__ import annotations


class KmqError(Exception):
    """Base class of every error kmq raises on purpose."""

    kind = "internal"
    exit_code = 1


class ImageReadError(KmqError):
    """An input could not be read as an image (missing, unreadable, not a regular file, not an
    image, corrupt)."""

    kind = "read"
    exit_code = 3


class ImageTooLargeError(ImageReadError):
    """An input image has more pixels than the allowed limit (decompression-bomb guard)."""

    kind = "too_large"
    exit_code = 4


class OutputExistsError(KmqError):
    """An output file exists and overwriting was not allowed, or it would replace an input."""

    kind = "exists"
    exit_code = 5


class OutputWriteError(KmqError):
    """An output file could not be written (a missing folder, no permission, a full disk)."""

    kind = "write"
    exit_code = 1


class CorruptFileError(KmqError):
    """A .kmq container is truncated, damaged or not a .kmq file."""

    kind = "corrupt"
    exit_code = 6


class QualityTooLowError(KmqError):
    """The requested minimum quality could not be reached with the allowed number of colors."""

    kind = "quality"
    exit_code = 7


class SizeBudgetError(KmqError):
    """Even the fewest colors make a file larger than the byte budget asked for."""

    kind = "budget"
    exit_code = 9


class ArgumentError(KmqError, ValueError):
    """An argument has a value the function does not take (also a :class:`ValueError`)."""

    kind = "usage"
    exit_code = 2


class ArgumentTypeError(KmqError, TypeError):
    """An argument has a type the function does not take (also a :class:`TypeError`)."""

    kind = "usage"
    exit_code = 2


class CancelledError(KmqError):
    """A progress callback asked to stop the work."""

    kind = "cancelled"
    exit_code = 130


class MissingExtraError(KmqError, ImportError):
    """An optional part of kmq is not installed (``pip install 'kmq[EXTRA]'`` adds it)."""

    kind = "usage"
    exit_code = 2


#: Exit codes of the ``kmq`` command, with what each means.
EXIT_CODES = {
    0: "success: every input was processed",
    1: "unexpected error, or an output could not be written",
    2: "invalid usage or argument (or a missing optional part)",
    3: "an input could not be read: missing, not a regular file, not an image, damaged",
    4: "an input has more pixels than --max-pixels",
    5: "an output exists and --force was not given, or it would replace an input",
    6: "a .kmq input is corrupt, truncated or not a .kmq file",
    7: "the quality asked for cannot be reached; nothing is written",
    8: "--skip-if-larger: an output would be larger than its input; nothing is written",
    9: "--max-size: even 2 colors make a larger file; nothing is written",
    130: "interrupted (Ctrl-C) or cancelled",
}

#: Exit code of each error kind (:attr:`KmqError.kind`); ``worker`` is a batch worker process
#: that died.
EXIT_BY_KIND = {cls.kind: cls.exit_code for cls in (
    KmqError, ImageReadError, ImageTooLargeError, OutputExistsError, OutputWriteError,
    CorruptFileError, QualityTooLowError, SizeBudgetError, CancelledError, ArgumentError)}
EXIT_BY_KIND["worker"] = 1
#: A file left unwritten because its output would be larger than its input.
EXIT_LARGER = 8


def error_kind(exc: BaseException) -> str:
    """What went wrong, as a short word (:attr:`KmqError.kind`; ``internal`` for anything that
    is not a :class:`KmqError`)."""
    return exc.kind if isinstance(exc, KmqError) else "internal"


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an error (1 for anything that is not a :class:`KmqError`)."""
    return exc.exit_code if isinstance(exc, KmqError) else 1


def require(module: str, extra: str, what: str):
    """Import ``module``, or raise :class:`MissingExtraError` naming the extra that installs it.

    Examples
    --------
    >>> from kmq.errors import require
    >>> require("json", "web", "the web page").__name__
    'json'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(f"{what} needs {module.split('.')[0]}, which is not installed: "
                                f"pip install 'kmq[{extra}]'") from exc


def one_line(text: object) -> str:
    """``text`` as one line, runs of whitespace made single spaces (messages, warnings)."""
    return " ".join(str(text).split())


class KmqWarning(UserWarning):
    """Base class of the warnings kmq gives (the ``kmq`` command prints them as
    ``kmq: warning: ...``)."""


class AlphaDroppedWarning(KmqWarning):
    """The input had transparency, which this use drops (it needs RGB)."""


class ProfileIgnoredWarning(KmqWarning):
    """The input's embedded ICC profile could not be used; its colors were read as sRGB."""


class NonFiniteWarning(KmqWarning):
    """A float image had NaN or infinite samples; they were clipped to the image's range."""


class FirstFrameWarning(KmqWarning):
    """The input has several frames or pages (an animation, a multi-page TIFF); the first one
    was used."""
