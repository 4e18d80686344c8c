"""Tracer memory per live traced block, with N small blocks kept alive.

For each mode a fresh interpreter starts the tracer, allocates N small bytes
objects (one heap block each) into a preallocated list, and reports:

  tool B/block   growth of the tracer's own bookkeeping while the N blocks
                 were made, divided by N: tracemalloc.get_tracemalloc_memory()
                 or memhound.get_memory_overhead() (when memhound has it)
  RSS B/block    growth of the process's resident set (/proc/self/statm)
                 over the same span, divided by N: the objects themselves
                 plus the tracer's bookkeeping
  RSS extra      RSS B/block minus the untraced run's RSS B/block: the
                 cross-check of "tool B/block" that trusts no self-report

The denominator is N, the blocks this script created and keeps; the list
holding them is allocated (and traced) before the span starts.

    python bench/memory_per_block.py                   # N = 10,000,000
    python bench/memory_per_block.py --blocks 1000000  # quick
"""

import argparse
import datetime
import os
import sys

from _common import failure as failure_fields
from _common import (
    fmt_load,
    loadavg,
    machine_info,
    machine_line,
    parse_result,
    print_result,
    python_version,
    rss_bytes,
    spawn,
)

MODES = ["untraced", "tracemalloc-1", "memhound", "memhound-1", "memhound.tracemalloc"]
TARGET_BYTES_PER_BLOCK = 32


class Unavailable(Exception):
    pass


def _memhound(submodule=None):
    import importlib

    name = "memhound" + (f".{submodule}" if submodule else "")
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise Unavailable(
            f"{name} not importable ({type(exc).__name__}: {exc})"
        ) from None


def tool_hooks(mode):
    """(start, tool_memory or None, stop) for a mode; raises Unavailable."""
    if mode == "untraced":
        return (lambda: None), None, (lambda: None)
    if mode == "tracemalloc-1":
        import tracemalloc

        return (
            lambda: tracemalloc.start(1),
            tracemalloc.get_tracemalloc_memory,
            tracemalloc.stop,
        )
    if mode in ("memhound", "memhound-1"):
        mh = _memhound()
        if not callable(getattr(mh, "start", None)):
            raise Unavailable("memhound has no start() yet")
        kwargs = {"depth": 1} if mode == "memhound-1" else {}
        return (
            lambda: mh.start(**kwargs),
            getattr(mh, "get_memory_overhead", None),
            mh.stop,
        )
    if mode == "memhound.tracemalloc":
        tm = _memhound("tracemalloc")
        if not callable(getattr(tm, "start", None)):
            raise Unavailable("memhound.tracemalloc has no start() yet")
        return (
            (lambda: tm.start(1)),
            getattr(tm, "get_tracemalloc_memory", None),
            tm.stop,
        )
    raise SystemExit(f"unknown mode {mode!r}")


def child(mode, blocks, size):
    import time

    try:
        start, tool_memory, stop = tool_hooks(mode)
    except Unavailable as exc:
        print_result({"mode": mode, "skipped": str(exc)})
        return
    keep = [None] * blocks
    start()
    tool0 = tool_memory() if tool_memory else None
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    for i in range(blocks):
        keep[i] = bytes(size)
    alloc_s = time.perf_counter() - t0
    rss1 = rss_bytes()
    tool1 = tool_memory() if tool_memory else None
    result = {
        "mode": mode,
        "blocks": blocks,
        "block_size": size,
        "alloc_s": alloc_s,
        "rss_delta_bytes": rss1 - rss0,
        "tool_delta_bytes": None if tool0 is None else tool1 - tool0,
        "tool_bytes_at_end": tool1,
    }
    print_result(result)
    # Skip freeing N traced blocks (and the tracer's own teardown) at exit:
    # slow, and nothing here measures it.
    del stop
    os._exit(0)


def per_block(value, n):
    return "–" if value is None else f"{value / n:.1f}"


def report(results, meta):
    lines = [
        f"### Memory per live block, CPython {meta['machine']['python']}",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']} (UTC)",
        f"- machine: {machine_line(meta['machine'])}",
        f"- load average at start: {fmt_load(meta['loadavg'])}",
        f"- {meta['blocks']:,} live blocks of bytes({meta['size']}); "
        f"target ≤ {TARGET_BYTES_PER_BLOCK} B/block of tracer overhead",
        "",
        "| mode | alloc s | tool B/block | RSS B/block | RSS extra vs untraced |",
        "|---|---|---|---|---|",
    ]
    base = next(
        (r for r in results if r["mode"] == "untraced" and r["status"] == "ok"), None
    )
    notes = []
    for r in results:
        if r["status"] == "skipped":
            notes.append(f"- {r['mode']}: skipped, {r['reason']}")
            continue
        if r["status"] != "ok":
            tail = r.get("stderr_tail", "").strip().splitlines()[-3:]
            notes.append(f"- {r['mode']}: {r['status']}, {r['detail']}: {tail}")
            lines.append(f"| {r['mode']} | {r['status']} | | | |")
            continue
        n = r["blocks"]
        extra = None if base is None else r["rss_delta_bytes"] - base["rss_delta_bytes"]
        lines.append(
            f"| {r['mode']} | {r['alloc_s']:.2f} | "
            f"{per_block(r['tool_delta_bytes'], n)} | "
            f"{per_block(r['rss_delta_bytes'], n)} | {per_block(extra, n)} |"
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
    parser.add_argument("--size", type=int, default=8, help="bytes(SIZE) per block (8)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--child", metavar="MODE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.blocks, args.size)
        return 0

    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        sys.exit(f"memory_per_block: unknown modes {unknown}; known: {MODES}")
    if "untraced" not in modes:
        modes.insert(0, "untraced")
    meta = {
        "command": " ".join(["bench/memory_per_block.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": machine_info(python_version(python)),
        "loadavg": loadavg(),
        "blocks": args.blocks,
        "size": args.size,
    }
    results = []
    for mode in modes:
        cmd = [python, os.path.abspath(__file__), "--child", mode]
        cmd += ["--blocks", str(args.blocks), "--size", str(args.size)]
        status, _, rc, out, err = spawn(cmd, args.timeout)
        result = parse_result(out) if status == "ok" else None
        if status == "ok" and result is None:
            status = "crash"
        if result is None:
            result = {"mode": mode, **failure_fields(status, rc, err, args.timeout)}
        elif "skipped" in result:
            result = {"mode": mode, "status": "skipped", "reason": result["skipped"]}
        else:
            result["status"] = "ok"
        results.append(result)
        print(f"memory_per_block: {mode}: {result['status']}", file=sys.stderr)
    print(report(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
