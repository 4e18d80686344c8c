"""Large buffers: bytes and bytearray of 64 KiB to 8 MiB, made and released.

Filled and copied (b"x" * n, bytes(bytearray), slicing), grown in place
(bytearray.extend), joined, and viewed through memoryview.  Few allocations,
each big, so time goes to memset/memcpy and page faults: a tracer's cost
per allocation should be invisible here, and anything proportional to
bytes (or to pages) is not.
"""

import time

ROUNDS = 15
SIZES = (64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20)


def run():
    checksum = 0
    for r in range(ROUNDS):
        for size in SIZES:
            filled = bytes([r & 0xFF]) * size
            buf = bytearray(filled)
            buf[::4096] = b"\x01" * len(range(0, size, 4096))
            buf.extend(filled[: size // 2])
            copy = bytes(buf)
            half = copy[size // 4 : size // 4 + size // 2]
            view = memoryview(copy)[: size // 8]
            joined = b"".join([half, bytes(view)])
            checksum += len(joined) + buf[size // 3] + copy[-1]
            del filled, buf, copy, half, view, joined
    return checksum


if __name__ == "__main__":
    t0 = time.perf_counter()
    run()
    print(f"{__file__}: {time.perf_counter() - t0:.3f} s")
