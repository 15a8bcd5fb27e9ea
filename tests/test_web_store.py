"""``kmq.web.store``: the page's images by token, bounded by count and bytes."""

from __future__ import annotations

import threading

import numpy as np

from kmq.io import SourceImage
from kmq.web.store import ImageStore


def image(side: int, name: str = "x") -> SourceImage:
    return SourceImage(np.zeros((side, side, 3), np.uint8), name, 1)


def test_store_evicts_least_recently_used_within_its_byte_budget():
    small = image(10)  # 300 bytes
    store = ImageStore(max_images=10, max_bytes=1000)
    a, b, c = (store.put(small) for _ in range(3))
    assert store.get(a) is small  # a is now the most recently used
    store.put(small)  # 1200 bytes: the least recently used, b, goes
    assert store.get(b) is None and store.get(a) is small and store.get(c) is small
    assert len(store) == 3
    huge = image(30, "h")
    token = store.put(huge)  # alone over the budget: kept, everything else goes
    assert store.get(token) is huge and len(store) == 1


def test_store_keeps_at_most_max_images_and_forgets_on_clear():
    store = ImageStore(max_images=2, max_bytes=10**6)
    tokens = [store.put(image(2, str(i))) for i in range(3)]
    assert store.get(tokens[0]) is None and [store.get(t).name for t in tokens[1:]] == ["1", "2"]
    assert len(set(tokens)) == 3 and all(len(t) >= 24 for t in tokens)  # random, unguessable
    store.clear()
    assert len(store) == 0 and store.get(tokens[2]) is None


def test_stored_pixels_are_read_only():
    stored = image(4)
    ImageStore(4, 10**6).put(stored)
    assert not stored.pixels.flags.writeable


def test_store_is_safe_across_threads():
    store = ImageStore(max_images=8, max_bytes=10**6)
    tokens: list[str] = []
    lock = threading.Lock()

    def work():
        for _ in range(200):
            token = store.put(image(2))
            store.get(token)
            with lock:
                tokens.append(token)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tokens) == 800 and len(store) == 8
    assert sum(store.get(t) is not None for t in tokens) == 8
