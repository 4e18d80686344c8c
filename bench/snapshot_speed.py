"""Snapshot speed and file size with N live traced blocks.

For each tool a fresh interpreter starts tracing, allocates N bytes objects
of varied sizes (2 bytes to 4 KiB, mostly under 100) from 8 different source
lines, kept alive in a preallocated list, then times, one after the other:

  take_snapshot()          tracemalloc.take_snapshot() / memhound.take_snapshot()
  statistics('lineno')     on that snapshot
  dump(path)               tracemalloc: Snapshot.dump (pickle);
                           memhound: Snapshot.dump (its own file format)
  load(path)               tracemalloc.Snapshot.load / memhound.Snapshot.load

and reports the file size per traced block.  tracemalloc runs with
nframe=1, memhound with its default depth (memhound.start()).  The file is
written to a temporary directory and removed.

    python bench/snapshot_speed.py                    # N = 10,000,000
    python bench/snapshot_speed.py --blocks 1000000   # quick
"""

import argparse
import datetime
import os
import shutil
import sys
import tempfile

from _common import failure as failure_fields
from _common import (
    fmt_load,
    loadavg,
    machine_info,
    machine_line,
    parse_result,
    print_result,
    python_version,
    spawn,
)

TOOLS = ["tracemalloc", "memhound"]
LINES = 8
SIZE_TABLE = 4096  # a power of two
# Targets for memhound from the product spec (bench/README.md).
TARGET_SNAPSHOT_STATS_S = 1.0
TARGET_DUMP_S = 1.0
TARGET_LOAD_S = 1.0
TARGET_FILE_BYTES_PER_BLOCK = 12


class Unavailable(Exception):
    pass


def tool_api(tool):
    """(start, take_snapshot, load, stop) for a tool; raises Unavailable."""
    if tool == "tracemalloc":
        import tracemalloc

        return (
            lambda: tracemalloc.start(1),
            tracemalloc.take_snapshot,
            tracemalloc.Snapshot.load,
            tracemalloc.stop,
        )
    if tool == "memhound":
        try:
            import memhound
        except Exception as exc:
            raise Unavailable(
                f"memhound not importable ({type(exc).__name__}: {exc})"
            ) from None
        missing = [
            name
            for name in ("start", "stop", "take_snapshot", "Snapshot")
            if not hasattr(memhound, name)
        ]
        if missing or not hasattr(memhound.Snapshot, "load"):
            missing += [] if missing else ["Snapshot.load"]
            raise Unavailable(f"memhound has no {', '.join(missing)} yet")
        return (
            memhound.start,
            memhound.take_snapshot,
            memhound.Snapshot.load,
            memhound.stop,
        )
    raise SystemExit(f"unknown tool {tool!r}")


def block_sizes():
    """SIZE_TABLE pseudo-random sizes, mostly small, a few large (fixed seed).

    Varied sizes keep a file format from compressing the blocks away into a
    handful of (line, size) runs, which real heaps do not allow; never below
    2 because bytes(0) and bytes(1) are shared singletons, not new blocks.
    """
    import random

    rng = random.Random(20241125)
    return [min(2 + int(rng.expovariate(1 / 48)), 4096) for _ in range(SIZE_TABLE)]


def fill(keep, n, sizes):
    """Allocate n blocks from LINES distinct lines (n a multiple of LINES)."""
    mask = SIZE_TABLE - 1
    for i in range(0, n, LINES):
        s = sizes[(i >> 3) & mask]
        keep[i] = bytes(s)
        keep[i + 1] = bytes(s + 1)
        keep[i + 2] = bytes(s + 2)
        keep[i + 3] = bytes(s + 3)
        keep[i + 4] = bytes(s + 4)
        keep[i + 5] = bytes(s + 5)
        keep[i + 6] = bytes(s + 6)
        keep[i + 7] = bytes(s + 7)


def child(tool, blocks):
    import resource
    import time

    try:
        start, take_snapshot, load, stop = tool_api(tool)
    except Unavailable as exc:
        print_result({"tool": tool, "skipped": str(exc)})
        return
    blocks -= blocks % LINES
    keep = [None] * blocks
    sizes = block_sizes()
    start()
    t0 = time.perf_counter()
    fill(keep, blocks, sizes)
    t1 = time.perf_counter()
    snap = take_snapshot()
    t2 = time.perf_counter()
    stats = snap.statistics("lineno")
    t3 = time.perf_counter()
    tmpdir = tempfile.mkdtemp(prefix="memhound-bench-snap-")
    try:
        path = os.path.join(tmpdir, "snapshot")
        t4 = time.perf_counter()
        snap.dump(path)
        t5 = time.perf_counter()
        file_bytes = os.path.getsize(path)
        groups = len(stats)
        del snap, stats
        t6 = time.perf_counter()
        loaded = load(path)
        t7 = time.perf_counter()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    try:
        loaded_traces = len(loaded.traces)
    except (AttributeError, TypeError):
        loaded_traces = None
    result = {
        "tool": tool,
        "blocks": blocks,
        "alloc_s": t1 - t0,
        "take_snapshot_s": t2 - t1,
        "statistics_s": t3 - t2,
        "dump_s": t5 - t4,
        "load_s": t7 - t6,
        "file_bytes": file_bytes,
        "statistics_groups": groups,
        "loaded_traces": loaded_traces,
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    print_result(result)
    # Freeing N traced blocks and the snapshots at exit is not measured.
    del stop
    os._exit(0)


def report(results, meta):
    lines = [
        f"### Snapshot speed, CPython {meta['machine']['python']}",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']} (UTC)",
        f"- machine: {machine_line(meta['machine'])}",
        f"- load average at start: {fmt_load(meta['loadavg'])}",
        f"- {meta['blocks']:,} live traced blocks of varied sizes from {LINES} "
        "source lines; "
        f"memhound targets: snapshot+statistics < {TARGET_SNAPSHOT_STATS_S:g} s, "
        f"dump and load < {TARGET_DUMP_S:g} s each, "
        f"file ≤ {TARGET_FILE_BYTES_PER_BLOCK} B/block",
        "",
        "| tool | take_snapshot s | statistics s | snapshot+statistics s | "
        "dump s | load s | file MiB | file B/block | traces loaded | "
        "peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in results:
        if r["status"] == "skipped":
            notes.append(f"- {r['tool']}: skipped, {r['reason']}")
            continue
        if r["status"] != "ok":
            tail = r.get("stderr_tail", "").strip().splitlines()[-3:]
            notes.append(f"- {r['tool']}: {r['status']}, {r['detail']}: {tail}")
            lines.append(f"| {r['tool']} | {r['status']} |" + " |" * 8)
            continue
        loaded = "?" if r["loaded_traces"] is None else f"{r['loaded_traces']:,}"
        lines.append(
            f"| {r['tool']} | {r['take_snapshot_s']:.2f} | {r['statistics_s']:.2f} | "
            f"{r['take_snapshot_s'] + r['statistics_s']:.2f} | {r['dump_s']:.2f} | "
            f"{r['load_s']:.2f} | {r['file_bytes'] / 2**20:.1f} | "
            f"{r['file_bytes'] / r['blocks']:.1f} | {loaded} | "
            f"{r['maxrss_bytes'] / 2**20:.0f} |"
        )
        if r.get("loaded_traces") is not None and r["loaded_traces"] < r["blocks"]:
            notes.append(
                f"- {r['tool']}: the loaded snapshot has {r['loaded_traces']:,} "
                f"traces, fewer than the {r['blocks']:,} blocks kept alive"
            )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--blocks", type=int, default=10_000_000)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--child", metavar="TOOL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.blocks)
        return 0

    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        sys.exit(f"snapshot_speed: unknown tools {unknown}; known: {TOOLS}")
    meta = {
        "command": " ".join(["bench/snapshot_speed.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": machine_info(python_version(python)),
        "loadavg": loadavg(),
        "blocks": args.blocks - args.blocks % LINES,
    }
    results = []
    for tool in tools:
        cmd = [python, os.path.abspath(__file__), "--child", tool]
        cmd += ["--blocks", str(args.blocks)]
        status, _, rc, out, err = spawn(cmd, args.timeout)
        result = parse_result(out) if status == "ok" else None
        if status == "ok" and result is None:
            status = "crash"
        if result is None:
            result = {"tool": tool, **failure_fields(status, rc, err, args.timeout)}
        elif "skipped" in result:
            result = {"tool": tool, "status": "skipped", "reason": result["skipped"]}
        else:
            result["status"] = "ok"
        results.append(result)
        print(f"snapshot_speed: {tool}: {result['status']}", file=sys.stderr)
    print(report(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
