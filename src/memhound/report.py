"""Text reports: live memory by allocation site, for a terminal."""

from __future__ import annotations

import linecache
import os
import sys


def format_size(size: float) -> str:
    """Human-readable bytes: 512 B, 12.3 KiB, 4.0 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _is_library(filename: str) -> bool:
    return (
        "site-packages" in filename
        or filename.startswith("<")
        or filename.startswith(sys.base_prefix)
        or os.sep + "memhound" + os.sep in filename
    )


def print_exit_report(snapshot, stats, top=10, file=None, frames_shown=6):
    """Print the largest live allocation sites of snapshot, with tracebacks."""
    file = file or sys.stderr
    width = 79
    print("=" * width, file=file)
    traced, peak = stats["traced_bytes"], stats["peak_bytes"]
    mode = (
        "exact"
        if not stats["sample_mean"]
        else (f"sampled, mean {format_size(stats['sample_mean'])}")
    )
    print(
        f"memhound: {format_size(traced)} live in {stats['traced_blocks']} blocks "
        f"at exit (peak {format_size(peak)}; {mode}, depth {stats['depth']})",
        file=file,
    )
    if stats["dropped_blocks"] or stats["lost_tracebacks"]:
        print(
            f"memhound: warning: {stats['dropped_blocks']} blocks untraced and "
            f"{stats['lost_tracebacks']} tracebacks lost (memhound ran out of "
            "memory for its tables); totals are lower bounds",
            file=file,
        )
    rows = snapshot.statistics("traceback")
    if not rows:
        print("memhound: no traced memory is alive.", file=file)
        return
    print(f"\nLargest live allocation sites (top {min(top, len(rows))}):", file=file)
    for rank, stat in enumerate(rows[:top], 1):
        print(
            f"\n#{rank}: {format_size(stat.size)} in {stat.count} "
            f"block{'' if stat.count == 1 else 's'}",
            file=file,
        )
        frames = list(stat.traceback)
        user = [f for f in frames if not _is_library(f.filename)]
        shown = frames[:frames_shown]
        for frame in shown:
            mark = "  " if _is_library(frame.filename) else "> "
            print(
                f"  {mark}{frame.filename}:{frame.lineno} in {frame.function}",
                file=file,
            )
            line = linecache.getline(frame.filename, frame.lineno).strip()
            if line:
                print(f"        {line[: width - 10]}", file=file)
        if len(frames) > frames_shown:
            hidden = len(frames) - frames_shown
            print(f"    ... {hidden} outer frames", file=file)
            if user and user[0] not in shown:
                first = user[0]
                print(
                    f"  > {first.filename}:{first.lineno} in {first.function} "
                    "(first frame in your code)",
                    file=file,
                )
    print("=" * width, file=file)
