"""An object pool that grows to its peak size and then only reuses, and a
free list of buffers."""

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


class Pool:
    def __init__(self):
        self.free = []
        self.created = 0

    def acquire(self):
        if self.free:
            return self.free.pop()
        self.created += 1
        return {"buffer": bytearray(512), "id": self.created}

    def release(self, item):
        self.free.append(item)


pool = Pool()
deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    batch = [pool.acquire() for _ in range(1 + n % 200)]
    for item in batch:
        item["buffer"][0] = n % 256
        pool.release(item)
    n += 1
