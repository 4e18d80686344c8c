"""Cycle churn: what the cyclic garbage collector frees, by allocation site
(memhound.cycle_churn, the report's "cycle_churn" and "gc")."""

from __future__ import annotations

import gc
import json
import sys
import threading
import time

import pytest

import memhound
from memhound import _core, churn
from memhound.report import format_text

THIS_FILE = __file__


class Node:
    __slots__ = ("other", "__weakref__")


class Finalized:
    """In a cycle, its __del__ releases the GIL while the collector runs."""

    def __del__(self):
        time.sleep(0.0001)


def make_pair():
    a, b = Node(), Node()  # the cycle's objects
    a.other = b
    b.other = a


CYCLE_LINE = make_pair.__code__.co_firstlineno + 1


@pytest.fixture(autouse=True)
def _gc_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.collect()  # leave no garbage of ours for later tests' censuses
    if not was:
        gc.disable()


def our_callbacks():
    """memhound's entries in gc.callbacks, with their index:
    [] or [(0, "stop"), (len - 1, "start")] when in place."""
    return [
        (i, cb.__name__.rsplit("_", 1)[1])
        for i, cb in enumerate(gc.callbacks)
        if getattr(cb, "__name__", "").startswith("memhound_gc_churn_")
    ]


def in_place():
    return our_callbacks() == [(0, "stop"), (len(gc.callbacks) - 1, "start")]


def churn_at(sites, lineno):
    return [
        s
        for s in sites
        if (s["traceback"][0]["filename"], s["traceback"][0]["lineno"])
        == (THIS_FILE, lineno)
    ]


def node_block_size():
    """The traced size of one Node block, from a snapshot."""
    probe = Node()  # noqa: F841 - kept alive for the snapshot
    line = sys._getframe().f_lineno - 1
    stats = memhound.take_snapshot().statistics("lineno")
    for stat in stats:
        frame = stat.traceback[0]
        if frame.filename == THIS_FILE and frame.lineno == line:
            return stat.size // stat.count
    raise AssertionError("probe not traced")


def test_cycles_at_one_line_are_the_top_churn_site():
    pairs, rounds = 2000, 10
    with memhound.LeakCheck(graph=False) as check:
        block = node_block_size()
        for _ in range(rounds):
            for _ in range(pairs):
                make_pair()
            check.checkpoint(force=True)
        gc.collect()  # the program's own collection: counted
    report = check.report()
    created = 2 * pairs * rounds  # Node objects, every one in a cycle
    sites = report["cycle_churn"]
    assert sites, report["gc"]
    top = sites[0]
    assert top["traceback"][0]["filename"] == THIS_FILE
    assert top["traceback"][0]["lineno"] == CYCLE_LINE
    assert top["traceback"][0]["function"] == "make_pair"
    activity = report["gc"]
    collections = sum(activity["collections"])
    # Every Node is freed by a collection exactly once; gc's own blocks
    # are left out, so at most a few blocks per collection may be added.
    assert created <= top["objects"] <= created + 2 * collections
    assert top["bytes"] == top["objects"] * block
    assert top["blocks"] == top["objects"]  # __slots__: no buffer blocks
    assert 1 <= top["collections"] <= collections
    assert sum(top["objects_by_gc_generation"]) == top["objects"]
    generations = report["summary"]["generations"]
    assert top["generations_with_churn"] >= rounds  # every round churned
    assert top["objects_per_generation"] == pytest.approx(
        top["objects"] / generations, rel=1e-3
    )
    assert top["objects_per_s"] > 0
    assert activity["enabled"] is True
    assert sum(activity["collected"]) >= created
    assert activity["dropped"] == 0
    text = format_text(report)
    assert "Cycle churn" in text
    assert f"test_gc_churn.py:{CYCLE_LINE} in make_pair" in text


def test_no_cycles_no_churn():
    kept = []
    with memhound.LeakCheck(graph=False) as check:
        for i in range(10):
            for j in range(3000):
                record = {"id": j, "tags": [str(j), str(i)]}  # no cycle
                if j % 100 == 0:
                    kept.append(record)
            check.checkpoint(force=True)
        gc.collect()
    report = check.report()
    assert report["cycle_churn"] == []
    assert "Cycle churn" not in format_text(report)
    # Nothing of this file's own lines churned either (below the
    # report's threshold too).
    ours = [
        s
        for s in memhound.cycle_churn(n=1000)
        if s["traceback"] and s["traceback"][0]["filename"] == THIS_FILE
    ]
    assert ours == []
    del kept


def test_gc_disabled_no_churn_and_the_leak_is_a_cycle():
    kept_alive_by_nothing = 0
    gc.disable()
    try:
        with memhound.LeakCheck() as check:
            for _ in range(10):
                for _ in range(300):
                    make_pair()
                    kept_alive_by_nothing += 1
                check.checkpoint(force=True)
        report = check.report()
    finally:
        gc.enable()
        gc.collect()
    assert report["cycle_churn"] == []
    assert report["gc"]["enabled"] is False
    assert report["gc"]["collections"] == [0, 0, 0]
    leaks = [
        leak for leak in report["leaks"] if leak["traceback"][0]["lineno"] == CYCLE_LINE
    ]
    assert leaks and leaks[0]["kind"] == "cycle"


def test_threads_only_the_collecting_thread_counts():
    """Cycles with a __del__ that releases the GIL: while the collector
    waits in it, another thread frees objects of its own, which are not
    the collector's."""
    stop = threading.Event()
    in_gc = [False]
    during_gc = [0]  # the churner's rounds while a collection ran

    def churner():
        while not stop.is_set():
            junk = [object() for _ in range(50)]  # the other thread's line
            during_gc[0] += in_gc[0]
            del junk

    def watch(phase, info):
        in_gc[0] = phase == "start"

    churner_line = churner.__code__.co_firstlineno + 2
    # Each __del__ hands the GIL to the churner for one switch interval.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    memhound.start()
    _core.gens_restart()
    gc.callbacks.append(watch)
    worker = threading.Thread(target=churner)
    worker.start()
    try:
        made = 0
        for _ in range(500):
            a, b = Finalized(), Finalized()
            a.b = b
            b.a = a
            made += 2
        cycle_line = sys._getframe().f_lineno - 4
        del a, b
        gc.collect()
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)
        gc.callbacks.remove(watch)
    sites = memhound.cycle_churn(n=1000)
    assert during_gc[0] > 0  # the other thread did free during collections
    assert churn_at(sites, churner_line) == []
    top = churn_at(sites, cycle_line)
    assert top, sites[:3]
    collections = sum(churn.report_fields()[1]["collections"])
    assert made <= top[0]["objects"] <= made + 2 * collections


def test_cycles_made_in_threads():
    def work():
        for _ in range(2000):
            make_pair()

    memhound.start()
    _core.gens_restart()
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    top = churn_at(memhound.cycle_churn(), CYCLE_LINE)
    collections = sum(churn.report_fields()[1]["collections"])
    assert top and 3 * 2 * 2000 <= top[0]["objects"] <= 12000 + 2 * collections


def test_memhound_own_collections_are_not_counted():
    memhound.start()
    _core.gens_restart()
    gc.disable()  # no automatic collection in between
    try:
        for _ in range(500):
            make_pair()
        churn.collect()  # memhound's own
        assert churn_at(memhound.cycle_churn(), CYCLE_LINE) == []
        for _ in range(500):
            make_pair()
        gc.collect()  # the program's
    finally:
        gc.enable()
    top = churn_at(memhound.cycle_churn(), CYCLE_LINE)
    assert top and top[0]["objects"] == 1000
    assert top[0]["collections"] == 1


def test_stop_start_clear_and_callback_registration():
    assert memhound.cycle_churn() == []  # not tracing
    assert our_callbacks() == []
    memhound.start()
    assert in_place()
    memhound.start(depth=10)  # same store: counts kept, one callback
    assert in_place()
    gc.disable()
    try:
        for _ in range(200):
            make_pair()
        gc.collect()
        assert churn_at(memhound.cycle_churn(), CYCLE_LINE)[0]["objects"] == 400
        memhound.start(depth=10)
        assert churn_at(memhound.cycle_churn(), CYCLE_LINE)[0]["objects"] == 400
        memhound.clear()  # the traceback store is replaced: counts go
        assert memhound.cycle_churn() == []
        for _ in range(100):
            make_pair()
        gc.collect()
        assert churn_at(memhound.cycle_churn(), CYCLE_LINE)[0]["objects"] == 200
        memhound.stop()
        assert our_callbacks() == []
        assert memhound.cycle_churn() == []
        memhound.start()
        assert in_place()
        assert memhound.cycle_churn() == []  # a new session
        memhound.start(sample=1024)  # sampling: a new store, counts reset
        assert in_place()
        memhound.start(python=False, native=True)  # no hooks: churn off
        assert our_callbacks() == []
    finally:
        gc.enable()
        memhound.stop()
    assert our_callbacks() == []


class Payload:
    __slots__ = ("n",)


def fill(holder, key, count):
    holder[key] = [Payload() for _ in range(count)]  # the callbacks' objects


FILL_LINE = fill.__code__.co_firstlineno + 1


def cycle_churn():
    """Objects made by make_pair() counted as churn, whatever the caller."""
    return sum(s["objects"] for s in churn_at(memhound.cycle_churn(), CYCLE_LINE))


def fill_churn(sites):
    """Objects made by fill() that were counted as churn."""
    return sum(s["objects"] for s in churn_at(sites, FILL_LINE))


def freeing_callback(holder, name):
    """A program's gc callback that frees its own objects (no cycles) in
    both phases."""

    def callback(phase, info):
        holder.pop(f"{name}-{phase}", None)

    return callback


def test_program_callbacks_frees_are_not_churn():
    """Program callbacks listed before memhound's, appended after them, and
    inserted at the front after them free many objects in both phases:
    only the collection's own frees are counted."""
    holder = {}
    names = ("before", "after", "front")
    before = freeing_callback(holder, "before")
    gc.callbacks.append(before)
    callbacks = [before]
    gc.disable()
    try:
        memhound.start()
        _core.gens_restart()
        assert in_place()
        after = freeing_callback(holder, "after")
        front = freeing_callback(holder, "front")
        gc.callbacks.append(after)
        gc.callbacks.insert(0, front)
        callbacks += [after, front]
        rounds, per_phase, pairs = 5, 2000, 300
        for _ in range(rounds):
            for name in names:
                for phase in ("start", "stop"):
                    fill(holder, f"{name}-{phase}", per_phase)
            for _ in range(pairs):
                make_pair()
            gc.collect()
            assert holder == {}  # every callback ran, in both phases
            # Put back after the first collection: stop first, start last.
            assert in_place()
            assert gc.callbacks[1:4] == [front, before, after]
        sites = memhound.cycle_churn(n=100)
        activity = churn.report_fields()[1]
    finally:
        gc.enable()
        for callback in callbacks:
            gc.callbacks.remove(callback)
        memhound.stop()
    assert churn_at(sites, CYCLE_LINE)[0]["objects"] == 2 * pairs * rounds
    # 60,000 Payload objects freed by the callbacks: none counted.  The
    # lists holding them may wait in the list free list (before 3.13) until
    # a full collection empties it: at most the 6 lists of each round.
    assert fill_churn(sites) <= 6 * rounds
    assert activity["callbacks_misplaced"] == 0
    assert activity["watching"] is True
    assert churn.warnings(activity) == []


def test_callbacks_moved_during_a_collection_and_removed():
    """A callback that a finalizer puts first while a collection runs frees
    objects inside the window: the collection is counted as misplaced, and
    memhound's callbacks are back in place for the next one.  Removing
    them stops the counting, and the report says so."""
    holder = {}
    late = freeing_callback(holder, "late")

    class Inserter:
        def __del__(self):
            gc.callbacks.insert(0, late)

    gc.disable()
    try:
        memhound.start()
        _core.gens_restart()
        fill(holder, "late-stop", 3000)
        for _ in range(100):
            make_pair()
        finalized = Inserter()
        finalized.self = finalized
        del finalized
        gc.collect()  # "late" runs first on "stop", inside the window
        assert holder == {}
        # "stop" first again; its old copy goes at the next collection.
        assert our_callbacks() == [(0, "stop"), (2, "stop"), (3, "start")]
        raw = _core.gc_churn()["totals"]
        assert raw["misplaced"] == 1 and raw["watching"] == 1
        assert 3000 <= fill_churn(memhound.cycle_churn()) <= 3001
        fill(holder, "late-stop", 3000)
        for _ in range(100):
            make_pair()
        gc.collect()  # in place again: only the cycles
        assert holder == {}
        assert in_place()
        assert 3000 <= fill_churn(memhound.cycle_churn()) <= 3002
        assert cycle_churn() == 400
        gc.callbacks.remove(late)
        gc.callbacks.clear()  # the program drops memhound's
        for _ in range(100):
            make_pair()
        gc.collect()  # not seen
        assert cycle_churn() == 400
        assert _core.gc_churn()["totals"]["watching"] == 0
        churn.collect()  # memhound's own: puts them back, remembers the gap
        assert in_place()
        activity = churn.report_fields()[1]
        assert activity["watching"] is False
        assert activity["callbacks_misplaced"] == 1
        assert len(churn.warnings(activity)) == 2
    finally:
        gc.enable()
        memhound.stop()
    assert our_callbacks() == []


def test_another_tool_that_keeps_itself_last():
    """A callback that, like memhound's "start", appends itself again when
    it is not last: no endless loop, a bounded list, the collections
    counted as misplaced."""
    calls = []

    def last(phase, info):
        calls.append(phase)
        if phase == "start" and gc.callbacks[-1] is not last:
            gc.callbacks.append(last)

    others = len(gc.callbacks)
    gc.disable()
    try:
        memhound.start()
        _core.gens_restart()
        gc.callbacks.append(last)
        for _ in range(5):
            for _ in range(100):
                make_pair()
            gc.collect()
            # memhound yields the last place: the list stops growing.
            assert [name for _, name in our_callbacks()] == ["stop", "start"]
            assert our_callbacks()[0] == (0, "stop")
            assert len(gc.callbacks) <= others + 4
        assert cycle_churn() == 1000
        assert _core.gc_churn()["totals"]["misplaced"] == 5
        assert calls.count("start") <= 2 * 5
    finally:
        gc.enable()
        while last in gc.callbacks:
            gc.callbacks.remove(last)
        memhound.stop()
    assert our_callbacks() == []


def test_stop_inside_a_collection():
    """memhound.stop() from a finalizer that the collector runs: the
    callback is gone before the collection's "stop" phase."""

    class StopsTracing:
        def __del__(self):
            memhound.stop()

    memhound.start()
    a = StopsTracing()
    a.self = a
    del a
    gc.collect()
    assert not memhound.is_tracing()
    assert our_callbacks() == []
    memhound.start()  # and all is well afterwards
    for _ in range(100):
        make_pair()
    gc.collect()
    assert churn_at(memhound.cycle_churn(), CYCLE_LINE)[0]["objects"] == 200


def test_sampling_estimates():
    memhound.start(sample=256)
    _core.gens_restart()
    for _ in range(20000):
        make_pair()
    gc.collect()
    top = churn_at(memhound.cycle_churn(), CYCLE_LINE)
    # A sampled block stands for 1/P(sampled) blocks: the estimate is
    # unbiased; 40000 objects of ~40 bytes, ~6000 samples: within 15%.
    assert top and 0.85 * 40000 <= top[0]["objects"] <= 1.15 * 40000


def test_argument_checks():
    with pytest.raises(ValueError):
        memhound.cycle_churn(n=-1)
    with pytest.raises(ValueError):
        _core.gc_churn(limit=-1)


def _page_data(page):
    start = page.index('id="mh-data">') + len('id="mh-data">')
    return json.loads(page[start : page.index("</script>", start)])


def test_html_churn_section_data_is_checked_and_escaped():
    """The HTML report's cycle-churn section: the text report's sites (its
    threshold, the parent's first, then --follow-fork children's), every
    value checked (a report may come from a file), nothing unescaped."""
    from memhound.html import render_html
    from tests.report_fixture import make_report

    report = make_report(ngen=2, nleaks=1)
    (site,) = report["cycle_churn"]
    hostile = dict(
        site,
        objects_per_s="fast",
        objects_by_gc_generation="x",
        traceback=[
            {
                "filename": "<img src=x onerror=alert(1)>.py",
                "lineno": 3,
                "function": "</script><script>alert(1)",
            },
            "not a frame",
        ],
    )
    below = dict(site, objects=churn.REPORT_MIN_OBJECTS - 1)
    children = dict(site, objects=5000, children=2, pids=[11, 12])
    report["cycle_churn"] = [children, hostile, below]
    page = render_html(report, None, None)
    assert "</script><script>alert(1)" not in page
    assert "<img src=x" not in page
    assert page.count("</script>") == 2  # the data block and the code
    data = _page_data(page)["churn"]
    assert data["min_objects"] == churn.REPORT_MIN_OBJECTS
    assert [s["objects"] for s in data["sites"]] == [40000, 5000]
    first, second = data["sites"]
    assert first["objects_per_s"] == 0 and first["by_gc"] == []
    assert first["traceback"] == [
        {
            "filename": "<img src=x onerror=alert(1)>.py",
            "lineno": 3,
            "function": "</script><script>alert(1)",
        }
    ]
    assert second["children"] == 2
    assert data["gc"] == {
        "collections": [52, 5, 1],
        "seconds": pytest.approx(0.0087),
        "share_of_run": 0.0027,
    }
    report["cycle_churn"] = [below]
    assert _page_data(render_html(report, None, None))["churn"] is None
    report["cycle_churn"], report["gc"] = [], None
    assert _page_data(render_html(report, None, None))["churn"] is None
