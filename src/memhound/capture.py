"""Capture files (.mhc): a run's leak report and its snapshots, in one file.

    write_capture("run.mhc", report, peak_snapshot, exit_snapshot)
    capture = read_capture("run.mhc")   # Capture(report, peak, exit)

The container (magic, version, tagged sections, CRC-32C) is written and
read in C (_core.capture_encode / capture_decode, capfile.c); the report
travels as JSON in it (docs/capture-format.md).  Files are untrusted: a bad
file raises ValueError naming the problem, and check_report() makes sure a
report parsed from a file has the shapes the renderers rely on
(docs/report-schema.md), so a hostile report cannot crash them.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import NamedTuple

from memhound import _core
from memhound.snapshot import Snapshot

__all__ = [
    "Capture",
    "check_report",
    "load",
    "read_capture",
    "report_from_snapshot",
    "write_capture",
]

CAPTURE_MAGIC = b"\x89MHC\r\n\x1a\n"
SNAPSHOT_MAGIC = b"\x89MHS\r\n\x1a\n"


class Capture(NamedTuple):
    """What a capture file holds; the snapshots are None when absent."""

    report: dict
    peak_snapshot: Snapshot | None
    exit_snapshot: Snapshot | None


def _core_of(snapshot: Snapshot | None, what: str):
    if snapshot is None:
        return None
    if not isinstance(snapshot, Snapshot):
        raise TypeError(f"{what} must be a memhound.Snapshot or None")
    return snapshot._core


def encode_capture(
    report: dict, peak_snapshot: Snapshot | None, exit_snapshot: Snapshot | None
) -> bytes:
    """The bytes of a capture file (see write_capture)."""
    if not isinstance(report, dict):
        raise TypeError(f"report must be a dict, not {type(report).__name__}")
    from memhound.report import to_json_data

    # ASCII JSON: file names with undecodable bytes (surrogates) survive.
    text = json.dumps(to_json_data(report), separators=(",", ":"), allow_nan=False)
    return _core.capture_encode(
        text,
        _core_of(peak_snapshot, "peak_snapshot"),
        _core_of(exit_snapshot, "exit_snapshot"),
    )


def _write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write data to path through a temporary file renamed over it, so a
    crash leaves the old file or the whole new one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for a
    moment, under the program's other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_capture(
    path: str | os.PathLike,
    report: dict,
    peak_snapshot: Snapshot | None = None,
    exit_snapshot: Snapshot | None = None,
) -> None:
    """Write report (the dict of docs/report-schema.md) and the snapshots
    (None to leave one out) to path, replacing it atomically."""
    _write_atomic(path, encode_capture(report, peak_snapshot, exit_snapshot))


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON number")


def decode_capture(data: bytes, name: str = "capture") -> Capture:
    """A Capture from the bytes of a file; ValueError when they are bad."""
    try:
        text, peak, exit_ = _core.capture_decode(data)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    try:
        # NaN and Infinity are not JSON (the writer never makes them), and
        # the HTML report can't embed them.
        report = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{name}: the report is not valid JSON: {error}") from None
    check_report(report, name)
    return Capture(
        report,
        Snapshot(peak) if peak is not None else None,
        Snapshot(exit_) if exit_ is not None else None,
    )


def read_capture(path: str | os.PathLike) -> Capture:
    """Read a capture file.  ValueError names what is wrong with a bad
    file; OSError when it can't be read."""
    with open(path, "rb") as file:
        data = file.read()
    return decode_capture(data, os.fspath(path))


def load(path: str | os.PathLike) -> Capture:
    """A capture file, or a snapshot file (.mhs) as a Capture whose report
    is built from the snapshot (report_from_snapshot) and whose exit
    snapshot is that snapshot."""
    with open(path, "rb") as file:
        head = file.read(len(CAPTURE_MAGIC))
    if head == SNAPSHOT_MAGIC:
        snapshot = Snapshot.load(path)
        return Capture(report_from_snapshot(snapshot), None, snapshot)
    if head != CAPTURE_MAGIC:
        raise ValueError(
            f"{os.fspath(path)}: not a memhound capture or snapshot (bad magic)"
        )
    return read_capture(path)


# ---- reports from snapshots -----------------------------------------------


def _frames(traceback) -> list[dict]:
    return [
        {"filename": f.filename, "lineno": f.lineno, "function": f.function}
        for f in traceback
    ]


def report_from_snapshot(snapshot: Snapshot, top: int = 50) -> dict:
    """A report (docs/report-schema.md) for a lone snapshot: no generations
    and no leak verdict, the largest sites only."""
    stats = snapshot.statistics("traceback")
    total = sum(s.size for s in stats)
    blocks = sum(s.count for s in stats)
    from memhound import __version__

    warnings = [
        "a lone snapshot: no generations were recorded, so no leak verdict; "
        "the peak is unknown (shown as what was live)"
    ]
    if snapshot.sample_mean:
        warnings.append(
            f"sampled snapshot (mean {snapshot.sample_mean} bytes): sizes are estimates"
        )
    return {
        "format": "memhound-report",
        "version": 1,
        "memhound": __version__,
        "python": None,
        "argv": [],
        "pid": None,
        "duration_s": 0.0,
        "settings": {
            "depth": snapshot.traceback_limit,
            "sample": snapshot.sample_mean,
            "interval_s": None,
        },
        "generations": [],
        "leaks": [],
        "largest": [
            {
                "kind": "python",
                "live_bytes": s.size,
                "live_blocks": s.count,
                "traceback": _frames(s.traceback),
                "leaking": False,
            }
            for s in stats[:top]
        ],
        "timeline": [],
        "summary": {
            "traced_bytes": total,
            "traced_blocks": blocks,
            "peak_bytes": total,  # unknown; the warning says so
            "dropped_blocks": 0,
            "lost_tracebacks": 0,
            "sites": len(stats),
            "generations": 0,
            "iterations": None,
        },
        "children": [],
        "warnings": warnings,
    }


# ---- validating reports read from files ------------------------------------

_NUMBER = (int, float)


class _Checker:
    """Checks that a report parsed from an untrusted file has the types the
    renderers use; unknown keys are allowed, missing optional ones too."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, where: str, expected: str, value: object) -> None:
        raise ValueError(
            f"{self.name}: bad report: {where} should be {expected}, "
            f"not {type(value).__name__}"
        )

    def field(
        self, obj: dict, key: str, types, where: str, required=False, nullable=False
    ) -> None:
        """obj[key] has one of types; a missing key is an error only when
        required, None only when nullable (the schema's "null" fields)."""
        if key not in obj:
            if required:
                raise ValueError(f"{self.name}: bad report: {where}.{key} is missing")
            return
        value = obj[key]
        if value is None and nullable:
            return
        if isinstance(value, bool) and bool not in types:
            self.fail(f"{where}.{key}", _describe(types), value)
        if not isinstance(value, types):
            self.fail(f"{where}.{key}", _describe(types), value)

    def dicts(self, obj: dict, key: str, where: str, nullable=False) -> list:
        if key not in obj or (nullable and obj[key] is None):
            return []
        value = obj[key]
        if not isinstance(value, list):
            self.fail(f"{where}.{key}", "a list", value)
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self.fail(f"{where}.{key}[{i}]", "an object", item)
        return value

    def traceback(self, site: dict, where: str) -> None:
        if not isinstance(site.get("traceback"), list):
            self.fail(f"{where}.traceback", "a list", site.get("traceback"))
        for i, frame in enumerate(self.dicts(site, "traceback", where)):
            at = f"{where}.traceback[{i}]"
            self.field(frame, "filename", (str,), at, required=True)
            self.field(frame, "lineno", (int,), at, required=True)
            self.field(frame, "function", (str,), at, nullable=True)

    def site(self, site: dict, where: str, leak: bool) -> None:
        self.field(site, "kind", (str,), where, required=True)
        for key in ("live_bytes", "live_blocks"):
            self.field(site, key, (int,), where, required=True)
        # What a leak must have is what the text report prints of it.
        self.field(site, "growth_bytes", _NUMBER, where, required=leak)
        self.field(site, "retained_bytes", _NUMBER, where, nullable=True)
        self.field(site, "confidence", _NUMBER, where, required=leak)
        self.field(site, "growth_bytes_per_s", _NUMBER, where, nullable=True)
        self.field(site, "growth_bytes_per_iteration", _NUMBER, where, nullable=True)
        self.field(site, "first_generation", (int,), where, required=leak)
        self.field(site, "generations_with_survivors", (int,), where)
        self.traceback(site, where)
        for i, point in enumerate(self.dicts(site, "series", where)):
            at = f"{where}.series[{i}]"
            for key in ("generation", "live_bytes", "live_blocks"):
                self.field(point, key, (int,), at)
            self.field(point, "t", _NUMBER, at, required=True)
            self.field(point, "live_bytes", (int,), at, required=True)
        for i, row in enumerate(self.dicts(site, "survivors", where)):
            for key in ("generation", "bytes", "blocks"):
                self.field(row, key, (int,), f"{where}.survivors[{i}]")
        # Filled by the heap-graph analysis when it ran, null otherwise.
        for i, row in enumerate(self.dicts(site, "types", where, nullable=True)):
            at = f"{where}.types[{i}]"
            self.field(row, "type", (str,), at, required=True)
            self.field(row, "count", (int,), at, required=True)
            self.field(row, "bytes", (int,), at, required=True)
        for i, step in enumerate(
            self.dicts(site, "retention_path", where, nullable=True)
        ):
            at = f"{where}.retention_path[{i}]"
            self.field(step, "via", (str,), at)
            self.field(step, "object", (str,), at)

    def numbers(self, obj: dict, key: str, where: str) -> None:
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(n, _NUMBER) and not isinstance(n, bool) for n in value
        ):
            self.fail(f"{where}.{key}", "a list of numbers", value)

    def churn(self, report: dict, where: str) -> None:
        """cycle_churn and gc (report-schema.md CHURN, GC), as far as the
        text and HTML reports print them."""
        for i, site in enumerate(self.dicts(report, "cycle_churn", where)):
            at = f"{where}.cycle_churn[{i}]"
            for key in ("objects", "bytes", "collections", "objects_per_generation"):
                self.field(site, key, _NUMBER, at, required=True)
            for key in ("blocks", "objects_per_s", "bytes_per_s"):
                self.field(site, key, _NUMBER, at, nullable=True)
            for key in ("generations_with_churn", "children"):
                self.field(site, key, (int,), at)
            self.numbers(site, "objects_by_gc_generation", at)
            self.traceback(site, at)
        self.field(report, "gc", (dict,), where, nullable=True)
        activity = report.get("gc") or {}
        for key in ("collections", "seconds"):
            self.numbers(activity, key, f"{where}.gc")
        self.field(activity, "share_of_run", _NUMBER, f"{where}.gc", nullable=True)

    def heap_rows(self, report: dict, where: str) -> None:
        """types_grew, largest_retainers and retained_by_type, as far as the
        text report prints them."""
        for key, numbers in (
            ("types_grew", ("count_diff", "bytes_diff")),
            ("largest_retainers", ("retained_bytes",)),
            ("retained_by_type", ("retained_bytes", "count")),
        ):
            for i, row in enumerate(self.dicts(report, key, where, nullable=True)):
                at = f"{where}.{key}[{i}]"
                for number in numbers:
                    self.field(row, number, _NUMBER, at, required=True)
                self.field(row, "type", (str,), at, required=key != "largest_retainers")
                for j, step in enumerate(
                    self.dicts(row, "retention_path", at, nullable=True)
                ):
                    at_step = f"{at}.retention_path[{j}]"
                    self.field(step, "object", (str,), at_step, required=True)

    def report(self, report: object, where: str = "report", depth: int = 0) -> None:
        if not isinstance(report, dict):
            self.fail(where, "an object", report)
        if report.get("format", "memhound-report") != "memhound-report":
            raise ValueError(
                f"{self.name}: not a memhound report (format {report.get('format')!r})"
            )
        self.field(report, "version", (int,), where)
        for key in ("memhound", "python"):
            self.field(report, key, (str,), where, nullable=True)
        self.field(report, "pid", (int,), where, nullable=True)
        self.field(report, "argv", (list,), where)
        for key in ("settings", "summary"):
            self.field(report, key, (dict,), where)
        self.field(report, "duration_s", _NUMBER, where)
        nullable = ("iterations",)
        for key, value in (report.get("summary") or {}).items():
            if value is None and key in nullable:
                continue
            if not isinstance(value, _NUMBER) or isinstance(value, bool):
                self.fail(f"{where}.summary.{key}", "a number", value)
        for key, value in (report.get("settings") or {}).items():
            if value is not None and not isinstance(value, (int, float)):
                self.fail(f"{where}.settings.{key}", "a number", value)
        for i, gen in enumerate(self.dicts(report, "generations", where)):
            at = f"{where}.generations[{i}]"
            self.field(gen, "generation", (int,), at, required=True)
            self.field(gen, "t", _NUMBER, at, required=True)
            self.field(gen, "iteration", (int,), at, nullable=True)
        for i, point in enumerate(self.dicts(report, "timeline", where)):
            at = f"{where}.timeline[{i}]"
            for key in ("t", "traced_bytes"):
                self.field(point, key, _NUMBER, at, required=True)
            self.field(point, "rss_bytes", _NUMBER, at, nullable=True)
        for key in ("leaks", "largest"):
            for i, site in enumerate(self.dicts(report, key, where)):
                self.site(site, f"{where}.{key}[{i}]", key == "leaks")
        self.churn(report, where)
        self.heap_rows(report, where)
        warnings = report.get("warnings", [])
        if not isinstance(warnings, list) or not all(
            isinstance(w, str) for w in warnings
        ):
            self.fail(f"{where}.warnings", "a list of strings", warnings)
        for i, child in enumerate(self.dicts(report, "children", where)):
            if depth > 0:
                raise ValueError(f"{self.name}: bad report: nested children")
            if "report" in child:
                self.report(child["report"], f"{where}.children[{i}].report", 1)


def _describe(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "an object", bool: "a boolean"})
    return " or ".join(names.get(t, t.__name__) for t in types)


def check_report(report: object, name: str = "report") -> None:
    """Raise ValueError unless report has the shape of
    docs/report-schema.md where the renderers depend on it."""
    _Checker(name).report(report)
