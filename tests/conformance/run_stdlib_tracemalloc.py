"""Run CPython's own test_tracemalloc against memhound.tracemalloc.

    python tests/conformance/run_stdlib_tracemalloc.py [--verbose]

Finds the running interpreter's Lib/test/test_tracemalloc.py, then runs
``python -m unittest -v test.test_tracemalloc.<Class>.<test> ...`` (every
test but the NOT_RUN ones) in a subprocess whose sys.path starts with a shim
directory: its tracemalloc.py puts memhound.tracemalloc in sys.modules in its
own place, so the test module, unittest.mock's patches and warnings all see
memhound.

Tests that can only pass against the interpreter's builtin _tracemalloc
are listed below per CPython version with the reason (the same list is
in docs/tracemalloc-compat.md):
  NOT_RUN        they exercise the builtin in a child interpreter, or the C
                 API that only the builtin implements: left out of the run.
  EXPECTED_FAIL  run; they fail for a documented difference.  One that
                 passes is reported, without failing the run.
Exit status: 0 when every other test passed, 1 when any failed (or the
run crashed), 2 when the stdlib tests are not installed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

NOT_RUN = "not run"
EXPECTED_FAIL = "expected failure"
ALL = ("3.10", "3.11", "3.12", "3.13")

# (test id, kind, CPython versions, reason).  Test ids are Class.method.
EXCLUSIONS = [
    # -- the builtin module in a child interpreter -------------------------
    (
        "TestCommandLine.test_env_var_disabled_by_default",
        NOT_RUN,
        ALL,
        "runs an isolated child interpreter (-I ignores the shim on "
        "PYTHONPATH): it tests the builtin module",
    ),
    (
        "TestCommandLine.test_env_var_ignored_with_E",
        NOT_RUN,
        ALL,
        "runs a child interpreter with -E (the shim on PYTHONPATH is "
        "ignored): it tests the builtin module",
    ),
    (
        "TestCommandLine.test_env_var_invalid",
        NOT_RUN,
        ALL,
        "the interpreter itself rejects a bad PYTHONTRACEMALLOC at startup, "
        "before any module is imported",
    ),
    (
        "TestCommandLine.test_sys_xoptions",
        NOT_RUN,
        ALL,
        "-X tracemalloc starts the builtin module, in an isolated child "
        "that ignores the shim",
    ),
    (
        "TestCommandLine.test_sys_xoptions_invalid",
        NOT_RUN,
        ALL,
        "the interpreter itself rejects a bad -X tracemalloc=N at startup",
    ),
    (
        "TestCommandLine.test_pymem_alloc0",
        NOT_RUN,
        ALL,
        "checks PyMem_Malloc(0) under -X tracemalloc, i.e. the builtin "
        "module's hooks, in an isolated child",
    ),
    # -- the C API of the builtin module ------------------------------------
    *(
        (
            f"TestCAPI.{name}",
            NOT_RUN,
            ALL,
            "_testcapi.tracemalloc_track/untrack call PyTraceMalloc_Track/"
            "Untrack, which only the builtin _tracemalloc implements",
        )
        for name in (
            "test_track",
            "test_track_without_gil",
            "test_track_already_tracked",
            "test_untrack",
            "test_stop_track",
            "test_stop_untrack",
        )
    ),
    # -- documented differences ----------------------------------------------
    (
        "TestTracemallocEnabled.test_new_reference",
        EXPECTED_FAIL,
        ALL,
        "an object reused from a free list keeps the traceback of its first "
        "allocation: the interpreter tells only the builtin module "
        "(_PyTraceMalloc_NewReference) when it reuses one",
    ),
]


def exclusions(version: str) -> dict[str, tuple[str, str]]:
    """test id -> (kind, reason) for CPython version "X.Y"."""
    return {
        test_id: (kind, reason)
        for test_id, kind, versions, reason in EXCLUSIONS
        if version in versions
    }


def find_stdlib_test() -> Path | None:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(sysconfig.get_path("stdlib"))]
    for prefix in (sys.prefix, sys.base_prefix):
        candidates.append(Path(prefix) / "lib" / version)
    for stdlib in candidates:
        path = stdlib / "test" / "test_tracemalloc.py"
        if path.is_file():
            return path
    return None


def list_test_ids(path: Path) -> list[str]:
    """Every test of test.test_tracemalloc (which must be path), as
    Class.method."""
    import unittest

    def walk(suite):
        for test in suite:
            if isinstance(test, unittest.TestSuite):
                yield from walk(test)
            else:
                yield test

    suite = unittest.defaultTestLoader.loadTestsFromName("test.test_tracemalloc")
    module = sys.modules["test.test_tracemalloc"]
    if Path(module.__file__).resolve() != path.resolve():
        raise RuntimeError(f"test.test_tracemalloc is {module.__file__}, not {path}")
    ids = []
    for test in walk(suite):
        if type(test).__name__ == "_FailedTest":
            raise RuntimeError(f"cannot load test.test_tracemalloc: {test}")
        ids.append(test.id().removeprefix("test.test_tracemalloc."))
    return sorted(ids)


SHIM = '''\
"""Shim: make `import tracemalloc` give memhound.tracemalloc."""
import sys

import memhound.tracemalloc

sys.modules[__name__] = memhound.tracemalloc
'''

# "test_x (test.test_tracemalloc.Cls)" (3.10) or "(...Cls.test_x)" (3.11+),
# optionally a docstring line, then " ... status".
STATUS_RE = re.compile(
    r"^(?P<name>test\w*) \(test\.test_tracemalloc\.(?P<cls>\w+)(?:\.\w+)?\)"
    r"(?:\n[^\n]*?)? \.\.\. (?P<status>ok|FAIL|ERROR|skipped|expected failure"
    r"|unexpected success)",
    re.M,
)
# The summary's headers: the authority on what failed (subtests included).
FAILURE_RE = re.compile(
    r"^(?:FAIL|ERROR|UNEXPECTED SUCCESS): (?P<name>test\w*) "
    r"\(test\.test_tracemalloc\.(?P<cls>\w+)",
    re.M,
)
RAN_RE = re.compile(r"^Ran (\d+) tests?", re.M)


def run_tests(test_ids: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="memhound-shim-") as shim:
        Path(shim, "tracemalloc.py").write_text(SHIM)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (shim, env.get("PYTHONPATH")) if p
        )
        # A builtin tracer started at startup would run under memhound's.
        env.pop("PYTHONTRACEMALLOC", None)
        command = [sys.executable, "-m", "unittest", "-v"]
        command += [f"test.test_tracemalloc.{test_id}" for test_id in test_ids]
        # cwd: the shim (first on sys.path for -m) and scratch files
        # (os_helper.TESTFN) land in the temporary directory.
        return subprocess.run(
            command,
            cwd=shim,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=900,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--verbose", action="store_true", help="print unittest's output"
    )
    options = parser.parse_args(argv)

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = f"CPython {sys.version.split()[0]}"
    path = find_stdlib_test()
    if path is None:
        print(
            f"conformance: {python} has no test/test_tracemalloc.py under "
            f"{sys.prefix} or {sys.base_prefix} (stdlib tests not installed)",
            file=sys.stderr,
        )
        return 2
    print(f"conformance: {python}, {path}")

    table = exclusions(version)
    all_ids = list_test_ids(path)
    stale = sorted(set(table) - set(all_ids))
    if stale:
        print(f"conformance: listed tests that {python} does not have: {stale}")
    not_run = [t for t in all_ids if table.get(t, ("",))[0] == NOT_RUN]
    selected = [t for t in all_ids if t not in not_run]

    proc = run_tests(selected)
    output = proc.stdout
    if options.verbose:
        print(output)

    ran = RAN_RE.search(output)
    status = {
        f"{m['cls']}.{m['name']}": m["status"] for m in STATUS_RE.finditer(output)
    }
    failed = {f"{m['cls']}.{m['name']}" for m in FAILURE_RE.finditer(output)}
    failed |= {t for t, s in status.items() if s in ("FAIL", "ERROR")}
    skipped = {t for t, s in status.items() if s == "skipped"}
    if proc.returncode < 0 or ran is None or int(ran[1]) != len(selected):
        if not options.verbose:
            print(output)
        print(
            f"conformance: FAILED: the run did not complete (exit status "
            f"{proc.returncode}, {ran[1] if ran else 'no'} of {len(selected)} "
            f"tests reported)"
        )
        return 1
    missing = set(selected) - set(status) - failed
    if missing:
        # A test whose status line could not be read: don't guess.
        print(f"conformance: no status found for {sorted(missing)}")

    expected = {t for t in selected if table.get(t, ("",))[0] == EXPECTED_FAIL}
    unexpected = sorted(failed - expected)
    passed = set(selected) - failed - skipped - missing
    fixed = sorted(expected & passed)

    for test_id in sorted(expected & failed):
        print(f"  expected failure: {test_id}: {table[test_id][1]}")
    for test_id in not_run:
        print(f"  not run: {test_id}: {table[test_id][1]}")
    for test_id in sorted(skipped):
        print(f"  skipped by the test suite: {test_id}")
    for test_id in fixed:
        print(f"  NOTE: expected failure passed: {test_id}")
    print(
        f"conformance: {python}: {len(all_ids)} tests, {len(selected)} run, "
        f"{len(passed)} passed, {len(expected & failed)} expected failures, "
        f"{len(skipped)} skipped, {len(not_run)} not run (builtin only), "
        f"{len(unexpected)} unexpected failures"
    )
    if unexpected or missing:
        if not options.verbose:
            print(output)
        for test_id in unexpected:
            print(f"  UNEXPECTED FAILURE: {test_id}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
