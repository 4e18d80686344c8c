"""Deep call stacks (50 to 200 frames) that allocate at the bottom.

Three mutually recursive functions descend to a depth that cycles through
50..200, then build a few small objects (a dict, a list, a string, a
tuple) at the bottom and return them up the stack.  A tracer that walks the
whole stack on every allocation pays for the depth here; one that stops
after N frames should not.
"""

import time

CALLS = 30_000
DEPTHS = (50, 80, 120, 160, 200)


def walk_a(n, key):
    if n == 0:
        return leaf(key)
    return walk_b(n - 1, key)


def walk_b(n, key):
    if n == 0:
        return leaf(key)
    return walk_c(n - 1, key)


def walk_c(n, key):
    if n == 0:
        return leaf(key)
    return walk_a(n - 1, key)


def leaf(key):
    out = []
    for i in range(12):
        out.append({"key": key, "i": i, "label": f"{key}:{i}", "pair": (key, [i])})
    return out


def run():
    total = 0
    for c in range(CALLS):
        total += len(walk_a(DEPTHS[c % len(DEPTHS)], c))
    return total


if __name__ == "__main__":
    t0 = time.perf_counter()
    run()
    print(f"{__file__}: {time.perf_counter() - t0:.3f} s")
