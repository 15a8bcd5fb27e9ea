"""kmq: image compression by true k-means color quantization.

>>> import numpy as np, kmq
>>> img = np.zeros((4, 4, 3), np.uint8); img[:2] = 200
>>> q = kmq.quantize(img, 2)
>>> q.k, q.mse
(2, 0.0)

Two phases, as libimagequant has: fit a palette, then map images onto it. ``quantize`` is the
two in one:

>>> fit = kmq.fit_palette(img, 2)
>>> bool((fit.remap(img).indices == q.indices).all())
True

A result is saved to kmq's own compact format (``.kmq``, see ``docs/FORMAT.md``) and loaded back
bit for bit; ``encode`` and ``decode`` do the same with bytes:

>>> back = kmq.decode(kmq.encode(q.palette, q.indices))
>>> bool((back.to_rgb() == q.palette[q.indices]).all()), back.width, back.height
(True, 4, 4)

Files: ``compress_file`` reads, quantizes, encodes and writes one image (PNG, WebP, GIF or
``.kmq``) atomically and returns what it did; ``decompress_file`` turns a ``.kmq`` back into an
image file. The compiled engine (numba) is imported on first use, so ``import kmq`` and
``kmq --help`` stay fast.
"""

from kmq.errors import (
    AlphaDroppedWarning,
    CancelledError,
    CorruptFileError,
    FirstFrameWarning,
    ImageReadError,
    ImageTooLargeError,
    KmqError,
    KmqWarning,
    MissingExtraError,
    NonFiniteWarning,
    OutputExistsError,
    OutputWriteError,
    ProfileIgnoredWarning,
    QualityTooLowError,
)

__version__ = "0.2.0"

_LAZY = {
    "quantize": "kmq.pipeline",
    "fit_palette": "kmq.pipeline",
    "PaletteFit": "kmq.pipeline",
    "remap": "kmq.pipeline",
    "apply_palette": "kmq.pipeline",
    "quantize_to_quality": "kmq.targets",
    "quantize_to_size": "kmq.targets",
    "histogram": "kmq.color_histogram",
    "ColorHistogram": "kmq.color_histogram",
    "Quantized": "kmq.quantized",
    "IndexedImage": "kmq.quantized",
    "CompressOptions": "kmq.files",
    "FileResult": "kmq.files",
    "compress_file": "kmq.files",
    "decompress_file": "kmq.indexed_files",
    "save": "kmq.indexed_files",
    "load": "kmq.indexed_files",
    "encode": "kmq.codecs.container",
    "decode": "kmq.codecs.container",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kmq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AlphaDroppedWarning",
    "CancelledError",
    "ColorHistogram",
    "CompressOptions",
    "CorruptFileError",
    "FileResult",
    "FirstFrameWarning",
    "ImageReadError",
    "ImageTooLargeError",
    "IndexedImage",
    "KmqError",
    "KmqWarning",
    "MissingExtraError",
    "NonFiniteWarning",
    "OutputExistsError",
    "OutputWriteError",
    "PaletteFit",
    "ProfileIgnoredWarning",
    "QualityTooLowError",
    "Quantized",
    "__version__",
    "apply_palette",
    "compress_file",
    "decode",
    "decompress_file",
    "encode",
    "fit_palette",
    "histogram",
    "load",
    "quantize",
    "quantize_to_quality",
    "quantize_to_size",
    "remap",
    "save",
]
