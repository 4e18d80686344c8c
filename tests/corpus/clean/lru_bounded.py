"""Caches that fill and then plateau: functools.lru_cache(maxsize=512) and a
hand-written OrderedDict LRU, both over ever-new keys, so they evict."""

import functools
import os
import time
from collections import OrderedDict

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


@functools.lru_cache(maxsize=512)
def lookup(key):
    return [key] * 8


class LRU:
    def __init__(self, capacity):
        self.capacity = capacity
        self.data = OrderedDict()

    def put(self, key, value):
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.capacity:
            self.data.popitem(last=False)


cache = LRU(1000)
deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    lookup(n)
    cache.put(n, {"n": n, "text": str(n) * 3})
    n += 1
