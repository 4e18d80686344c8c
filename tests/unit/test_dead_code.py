"""Code compiled at run time and dropped (exec, namedtuple, dataclasses made
per call) must not be kept alive by memhound's traceback store, nor
reported as a leak; blocks it allocated keep their file, function and line
after the code is gone."""

from __future__ import annotations

import collections
import gc
import weakref

import memhound

SOURCE = """\
def build(n):
    pad = 0
    return [bytearray(16) for _ in range(n)]
"""


def compile_builder(filename):
    namespace = {}
    exec(compile(SOURCE, filename, "exec"), namespace)
    return namespace["build"]


def test_dropped_code_is_freed_at_the_next_checkpoint():
    memhound.start()
    build = compile_builder("<generated-1>")
    kept = build(5)  # allocated while the compiled code ran
    code_ref = weakref.ref(build.__code__)
    del build
    gc.collect()
    # Only the traceback store names the code now.
    assert code_ref() is not None
    memhound.checkpoint()
    assert code_ref() is None
    # The kept blocks still say where they came from.
    tb = memhound.get_object_traceback(kept[0])
    assert tb is not None
    assert (tb[0].filename, tb[0].lineno) == ("<generated-1>", 3), tb
    snapshot = memhound.take_snapshot()
    lines = {
        (f.filename, f.lineno)
        for stat in snapshot.statistics("traceback")
        for f in stat.traceback
    }
    assert ("<generated-1>", 3) in lines


def test_code_still_running_or_referenced_is_kept():
    memhound.start()
    build = compile_builder("<generated-2>")
    kept = build(3)
    code_ref = weakref.ref(build.__code__)
    memhound.checkpoint()  # the function still holds its code
    assert code_ref() is not None
    assert build(2)  # and interning into its nodes still works
    assert memhound.get_object_traceback(kept[0])[0].filename == "<generated-2>"


def test_nested_code_is_freed_with_its_outer_code():
    memhound.start()
    namespace = {}
    source = (
        "def outer():\n"
        "    def inner():\n"
        "        return bytearray(8)\n"
        "    return inner()\n"
    )
    exec(compile(source, "<generated-3>", "exec"), namespace)
    kept = namespace["outer"]()
    outer_ref = weakref.ref(namespace["outer"].__code__)
    inner_ref = weakref.ref(namespace["outer"].__code__.co_consts[1])
    assert inner_ref().co_name == "inner"
    namespace.clear()
    gc.collect()
    memhound.checkpoint()
    assert outer_ref() is None
    assert inner_ref() is None
    assert memhound.get_object_traceback(kept)[0].filename == "<generated-3>"


def test_namedtuple_and_exec_per_call_is_not_a_leak():
    def make(i):
        point = collections.namedtuple("Point", "x y")
        compile_builder("<per-call>")(1)
        return point(i, i)

    with memhound.LeakCheck(graph=False) as check:
        for _ in range(12):
            for i in range(60):
                make(i)
            check.checkpoint(force=True)
    report = check.report()
    flagged = [
        frame
        for leak in report["leaks"]
        for frame in leak["traceback"]
        if frame["filename"] == "<per-call>"
        or frame["function"].endswith("compile_builder")
    ]
    assert flagged == [], report["leaks"][:2]
    # Memory the dead code took is gone, not just unflagged.
    per_call = [
        site
        for site in report["largest"]
        if any(f["function"].endswith("compile_builder") for f in site["traceback"])
    ]
    assert sum(site["live_bytes"] for site in per_call) < 64 * 1024, per_call[:1]
