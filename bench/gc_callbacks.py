"""What memhound's two gc.callbacks entries (cycle churn) cost per collection.

Alternates fresh processes of the memhound found on each SRC path given
(the src/ folder of a built tree: this one, and e.g. a scratch copy of an
older commit built with `python setup.py build_ext --inplace`).  Each
process traces (memhound.start()) and times:
  collect_us  one gc.collect(0) on an empty young generation: the fixed
              cost of a collection, where the callbacks are most of it;
  cycles_s    300,000 two-object cycles made and collected (automatic
              collections plus one gc.collect()): every free counted.
Prints each run and the medians.

    python bench/gc_callbacks.py [--repeat 5] SRC [SRC ...]
"""

import argparse
import os
import statistics
import subprocess
import sys

CHILD = r"""
import gc, time, memhound
memhound.start()
class Node:
    __slots__ = ("other",)
t = time.perf_counter()
for _ in range(20000):
    gc.collect(0)
collect_us = (time.perf_counter() - t) / 20000 * 1e6
t = time.perf_counter()
for _ in range(300000):
    a, b = Node(), Node()
    a.other = b
    b.other = a
del a, b
gc.collect()
print(f"{collect_us:.3f} {time.perf_counter() - t:.4f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("srcs", nargs="+", metavar="SRC")
    options = parser.parse_args()
    runs: dict = {src: [] for src in options.srcs}
    for _ in range(options.repeat):
        for src in options.srcs:  # A B A B ...
            env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
            out = subprocess.run(
                [sys.executable, "-c", CHILD],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            runs[src].append((float(out[0]), float(out[1])))
            print(src, *out, flush=True)
    for src, values in runs.items():
        collect = statistics.median(v[0] for v in values)
        cycles = statistics.median(v[1] for v in values)
        print(f"median {src}: collect_us {collect:.3f}, cycles_s {cycles:.4f}")


if __name__ == "__main__":
    main()
