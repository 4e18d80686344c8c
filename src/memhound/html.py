"""The HTML report: one self-contained file, no network.

    render_html(report, peak_snapshot, exit_snapshot, "report.html")
    render_diff_html(old, new, "diff.html", key_type="traceback")

The page is templates/report.html with its CSS and JavaScript inlined and
the data as one JSON document (docs/report.md says what it shows).  Python
prepares aggregated data only: statistics and diffs come from the C
grouping (Snapshot.statistics / compare_to), the icicle graph from the tree
of aggregated sites (memhound.calltree); nothing here loops over blocks.
"""

from __future__ import annotations

import html as _html
import json
import linecache
import math
import os
from importlib import resources

from memhound import calltree

__all__ = ["render_diff_html", "render_html"]

# Icicle graphs fold subtrees smaller than this share of the total into
# their parent: a 100,000-site snapshot stays a few thousand nodes.
FLAME_MIN_SHARE = 1 / 20000
# Source lines embedded, at most (tracebacks of leaks and largest sites).
MAX_SOURCE_LINES = 5000


class _Frames:
    """Interns (filename, lineno, function) triples into one table."""

    def __init__(self) -> None:
        self.index: dict = {}
        self.table: list = []

    def id(self, frame) -> int:
        key = (str(frame[0]), int(frame[1]), str(frame[2]) if len(frame) > 2 else "")
        fid = self.index.get(key)
        if fid is None:
            fid = self.index[key] = len(self.table)
            self.table.append(list(key))
        return fid


def _template(name: str) -> str:
    return resources.files("memhound").joinpath("templates", name).read_text("utf-8")


def _page(data: dict, title: str) -> str:
    # "<" escaped inside the JSON: no "</script>" or "<!--" can end it.
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("<", "\\u003c")
    page = _template("report.html")
    # Substitute the data last: it may contain the other markers.
    page = page.replace("__TITLE__", _html.escape(title))
    page = page.replace("__CSS__", _template("report.css"))
    page = page.replace("__JS__", _template("report.js"))
    return page.replace("__DATA__", payload)


def _write(text: str, out_path) -> None:
    with open(out_path, "w", encoding="utf-8") as out:
        out.write(text)


def _sources(frames: list) -> dict:
    """{"file:line": source line} for frames whose Python file exists
    now."""
    sources: dict = {}
    for frame in frames:
        if len(sources) >= MAX_SOURCE_LINES:
            break
        filename, lineno = frame.get("filename"), frame.get("lineno")
        if not isinstance(filename, str) or not isinstance(lineno, int):
            continue
        key = f"{filename}:{lineno}"
        # Only Python sources: a report read from a file is untrusted, and
        # must not make the page quote whatever local file it names.
        if key in sources or lineno <= 0 or not filename.endswith((".py", ".pyw")):
            continue
        line = linecache.getline(filename, lineno).strip()
        if line:
            sources[key] = line[:300]
    return sources


def _flame(
    name: str, label: str, rows, frames: _Frames, root: str = "all live memory"
) -> dict | None:
    """One icicle graph from (size, count, frames) rows."""
    tree = calltree.build_tree(rows)
    if tree.size[0] <= 0:
        return None
    tree = tree.pruned(int(tree.size[0] * FLAME_MIN_SHARE))
    return {
        "name": name,
        "label": label,
        "root": root,
        "parent": tree.parent,
        "frame": [frames.id(frame) for frame in tree.frame],
        "size": tree.size,
        "count": tree.count,
    }


def _columns(*specs) -> list[dict]:
    """Table columns from (key, label, kind, width) tuples; kinds are the
    cell formats of report.js (bytes, sbytes, num, snum, frame, text)."""
    return [
        {"key": key, "label": label, "kind": kind, "width": width}
        for key, label, kind, width in specs
    ]


def _sites_table(snapshot, frames: _Frames, title: str) -> dict:
    stats = snapshot._core.statistics("lineno", False)
    return {
        "id": "sites",
        "title": title,
        "note": "Live memory grouped by the line that allocated it. "
        "Click a column to sort; only the visible rows are drawn.",
        "columns": _columns(
            ("size", "live", "bytes", "110px"),
            ("count", "blocks", "num", "100px"),
            ("avg", "average", "bytes", "100px"),
            ("frame", "line", "frame", "1fr"),
        ),
        "data": {
            "size": [s for s, _c, _f in stats],
            "count": [c for _s, c, _f in stats],
            "avg": [s // c if c else 0 for s, c, _f in stats],
            "frame": [
                frames.id(f[0] if f else ("<unknown>", 0, "")) for _s, _c, f in stats
            ],
        },
    }


def _types_table(report: dict) -> dict | None:
    totals: dict = {}
    for leak in report.get("leaks") or []:
        for row in leak.get("types") or []:
            entry = totals.setdefault(str(row.get("type")), [0, 0, 0])
            entry[0] += row.get("count") or 0
            entry[1] += row.get("bytes") or 0
            entry[2] += 1
    if not totals:
        return None
    names = sorted(totals, key=lambda name: -totals[name][1])
    return {
        "id": "types",
        "title": "Types in leaks",
        "note": "Objects found in the leaking sites by the heap-graph analysis.",
        "sortBy": 2,
        "columns": _columns(
            ("type", "type", "text", "1fr"),
            ("count", "objects", "num", "110px"),
            ("bytes", "bytes", "bytes", "110px"),
            ("leaks", "leaks", "num", "80px"),
        ),
        "data": {
            "type": names,
            "count": [totals[n][0] for n in names],
            "bytes": [totals[n][1] for n in names],
            "leaks": [totals[n][2] for n in names],
        },
    }


def _num(value) -> float:
    """A number from an untrusted report field (0 for anything else)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return value if ok else 0


def _types_grew_table(report: dict) -> dict | None:
    rows = [r for r in report.get("types_grew") or [] if isinstance(r, dict)]
    if not rows:
        return None
    return {
        "id": "types-grew",
        "title": "Types that grew",
        "note": "Objects by type at the end, and how many more there were "
        "than at the start of leaking (heap census).",
        "sortBy": 4,
        "columns": _columns(
            ("type", "type", "text", "1fr"),
            ("count", "objects", "num", "100px"),
            ("bytes", "bytes", "bytes", "100px"),
            ("count_diff", "more", "snum", "100px"),
            ("bytes_diff", "grew", "sbytes", "100px"),
        ),
        "data": {
            "type": [str(r.get("type")) for r in rows],
            **{
                key: [_num(r.get(key)) for r in rows]
                for key in ("count", "bytes", "count_diff", "bytes_diff")
            },
        },
    }


def _retainers_table(report: dict) -> dict | None:
    rows = [r for r in report.get("largest_retainers") or [] if isinstance(r, dict)]
    if not rows:
        return None

    def path(row) -> str:
        steps = row.get("retention_path") or []
        if not isinstance(steps, list):
            return ""
        return " \u2192 ".join(
            str(step.get("object")) for step in steps if isinstance(step, dict)
        )

    return {
        "id": "retainers",
        "title": "Largest retainers",
        "note": "Objects that keep the most memory alive (retained size: "
        "what would be freed with them), and the path that reaches them.",
        "sortBy": 2,
        "columns": _columns(
            ("type", "type", "text", "140px"),
            ("bytes", "own", "bytes", "90px"),
            ("retained", "retained", "bytes", "100px"),
            ("path", "reached by", "text", "1fr"),
        ),
        "data": {
            "type": [str(r.get("type")) for r in rows],
            "bytes": [_num(r.get("bytes")) for r in rows],
            "retained": [_num(r.get("retained_bytes")) for r in rows],
            "path": [path(r) for r in rows],
        },
    }


def _finite(value) -> float:
    """_num, and 0 for NaN and infinities (json.loads reads them)."""
    value = _num(value)
    return value if isinstance(value, int) or math.isfinite(value) else 0


def _frames_of(value) -> list:
    """A traceback from an untrusted report: FRAME dicts of a str, an int
    and a str only."""
    if not isinstance(value, list):
        return []
    return [
        {
            "filename": str(f.get("filename")),
            "lineno": int(_finite(f.get("lineno"))),
            "function": str(f.get("function") or "?"),
        }
        for f in value
        if isinstance(f, dict)
    ]


def _churn(report: dict) -> dict | None:
    """The cycle-churn section's data: the sites the text report's section
    shows (at least churn.REPORT_MIN_OBJECTS objects; the parent's first,
    then --follow-fork children's), the collector's totals; None when there
    is no such site.  Every field is checked: the report may come from a
    file."""
    from memhound.churn import REPORT_MIN_OBJECTS, REPORT_SITES

    rows = [s for s in report.get("cycle_churn") or [] if isinstance(s, dict)]
    sites = []
    for row in rows:
        if _finite(row.get("objects")) < REPORT_MIN_OBJECTS:
            continue
        by_gc = row.get("objects_by_gc_generation")
        site = {
            key: _finite(row.get(key))
            for key in (
                "objects",
                "bytes",
                "collections",
                "generations_with_churn",
                "objects_per_generation",
                "children",
            )
        }
        for key in ("objects_per_s", "bytes_per_s"):  # null: no time passed
            site[key] = _finite(row[key]) if row.get(key) is not None else None
        site["by_gc"] = [_finite(n) for n in by_gc] if isinstance(by_gc, list) else []
        site["traceback"] = _frames_of(row.get("traceback"))
        sites.append(site)
    if not sites:
        return None
    own = [s for s in sites if not s["children"]][:REPORT_SITES]
    activity = report.get("gc") if isinstance(report.get("gc"), dict) else {}
    collections = activity.get("collections")
    seconds = activity.get("seconds")
    share = activity.get("share_of_run")
    return {
        "min_objects": REPORT_MIN_OBJECTS,
        "sites": own + [s for s in sites if s["children"]][:REPORT_SITES],
        "gc": {
            "collections": [_finite(n) for n in collections]
            if isinstance(collections, list)
            else [],
            "seconds": sum(_finite(n) for n in seconds)
            if isinstance(seconds, list)
            else 0,
            "share_of_run": _finite(share) if share is not None else None,
        },
    }


def _title(report: dict) -> tuple[str, str]:
    argv = report.get("argv") or []
    what = " ".join(str(a) for a in argv) if argv else "a snapshot"
    parts = []
    for key, fmt in (("python", "Python {}"), ("pid", "pid {}")):
        if report.get(key) is not None:
            parts.append(fmt.format(report[key]))
    if report.get("memhound"):
        parts.append(f"memhound {report['memhound']}")
    return f"memhound: {what}", " \u00b7 ".join(parts)


def render_html(
    report: dict, peak_snapshot=None, exit_snapshot=None, out_path=None
) -> str:
    """The HTML page for report (docs/report-schema.md) and the snapshots
    taken at the peak and at exit (either may be None); written to
    out_path when given.  Returns the page."""
    from memhound.report import to_json_data

    report = to_json_data(report)  # a LeakCheck report may hold live objects
    frames = _Frames()
    data: dict = {"mode": "report", "report": report}
    data["title"], data["subtitle"] = _title(report)
    data["churn"] = _churn(report)
    shown = []
    for key in ("leaks", "largest"):
        for site in report.get(key) or []:
            shown.extend(site.get("traceback") or [])
    for site in (data["churn"] or {}).get("sites", []):
        shown.extend(site["traceback"])
    data["sources"] = _sources(shown)
    flames = []
    for name, label, snapshot in (
        ("peak", "at peak", peak_snapshot),
        ("exit", "at exit", exit_snapshot),
    ):
        if snapshot is not None:
            graph = _flame(name, label, calltree.site_rows(snapshot), frames)
            if graph is not None:
                flames.append(graph)
    data["flames"] = flames
    tables = []
    table_snapshot = exit_snapshot if exit_snapshot is not None else peak_snapshot
    if table_snapshot is not None:
        which = "at exit" if exit_snapshot is not None else "at peak"
        tables.append(_sites_table(table_snapshot, frames, f"Allocation sites {which}"))
    for table in (
        _types_table(report),
        _types_grew_table(report),
        _retainers_table(report),
    ):
        if table is not None:
            tables.append(table)
    data["tables"] = tables
    data["frames"] = frames.table
    page = _page(data, data["title"])
    if out_path is not None:
        _write(page, out_path)
    return page


def diff_rows(old, new, key_type: str):
    """compare_to rows from C: (size, size_diff, count, count_diff, frames)."""
    from memhound.snapshot import _check_key_type

    _check_key_type(key_type, False)
    return new._core.compare_to(old._core, key_type, False)


def render_diff_html(
    old, new, out_path=None, key_type: str = "lineno", names=("old", "new")
) -> str:
    """The HTML page comparing two snapshots: a sortable table of the
    differences by key_type and, by traceback, an icicle graph of what
    grew.  Written to out_path when given; returns the page."""
    rows = diff_rows(old, new, key_type)
    frames = _Frames()
    unknown = ("<unknown>", 0, "")
    data: dict = {
        "mode": "diff",
        "title": f"memhound diff: {names[0]} \u2192 {names[1]}",
        "subtitle": f"compared by {key_type}; {len(rows)} keys",
        "diff": {
            "size": sum(r[0] for r in rows),
            "size_diff": sum(r[1] for r in rows),
            "rows": len(rows),
        },
        "report": {},
        "sources": {},
    }
    table = {
        "id": "diff",
        "title": f"Differences by {key_type}",
        "note": "Sorted by the size of the change; click a column to sort.",
        "sortBy": 1,
        "columns": _columns(
            ("size", "now", "bytes", "100px"),
            ("size_diff", "change", "sbytes", "100px"),
            ("count", "blocks", "num", "90px"),
            ("count_diff", "change", "snum", "90px"),
            ("frame", key_type, "frame", "1fr"),
        ),
        "data": {
            "size": [r[0] for r in rows],
            "size_diff": [r[1] for r in rows],
            "count": [r[2] for r in rows],
            "count_diff": [r[3] for r in rows],
            "frame": [frames.id(r[4][0] if r[4] else unknown) for r in rows],
        },
    }
    data["tables"] = [table]
    flames = []
    if key_type == "traceback":
        grown = [(r[1], max(r[3], 0), r[4]) for r in rows if r[1] > 0]
        graph = _flame("growth", "growth", grown, frames, "all growth")
        if graph is not None:
            flames.append(graph)
    data["flames"] = flames
    data["frames"] = frames.table
    page = _page(data, data["title"])
    if out_path is not None:
        _write(page, os.fspath(out_path))
    return page
