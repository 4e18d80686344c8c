"""Many small objects: class instances, dataclasses, dicts and tuples.

Mixed lifetimes, as in real programs: most objects die at once, one in
four survives to the end of its batch, and a small ring buffer keeps some
alive across batches.  Exercises the allocator's fast path (and therefore
a tracer's per-allocation and per-free cost) more than anything else.
"""

import time
from dataclasses import dataclass

BATCHES = 17
PER_BATCH = 20_000


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


class Slotted:
    __slots__ = ("key", "value", "next")

    def __init__(self, key, value, nxt):
        self.key = key
        self.value = value
        self.next = nxt


@dataclass
class Item:
    name: str
    qty: int
    price: float


def run():
    ring = [None] * 1024
    checksum = 0
    for b in range(BATCHES):
        survivors = []
        prev = None
        for i in range(PER_BATCH):
            p = Point(i, b)
            node = Slotted(i, p, prev)
            d = {"x": p.x, "y": p.y, "tag": "pt"}
            t = (i, d, node)
            item = Item(f"item{i % 97}", i, i * 0.5)
            if i % 4 == 0:
                survivors.append((t, item))
                prev = node
            else:
                prev = None
            ring[i & 1023] = [p.x, p.y, item.qty]
        checksum += len(survivors)
    return checksum


if __name__ == "__main__":
    t0 = time.perf_counter()
    run()
    print(f"{__file__}: {time.perf_counter() - t0:.3f} s")
