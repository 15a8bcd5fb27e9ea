"""The page's image store: decoded uploads by random token, in memory, bounded.

An image is uploaded once and then referred to by its token, so moving the K slider sends a
few bytes, not the file, and the file is not decoded again. At most ``max_images`` images and
``max_bytes`` of pixels are kept, the least recently used evicted first; an evicted token is
unknown (the page then uploads the file again).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable

from kmq.io import SourceImage


class ImageStore:
    """Decoded images (:class:`kmq.io.SourceImage`) by random token, least recently used
    evicted first; thread-safe.

    The stored pixels are made read-only: requests running side by side share them.

    Examples
    --------
    >>> import numpy as np
    >>> from kmq.io import SourceImage
    >>> store = ImageStore(max_images=1, max_bytes=100)
    >>> a = store.put(SourceImage(np.zeros((2, 2, 3), np.uint8), "a", 10))
    >>> b = store.put(SourceImage(np.zeros((2, 2, 3), np.uint8), "b", 10))
    >>> store.get(a) is None, store.get(b).name, len(store)
    (True, 'b', 1)
    """

    def __init__(self, max_images: int, max_bytes: int,
                 on_evict: Callable[[], None] | None = None) -> None:
        self.max_images = max_images
        self.on_evict = on_evict  # called (outside the lock) after images were dropped
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, SourceImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, image: SourceImage) -> str:
        """Store ``image``; returns its new token. The most recent image is always kept, even
        alone over ``max_bytes``."""
        image.pixels.flags.writeable = False
        token = secrets.token_urlsafe(18)
        dropped = []
        with self._lock:
            self._items[token] = image
            self._bytes += image.pixels.nbytes
            while len(self._items) > 1 and (len(self._items) > self.max_images
                                            or self._bytes > self.max_bytes):
                _, old = self._items.popitem(last=False)
                self._bytes -= old.pixels.nbytes
                dropped.append(old)
        if dropped and self.on_evict is not None:
            del dropped, old  # the last references: their pixels are freed before the call
            self.on_evict()
        return token

    def get(self, token: str) -> SourceImage | None:
        """The image of ``token`` (now the most recently used), or None if unknown/evicted."""
        with self._lock:
            image = self._items.get(token)
            if image is not None:
                self._items.move_to_end(token)
            return image

    def clear(self) -> None:
        """Forget every image."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
        if self.on_evict is not None:
            self.on_evict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


__all__ = ["ImageStore"]
