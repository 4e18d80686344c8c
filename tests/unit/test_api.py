"""memhound's public API: tracing control, counters, object tracebacks,
snapshots (statistics, comparison, filters, lazy traces, files) and
sampling.  tests/conftest.py stops tracing around every test."""

import gc
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import memhound
from memhound import DomainFilter, Filter, Frame, Snapshot, Traceback

SIZE = 500
BLOCK = sys.getsizeof(bytes(SIZE))  # one PyObject_Malloc block per object
N = 1000


def line_of(marker):
    """The line number in this file of the line holding marker."""
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if line.rstrip().endswith(marker):
            return number
    raise AssertionError(f"no line ends with {marker!r}")


def alloc_bytes(n=N, size=SIZE):
    data = [None] * n
    for i in range(n):
        data[i] = bytes(size)  # ALLOC-BYTES
    return data


def alloc_one():
    return bytearray(12345)  # ALLOC-ONE


ALLOC_LINE = line_of("# ALLOC-BYTES")
ONE_LINE = line_of("# ALLOC-ONE")


def stat_for_line(stats, lineno, filename=__file__):
    found = [
        s
        for s in stats
        if s.traceback[0].filename == filename and s.traceback[0].lineno == lineno
    ]
    assert len(found) == 1, f"{len(found)} of {len(stats)} statistics for line {lineno}"
    return found[0]


# ---- tracing control ---------------------------------------------------


def test_start_stop_is_tracing():
    assert not memhound.is_tracing()
    memhound.start()
    assert memhound.is_tracing()
    assert memhound.get_traceback_limit() == memhound.DEFAULT_DEPTH
    memhound.stop()
    assert not memhound.is_tracing()
    memhound.stop()  # stopping twice is harmless
    assert not memhound.is_tracing()
    assert memhound.get_traced_memory() == (0, 0)


def test_start_again_keeps_traces_and_changes_depth():
    memhound.start(depth=5)
    data = alloc_one()
    memhound.start(depth=7)
    assert memhound.is_tracing()
    assert memhound.get_traceback_limit() == 7
    tb = memhound.get_object_traceback(data)
    assert tb is not None and tb[0].lineno == ONE_LINE


def test_traced_memory_grows_and_shrinks():
    memhound.start()
    before, _ = memhound.get_traced_memory()
    data = alloc_bytes()
    grown, peak = memhound.get_traced_memory()
    assert grown - before >= N * BLOCK
    assert peak >= grown
    del data
    shrunk, peak2 = memhound.get_traced_memory()
    assert grown - shrunk >= N * BLOCK
    assert peak2 >= grown


def test_reset_peak():
    memhound.start()
    data = alloc_bytes()
    del data
    current, peak = memhound.get_traced_memory()
    assert peak - current >= N * BLOCK
    memhound.reset_peak()
    current2, peak2 = memhound.get_traced_memory()
    assert peak2 < peak
    assert peak2 - current2 < N * BLOCK // 10
    big = bytes(1 << 20)
    current3, peak3 = memhound.get_traced_memory()
    assert peak3 - peak2 >= 1 << 20
    del big


def test_clear_forgets_traces_keeps_tracing():
    memhound.start()
    data = alloc_one()
    assert memhound.get_object_traceback(data) is not None
    memhound.clear()
    assert memhound.is_tracing()
    current, peak = memhound.get_traced_memory()
    assert current < 4096 and peak < 4096
    assert memhound.get_object_traceback(data) is None
    again = alloc_one()
    assert memhound.get_object_traceback(again)[0].lineno == ONE_LINE


def test_get_object_traceback():
    before = alloc_one()
    assert memhound.get_object_traceback(before) is None  # not tracing
    memhound.start()
    assert memhound.get_object_traceback(before) is None  # made before start
    obj = alloc_one()
    tb = memhound.get_object_traceback(obj)
    assert isinstance(tb, Traceback)
    # Innermost first: the allocating line, then its caller (this test).
    assert tb[0] == Frame(__file__, ONE_LINE)
    assert tb[0].function == "alloc_one"
    assert tb[1].filename == __file__
    assert tb[1].function == "test_get_object_traceback"
    assert tb.total_nframe is not None and tb.total_nframe >= len(tb) >= 2


def test_memory_overhead_and_stats():
    assert memhound.get_stats()["tracing"] is False
    memhound.start(depth=10)
    data = alloc_bytes()
    assert memhound.get_memory_overhead() > 0
    stats = memhound.get_stats()
    assert stats["tracing"] is True
    assert stats["depth"] == 10
    assert stats["sample_mean"] == 0
    assert stats["traced_blocks"] >= N
    assert stats["traced_bytes"] >= N * BLOCK
    assert stats["peak_bytes"] >= stats["traced_bytes"]
    assert stats["overhead_bytes"] > 0
    assert stats["dropped_blocks"] == 0
    del data


def test_depth_limits_tracebacks():
    def nest(k):
        return nest(k - 1) if k else alloc_one()

    memhound.start(depth=1)
    tb = memhound.get_object_traceback(nest(5))
    assert len(tb) == 1 and tb[0].lineno == ONE_LINE
    memhound.stop()
    memhound.start(depth=4)
    tb = memhound.get_object_traceback(nest(5))
    assert len(tb) == 4
    # Qualified names on 3.11+ (co_qualname), plain ones on 3.10.
    names = [f.function.rpartition(".")[2] for f in tb]
    assert names == ["alloc_one", "nest", "nest", "nest"]
    memhound.stop()
    memhound.start(depth=memhound.MAX_DEPTH)
    assert memhound.get_traceback_limit() == memhound.MAX_DEPTH


@pytest.mark.parametrize("depth", [0, -1, memhound.MAX_DEPTH + 1, 2**40])
def test_bad_depth_value(depth):
    with pytest.raises(ValueError, match="depth must be in the range"):
        memhound.start(depth=depth)
    assert not memhound.is_tracing()


@pytest.mark.parametrize("depth", [1.5, "3", None, True])
def test_bad_depth_type(depth):
    with pytest.raises(TypeError, match="depth must be an int"):
        memhound.start(depth=depth)
    assert not memhound.is_tracing()


@pytest.mark.parametrize("sample", [-1, 2**63, 2**70])
def test_bad_sample_value(sample):
    with pytest.raises(ValueError, match="sample must be"):
        memhound.start(sample=sample)
    assert not memhound.is_tracing()


@pytest.mark.parametrize("sample", [1.0, "65536", False, [1]])
def test_bad_sample_type(sample):
    with pytest.raises(TypeError, match="sample must be an int"):
        memhound.start(sample=sample)
    assert not memhound.is_tracing()


@pytest.mark.parametrize("sample", [None, 0])
def test_sample_none_or_zero_is_exact(sample):
    memhound.start(sample=sample)
    assert memhound.get_stats()["sample_mean"] == 0
    assert memhound.take_snapshot().sample_mean == 0


def test_take_snapshot_requires_tracing():
    with pytest.raises(RuntimeError, match="must be tracing"):
        memhound.take_snapshot()


# ---- snapshots ---------------------------------------------------------


@pytest.fixture
def snapshot_with_data():
    memhound.start(depth=8)
    data = alloc_bytes()  # FIXTURE-ALLOC
    snapshot = memhound.take_snapshot()
    yield snapshot, data


def test_snapshot_attributes(snapshot_with_data):
    snapshot, data = snapshot_with_data
    assert isinstance(snapshot, Snapshot)
    assert snapshot.traceback_limit == 8
    assert snapshot.sample_mean == 0
    assert abs(snapshot.timestamp - __import__("time").time()) < 60
    assert len(snapshot) >= N
    assert "blocks=" in repr(snapshot)


def test_statistics_lineno(snapshot_with_data):
    snapshot, _ = snapshot_with_data
    stats = snapshot.statistics("lineno")
    stat = stat_for_line(stats, ALLOC_LINE)
    assert (stat.size, stat.count) == (N * BLOCK, N)
    assert len(stat.traceback) == 1
    assert stat.traceback[0].function == "alloc_bytes"
    assert stats == snapshot.statistics()  # "lineno" is the default
    sizes = [s.size for s in stats]
    assert sizes == sorted(sizes, reverse=True)
    assert f"size={N * BLOCK / 1024:.0f} KiB, count={N}" in str(stat)


def test_statistics_filename(snapshot_with_data):
    snapshot, _ = snapshot_with_data
    stats = snapshot.statistics("filename")
    mine = [s for s in stats if s.traceback[0].filename == __file__]
    assert len(mine) == 1
    assert mine[0].traceback[0].lineno == 0
    assert mine[0].count >= N and mine[0].size >= N * BLOCK


def test_statistics_traceback(snapshot_with_data):
    snapshot, _ = snapshot_with_data
    stats = snapshot.statistics("traceback")
    stat = stat_for_line(stats, ALLOC_LINE)
    assert (stat.size, stat.count) == (N * BLOCK, N)
    functions = [frame.function for frame in stat.traceback]
    assert functions[:2] == ["alloc_bytes", "snapshot_with_data"]
    assert len(stat.traceback) <= 8


def test_statistics_cumulative(snapshot_with_data):
    snapshot, _ = snapshot_with_data
    stats = snapshot.statistics("lineno", cumulative=True)
    stat = stat_for_line(stats, ALLOC_LINE)
    assert (stat.size, stat.count) == (N * BLOCK, N)
    # The fixture's call line holds everything alloc_bytes allocated.
    caller = stat_for_line(stats, line_of("# FIXTURE-ALLOC"))
    assert caller.size >= N * BLOCK and caller.count >= N


def test_statistics_bad_arguments(snapshot_with_data):
    snapshot, _ = snapshot_with_data
    with pytest.raises(ValueError, match="unknown key_type"):
        snapshot.statistics("line")
    with pytest.raises(ValueError, match="unknown key_type"):
        snapshot.statistics(None)
    with pytest.raises(ValueError, match="cumulative mode"):
        snapshot.statistics("traceback", cumulative=True)


def test_compare_to():
    memhound.start()
    keep = alloc_bytes(100)
    old = memhound.take_snapshot()
    more = alloc_bytes(N)
    new = memhound.take_snapshot()
    diff = stat_for_line(new.compare_to(old, "lineno"), ALLOC_LINE)
    assert diff.size == (100 + N) * BLOCK
    assert diff.size_diff == N * BLOCK
    assert (diff.count, diff.count_diff) == (100 + N, N)
    assert f"({N * BLOCK / 1024:+.0f} KiB)" in str(diff)
    # The other way round the blocks went away.
    back = stat_for_line(old.compare_to(new, "lineno"), ALLOC_LINE)
    assert back.size_diff == -N * BLOCK and back.count_diff == -N
    diffs = new.compare_to(old)
    changes = [abs(d.size_diff) for d in diffs]
    assert changes == sorted(changes, reverse=True)
    with pytest.raises(TypeError, match="old must be a Snapshot"):
        new.compare_to(object())
    with pytest.raises(ValueError, match="unknown key_type"):
        new.compare_to(old, "nope")
    del keep, more


def test_filter_traces(snapshot_with_data):
    snapshot, _ = snapshot_with_data
    mine = snapshot.filter_traces([Filter(True, __file__)])
    assert isinstance(mine, Snapshot)
    assert len(mine) >= N
    assert {t.traceback[0].filename for t in mine.traces} == {__file__}
    others = snapshot.filter_traces([Filter(False, __file__)])
    assert len(mine) + len(others) == len(snapshot)
    assert __file__ not in {
        t.traceback[0].filename for t in others.traces if len(t.traceback)
    }
    line = snapshot.filter_traces([Filter(True, __file__, lineno=ALLOC_LINE)])
    assert len(line) == N
    assert {(t.size, t.domain) for t in line.traces} == {(BLOCK, memhound.DOMAIN_OBJ)}
    # all_frames: the fixture's frame is an outer frame of every block.
    outer = snapshot.filter_traces([Filter(True, __file__, all_frames=True)])
    assert len(outer) >= len(mine)
    # Filters in a domain, and domain filters.
    in_obj = snapshot.filter_traces(
        [Filter(True, __file__, domain=memhound.DOMAIN_OBJ)]
    )
    assert len(in_obj) >= N
    assert {t.domain for t in in_obj.traces} == {memhound.DOMAIN_OBJ}
    raw = snapshot.filter_traces([DomainFilter(True, memhound.DOMAIN_RAW)])
    assert {t.domain for t in raw.traces} <= {memhound.DOMAIN_RAW}
    no_raw = snapshot.filter_traces([DomainFilter(False, memhound.DOMAIN_RAW)])
    assert len(raw) + len(no_raw) == len(snapshot)
    assert len(snapshot.filter_traces([DomainFilter(True, 99)])) == 0
    # No filter: a copy.
    copy = snapshot.filter_traces([])
    assert copy is not snapshot and len(copy) == len(snapshot)
    assert copy.statistics("lineno") == snapshot.statistics("lineno")


def test_filter_traces_bad_arguments(snapshot_with_data):
    snapshot, _ = snapshot_with_data
    with pytest.raises(TypeError, match="filters must be a list of filters"):
        snapshot.filter_traces(Filter(True, "x"))
    with pytest.raises(TypeError, match="Filter or DomainFilter"):
        snapshot.filter_traces(["*.py"])
    with pytest.raises(TypeError, match="lineno must be an int"):
        snapshot.filter_traces([Filter(True, "x", lineno="3")])


def test_traces_is_a_lazy_sequence(snapshot_with_data):
    snapshot, _ = snapshot_with_data
    traces = snapshot.traces
    assert len(traces) == len(snapshot)
    first, last = traces[0], traces[-1]
    assert first == traces[0] and last == traces[len(traces) - 1]
    assert traces[:3] == (traces[0], traces[1], traces[2])
    with pytest.raises(IndexError):
        traces[len(traces)]
    ours = [t for t in traces if t.traceback and t.traceback[0].lineno == ALLOC_LINE]
    assert len(ours) == N
    trace = ours[0]
    assert trace.size == BLOCK and trace.domain == memhound.DOMAIN_OBJ
    assert trace.generation == 0
    assert str(trace) == f"{__file__}:{ALLOC_LINE}: {BLOCK} B"


def test_dump_load_round_trip(snapshot_with_data, tmp_path):
    snapshot, _ = snapshot_with_data
    path = tmp_path / "snap.mhs"
    snapshot.dump(path)
    loaded = Snapshot.load(path)
    assert len(loaded) == len(snapshot)
    assert loaded.traceback_limit == snapshot.traceback_limit
    assert loaded.sample_mean == snapshot.sample_mean
    assert loaded.timestamp == snapshot.timestamp
    for key_type in ("lineno", "filename", "traceback"):
        assert loaded.statistics(key_type) == snapshot.statistics(key_type)
    assert loaded.statistics("lineno", True) == snapshot.statistics("lineno", True)
    # Function names survive too (they are not part of Frame equality).
    stat = stat_for_line(loaded.statistics("traceback"), ALLOC_LINE)
    assert stat.traceback[0].function == "alloc_bytes"
    # str paths work as well as path-like objects.
    loaded2 = memhound.Snapshot.load(str(path))
    assert sorted(t.size for t in loaded2.traces) == sorted(
        t.size for t in snapshot.traces
    )


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        Snapshot.load(tmp_path / "missing.mhs")


def test_load_bad_files(snapshot_with_data, tmp_path):
    snapshot, _ = snapshot_with_data
    good = tmp_path / "good.mhs"
    snapshot.dump(good)
    data = good.read_bytes()

    bad = tmp_path / "bad.mhs"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(bad))) as info:
        Snapshot.load(bad)
    assert "truncated" in str(info.value) or "size" in str(info.value)

    bad.write_bytes(b"this is not a memhound snapshot file at all" * 4)
    with pytest.raises(ValueError, match="magic"):
        Snapshot.load(bad)

    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0x55
    bad.write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="checksum"):
        Snapshot.load(bad)

    bad.write_bytes(b"")
    with pytest.raises(ValueError):
        Snapshot.load(bad)


def test_dump_to_unwritable_path(snapshot_with_data, tmp_path):
    snapshot, _ = snapshot_with_data
    with pytest.raises(OSError):
        snapshot.dump(tmp_path / "no" / "such" / "dir" / "snap.mhs")


def test_snapshot_cannot_be_made_from_nothing():
    with pytest.raises(TypeError):
        Snapshot(None)


# ---- sampling ----------------------------------------------------------


def test_sampling_estimates_sizes():
    n, size = 20000, 2000
    block = sys.getsizeof(bytes(size))
    memhound.start(sample=65536)
    data = alloc_bytes(n, size)
    snapshot = memhound.take_snapshot()
    assert snapshot.sample_mean == 65536
    assert memhound.get_stats()["sample_mean"] == 65536
    # About n * block / 65536 = 620 samples: a 20% tolerance is > 5 sigma.
    assert len(snapshot) < n // 5
    stat = stat_for_line(snapshot.statistics("lineno"), ALLOC_LINE)
    true_size = n * block
    assert abs(stat.size - true_size) < 0.2 * true_size, (stat.size, true_size)
    assert abs(stat.count - n) < 0.2 * n, (stat.count, n)
    del data


def test_sampling_traced_memory_is_an_estimate():
    n, size = 20000, 2000
    block = sys.getsizeof(bytes(size))
    memhound.start(sample=65536)
    before, _ = memhound.get_traced_memory()
    data = alloc_bytes(n, size)
    grown, peak = memhound.get_traced_memory()
    true_size = n * block
    # Estimated bytes, not the sampled blocks' own few hundred KiB.
    assert abs((grown - before) - true_size) < 0.2 * true_size, (grown, before)
    assert peak >= grown
    del data
    after, _ = memhound.get_traced_memory()
    # Freed blocks take off exactly what they were charged.
    assert after < before + 0.05 * true_size, (after, before)


# ---- frames and tracebacks ---------------------------------------------


def test_frame_equality_ignores_function():
    a = Frame("a.py", 3, "f")
    assert a == Frame("a.py", 3, "g")
    assert hash(a) == hash(Frame("a.py", 3)) == hash(("a.py", 3))
    assert a != Frame("a.py", 4, "f")
    assert Frame("a.py", 3) < Frame("a.py", 4) < Frame("b.py", 1)
    assert str(a) == "a.py:3"
    assert a.function == "f"
    assert a != ("a.py", 3)


def test_traceback_order_and_format(monkeypatch):
    import linecache

    monkeypatch.setattr(linecache, "getline", lambda f, n: f"<{f} {n}>")
    tb = Traceback([("inner.py", 1, "inner"), ("outer.py", 2, "outer")], 7)
    assert tb[0].filename == "inner.py" and tb[-1].filename == "outer.py"
    assert tb.total_nframe == 7
    assert str(tb) == "inner.py:1"
    assert Frame("outer.py", 2) in tb
    assert tb == Traceback([Frame("inner.py", 1), Frame("outer.py", 2)])
    # Oldest first by default, like Python's tracebacks.
    assert tb.format() == [
        '  File "outer.py", line 2, in outer',
        "    <outer.py 2>",
        '  File "inner.py", line 1, in inner',
        "    <inner.py 1>",
    ]
    assert tb.format(most_recent_first=True)[0] == '  File "inner.py", line 1, in inner'
    assert tb.format(limit=1) == [
        '  File "inner.py", line 1, in inner',
        "    <inner.py 1>",
    ]
    assert tb.format(limit=-1)[0] == '  File "outer.py", line 2, in outer'
    assert tb.format(limit=0) == []
    assert str(Traceback()) == "<unknown>"
    with pytest.raises(TypeError):
        Traceback(["a.py"])


# ---- process-level behaviour -------------------------------------------


def run_python(code):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_atexit_stops_tracing():
    proc = run_python(
        """
        import atexit

        def report():  # registered first, so it runs after memhound's
            import memhound
            print("tracing at exit:", memhound.is_tracing())

        atexit.register(report)
        import memhound
        memhound.start()
        keep = [bytes(100) for _ in range(1000)]
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tracing at exit: False"


def test_import_is_light():
    proc = run_python(
        """
        import sys
        before = set(sys.modules)
        import memhound
        print(" ".join(sorted(set(sys.modules) - before)))
        """
    )
    assert proc.returncode == 0, proc.stderr
    new = set(proc.stdout.split())
    heavy = {"re", "typing", "pickle", "linecache", "fnmatch", "tokenize", "inspect"}
    assert not new & heavy, new & heavy
    assert "memhound.tracemalloc" not in new


def test_version_matches_pyproject():
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not running from a source tree")
    match = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M)
    assert match and memhound.__version__ == match[1]


def test_gc_collect_does_not_disturb_counters():
    memhound.start()
    data = alloc_bytes()
    gc.collect()
    stat = stat_for_line(memhound.take_snapshot().statistics("lineno"), ALLOC_LINE)
    assert (stat.size, stat.count) == (N * BLOCK, N)
    del data


def test_filter_by_size():
    memhound.start(depth=4)
    small = [bytes(100) for _ in range(500)]
    large = [bytes(5000) for _ in range(50)]
    snapshot = memhound.take_snapshot()
    sizes = [trace.size for trace in snapshot.traces]
    big = snapshot.filter_traces(min_size=4000)
    assert len(big) == sum(1 for size in sizes if size >= 4000) >= 50
    assert all(trace.size >= 4000 for trace in big.traces)
    middle = snapshot.filter_traces(min_size=100, max_size=200)
    assert all(100 <= trace.size <= 200 for trace in middle.traces)
    assert len(middle) >= 500
    with pytest.raises(ValueError):
        snapshot.filter_traces(min_size=-1)
    with pytest.raises(TypeError):
        snapshot.filter_traces(max_size="big")
    del small, large
