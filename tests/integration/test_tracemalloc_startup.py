"""Importing memhound.tracemalloc starts tracing when the interpreter was
started with PYTHONTRACEMALLOC or -X tracemalloc, with the configuration the
builtin module gets from them (which each child checks against the builtin
module itself)."""

import json
import os
import subprocess
import sys

import pytest

# Prints what memhound.tracemalloc and the builtin module say.
REPORT = """
import json, sys, tracemalloc as builtin
import memhound.tracemalloc as tm
print(json.dumps({
    "tracing": tm.is_tracing(),
    "limit": tm.get_traceback_limit(),
    "builtin_tracing": builtin.is_tracing(),
    "builtin_limit": builtin.get_traceback_limit(),
}))
"""


def run(code, *options, env=None):
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONTRACEMALLOC"}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, *options, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def report(*options, env=None):
    return json.loads(run(REPORT, *options, env=env).stdout)


@pytest.mark.parametrize(
    "options, env, nframe",
    [
        ((), {}, 0),
        ((), {"PYTHONTRACEMALLOC": "1"}, 1),
        ((), {"PYTHONTRACEMALLOC": "10"}, 10),
        ((), {"PYTHONTRACEMALLOC": " +7"}, 7),
        ((), {"PYTHONTRACEMALLOC": "0"}, 0),
        ((), {"PYTHONTRACEMALLOC": ""}, 0),
        (("-E",), {"PYTHONTRACEMALLOC": "5"}, 0),
        (("-X", "tracemalloc"), {}, 1),
        (("-X", "tracemalloc=3"), {}, 3),
        (("-X", "tracemalloc="), {}, 0),
        (("-X", "tracemalloc=3"), {"PYTHONTRACEMALLOC": "9"}, 3),
        (("-X", "tracemalloc=0"), {"PYTHONTRACEMALLOC": "9"}, 0),
        (("-E", "-X", "tracemalloc=4"), {"PYTHONTRACEMALLOC": "9"}, 4),
    ],
)
def test_same_configuration_as_the_builtin_module(options, env, nframe):
    got = report(*options, env=env)
    assert got["builtin_tracing"] == (nframe > 0)
    assert got["tracing"] == (nframe > 0)
    if nframe:
        assert got["limit"] == got["builtin_limit"] == nframe


def test_nframe_above_max_depth_is_clamped():
    got = report(env={"PYTHONTRACEMALLOC": "2000"})
    assert got["tracing"] and got["builtin_limit"] == 2000
    assert got["limit"] == 1024  # memhound.MAX_DEPTH, as for start(2000)


def test_tracing_from_startup_records_allocations():
    code = """
import memhound.tracemalloc as tm
data = bytearray(123456)
tb = tm.get_object_traceback(data)
print(tm.is_tracing(), tb is not None and tb[0].lineno == 3)
"""
    proc = run(code, env={"PYTHONTRACEMALLOC": "5"})
    assert proc.stdout.split() == ["True", "True"]


def test_existing_configuration_is_kept():
    code = """
import memhound
memhound.start(depth=5)
import memhound.tracemalloc as tm
print(tm.get_traceback_limit())
"""
    assert run(code, env={"PYTHONTRACEMALLOC": "9"}).stdout.strip() == "5"


@pytest.mark.parametrize("value", ["abc", "-1", "70000", "5 "])
def test_value_changed_after_startup_is_ignored_with_a_warning(value):
    code = f"""
import os, warnings
os.environ["PYTHONTRACEMALLOC"] = {value!r}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import memhound.tracemalloc as tm
print(tm.is_tracing(), [str(w.message) for w in caught])
"""
    out = run(code).stdout
    assert out.startswith("False ")
    assert f"ignoring PYTHONTRACEMALLOC={value!r}" in out
