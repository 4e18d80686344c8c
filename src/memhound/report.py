"""Text rendering of the leak report (the dict of docs/report-schema.md).

format_text() renders a report for a terminal: leaks ranked most severe
first, each with kind, confidence, growth rate, live size, the generation it
started in and its traceback with source lines; then the largest live
allocation sites.  Readable at 80 columns; colour only when asked (the
callers ask on a TTY).  write_json() writes the report for machines.
"""

from __future__ import annotations

import json
import linecache
import os
import sys
import sysconfig

from memhound import _native_cli

_FRAMES_SHOWN = 8


def format_size(size: float) -> str:
    """Human-readable bytes: 512 B, 12.3 KiB, 4.0 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    prefixes = {paths.get("stdlib"), paths.get("platstdlib"), paths.get("purelib")}
    prefixes |= {paths.get("platlib"), sys.base_prefix, sys.prefix}
    prefixes.add(_PACKAGE_DIR)
    return tuple(sorted(p for p in prefixes if p))


_LIBRARY = _library_prefixes()


def is_library(filename: str) -> bool:
    """Whether a frame belongs to Python, an installed package or memhound,
    rather than to the user's own code."""
    if not filename or filename.startswith("<"):
        return True
    if "site-packages" in filename or "dist-packages" in filename:
        return True
    return os.path.abspath(filename).startswith(_LIBRARY)


def display_path(filename: str) -> str:
    """A frame's file as a reader wants it at 80 columns: relative to the
    current directory for the user's own files under it, relative to its
    sys.path entry for Python's and installed packages' files (json/
    decoder.py), else whole.  The JSON report keeps whole paths."""
    if not filename or filename.startswith("<"):
        return filename
    path = os.path.abspath(filename)
    cwd = os.getcwd() + os.sep
    if path.startswith(cwd) and not is_library(path):
        return path[len(cwd) :]
    best = ""
    for entry in sys.path:
        entry = os.path.abspath(entry or ".") + os.sep
        if path.startswith(entry) and len(entry) > len(best) and entry != cwd:
            best = entry
    return path[len(best) :] if best and is_library(path) else filename


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("1;31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)


def _shorten(text: str, width: int) -> str:
    """text cut to width from the left: the end of a dotted type name is
    its class."""
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def _shorten_path(text: str, width: int) -> str:
    """A retention path cut to width in the middle: its start names the
    root (a module global, a thread) and its end what holds the object."""
    if len(text) <= width:
        return text
    head = max(width // 3, 1)
    return text[:head] + "..." + text[-(width - head - 3) :]


def _runner_frame(filename: str) -> bool:
    """A frame of what started the program: memhound's own (`memhound run`
    execs the program from cli.py), runpy's, or the console script's."""
    return (
        filename.startswith(_PACKAGE_DIR)
        or filename == "<frozen runpy>"
        or os.path.basename(filename) in ("runpy.py", "memhound")
    )


def _program_frames(frames: list) -> list:
    """frames (innermost first) without the outermost run of runner frames:
    a traceback ends at the program's own entry point.  All of it when every
    frame is a runner's (memhound's own allocation: say so, not nothing)."""
    end = len(frames)
    while end > 0 and _runner_frame(frames[end - 1].get("filename", "")):
        end -= 1
    return frames[:end] if end else frames


def _frames_to_show(frames: list, limit: int) -> list:
    """The frames worth printing, innermost first: the first `limit`, and
    when the user's own code starts deeper than that, the innermost few,
    an elision marker (None) and the user's first frames."""
    if len(frames) <= limit:
        return frames
    first_user = next(
        (i for i, f in enumerate(frames) if not is_library(f["filename"])), None
    )
    if first_user is None or first_user < limit - 1:
        return frames[:limit]
    head = max(1, limit - 3)
    return frames[:head] + [None] + frames[first_user : first_user + 2]


def _format_traceback(frames: list, style: _Style, width: int, out: list) -> None:
    if not frames:
        out.append("     <unknown>: no Python frame (allocated outside Python)")
        return
    frames = _program_frames(frames)
    shown = _frames_to_show(frames, _FRAMES_SHOWN)
    for frame in shown:
        if frame is None:
            out.append(style.dim("     ..."))
            continue
        filename, lineno = frame["filename"], frame["lineno"]
        function = frame.get("function") or "?"
        library = is_library(filename)
        mark = "  " if library else "> "
        # Paths are cut at a meaningful root, never in the middle: a
        # shortened path could name the wrong file.
        where = f"{display_path(filename)}:{lineno} in {function}"
        line = f"   {mark}{where}"
        out.append(style.dim(line) if library else line)
        source = linecache.getline(filename, lineno).strip() if lineno else ""
        if source:
            text = "         " + source[: width - 10]
            out.append(style.dim(text) if library else text)
    hidden = len(frames) - sum(1 for f in shown if f is not None)
    if hidden > 0:
        out.append(style.dim(f"     ({hidden} more frames)"))


def _rate(leak: dict) -> str:
    per_s = leak.get("growth_bytes_per_s") or 0.0
    text = f"+{format_size(per_s)}/s"
    per_iteration = leak.get("growth_bytes_per_iteration")
    if per_iteration is not None:
        text += f", +{format_size(per_iteration)}/iteration"
    return text


def _generation_time(report: dict, generation: int) -> float | None:
    for g in report.get("generations", ()):
        if g["generation"] == generation:
            return g["t"]
    return None


def _format_leak(rank: int, leak: dict, report: dict, style, width, out) -> None:
    kind = leak["kind"]
    head = f"#{rank} {kind} leak, confidence {leak['confidence']:.2f}: {_rate(leak)}"
    children = leak.get("children")
    if children:
        head += f" (in {children} child process{'es' if children != 1 else ''})"
    out.append(style.red(head))
    blocks = leak["live_blocks"]
    started = _generation_time(report, leak["first_generation"])
    since = f" (t={started:.1f} s)" if started is not None else ""
    out.append(
        f"   live {format_size(leak['live_bytes'])} in {blocks:,} "
        f"block{'s' if blocks != 1 else ''}; grew "
        f"{format_size(leak['growth_bytes'])} since generation "
        f"{leak['first_generation']}{since}"
    )
    allocated_by = _native_cli.allocated_by(leak)
    if allocated_by:
        out.append("   " + allocated_by)
    if kind == "cycle":
        out.append(
            "   unreachable reference cycles, never collected "
            "(the garbage collector is disabled)"
        )
    types = leak.get("types") or []
    if types:
        names = ", ".join(
            f"{t['type']} x{t['count']:,}" for t in types[:4] if "type" in t
        )
        out.append(f"   types: {names}")
    path = leak.get("retention_path") or []
    if path:
        # The last step names the whole chain as code would write it
        # (app.cache._store['k']); each step's "via" says what kind of
        # reference it is.
        holder = str(path[-1].get("object", "?"))
        out.append("   held by: " + _shorten_path(holder, width - 13) + _held_how(leak))
    if leak.get("retained_bytes"):
        out.append(f"   retains {format_size(leak['retained_bytes'])}")
    _format_traceback(leak["traceback"], style, width, out)


def _held_how(leak: dict) -> str:
    """How many of the site's objects the shown path stands for (the
    objects held the same way: registry[k][i] for every k and i), and how
    many other ways hold the rest."""
    ways = leak.get("paths") or []
    if not ways or ways[0].get("objects", 0) < 2:
        return ""
    others = len(ways) - 1
    more = f"; {others} other way{'s' if others != 1 else ''}" if others else ""
    return f" ({ways[0]['objects']:,} objects held this way{more})"


def _format_churn(report: dict, style, width: int, out: list) -> None:
    """The cycle-churn section: only sites over memhound.churn's
    REPORT_MIN_OBJECTS are in the report, so no section when none is."""
    sites = report.get("cycle_churn") or []
    if not sites:
        return
    out.append("")
    out.append(style.bold("Cycle churn (objects the garbage collector freed):"))
    # This process's sites, then (--follow-fork) the children's: 5 of each.
    own = [s for s in sites if not s.get("children")][:5]
    shown = own + [s for s in sites if s.get("children")][:5]
    for rank, site in enumerate(shown, 1):
        per_s = site.get("objects_per_s")
        rate = f"{per_s:,.0f}/s, " if per_s is not None else ""
        where = (
            f" (in {site['children']} child processes)" if site.get("children") else ""
        )
        out.append(
            f"#{rank} {site['objects']:,} objects, {format_size(site['bytes'])}, "
            f"freed in {site['collections']:,} collections{where}"
        )
        out.append(f"   {rate}{site['objects_per_generation']:,.0f} per generation")
        _format_traceback(site["traceback"][:3], style, width, out)
    activity = report.get("gc") or {}
    collections = activity.get("collections") or [0, 0, 0]
    seconds = sum(activity.get("seconds") or [0.0])
    share = activity.get("share_of_run")
    where = f", {share:.1%} of the run" if share is not None else ""
    out.append(
        f"   gc: {sum(collections):,} collections "
        f"({'/'.join(str(c) for c in collections)}), "
        f"{seconds:.3f} s{where}"
    )
    out.append(
        style.dim("   each cycle costs the collector time: break it with a weakref,")
    )
    out.append(style.dim("   or clear() it when done, so reference counting frees it"))


def format_text(
    report: dict, *, color: bool = False, width: int = 80, top: int = 10
) -> str:
    """The report as text for a terminal of `width` columns."""
    style = _Style(color)
    out = []
    rule = "=" * (width - 1)
    out.append(rule)
    summary = report.get("summary", {})
    leaks = report.get("leaks", [])
    duration = report.get("duration_s", 0.0)
    generations = summary.get("generations", len(report.get("generations", [])))
    what = f"{duration:.1f} s, {generations} generations"
    if summary.get("iterations"):
        what += f", {summary['iterations']:,} iterations"
    if leaks:
        noun = "leak" if len(leaks) == 1 else "leaks"
        out.append(style.bold(f"memhound: {len(leaks)} {noun} found ({what})"))
    else:
        out.append(style.green(f"memhound: no leak found ({what})"))
    settings = report.get("settings", {})
    mode = (
        f"sampled, mean {format_size(settings['sample'])}"
        if settings.get("sample")
        else "exact"
    )
    out.append(
        f"   {format_size(summary.get('traced_bytes', 0))} live in "
        f"{summary.get('traced_blocks', 0):,} blocks at the end, peak "
        f"{format_size(summary.get('peak_bytes', 0))} "
        f"({mode}, depth {settings.get('depth', '?')})"
    )
    for warning in report.get("warnings", []):
        out.append(style.dim(f"   warning: {warning}"))
    for rank, leak in enumerate(leaks[:top], 1):
        out.append("")
        _format_leak(rank, leak, report, style, width, out)
    if len(leaks) > top:
        out.append(f"\n   ... and {len(leaks) - top} more leaks (see --json)")
    largest = report.get("largest", [])
    if largest:
        out.append("")
        out.append(style.bold("Largest live allocation sites:"))
        for rank, site in enumerate(largest[:top], 1):
            blocks = site["live_blocks"]
            tag = " [leaking]" if site.get("leaking") else ""
            out.append(
                f"#{rank} {format_size(site['live_bytes'])} in {blocks:,} "
                f"block{'s' if blocks != 1 else ''}{tag}"
            )
            allocated_by = _native_cli.allocated_by(site)
            if allocated_by:
                out.append("   " + allocated_by)
            _format_traceback(site["traceback"][:3], style, width, out)
    _format_rows(
        "Types that grew:",
        report.get("types_grew"),
        lambda row: (
            f"   {_shorten(str(row['type']), 40):40} "
            f"+{row['count_diff']:,} objects, +{format_size(row['bytes_diff'])}"
        ),
        style,
        out,
    )
    _format_rows(
        "Largest retainers:",
        report.get("largest_retainers"),
        lambda row: (
            f"   {format_size(row['retained_bytes']):>10}  "
            f"{_shorten_path(_retainer_name(row), width - 17)}"
        ),
        style,
        out,
    )
    _format_rows(
        "Retained by type:",
        report.get("retained_by_type"),
        lambda row: (
            f"   {format_size(row['retained_bytes']):>10}  "
            f"{_shorten(str(row['type']), 40):40} {row['count']:,} objects"
        ),
        style,
        out,
    )
    _format_churn(report, style, width, out)
    for child in report.get("children", []):
        child_leaks = child.get("report", {}).get("leaks", [])
        out.append(
            f"child {child['pid']}: {len(child_leaks)} leak"
            f"{'' if len(child_leaks) == 1 else 's'}"
        )
    out.append(rule)
    return "\n".join(out)


def _format_rows(title, rows, line, style, out, most=5):
    """A titled section of one line per row (`line(row)`), the first `most`
    rows; nothing when there are no rows."""
    if not rows:
        return
    out.append("")
    out.append(style.bold(title))
    out.extend(line(row) for row in rows[:most])


def _retainer_name(row):
    """What a largest-retainer row is called: the last step of its path,
    else its type."""
    path = row.get("retention_path") or []
    return str(path[-1]["object"]) if path else str(row.get("type", "?"))


def _strip_private(value):
    """The report without in-process-only keys ("site")."""
    if isinstance(value, dict):
        return {k: _strip_private(v) for k, v in value.items() if k != "site"}
    if isinstance(value, list):
        return [_strip_private(v) for v in value]
    return value


def to_json_data(report: dict) -> dict:
    """The report as it is written to JSON (in-process keys removed)."""
    return _strip_private(report)


def write_json(report: dict, path: str) -> None:
    """Write the report as JSON to path ('-' for stdout)."""
    data = to_json_data(report)
    if path == "-":
        json.dump(data, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1)
        out.write("\n")
    os.replace(tmp, path)
