"""`memhound report` and `memhound diff`: look at captures and snapshots
without re-running the program (docs/report.md).

    memhound report run.mhc                 # text report
    memhound report run.mhc --html out.html # the HTML report
    memhound report run.mhc --json          # the report dict (report-schema)
    memhound report run.mhc --tree          # live memory as a call tree
    memhound report exit.mhs --top 20       # largest sites
    memhound diff old.mhs new.mhc --by traceback [--json | --html OUT]

Grouping and diffing run in C (Snapshot.statistics / compare_to); this
module formats rows for an 80-column terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from memhound import calltree
from memhound.snapshot import _format_size

__all__ = [
    "RunOutputs",
    "add_parsers",
    "cmd_diff",
    "cmd_report",
    "format_top",
    "format_tree",
]


def add_parsers(commands) -> None:
    """Add the report and diff subcommands to cli.py's subparsers."""
    report = commands.add_parser(
        "report",
        help="render a capture (.mhc) or snapshot (.mhs) as text, JSON or HTML",
        description="Show what a capture or snapshot file holds, without "
        "re-running the program.",
    )
    report.add_argument("file", help="a capture (.mhc) or snapshot (.mhs)")
    _output_options(report)
    view = report.add_mutually_exclusive_group()
    view.add_argument("--tree", action="store_true", help="live memory as a call tree")
    view.add_argument(
        "--top", type=int, metavar="N", help="the N largest allocation sites"
    )
    _at_option(report, "which snapshot --tree and --top show")
    report.add_argument(
        "--min-percent",
        type=float,
        default=1.0,
        metavar="P",
        help="--tree: hide branches under P%% of the total (default 1)",
    )
    report.add_argument("--width", type=int, default=None, help=argparse.SUPPRESS)

    diff = commands.add_parser(
        "diff",
        help="compare two snapshots or captures (what grew, where)",
        description="Compare two snapshots or captures, as tracemalloc's "
        "Snapshot.compare_to does: B minus A, biggest change first.",
    )
    diff.add_argument("old", help="the earlier capture or snapshot (A)")
    diff.add_argument("new", help="the later capture or snapshot (B)")
    diff.add_argument(
        "--by",
        choices=("lineno", "filename", "traceback"),
        default="lineno",
        help="group by line, file or whole traceback (default: lineno)",
    )
    diff.add_argument(
        "--top", type=int, default=10, metavar="N", help="rows shown (default 10)"
    )
    _at_option(diff, "which snapshot of a capture to compare")
    _output_options(diff)
    diff.add_argument("--width", type=int, default=None, help=argparse.SUPPRESS)


def _at_option(parser, what: str) -> None:
    parser.add_argument(
        "--at", choices=("exit", "peak"), default="exit", help=f"{what} (default: exit)"
    )


def _output_options(parser) -> None:
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="OUT",
        help="write JSON to OUT (default: stdout)",
    )
    parser.add_argument("--html", metavar="OUT", help="write the HTML page to OUT")


def _width(options) -> int:
    if options.width:
        return max(40, options.width)
    return max(40, min(shutil.get_terminal_size((80, 24)).columns, 120))


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _where(frame) -> str:
    filename, lineno, function = frame
    base = os.path.basename(filename) if filename else "?"
    where = f"{base}:{lineno}" if lineno else base
    return f"{function}  {where}" if function else where


# ---- terminal views ---------------------------------------------------------


def format_tree(snapshot, width: int = 80, min_percent: float = 1.0) -> list[str]:
    """Live memory of snapshot as a call tree, outermost caller first,
    largest branch first; branches under min_percent of the total hidden.
    Every line fits in width columns."""
    tree = calltree.build_tree(calltree.site_rows(snapshot))
    total = tree.size[0]
    lines = [
        _fit(
            f"{_format_size(total, False)} live in {tree.count[0]:,} blocks "
            f"(branches under {min_percent:g}% hidden)",
            width,
        )
    ]
    if total <= 0:
        return lines + ["no traced memory is alive"]
    tree = tree.pruned(max(1, int(total * min_percent / 100)))
    kids = tree.children()
    # Deep stacks: the indent stops growing at a third of the width and
    # the line says its depth instead.
    indent_cap = max(8, width // 3)
    stack = [(child, 0) for child in reversed(kids[0])]
    while stack:
        node, depth = stack.pop()
        # A chain of single callers holding the same bytes is one line: its
        # last frame, saying how many callers it stands for.
        skipped = 0
        while len(kids[node]) == 1 and tree.size[kids[node][0]] == tree.size[node]:
            node = kids[node][0]
            skipped += 1
        indent = 2 * depth
        if indent <= indent_cap:
            prefix = " " * indent
        else:
            prefix = " " * (indent_cap - 6) + f"[{depth:>3}] "
        pct = 100 * tree.size[node] / total
        size = _format_size(tree.size[node], False)
        more = f"  (+{skipped} caller{'s' if skipped > 1 else ''})" if skipped else ""
        text = f"{prefix}{size:>10} {pct:5.1f}%  {_where(tree.frame[node])}{more}"
        lines.append(_fit(text, width))
        stack.extend((child, depth + 1) for child in reversed(kids[node]))
    shown = sum(tree.size[c] for c in kids[0])
    if total > shown:
        hidden = _format_size(total - shown, False)
        lines.append(_fit(f"  {hidden:>10}         in smaller branches", width))
    return lines


def format_top(snapshot, n: int, width: int = 80, frames_shown: int = 4) -> list[str]:
    """The n largest allocation sites (by traceback), with a few frames of
    each, innermost first."""
    rows = calltree.site_rows(snapshot)
    total = sum(r[0] for r in rows)
    lines = [
        _fit(
            f"{_format_size(total, False)} live in {len(rows):,} sites; "
            f"top {min(n, len(rows))}:",
            width,
        )
    ]
    for rank, (size, count, frames) in enumerate(rows[:n], 1):
        pct = 100 * size / total if total else 0
        lines.append(
            _fit(
                f"#{rank:<3} {_format_size(size, False):>10} {pct:5.1f}%  "
                f"{count:,} blocks",
                width,
            )
        )
        for frame in frames[:frames_shown]:
            lines.append(_fit(f"       {_where(frame)}", width))
        if len(frames) > frames_shown:
            lines.append(f"       ... {len(frames) - frames_shown} outer frames")
    return lines


def _top_from_report(report: dict, n: int, width: int) -> list[str]:
    sites = report.get("largest") or []
    lines = [f"largest sites in the report (no snapshot in this file): {len(sites)}"]
    for rank, site in enumerate(sites[:n], 1):
        lines.append(
            _fit(
                f"#{rank:<3} {_format_size(site.get('live_bytes') or 0, False):>10}  "
                f"{site.get('live_blocks') or 0:,} blocks"
                f"{'  LEAKING' if site.get('leaking') else ''}",
                width,
            )
        )
        for frame in (site.get("traceback") or [])[:4]:
            lines.append(
                _fit(
                    "       "
                    + _where(
                        (
                            frame.get("filename"),
                            frame.get("lineno"),
                            frame.get("function"),
                        )
                    ),
                    width,
                )
            )
    return lines


# ---- commands -----------------------------------------------------------------


def _load(path: str):
    from memhound.capture import load

    return load(path)


def _write_json(obj, out: str) -> None:
    if out == "-":
        json.dump(obj, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        with open(out, "w", encoding="utf-8") as file:
            json.dump(obj, file, indent=1)


def _fail(message: str) -> int:
    print(f"memhound: {message}", file=sys.stderr)
    return 1


def cmd_report(options) -> int:
    try:
        capture = _load(options.file)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    report, peak, exit_ = capture
    width = _width(options)
    if options.html:
        from memhound.html import render_html

        try:
            render_html(report, peak, exit_, options.html)
        except OSError as error:
            return _fail(str(error))
        print(f"memhound: wrote {options.html}", file=sys.stderr)
    if options.json:
        _write_json(report, options.json)
    if options.tree or options.top:
        snapshot = exit_ if options.at == "exit" else peak
        if snapshot is None:
            snapshot = peak if exit_ is None else exit_
        if options.top and snapshot is None:
            print("\n".join(_top_from_report(report, options.top, width)))
        elif snapshot is None:
            return _fail(f"{options.file} holds no snapshot to draw a tree from")
        elif options.tree:
            print("\n".join(format_tree(snapshot, width, options.min_percent)))
        else:
            print("\n".join(format_top(snapshot, options.top, width)))
    elif not options.html and not options.json:
        if _is_snapshot_file(options.file):  # no verdict: its largest sites
            print("\n".join(format_top(exit_, 10, width)))
            return 0
        from memhound.report import format_text

        try:
            print(format_text(report, color=False, width=width))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            # check_report vouches for types, not for every key the text
            # needs: a hostile file still gets a message, not a traceback.
            return _fail(f"{options.file}: cannot render this report: {error!r}")
    return 0


def _is_snapshot_file(path: str) -> bool:
    from memhound.capture import SNAPSHOT_MAGIC

    with open(path, "rb") as file:
        return file.read(len(SNAPSHOT_MAGIC)) == SNAPSHOT_MAGIC


def _snapshot_of(path: str, at: str):
    capture = _load(path)
    snapshot = capture.exit_snapshot if at == "exit" else capture.peak_snapshot
    if snapshot is None:
        raise ValueError(f"{path} holds no {at} snapshot")
    return snapshot


def _frames_json(frames) -> list[dict]:
    return [{"filename": f[0], "lineno": f[1], "function": f[2]} for f in frames]


def cmd_diff(options) -> int:
    try:
        old = _snapshot_of(options.old, options.at)
        new = _snapshot_of(options.new, options.at)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    from memhound.html import diff_rows, render_diff_html

    rows = diff_rows(old, new, options.by)
    if options.html:
        try:
            render_diff_html(
                old, new, options.html, options.by, (options.old, options.new)
            )
        except OSError as error:
            return _fail(str(error))
        print(f"memhound: wrote {options.html}", file=sys.stderr)
    if options.json:
        _write_json(
            {
                "format": "memhound-diff",
                "version": 1,
                "by": options.by,
                "old": options.old,
                "new": options.new,
                "size_diff": sum(r[1] for r in rows),
                "count_diff": sum(r[3] for r in rows),
                "diffs": [
                    {
                        "size": size,
                        "size_diff": size_diff,
                        "count": count,
                        "count_diff": count_diff,
                        "traceback": _frames_json(frames),
                    }
                    for size, size_diff, count, count_diff, frames in rows
                ],
            },
            options.json,
        )
    if not options.html and not options.json:
        print("\n".join(format_diff(rows, options.by, options.top, _width(options))))
    return 0


def format_diff(rows, by: str, top: int, width: int = 80) -> list[str]:
    """Rows of compare_to as text: the biggest changes first, and for
    --by traceback the frames of each."""
    total = sum(r[1] for r in rows)
    lines = [
        _fit(
            f"{_format_size(total, True)} in total, {len(rows):,} keys by {by}; "
            f"top {min(top, len(rows))}:",
            width,
        )
    ]
    for size, size_diff, _count, count_diff, frames in rows[:top]:
        head = (
            f"{_format_size(size_diff, True):>11} {count_diff:+9,} blocks  "
            f"now {_format_size(size, False)}"
        )
        if by != "traceback":
            frame = frames[0] if frames else ("<unknown>", 0, "")
            where = frame[0] if by == "filename" else f"{frame[0]}:{frame[1]}"
            room = max(10, width - len(head) - 2)
            if len(where) > room:  # keep the end: file name and line
                where = "\u2026" + where[-(room - 1) :]
            lines.append(_fit(f"{head}  {where}", width))
            continue
        lines.append(_fit(head, width))
        for frame in frames[:6]:
            lines.append(_fit(f"    {_where(frame)}", width))
        if len(frames) > 6:
            lines.append(f"    ... {len(frames) - 6} outer frames")
    return lines


# ---- memhound run --output / --html ----------------------------------------------


class RunOutputs:
    """The capture file and HTML page `memhound run` writes at exit.

    start() before the program runs (a Recorder samples the timeline and
    keeps a snapshot near the peak); finish() after it ended, with tracing
    still on."""

    def __init__(self, output: str | None, html: str | None) -> None:
        # Imported now, before tracing starts, so that the exit report does
        # not show memhound's own imports.
        import memhound.capture  # noqa: F401
        import memhound.html  # noqa: F401
        import memhound.report  # noqa: F401
        from memhound.recorder import Recorder

        self.output = output
        self.html = html
        self.recorder = Recorder()
        self.started = 0.0
        self.pid = os.getpid()  # only this process writes the files

    @classmethod
    def from_options(cls, options) -> RunOutputs | None:
        output, html = getattr(options, "output", None), getattr(options, "html", None)
        return cls(output, html) if output or html else None

    def start(self) -> RunOutputs:
        import time

        from memhound import _core

        _core._suspend_thread()  # memhound's own objects are not traced
        try:
            self.started = time.monotonic()
            self.recorder.start()
        finally:
            _core._resume_thread()
        return self

    def finish(self, exit_snapshot, report: dict | None = None) -> int:
        """Stop recording, then write the files.  report is the run's
        report dict (memhound.runner's); without one, a report is built
        from the exit snapshot.  Call with tracing still on.  Returns 0, or
        1 after printing why a file could not be written."""
        import time

        if os.getpid() != self.pid:  # a forked child (--follow-fork)
            return 0
        import memhound
        from memhound.capture import report_from_snapshot, write_capture
        from memhound.html import render_html
        from memhound.report import to_json_data

        self.recorder.stop()
        peak = self.recorder.peak_snapshot
        if report is None:
            stats = memhound.get_stats()
            report = report_from_snapshot(exit_snapshot)
            report["warnings"] = [
                w for w in report["warnings"] if not w.startswith("a lone snapshot")
            ]
            report["argv"] = list(sys.argv)
            report["pid"] = os.getpid()
            report["python"] = sys.version.split()[0]
            report["duration_s"] = round(time.monotonic() - self.started, 3)
            report["summary"]["peak_bytes"] = stats.get("peak_bytes")
            report["summary"]["dropped_blocks"] = stats.get("dropped_blocks", 0)
            report["summary"]["lost_tracebacks"] = stats.get("lost_tracebacks", 0)
        report = to_json_data(report)  # a copy without in-process keys
        if not report.get("timeline"):
            report["timeline"] = self.recorder.timeline
        status = 0
        try:
            if self.output:
                write_capture(self.output, report, peak, exit_snapshot)
                print(f"memhound: wrote {self.output}", file=sys.stderr)
            if self.html:
                render_html(report, peak, exit_snapshot, self.html)
                print(f"memhound: wrote {self.html}", file=sys.stderr)
        except (OSError, ValueError) as error:
            print(f"memhound: {error}", file=sys.stderr)
            status = 1
        return status
