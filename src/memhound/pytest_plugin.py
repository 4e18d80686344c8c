"""memhound's pytest plugin: does this test leak?  (docs/pytest.md)

    pytest --memhound                       check every test
    @pytest.mark.no_leaks                   check this test, even without the flag
    @pytest.mark.memhound_limit("24 MB")    fail above this peak of traced memory
    @pytest.mark.memhound_skip              never leak-check this test

A checked test runs W warm-up rounds then N measured rounds (default 2:3),
each its own setup/call/teardown with fresh function-scoped fixtures;
higher-scoped fixtures stay up.  Between rounds interpreter caches are
cleared, gc runs and memhound.LeakCheck starts a new generation.  The C
analysis (LeakCheck.report()) judges the sites; this module only
orchestrates the rounds and reads the verdict: a site leaks when blocks it
allocated in every measured round are still alive.  Nothing is traced
unless a test is checked or limited; the module imports only the standard
library and pytest (and, being in the package, memhound).
"""

from __future__ import annotations

import gc
import json
import os
import warnings
from contextlib import contextmanager, nullcontext

import pytest

# Allocations whose innermost frame lies in these packages are the test
# runner's or memhound's own (pytest appends a finalizer to every
# higher-scoped fixture a function fixture uses, per round), not the test's.
_RUNNER_PACKAGES = ("_pytest", "pluggy", "memhound", "xdist", "execnet")
_DEFAULT_ROUNDS = "2:3"
_MARKERS = (
    "no_leaks: fail this test if it leaks memory (memhound), with or without "
    "--memhound",
    "memhound_limit(size): fail this test if its peak of traced memory "
    'exceeds size (bytes or a string such as "24 MB")',
    "memhound_skip: never leak-check this test under --memhound",
)


# ---- options -------------------------------------------------------------


def pytest_addoption(parser):
    group = parser.getgroup("memhound", "memory-leak checks (memhound)")
    group.addoption(
        "--memhound",
        action="store_true",
        default=False,
        help="leak-check every test: warm-up rounds, then measured rounds",
    )
    group.addoption(
        "--memhound-rounds",
        default=_DEFAULT_ROUNDS,
        metavar="W:N",
        help=f"warm-up and measured rounds per checked test (default "
        f"{_DEFAULT_ROUNDS})",
    )
    group.addoption(
        "--memhound-mode",
        choices=("fail", "warn"),
        default="fail",
        help="fail leaking tests (default) or only list them in the summary; "
        "@pytest.mark.no_leaks always fails",
    )
    group.addoption(
        "--memhound-min-growth",
        default="1",
        metavar="BYTES",
        help="a site leaks only when it keeps at least this many bytes per "
        "measured round (default 1: any block that survives every round)",
    )
    group.addoption(
        "--memhound-min-confidence",
        type=float,
        default=0.5,
        metavar="C",
        help="the leak analysis' confidence, in [0; 1], a site needs to be "
        "a leak (default 0.5, memhound.LeakCheck's)",
    )
    group.addoption(
        "--memhound-depth",
        type=int,
        default=None,
        metavar="N",
        help="frames kept per traceback while checking (default: memhound's)",
    )
    group.addoption(
        "--memhound-native",
        action="store_true",
        default=False,
        help="also check native memory: what C extensions, shared libraries "
        "and ctypes calls allocate with malloc and do not free",
    )
    group.addoption(
        "--memhound-json",
        default=None,
        metavar="FILE",
        help="write every checked test's verdict to FILE as JSON",
    )


def parse_size(text) -> int:
    """Bytes from an int or a string such as "24 MB", "64KiB", "1.5G".
    KB/MB/GB are decimal, KiB/MiB/GiB (and k/M/G) binary, as pytest-memray
    reads them.  ValueError for anything else."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"a size can't be negative: {text}")
        return text
    units = {"": 1, "b": 1, "k": 1024, "m": 1 << 20, "g": 1 << 30}
    units.update({"kib": 1024, "mib": 1 << 20, "gib": 1 << 30})
    units.update({"kb": 1000, "mb": 1000**2, "gb": 1000**3})
    raw = str(text).strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    try:
        value = float(number) * units[raw[len(number) :]]
    except (ValueError, KeyError):
        raise ValueError(
            f"not a size: {text!r} (try 1048576, '24 MB' or '64 KiB')"
        ) from None
    if value < 0:
        raise ValueError(f"a size can't be negative: {text!r}")
    return int(value)


def parse_rounds(text: str) -> tuple[int, int]:
    """(warm-up, measured) from "W:N"; ValueError unless W >= 0, N >= 1."""
    try:
        warmup, measured = (int(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(
            f"--memhound-rounds wants W:N such as 2:3, not {text!r}"
        ) from None
    if warmup < 0 or measured < 1:
        raise ValueError(
            f"--memhound-rounds: W >= 0 warm-up and N >= 1 measured rounds, "
            f"not {text!r}"
        )
    return warmup, measured


def pytest_configure(config):
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    try:
        rounds = parse_rounds(config.getoption("memhound_rounds"))
        min_growth = parse_size(config.getoption("memhound_min_growth"))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    depth = config.getoption("memhound_depth")
    min_confidence = config.getoption("memhound_min_confidence")
    if not 0.0 <= min_confidence <= 1.0:
        raise pytest.UsageError(
            f"--memhound-min-confidence must be in [0; 1], not {min_confidence}"
        )
    if depth is not None and not 1 <= depth <= 1024:
        raise pytest.UsageError(f"--memhound-depth must be in [1; 1024], not {depth}")
    config.pluginmanager.register(
        MemhoundPlugin(config, rounds, min_growth, depth, min_confidence),
        "memhound-checker",
    )


# ---- the verdict -----------------------------------------------------------


def _strip_in_process(leak: dict) -> dict:
    from memhound.report import to_json_data

    return to_json_data(leak)


def _stdlib_dirs() -> tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    return tuple(
        os.path.join(paths[key], "") for key in ("stdlib", "platstdlib") if key in paths
    )


def _runner_frame(frame: dict) -> bool:
    parts = frame.get("filename", "").replace("\\", "/").split("/")
    return any(package in parts for package in _RUNNER_PACKAGES)


def _runner_site(traceback: list) -> bool:
    """True when the first frame outside the standard library (and outside
    code it generates, such as dataclass methods, "<string>") is pytest's,
    pluggy's or memhound's own: the runner allocated it, not the test.
    Doctests' "<doctest ...>" frames are the test's."""
    stdlib = _stdlib_dirs()
    for frame in traceback:
        filename = frame.get("filename", "")
        if (
            filename == "<string>"
            or filename.startswith("<frozen")
            or (filename.startswith(stdlib) and "site-packages" not in filename)
        ):
            continue
        return _runner_frame(frame)
    return False


def _verdict(report: dict, measured_rounds: int, min_growth: int = 1) -> dict:
    """Read LeakCheck's report of a checked test (docs/report-schema.md).

    The last measured_rounds generations before the final checkpoint are
    the measured rounds.  A leak entry is a leaking site when its survivors
    hold at least min_growth bytes in each of those generations and its
    innermost frame is not the test runner's.  Returns {"leaked",
    "growth_bytes_per_round", "per_round", "sites"}; per_round is the bytes
    kept in each measured round, summed over the leaking sites.
    """
    generations = [entry["generation"] for entry in report.get("generations", [])]
    # The last generation starts at the final checkpoint: no round ran in it.
    measured = generations[-measured_rounds - 1 : -1]
    if len(measured) < measured_rounds:
        raise ValueError(
            f"the report has {len(generations)} generations, fewer than "
            f"{measured_rounds} measured rounds and the final checkpoint"
        )
    sites = []
    per_round = [0] * measured_rounds
    for leak in report.get("leaks", []):
        if _runner_site(leak.get("traceback") or []):
            continue
        kept = {entry["generation"]: entry["bytes"] for entry in leak["survivors"]}
        site_rounds = [kept.get(generation, 0) for generation in measured]
        if min(site_rounds) < max(min_growth, 1):
            continue
        entry = _strip_in_process(leak)
        entry["growth_bytes_per_round"] = sum(site_rounds) / measured_rounds
        entry["per_round"] = site_rounds
        sites.append(entry)
        per_round = [a + b for a, b in zip(per_round, site_rounds, strict=True)]
    sites.sort(key=lambda site: -site["growth_bytes_per_round"])
    return {
        "leaked": bool(sites),
        "growth_bytes_per_round": sum(per_round) / measured_rounds,
        "per_round": per_round,
        "sites": sites,
    }


def _format_size(size: float) -> str:
    from memhound.report import format_size

    return format_size(size)


def format_verdict(nodeid: str, verdict: dict, warmup: int) -> str:
    """The failure message of a leaking test: each site with its growth per
    round, its frames up to the test runner's (with source lines) and, when
    known, what retains it."""
    from memhound.report import _format_traceback, _Style

    sites = verdict["sites"]
    per_round = ", ".join(_format_size(size) for size in verdict["per_round"])
    lines = [
        f"memhound: {nodeid} leaks {_format_size(verdict['growth_bytes_per_round'])}"
        f" per round ({per_round} in {len(verdict['per_round'])} measured rounds "
        f"after {warmup} warm-up) at {len(sites)} site{'s' if len(sites) > 1 else ''}:"
    ]
    for rank, site in enumerate(sites, 1):
        rounds = ", ".join(_format_size(size) for size in site["per_round"])
        lines.append(
            f"#{rank}: +{_format_size(site['growth_bytes_per_round'])} per round "
            f"({rounds}), {site.get('kind', 'python')}"
        )
        traceback = site.get("traceback") or []
        # The frames outside the test are pytest's calling it: cut there.
        runner = [i for i, frame in enumerate(traceback) if _runner_frame(frame)]
        _format_traceback(
            traceback[: runner[0] or 1] if runner else traceback,
            _Style(color=False),
            79,
            lines,
        )
        path = site.get("retention_path") or []
        if path:  # root first
            held = " -> ".join(f"{step['object']} ({step['via']})" for step in path)
            lines.append(f"     held by: {held}")
    return "\n".join(lines)


# ---- between rounds ----------------------------------------------------------


@contextmanager
def _young_gc():
    """Within: gc.collect() visits only the objects created since entry.
    What existed before the test is moved to the collector's permanent
    generation (gc.freeze) and given back on exit; a full collection of a
    big pytest session costs tens of milliseconds, and a checked test runs
    one per round.  Skipped when the program froze objects itself."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _settle() -> None:
    """Between rounds, as regrtest -R does: empty the interpreter's and the
    standard library's caches (memhound.leaks' list), then collect."""
    from memhound.churn import collect
    from memhound.leaks import _clear_interpreter_caches

    _clear_interpreter_caches()
    collect()


# ---- running a test several times ------------------------------------------


def _annotate(report: dict) -> None:
    """Add the heap graph's fields (retention_path, types, retained_bytes)
    to the report's leaks: memhound.heap.annotate_report, one heap-graph
    session.  Costs a walk of the whole heap, so only for leaking tests;
    a failure is a warning of the report, not of the test."""
    # The graph sees what the collector tracks: give back the objects
    # _young_gc froze (its own unfreeze on exit is then a no-op).
    gc.unfreeze()
    try:
        from memhound import heap

        heap.annotate_report(report, retainers=0)
    except Exception as error:
        report.setdefault("warnings", []).append(
            f"no retention paths: {type(error).__name__}: {error}"
        )


def _passed(reports) -> bool:
    # setup and call passed (a test that xpasses passes too)
    return all(report.passed for report in reports if report.when != "teardown")


class _QuietHooks:
    """A hook relay that drops pytest_runtest_logreport: what code inside a
    repeated test logs itself (pytest's subtests, unittest's subTest) is
    reported from the final round only."""

    def __init__(self, relay):
        self._relay = relay

    def __getattr__(self, name):
        return getattr(self._relay, name)

    def pytest_runtest_logreport(self, report):
        return []


@contextmanager
def _quiet(item):
    """Within: the round's warnings and self-logged reports are dropped."""
    session = item.session
    gethookproxy = session.gethookproxy
    # Node.ihook is a property calling session.gethookproxy.
    session.gethookproxy = lambda path: _QuietHooks(gethookproxy(path))
    try:
        with warnings.catch_warnings(record=True):
            yield
    finally:
        del session.gethookproxy


def _run_round(item, quiet: bool):
    """One setup/call/teardown of item with fresh function-scoped fixtures,
    unlogged.  The teardown goes up to item's parent only, so class, module
    and session fixtures stay up for the next round.  quiet: the round's
    warnings and subtest reports are dropped (pytest records them once,
    from the final round)."""
    from _pytest.runner import runtestprotocol

    item._report_sections = []  # captured output: this round's only
    item.user_properties = []
    # Every round must reach the test through the same lines: a site is its
    # whole traceback.
    with _quiet(item) if quiet else nullcontext():
        reports = runtestprotocol(item, log=False, nextitem=item.parent)
    if getattr(item, "_cached_errors_and_skips", None) is not None:
        # pytest's unittest items cache their subtests' outcomes (Python
        # < 3.11) past teardown; setup resets the cache, and it is not the
        # test's memory.
        item._cached_errors_and_skips = None
    return reports


def _teardown_rest(item, nextitem, teardown_report):
    """Tear down the higher-scoped nodes nextitem does not need (what the
    final teardown would have done); their errors replace a passing
    teardown report."""
    from _pytest.runner import CallInfo

    if item.session.shouldfail or item.session.shouldstop:
        nextitem = None
    call = CallInfo.from_call(
        lambda: item.session._setupstate.teardown_exact(nextitem), when="teardown"
    )
    if call.excinfo is None or not teardown_report.passed:
        return teardown_report
    return item.ihook.pytest_runtest_makereport(item=item, call=call)


def _failed_call_report(item, call_report, message: str):
    from _pytest.runner import CallInfo

    call = CallInfo.from_call(lambda: pytest.fail(message, pytrace=False), when="call")
    report = item.ihook.pytest_runtest_makereport(item=item, call=call)
    report.duration = call_report.duration
    report.start, report.stop = call_report.start, call_report.stop
    return report


# Sites are whole tracebacks, and the doctest runner compiles each example
# anew on every run: no site could survive every round.
_DOCTEST_PROBLEM = (
    "doctests are not leak-checked: their examples are compiled anew on "
    "every run, so the rounds share no allocation site"
)


class MemhoundPlugin:
    """Per-session state: options, the checked tests' results (on the
    controller under xdist: they arrive with the teardown reports)."""

    def __init__(self, config, rounds, min_growth, depth, min_confidence):
        self.config = config
        self.min_confidence = min_confidence
        self.enabled = config.getoption("memhound")
        self.warmup, self.measured = rounds
        self.min_growth = min_growth
        self.depth = depth
        self.native = config.getoption("memhound_native")
        self.fail = config.getoption("memhound_mode") == "fail"
        self.json_path = config.getoption("memhound_json")
        self.results = []

    # -- which tests

    def _rounds(self, item):
        """(last round's reports, LeakCheck's report or None, problem or
        None).  The report is None when a round failed or skipped."""
        import memhound

        total = self.warmup + self.measured
        # LeakCheck starts tracing if it is off and stops it on exit, after
        # taking the report; it generations from 0, one per round.
        # graph=False: nearly every test's report has some "leak" (pytest's
        # own per-round bookkeeping, which _verdict then discards), and a
        # heap walk per test made --memhound ~6x slower per round; leaking
        # tests are annotated below.
        check = memhound.LeakCheck(
            min_confidence=self.min_confidence,
            min_generations=self.measured,
            depth=self.depth,
            graph=False,
            native=self.native,
        )
        with _young_gc(), check:
            for number in range(1, total + 1):
                reports = _run_round(item, quiet=number < total)
                if not _passed(reports):
                    return reports, None, None
                if not memhound.is_tracing():
                    return reports, None, "the test stopped memhound's tracing"
                _settle()
                check.checkpoint(force=True)
            # Analysed inside the block, while the leaked objects are still
            # traced: the heap graph can then say who holds them.
            report = check.report()
            if _verdict(report, self.measured, self.min_growth)["leaked"]:
                _annotate(report)
        return reports, report, None

    def _checked(self, item) -> bool:
        option = self.config.option
        if getattr(option, "setuponly", False) or getattr(option, "setupplan", False):
            return False  # the tests do not run
        if item.get_closest_marker("memhound_skip") is not None:
            return False
        return self.enabled or item.get_closest_marker("no_leaks") is not None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if not self._checked(item):
            return None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports, result = self._check(item, nextitem)
        for report in reports:
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _check(self, item, nextitem):
        """Run item's rounds; return (reports to log, result or None)."""
        reports = report = problem = None
        if getattr(item, "dtest", None) is not None:
            problem = _DOCTEST_PROBLEM
        else:
            try:
                reports, report, problem = self._rounds(item)
            except pytest.exit.Exception:
                raise
            except Exception as error:  # memhound could not trace: say so
                problem = (
                    f"memhound could not check it: {type(error).__name__}: {error}"
                )
        if reports is None:  # the rounds never ran: run the test plainly
            reports = _run_round(item, quiet=False)
        reports[-1] = _teardown_rest(item, nextitem, reports[-1])
        if problem is not None:
            result = {"nodeid": item.nodeid, "leaked": None, "problem": problem}
            reports[-1].memhound = result
            return reports, result
        if report is None:
            return reports, None  # failed or skipped: not checked
        verdict = _verdict(report, self.measured, self.min_growth)
        result = {
            "nodeid": item.nodeid,
            "leaked": verdict["leaked"],
            "growth_bytes_per_round": verdict["growth_bytes_per_round"],
            "per_round": verdict["per_round"],
            "warmup_rounds": self.warmup,
            "measured_rounds": self.measured,
            "sites": verdict["sites"],
            "warnings": list(report.get("warnings", [])),
        }
        enforce = self.fail or item.get_closest_marker("no_leaks") is not None
        if verdict["leaked"] and enforce:
            message = format_verdict(item.nodeid, verdict, self.warmup)
            calls = [i for i, r in enumerate(reports) if r.when == "call"]
            if calls:
                reports[calls[0]] = _failed_call_report(
                    item, reports[calls[0]], message
                )
        reports[-1].memhound = result
        reports[-1].user_properties.append(("memhound_leaked", verdict["leaked"]))
        return reports, result

    # -- memory limits

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        marker = item.get_closest_marker("memhound_limit")
        if marker is None:
            return (yield)
        import memhound

        limit = _marker_limit(marker)
        started = not memhound.is_tracing()
        if started:
            memhound.start(depth=1)
        memhound.reset_peak()
        base = memhound.get_traced_memory()[0]
        try:
            result = yield
            peak = memhound.get_traced_memory()[1] - base
        finally:
            if started:
                memhound.stop()
        if peak > limit:
            pytest.fail(
                f"memhound: peak traced memory {_format_size(peak)} ({peak} bytes) "
                f"exceeds the limit {_format_size(limit)} ({limit} bytes) "
                f"of {item.nodeid}",
                pytrace=False,
            )
        return result

    # -- results, also from xdist workers

    def pytest_runtest_logreport(self, report):
        result = getattr(report, "memhound", None)
        if result is not None and report.when == "teardown":
            self.results.append(result)

    def pytest_terminal_summary(self, terminalreporter):
        if not self.results:
            return
        from memhound.report import display_path

        leaking = [result for result in self.results if result["leaked"]]
        unchecked = [result for result in self.results if result["leaked"] is None]
        terminalreporter.section("memhound")
        for result in leaking:
            rounds = ", ".join(_format_size(size) for size in result["per_round"])
            frame = (result["sites"][0].get("traceback") or [{}])[0]
            terminalreporter.line(
                f"LEAK {result['nodeid']}: "
                f"+{_format_size(result['growth_bytes_per_round'])} per round "
                f"({rounds}); top site {display_path(frame.get('filename', '?'))}:"
                f"{frame.get('lineno')} in {frame.get('function', '?')}"
            )
        for result in unchecked:
            terminalreporter.line(
                f"NOT CHECKED {result['nodeid']}: {result['problem']}"
            )
        terminalreporter.line(
            f"memhound: {len(self.results) - len(unchecked)} tests checked "
            f"({self.warmup} warm-up + {self.measured} measured rounds), "
            f"{len(leaking)} leaking"
            + (f", {len(unchecked)} could not be checked" if unchecked else "")
        )

    def pytest_sessionfinish(self, session):
        if not self.json_path or hasattr(self.config, "workerinput"):
            return  # under xdist the controller writes the file
        keys = ("nodeid", "leaked", "growth_bytes_per_round", "per_round", "problem")
        tests = []
        for result in self.results:
            entry = {key: result[key] for key in keys if key in result}
            entry["sites"] = [
                _strip_in_process(site) for site in result.get("sites", [])
            ]
            tests.append(entry)
        path = os.path.abspath(self.json_path)
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"tests": tests}, out, indent=1)
            out.write("\n")


def _marker_limit(marker) -> int:
    if len(marker.args) != 1 or marker.kwargs:
        raise pytest.UsageError(
            'memhound_limit takes one size, e.g. @pytest.mark.memhound_limit("24 MB")'
        )
    try:
        return parse_size(marker.args[0])
    except ValueError as error:
        raise pytest.UsageError(f"memhound_limit: {error}") from None
