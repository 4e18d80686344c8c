"""Overhead of native-allocation tracing on allocation-heavy native work.

    .venv/bin/python bench/bench_native.py [--repeat 5] [--workloads a,b]
        [--baseline OTHER/.venv/bin/python] [--no-memray] [--sampled]

Modes, each in a fresh interpreter, interleaved (every mode once per
repetition, in a rotating order) so machine noise hits them alike:

  untraced        nothing traced
  native-only     memhound.start(native=True, python=False)
  python          memhound.start()            (Python allocators only)
  python+native   memhound.start(native=True)
  native-stack    memhound.start(native_stack=True)  (Python + native + C
                  stacks; only with --native-stack: unwinding is slow)
  ... sampled     native-only and python+native with sample=65536 (only
                  with --sampled: Poisson sampling by bytes, estimates)
  memray-native   memray run --native         (when memray is installed)

With --baseline, the memhound modes also run under another build's
interpreter (e.g. main's venv, a before/after A/B), interleaved with this
one's in every repetition and each divided by the untraced time of the same
repetition; its columns are prefixed "base ".

Children run with MALLOC_TRIM_THRESHOLD_=128 MiB (see CHILD_ENV).  Only
the workload's own loop is timed, inside the child (start-up, tracer
set-up and tear-down excluded; memray's file writing during the loop is
included, as memhound's bookkeeping is).  Printed: per workload the median
untraced seconds and, per mode, the median of (mode / untraced) over the
repetitions with (min-max).  Standard library, memhound, and for the
numpy workload numpy; memray only as a comparison (bench/requirements.txt).

Workloads (each about 0.2-0.4 s untraced on the reference machine):
  extension  the test extension (tests/native/leakyext.c): malloc+free
             per call, GIL held
  ctypes     the test library (tests/native/leaky.c) through ctypes:
             malloc+free per call, GIL released
  sqlite     sqlite3 in memory: inserts and selects (libsqlite3's malloc)
  hashlib    sha256 of small buffers (OpenSSL's malloc per context)
  zlib       compress+decompress 4 KiB buffers (the zlib module gives
             libz PyMem_Raw* allocators: Python-domain, not native)
  json       json dumps+loads with the C accelerator (Python allocators)
  numpy      small array arithmetic (numpy's data buffers: malloc)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402

MODES = [
    "untraced",
    "native-only",
    "python",
    "python+native",
    "native-stack",
    "memray-native",
]
WORKLOADS = ["extension", "ctypes", "sqlite", "hashlib", "zlib", "json", "numpy"]
# --sampled adds these modes: the same with start(sample=SAMPLE_MEAN).
SAMPLED = " sampled"
SAMPLE_MEAN = 65536

# glibc trims the heap whenever a free leaves enough room at its top: the
# zlib workload's deflate state (about 256 KiB per call) is then given back
# and faulted in again on every call, unless something else sits above it.
# A tracer's own tables may or may not (measured: an earlier memhound build
# ran zlib at 0.33x of untraced, memray at 0.39x; with trimming off, 1.1x),
# so every child runs with a fixed threshold and all modes see the same
# allocator behaviour.
CHILD_ENV = {"MALLOC_TRIM_THRESHOLD_": str(128 << 20)}


# ---- workloads (run in the child) --------------------------------------


def workload(name: str, build_dir: str):
    """A function doing a fixed amount of work."""
    if name == "extension":
        sys.path.insert(0, build_dir)
        import leakyext

        def run():
            fixed = leakyext.fixed
            for i in range(3_000_000):
                fixed(16 + (i & 511))

        return run
    if name == "ctypes":
        import ctypes

        lib = ctypes.CDLL(os.path.join(build_dir, "libleaky.so"))
        lib.fixed.argtypes = [ctypes.c_size_t]

        def run():
            fixed = lib.fixed
            for i in range(600_000):
                fixed(16 + (i & 511))

        return run
    if name == "sqlite":
        import sqlite3

        rows = [(i, f"name-{i}" * 3, i * 0.5) for i in range(20_000)]

        def run():
            for _ in range(6):
                once()

        def once():
            db = sqlite3.connect(":memory:")
            db.execute("create table t(a integer, b text, c real)")
            db.executemany("insert into t values (?, ?, ?)", rows)
            db.execute("create index ib on t(b)")
            for i in range(0, 20_000, 10):
                db.execute("select * from t where b = ?", (f"name-{i}" * 3,)).fetchall()
            db.close()

        return run
    if name == "hashlib":
        import hashlib

        data = [bytes([i % 256]) * (64 + i % 256) for i in range(1000)]

        def run():
            for _ in range(600):
                for chunk in data:
                    hashlib.sha256(chunk).digest()

        return run
    if name == "zlib":
        import zlib

        data = [bytes(range(256)) * 16 for _ in range(8)]

        def run():
            for _ in range(300):
                for chunk in data:
                    zlib.decompress(zlib.compress(chunk, 6))

        return run
    if name == "json":
        import json

        doc = {
            "items": [
                {"id": i, "name": f"item-{i}", "tags": ["a", "b", str(i)], "v": i / 3}
                for i in range(2000)
            ]
        }

        def run():
            for _ in range(70):
                json.loads(json.dumps(doc))

        return run
    if name == "numpy":
        import numpy as np

        def run():
            a = np.arange(200.0)
            for _ in range(30_000):
                b = a * 2.0 + 1.0
                a = np.sqrt(b) - b.mean()

        return run
    raise ValueError(name)


def child(mode: str, name: str, build_dir: str) -> None:
    run = workload(name, build_dir)
    run()  # warm-up: imports, caches, lazy binding
    if mode != "untraced":
        import memhound

        sample = None
        if mode.endswith(SAMPLED):
            mode = mode[: -len(SAMPLED)]
            sample = SAMPLE_MEAN
        memhound.start(
            sample=sample,
            native=mode != "python",
            python=mode != "native-only",
            native_stack=mode == "native-stack",
        )
    t0 = time.perf_counter()
    run()
    elapsed = time.perf_counter() - t0
    _common.print_result({"seconds": elapsed})


# ---- the parent ---------------------------------------------------------


def have_memray() -> bool:
    try:
        import memray  # noqa: F401
    except ImportError:
        return False
    return True


def measure(
    mode: str, name: str, build_dir: str, tmp: str, baseline: str | None = None
) -> float | None:
    me = [os.path.abspath(__file__), "--child", mode, name, build_dir]
    if mode.startswith("base "):
        # The baseline build's interpreter runs this script's child code
        # with its own memhound (this file imports memhound only there).
        me[2] = mode[len("base ") :]
        argv = [baseline, *me]
    elif mode == "memray-native":
        me[2] = "untraced"  # memray traces; the child itself starts nothing
        out = os.path.join(tmp, "memray.bin")
        argv = [sys.executable, "-m", "memray", "run", "--native", "-q", "-f"]
        argv += ["-o", out, *me]
    else:
        argv = [sys.executable, *me]
    status, _wall, rc, stdout, stderr = _common.spawn(
        argv, timeout=300, env_extra=CHILD_ENV
    )
    result = _common.parse_result(stdout)
    if status != "ok" or result is None:
        print(f"  {mode} {name}: {_common.describe_returncode(rc)}\n{stderr[-800:]}")
        return None
    return result["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument(
        "--native-stack", action="store_true", help="add the native-stack mode"
    )
    parser.add_argument(
        "--no-memray", action="store_true", help="leave out the memray mode"
    )
    parser.add_argument(
        "--sampled",
        action="store_true",
        help=f"add native-only and python+native with sample={SAMPLE_MEAN}",
    )
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="also run the memhound modes under this interpreter (A/B)",
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "WORKLOAD", "DIR"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    from tests.native.build import build_all

    build_dir = str(
        build_all(Path(tempfile.gettempdir()) / "memhound-bench-native")[0].parent
    )
    modes = [
        m
        for m in MODES
        if m != "memray-native" or (have_memray() and not args.no_memray)
    ]
    if not args.native_stack:
        modes.remove("native-stack")
    if args.sampled:
        modes += [m + SAMPLED for m in ("native-only", "python+native")]
    if args.baseline:
        modes += ["base " + m for m in modes if m not in ("untraced", "memray-native")]
    names = args.workloads.split(",")
    if "numpy" in names:
        try:
            import numpy  # noqa: F401
        except ImportError:
            print("numpy not installed: numpy workload skipped")
            names.remove("numpy")
    machine = _common.machine_info(sys.version.split()[0])
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC")
    print(f"machine: {_common.machine_line(machine)}")
    print(f"load average at start: {_common.fmt_load(_common.loadavg())}")
    if "memray-native" in modes:
        version = subprocess.run(
            [sys.executable, "-m", "memray", "--version"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"memray: {version}")
    if args.baseline:
        print(f"baseline: {args.baseline}")
    times = {(m, n): [] for m in modes for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeat):
            for name in names:
                order = modes[rep % len(modes) :] + modes[: rep % len(modes)]
                for mode in order:
                    times[mode, name].append(
                        measure(mode, name, build_dir, tmp, args.baseline)
                    )
    print(f"load average at end: {_common.fmt_load(_common.loadavg())}")
    print()
    print(
        "Workload time / untraced time in the same repetition: median (min-max) "
        f"over {args.repeat} repetitions."
    )
    print()
    print("| workload | untraced s | " + " | ".join(modes[1:]) + " |")
    print("|---" * len(modes) + "|---|")
    for name in names:
        base = times["untraced", name]
        cells = []
        for mode in modes[1:]:
            ratios = [
                t / b
                for t, b in zip(times[mode, name], base, strict=True)
                if t is not None and b
            ]
            if not ratios:
                cells.append("failed")
                continue
            cells.append(
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            )
        valid = [b for b in base if b is not None]
        untraced = f"{statistics.median(valid):.3f}" if valid else "failed"
        print(f"| {name} | {untraced} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
