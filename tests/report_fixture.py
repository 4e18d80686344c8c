"""A realistic report dict (docs/report-schema.md) and real snapshots for
the capture, HTML and CLI tests, made without the generations analysis:
the report is written by hand from what a leaky program did, the snapshots
are taken from a program that really allocated."""

from __future__ import annotations

import inspect
import os

import memhound

HERE = os.path.abspath(__file__)


def _leaky_cache(store, n):
    for i in range(n):
        store.append(bytearray(96 + i % 32))  # line of the "leak"


def _transient(n):
    return [str(i) * 3 for i in range(n)]


def take_snapshots(scale: int = 2000):
    """(peak, exit) snapshots of a small program with a growing list."""
    memhound.start(depth=16)
    try:
        store: list = []
        keep = []
        for _ in range(5):
            _leaky_cache(store, scale)
            keep.append(_transient(scale))
        peak = memhound.take_snapshot()
        keep.clear()
        exit_ = memhound.take_snapshot()
    finally:
        memhound.stop()
    return peak, exit_


def _line(func, text):
    """The line number of the line of func containing text."""
    lines, start = inspect.getsourcelines(func)
    return start + next(i for i, line in enumerate(lines) if text in line)


LEAK_LINE = _line(_leaky_cache, "store.append")
TRANSIENT_LINE = _line(_transient, "return")
CALL_LINE = _line(take_snapshots, "_leaky_cache(store")


def _frame(function, lineno, filename=HERE):
    return {"filename": filename, "lineno": lineno, "function": function}


def make_report(ngen: int = 30, nleaks: int = 2) -> dict:
    gens = [
        {"generation": g, "t": 0.1 * g, "iteration": None} for g in range(1, ngen + 1)
    ]
    timeline = [
        {
            "t": 0.05 * k,
            "traced_bytes": 1_000_000 + 40_000 * k + (300_000 if k == 31 else 0),
            "rss_bytes": 20_000_000 + 45_000 * k,
        }
        for k in range(2 * ngen + 1)
    ]
    leaks = []
    for i in range(nleaks):
        per_gen = 4096 * (i + 1)
        leaks.append(
            {
                "kind": "python",
                "confidence": 0.97 - 0.1 * i,
                "live_bytes": per_gen * ngen,
                "live_blocks": 40 * ngen,
                "growth_bytes": per_gen * (ngen - 2),
                "growth_bytes_per_s": per_gen * 10.0,
                "growth_bytes_per_iteration": None,
                "first_generation": 3,
                "generations_with_survivors": ngen - 2,
                "generations_observed": ngen,
                "traceback": [
                    _frame("_leaky_cache", LEAK_LINE),
                    _frame("take_snapshots", CALL_LINE),
                    _frame("<module>", 1, "/nonexistent/app.py"),
                ],
                "series": [
                    {
                        "generation": g,
                        "t": 0.1 * g,
                        "live_bytes": per_gen * g,
                        "live_blocks": 40 * g,
                    }
                    for g in range(1, ngen + 1)
                ],
                "survivors": [
                    {"generation": g, "bytes": per_gen, "blocks": 40}
                    for g in range(1, ngen + 1)
                ],
                "types": [
                    {"type": "bytearray", "count": 40 * ngen, "bytes": per_gen * ngen},
                    {"type": "dict", "count": 3, "bytes": 700},
                ],
                "retention_path": [
                    {"via": "module global", "object": "app.cache._store"},
                    {"via": "list item", "object": "list[17]"},
                ],
                "retained_bytes": per_gen * ngen + 5000,
            }
        )
    largest = [
        {
            "kind": "python",
            "live_bytes": 1_000_000,
            "live_blocks": 10_000,
            "traceback": [
                _frame("_transient", TRANSIENT_LINE),
                _frame("take_snapshots", CALL_LINE + 1),
            ],
            "leaking": False,
        }
    ] + [
        {k: v for k, v in leak.items() if k != "confidence"} | {"leaking": True}
        for leak in leaks
    ]
    return {
        "format": "memhound-report",
        "version": 1,
        "memhound": memhound.__version__,
        "python": "3.11.7",
        "argv": ["app.py", "--port", "1"],
        "pid": 4242,
        "duration_s": 3.2,
        "settings": {"depth": 64, "sample": 0, "interval_s": None},
        "generations": gens,
        "leaks": leaks,
        "largest": largest,
        "timeline": timeline,
        "summary": {
            "traced_bytes": 2_300_000,
            "traced_blocks": 23_000,
            "peak_bytes": 3_700_000,
            "dropped_blocks": 0,
            "lost_tracebacks": 0,
            "sites": 812,
            "generations": ngen,
            "iterations": None,
        },
        "children": [],
        "warnings": [],
        "types_grew": [
            {
                "type": "bytearray",
                "count": 1200,
                "bytes": 360000,
                "count_diff": 1100,
                "bytes_diff": 330000,
            },
            {
                "type": "dict",
                "count": 30,
                "bytes": 9000,
                "count_diff": -2,
                "bytes_diff": -600,
            },
        ],
        "cycle_churn": [
            {
                "objects": 40000,
                "blocks": 40000,
                "bytes": 1_920_000,
                "collections": 57,
                "generations_with_churn": ngen,
                "objects_per_generation": round(40000 / ngen, 3),
                "objects_per_s": 12500.0,
                "bytes_per_s": 600000.0,
                "objects_by_gc_generation": [36000, 3900, 100],
                "traceback": [
                    _frame("_transient", TRANSIENT_LINE),
                    _frame("take_snapshots", CALL_LINE + 1),
                ],
            }
        ],
        "gc": {
            "enabled": True,
            "collections": [52, 5, 1],
            "collected": [36158, 3642, 200],
            "uncollectable": [0, 0, 0],
            "seconds": [0.0032, 0.0045, 0.001],
            "share_of_run": 0.0027,
            "freed_objects": [36000, 3900, 100],
            "discarded_objects": 0,
            "dropped": 0,
            "callbacks_misplaced": 0,
            "watching": True,
        },
        "largest_retainers": [
            {
                "type": "list",
                "bytes": 10000,
                "retained_bytes": 370000,
                "retention_path": [
                    {"via": "module", "object": "app.cache", "type": "dict"},
                    {
                        "via": "module global",
                        "object": "app.cache._store",
                        "type": "list",
                    },
                ],
            },
        ],
    }


def synthetic_snapshot(nsites: int, seed: int = 1, blocks_per_site: int = 1):
    """A snapshot with nsites distinct tracebacks shaped like a program's
    call tree (ten-way branching, eight frames deep), built in C from
    trace tuples; for tests and benchmarks of big reports."""
    import random

    from memhound import _core
    from memhound.snapshot import Snapshot

    rnd = random.Random(seed)
    traces = []
    for i in range(nsites):
        frames = [(f"/srv/app/leaf{i % 97}.py", 10 + i, f"alloc_{i % 13}")]
        for level in range(6):
            digit = (i // 10**level) % 10
            frames.append(
                (
                    f"/srv/app/layer{level}.py",
                    100 * digit + level,
                    f"step{level}_{digit}",
                )
            )
        frames.append(("/srv/app/main.py", 1, "<module>"))
        size = rnd.choice((32, 64, 100, 256, 1000, 4096)) * rnd.randint(1, 8)
        for _ in range(blocks_per_site):
            traces.append((2, size, tuple(frames)))
    return Snapshot(_core.Snapshot._from_traces(traces, 64))
