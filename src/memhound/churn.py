"""Cycle churn: what the cyclic garbage collector frees, by allocation site.

Reference cycles that the program drops are not leaks (the collector frees
them), but every one costs the collector time: it must find the cycle
before it can free it, and objects that live long enough to reach an older
generation make the full collections slower.  While tracing, memhound
counts every traced block the collector frees (_core.gc_churn, in C:
src/memhound/_core/gcchurn.c) under the site that allocated it; this
module shapes those counts for the report ("cycle_churn" and "gc", see
docs/report-schema.md) and for memhound.cycle_churn().  docs/leak-analysis.md
says what the numbers mean and where they stop.
"""

from __future__ import annotations

import gc

from memhound import _core

# The report lists a site (and the text report shows its section) only
# when the collector freed at least this many of its objects: below that,
# what gc's own bookkeeping and the free lists it empties add (a few blocks
# per collection) is of the same order as the churn itself.
REPORT_MIN_OBJECTS = 1000
REPORT_SITES = 20
# Sites fetched from the core before merging tracebacks that name the same
# lines (two instructions of one line are two tracebacks).
_FETCH = 500


def collect() -> int:
    """gc.collect() for memhound's own purposes (before an analysis,
    between rounds): what it frees is not counted as the program's churn.
    memhound's callback leaves gc.callbacks meanwhile, so gc builds no
    bookkeeping for it either (on 3.10-3.12 that would wait in a free list,
    looking alive, under memhound's line)."""
    _core._gc_churn_hold(True)
    try:
        return gc.collect()
    finally:
        _core._gc_churn_hold(False)


def _merge_key(frames: list) -> tuple:
    return tuple((f["filename"], f["lineno"], f["function"]) for f in frames)


def _shape(raw: dict, elapsed: float, generations: int) -> dict:
    from memhound.leaks import _trim_runner

    objects = raw["objects"]
    return {
        "objects": round(objects),
        "blocks": round(raw["blocks"]),
        "bytes": raw["bytes"],
        "collections": raw["collections"],
        "generations_with_churn": raw["generations"],
        "objects_per_generation": round(objects / max(1, generations), 3),
        "objects_per_s": round(objects / elapsed, 3) if elapsed > 0 else None,
        "bytes_per_s": round(raw["bytes"] / elapsed, 3) if elapsed > 0 else None,
        "objects_by_gc_generation": [round(n) for n in raw["objects_by_gc_generation"]],
        "traceback": _trim_runner(raw["traceback"]),
        # In-process only (the traceback index << 1); write_json drops it.
        "site": raw["site"],
    }


_SUMMED = (
    "objects",
    "blocks",
    "bytes",
    "objects_per_generation",
    "objects_per_s",
    "bytes_per_s",
)


def _merged(sites: list) -> list:
    """Sites whose tracebacks name the same lines, as one (counts summed;
    collections and generations: the larger, as both churn in the same
    collections when they are one line's instructions)."""
    merged: dict[tuple, dict] = {}
    for site in sites:
        key = _merge_key(site["traceback"])
        entry = merged.get(key)
        if entry is None:
            merged[key] = dict(
                site, objects_by_gc_generation=list(site["objects_by_gc_generation"])
            )
            continue
        for field in _SUMMED:
            if entry[field] is not None:
                entry[field] += site[field]
        for field in ("collections", "generations_with_churn"):
            entry[field] = max(entry[field], site[field])
        entry["objects_by_gc_generation"] = [
            a + b
            for a, b in zip(
                entry["objects_by_gc_generation"],
                site["objects_by_gc_generation"],
                strict=True,
            )
        ]
    for entry in merged.values():
        for field in _SUMMED:
            if isinstance(entry[field], float):
                entry[field] = round(entry[field], 3)
    return sorted(merged.values(), key=lambda s: -s["objects"])


def _raw(limit: int, min_objects: float) -> dict:
    _core._suspend_thread()
    try:
        return _core.gc_churn(limit=limit, min_objects=min_objects)
    finally:
        _core._resume_thread()


def cycle_churn(n: int = 10, min_objects: int = 1) -> list[dict]:
    """The `n` allocation sites whose objects the cyclic garbage collector
    freed most since tracing (or the current analysis: LeakCheck, memhound
    run) began, most first; only sites with at least `min_objects`.  Each:
    {"objects", "blocks", "bytes", "collections", "generations_with_churn",
    "objects_per_generation", "objects_per_s", "bytes_per_s",
    "objects_by_gc_generation", "traceback"} (docs/report-schema.md).
    [] when not tracing."""
    if n < 0:
        raise ValueError("n must be >= 0")
    raw = _raw(max(_FETCH, n), 1)
    if not raw["enabled"]:
        return []
    shaped = [_shape(s, raw["elapsed"], raw["generation"]) for s in raw["sites"]]
    sites = [s for s in _merged(shaped) if s["objects"] >= min_objects][:n]
    for site in sites:
        del site["site"]
    return sites


def report_fields(duration: float | None = None) -> tuple[list, dict | None]:
    """(cycle_churn, gc) for the leak report: the sites with at least
    REPORT_MIN_OBJECTS objects freed by the collector (at most
    REPORT_SITES), and the collector's totals; ([], None) when churn is not
    counted."""
    raw = _raw(_FETCH, 1)
    if not raw["enabled"]:
        return [], None
    elapsed = raw["elapsed"]
    shaped = [_shape(s, elapsed, raw["generation"]) for s in raw["sites"]]
    sites = [s for s in _merged(shaped) if s["objects"] >= REPORT_MIN_OBJECTS]
    totals = raw["totals"]
    seconds = sum(totals["seconds"])
    span = duration if duration else elapsed
    activity = {
        "enabled": gc.isenabled(),
        "collections": totals["collections"],
        "collected": totals["collected"],
        "uncollectable": totals["uncollectable"],
        "seconds": [round(s, 6) for s in totals["seconds"]],
        "share_of_run": round(seconds / span, 4) if span else None,
        "freed_objects": [round(n) for n in totals["objects"]],
        "discarded_objects": round(totals["discarded_objects"]),
        "dropped": totals["dropped"],
        "callbacks_misplaced": totals["misplaced"],
        "watching": bool(totals["watching"]),
    }
    return sites[:REPORT_SITES], activity


def warnings(activity: dict | None) -> list[str]:
    """The report's warnings about how churn was counted: memhound's
    gc.callbacks entries removed or moved by the program."""
    if not activity:
        return []
    out = []
    if not activity["watching"]:
        out.append(
            "the program removed memhound's entries from gc.callbacks: "
            "some collections were not counted as cycle churn"
        )
    if activity["callbacks_misplaced"]:
        out.append(
            f"{activity['callbacks_misplaced']} collections ran with the "
            "program's gc.callbacks ahead of memhound's: their cycle churn "
            "may include what those callbacks freed"
        )
    return out


# Summed over children: each child's collections are its own.
_CHILD_SUMMED = _SUMMED + ("collections",)


def merge_children(groups: list) -> list[dict]:
    """The children's churn for the parent's report: `groups` holds, per
    site (the caller matched them as it matches leaks), the (pid, site)
    pairs of the children that reported it.  One entry per site, counts
    and rates summed over the children, `generations_with_churn` the
    largest, plus "children" (how many) and "pids"; most objects first."""
    merged = []
    for group in groups:
        entry = None
        for pid, site in group:
            if entry is None:
                entry = dict(site, children=0, pids=[])
                entry["objects_by_gc_generation"] = list(
                    site.get("objects_by_gc_generation") or [0, 0, 0]
                )
            else:
                for field in _CHILD_SUMMED:
                    if entry.get(field) is not None and site.get(field) is not None:
                        entry[field] = round(entry[field] + site[field], 3)
                entry["generations_with_churn"] = max(
                    entry.get("generations_with_churn") or 0,
                    site.get("generations_with_churn") or 0,
                )
                entry["objects_by_gc_generation"] = [
                    a + b
                    for a, b in zip(
                        entry["objects_by_gc_generation"],
                        site.get("objects_by_gc_generation") or [0, 0, 0],
                        strict=False,  # a child's report is read from a file
                    )
                ]
            entry["children"] += 1
            entry["pids"].append(pid)
        if entry is not None:
            merged.append(entry)
    return sorted(merged, key=lambda e: -(e.get("objects") or 0))
