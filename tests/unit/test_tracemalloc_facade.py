"""memhound.tracemalloc beyond what the stdlib's own test covers: argument
checks against the real module, domains, snapshots built from raw tuples
(_core.Snapshot._from_traces and its refusals), files, shared classes."""

import sys
import tracemalloc as stdlib_tracemalloc
from pathlib import Path

import pytest

import memhound
import memhound.tracemalloc as tm
from memhound import _core


def line_of(marker):
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if line.rstrip().endswith(marker):
            return number
    raise AssertionError(marker)


def raw_traces():
    return [
        (0, 10, (("a.py", 2), ("b.py", 4)), 3),
        (0, 10, (("a.py", 2), ("b.py", 4)), 3),
        (1, 2, (("a.py", 5), ("b.py", 4)), 3),
        (7, 66, (("b.py", 1),), 1),
        (0, 7, (("<unknown>", 0),), 1),
    ]


def error_of(call, *args):
    try:
        call(*args)
    except Exception as error:  # noqa: BLE001 -- compared, not handled
        return type(error), str(error)
    return None


# ---- tracing functions -------------------------------------------------


@pytest.mark.parametrize(
    "nframe", [0, -1, 65536, 2**30, 2**31, -(2**40), 1.5, "3", None]
)
def test_start_rejects_like_the_stdlib(nframe):
    expected = error_of(stdlib_tracemalloc.start, nframe)
    assert expected is not None
    assert not stdlib_tracemalloc.is_tracing()
    assert error_of(tm.start, nframe) == expected
    assert not tm.is_tracing()


def test_start_is_positional_only_like_the_stdlib():
    with pytest.raises(TypeError):
        tm.start(nframe=3)


def test_start_configures_memhound():
    tm.start()
    assert memhound.is_tracing()
    assert tm.get_traceback_limit() == 1
    assert memhound.get_stats()["sample_mean"] == 0
    tm.start(25)
    assert tm.get_traceback_limit() == memhound.get_traceback_limit() == 25
    tm.stop()
    assert not memhound.is_tracing()
    assert tm.get_traceback_limit() == 25  # the last setting, as the stdlib


def test_nframe_above_max_depth_is_clamped():
    tm.start(_core.MAX_DEPTH + 1000)
    assert tm.get_traceback_limit() == _core.MAX_DEPTH
    assert tm.take_snapshot().traceback_limit == _core.MAX_DEPTH


def test_counters_and_object_traceback():
    assert tm.get_traced_memory() == (0, 0)
    assert tm._get_traces() == []
    assert tm.get_object_traceback(object()) is None
    tm.start(3)
    data = bytes(100000)  # FACADE-ALLOC
    current, peak = tm.get_traced_memory()
    assert current >= 100000 and peak >= current
    assert tm.get_tracemalloc_memory() > 0
    tb = tm.get_object_traceback(data)
    assert isinstance(tb, tm.Traceback)
    # tracemalloc order: the most recent frame is the last one.
    assert tb[-1].filename == __file__
    assert tb[-1].lineno == line_of("# FACADE-ALLOC")
    assert tb.total_nframe is None  # as the stdlib: frames only
    raw = tm._get_object_traceback(data)
    assert raw == tuple(reversed(tb._frames))
    tm.clear_traces()
    assert tm.get_object_traceback(data) is None


def test_take_snapshot_requires_tracing():
    with pytest.raises(RuntimeError) as info:
        tm.take_snapshot()
    assert str(info.value) == (
        "the tracemalloc module must be tracing memory allocations to take a snapshot"
    )


def test_trace_domains_are_zero_for_python():
    tm.start(1)
    keep = [bytearray(1000) for _ in range(100)]
    snapshot = tm.take_snapshot()
    assert len(snapshot.traces) > 100
    assert {trace.domain for trace in snapshot.traces} == {0}
    # memhound itself sees several allocators.
    core_domains = {snapshot._core.trace(i)[0] for i in range(len(snapshot._core))}
    assert core_domains >= {_core.DOMAIN_OBJ}
    assert len(snapshot.filter_traces([tm.DomainFilter(True, 0)]).traces) == len(
        snapshot.traces
    )
    assert len(snapshot.filter_traces([tm.DomainFilter(False, 0)]).traces) == 0
    assert len(snapshot.filter_traces([tm.DomainFilter(True, 1)]).traces) == 0
    assert len(snapshot.filter_traces([tm.Filter(True, "*", domain=2)]).traces) == 0
    kept = snapshot.filter_traces([tm.Filter(False, __file__, domain=5)])
    assert len(kept.traces) == len(snapshot.traces)
    del keep


def test_total_nframe_is_the_whole_stack():
    def deep(k):
        return deep(k - 1) if k else bytes(5000)

    tm.start(2)
    obj = deep(30)
    snapshot = tm.take_snapshot()
    traces = [t for t in snapshot.traces if t.size == sys.getsizeof(obj)]
    assert traces
    tb = traces[0].traceback
    assert len(tb) == 2
    assert tb.total_nframe > 30


def test_dump_load(tmp_path):
    tm.start(4)
    keep = [bytes(300) for _ in range(200)]
    snapshot = tm.take_snapshot()
    path = tmp_path / "tm.mhs"
    snapshot.dump(path)
    loaded = tm.Snapshot.load(path)
    assert loaded.traceback_limit == 4
    assert sorted(loaded.traces._traces) == sorted(snapshot.traces._traces)
    for key_type in ("lineno", "filename", "traceback"):
        assert loaded.statistics(key_type) == snapshot.statistics(key_type)
    del keep


# ---- snapshots from raw tuples -----------------------------------------


def test_raw_snapshot_keeps_domains_and_tuples():
    snapshot = tm.Snapshot(raw_traces(), 2)
    assert snapshot.traceback_limit == 2
    assert snapshot.traces._traces == raw_traces()
    assert [t.domain for t in snapshot.traces] == [0, 0, 1, 7, 0]
    only_7 = snapshot.filter_traces([tm.DomainFilter(True, 7)])
    assert only_7.traces._traces == [raw_traces()[3]]
    not_1 = snapshot.filter_traces([tm.Filter(False, "a.py", domain=1)])
    assert not_1.traces._traces == [raw_traces()[i] for i in (0, 1, 3, 4)]


def test_raw_snapshot_filter_lineno_zero_means_line_zero():
    snapshot = tm.Snapshot([(0, 1, (("a.py", 0),), 1), (0, 2, (("a.py", 5),), 1)], 1)
    line0 = snapshot.filter_traces([tm.Filter(True, "a.py", lineno=0)])
    assert line0.traces._traces == [(0, 1, (("a.py", 0),), 1)]
    anyline = snapshot.filter_traces([tm.Filter(True, "a.py")])
    assert len(anyline.traces) == 2


def test_raw_snapshot_with_custom_domains_cannot_be_dumped(tmp_path):
    snapshot = tm.Snapshot(raw_traces(), 2)
    with pytest.raises(ValueError, match="domain 0"):
        snapshot.dump(tmp_path / "x.mhs")
    python_only = tm.Snapshot([t for t in raw_traces() if t[0] == 0], 2)
    python_only.dump(tmp_path / "y.mhs")
    loaded = tm.Snapshot.load(tmp_path / "y.mhs")
    assert sorted(loaded.traces._traces) == sorted(python_only.traces._traces)


def test_raw_snapshot_accepts_three_tuples_and_empty_tracebacks():
    snapshot = tm.Snapshot([(0, 5, (("a.py", 1),)), (0, 6, ())], 1)
    assert snapshot.traces._traces == [
        (0, 5, (("a.py", 1),), 1),
        (0, 6, (("<unknown>", 0),), 1),
    ]


def test_raw_snapshot_interns_traceback_tuples():
    snapshot = tm.Snapshot(raw_traces(), 2)
    traces = snapshot.traces._traces
    assert traces[0][2] is traces[1][2]


def test_at_most_four_domains():
    traces = [(d, 1, (("a.py", 1),), 1) for d in range(5)]
    with pytest.raises(ValueError, match="at most 4 distinct domains"):
        tm.Snapshot(traces, 1)


def test_compare_to_needs_a_facade_snapshot():
    snapshot = tm.Snapshot(raw_traces(), 2)
    with pytest.raises(TypeError, match="old_snapshot must be a Snapshot"):
        snapshot.compare_to(raw_traces(), "lineno")


BAD_TRACES = [
    ([1], TypeError, "a trace must be"),
    ([(0, 1)], TypeError, "a trace must be"),
    ([(0, 1, (), 1, 5)], TypeError, "a trace must be"),
    ([("0", 1, ())], TypeError, "a domain must be an int"),
    ([(0, -1, ())], ValueError, "size must be in"),
    ([(0, 2**64, ())], ValueError, "size must be in"),
    ([(0, 1.0, ())], TypeError, None),
    ([(0, 1, 5)], TypeError, "sequence of frames"),
    ([(0, 1, ("a.py",))], TypeError, "a frame must be"),
    ([(0, 1, (("a.py",),))], TypeError, "a frame must be"),
    ([(0, 1, ((b"a.py", 1),))], TypeError, r"\(str, int\[, str\]\)"),
    ([(0, 1, (("a.py", "1"),))], TypeError, r"\(str, int\[, str\]\)"),
    ([(0, 1, (("a.py", 1, 3),))], TypeError, r"\(str, int\[, str\]\)"),
    ([(0, 1, (("a.py", 2**31),))], ValueError, "line number out of range"),
    ([(0, 1, (("a.py", 1),) * 65536)], ValueError, "at most 65535 frames"),
    ([(0, 1, (("a.py", 1),), -1)], ValueError, "total_nframe"),
    ([(0, 1, (("a.py", 1),), "x")], TypeError, None),
    (5, TypeError, "not iterable"),
]


@pytest.mark.parametrize(("traces", "error", "message"), BAD_TRACES)
def test_from_traces_refuses_malformed_input(traces, error, message):
    with pytest.raises(error, match=message):
        _core.Snapshot._from_traces(traces, 1, [])
    with pytest.raises(error, match=message):
        tm.Snapshot(traces, 1)


def test_from_traces_arguments():
    with pytest.raises(ValueError, match="unknown domain"):
        _core.Snapshot._from_traces([(4, 1, ())], 1)
    with pytest.raises(ValueError, match="traceback_limit"):
        _core.Snapshot._from_traces([], -1)
    with pytest.raises(ValueError, match="traceback_limit"):
        _core.Snapshot._from_traces([], 2**32)
    with pytest.raises(TypeError, match="domains must be a list"):
        _core.Snapshot._from_traces([], 1, (0,))
    with pytest.raises(TypeError):
        _core.Snapshot._from_traces([], "1")

    def failing():
        yield (0, 1, ())
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        _core.Snapshot._from_traces(failing(), 1)


def test_from_traces_builds_a_usable_core_snapshot():
    labels = []
    core = _core.Snapshot._from_traces(
        [(5, 10, (("a.py", 2, "f"), ("b.py", 4, "g")), 9), (5, 3, ())], 7, labels
    )
    assert labels == [5]
    assert len(core) == 2
    assert core.traceback_limit == 7 and core.sample_mean == 0
    domain, size, tb, generation = core.trace(0)
    assert (domain, size, generation) == (0, 10, 0)
    assert core.traceback(tb) == ((("a.py", 2, "f"), ("b.py", 4, "g")), 9)
    assert core.trace(1)[2] == 0  # the empty traceback
    stats = core.statistics("lineno")
    assert [(s, c) for s, c, _ in stats] == [(10, 1), (3, 1)]
    # Surrogates in file names survive (undecodable names on POSIX).
    odd = "\udcff.py"
    core = _core.Snapshot._from_traces([(0, 1, ((odd, 1),))], 1)
    assert core.traceback(core.trace(0)[2])[0][0][0] == odd


# ---- shared pieces -----------------------------------------------------


def test_filters_and_statistics_are_shared_with_memhound():
    assert tm.Filter is memhound.Filter
    assert tm.DomainFilter is memhound.DomainFilter
    assert tm.Statistic is memhound.Statistic
    assert tm.StatisticDiff is memhound.StatisticDiff
    assert tm.linecache is sys.modules["linecache"]


def test_custom_filter_subclasses_are_refused():
    class MyFilter(tm.BaseFilter):
        def _match(self, trace):
            return True

    snapshot = tm.Snapshot(raw_traces(), 2)
    with pytest.raises(TypeError, match="supports Filter and DomainFilter"):
        snapshot.filter_traces([MyFilter(True)])


@pytest.mark.parametrize(
    ("size", "sign"),
    [
        (0, False),
        (5, True),
        (-5, True),
        (1023, False),
        (10 * 1024, False),
        (99.9 * 1024, True),
        (123456789, False),
        (-(2**45), True),
        (2**60, False),
    ],
)
def test_format_size_matches_the_stdlib(size, sign):
    assert tm._format_size(size, sign) == stdlib_tracemalloc._format_size(size, sign)


def test_normalize_filename_matches_the_stdlib():
    for name in ("a.py", "a.pyc", "a.pyo", "dir/x.PYC", ""):
        assert tm._normalize_filename(name) == stdlib_tracemalloc._normalize_filename(
            name
        )


def test_reprs_match_the_stdlib():
    frames = (("a.py", 2), ("b.py", 4))
    assert repr(tm.Traceback(frames, 3)) == repr(
        stdlib_tracemalloc.Traceback(frames, 3)
    )
    assert repr(tm.Trace((0, 10, frames, 3))) == repr(
        stdlib_tracemalloc.Trace((0, 10, frames, 3))
    )
    ours = tm.Snapshot([(0, 10, frames, 3)], 2).statistics("traceback")
    theirs = stdlib_tracemalloc.Snapshot([(0, 10, frames, 3)], 2).statistics(
        "traceback"
    )
    assert [repr(s) for s in ours] == [repr(s) for s in theirs]
    assert [str(s) for s in ours] == [str(s) for s in theirs]


def test_from_traces_leaks_nothing():
    # Bookkeeping memory (rawmem) and references come back after many
    # snapshots built, used and dropped, on success and on every error path.
    name = "".join(["leak", "check.py"])  # a fresh str: its refcount is ours
    good = [(0, 10, ((name, 1), ("b.py", 2)), 3), (1, 5, ((name, 2),), 1)]
    bad = [good[0], (0, -1, ((name, 1),), 1)]

    def churn():
        for _ in range(200):
            snapshot = tm.Snapshot(good, 2)
            snapshot.statistics("traceback")
            snapshot.filter_traces([tm.Filter(True, name)]).statistics("lineno")
            list(snapshot.traces._traces)
            with pytest.raises(ValueError):
                tm.Snapshot(bad, 2)
            with pytest.raises(ValueError):
                tm.Snapshot(good * 3 + [(d, 1, ()) for d in range(2, 6)], 2)

    churn()  # warm up caches (interned unknown frame, type slots)
    refs = sys.getrefcount(name)
    before = memhound.get_stats()["bookkeeping_bytes"]
    churn()
    assert memhound.get_stats()["bookkeeping_bytes"] == before
    assert sys.getrefcount(name) == refs
