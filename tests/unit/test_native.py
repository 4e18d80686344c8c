# ruff: noqa: F811  (pytest fixtures imported from tests/native/fixtures.py)
"""Native allocations (memhound.start(native=True)): what C extensions,
shared libraries and ctypes get from libc is traced in DOMAIN_NATIVE and
attributed to the Python line that called them (docs/native.md)."""

import ctypes
import gc
import shutil
from pathlib import Path

import pytest

import memhound
from memhound import DomainFilter, _core

from ..native.fixtures import leakyext, native_build, under_asan  # noqa: F401

N = 50
SIZE = 4000


def line_of(marker):
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if line.rstrip().endswith(marker):
            return number
    raise AssertionError(f"no line ends with {marker!r}")


def native_by_line(snapshot=None):
    """{lineno in this file: (bytes, blocks)} of native blocks, by the
    innermost frame."""
    snapshot = snapshot or memhound.take_snapshot()
    native = snapshot.filter_traces([DomainFilter(True, memhound.DOMAIN_NATIVE)])
    found = {}
    for stat in native.statistics("lineno"):
        frame = stat.traceback[0]
        if frame.filename == __file__:
            found[frame.lineno] = (stat.size, stat.count)
    return found


def native_total(snapshot):
    native = snapshot.filter_traces([DomainFilter(True, memhound.DOMAIN_NATIVE)])
    return sum(stat.size for stat in native.statistics("filename"))


@pytest.fixture
def libleaky(native_build):
    lib = ctypes.CDLL(str(native_build[0]))
    lib.leak.restype = ctypes.c_void_p
    lib.leak.argtypes = [ctypes.c_size_t]
    lib.fixed.argtypes = [ctypes.c_size_t]
    lib.leak_family.argtypes = [ctypes.c_void_p]
    lib.free_family.argtypes = [ctypes.c_void_p]
    return lib


def libc_functions():
    # A new CDLL each time: ctypes caches the functions it looked up.
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc.malloc, libc.free


def run_extension(module, fn_name, n=N):
    fn = getattr(module, fn_name)
    return [fn(SIZE) for _ in range(n)]  # EXT-CALL


EXT_LINE = line_of("# EXT-CALL")


def test_extension_leak_is_native_and_attributed(leakyext):
    memhound.start(native=True)
    kept = run_extension(leakyext, "leak")
    size, count = native_by_line().get(EXT_LINE, (0, 0))
    assert count == N and size == N * SIZE
    assert kept


def test_extension_fixed_leaves_nothing(leakyext):
    memhound.start(native=True)
    run_extension(leakyext, "fixed")
    assert EXT_LINE not in native_by_line()


def test_extension_leak_grows_and_fixed_does_not(leakyext):
    memhound.start(native=True)
    sizes = {}
    for name in ("leak", "fixed"):
        series = []
        for _ in range(3):
            run_extension(leakyext, name, 20)
            series.append(native_by_line().get(EXT_LINE, (0, 0))[0])
        sizes[name] = series
        memhound.clear()
    assert sizes["leak"] == [20 * SIZE, 40 * SIZE, 60 * SIZE]
    assert sizes["fixed"] == [0, 0, 0]


def test_extension_leak_without_the_gil_is_attributed(leakyext):
    memhound.start(native=True)
    run_extension(leakyext, "leak_nogil")
    size, count = native_by_line().get(EXT_LINE, (0, 0))
    assert count == N and size == N * SIZE


def call_library(lib, fixed, n=N):
    fn = lib.fixed if fixed else lib.leak
    return [fn(SIZE) for _ in range(n)]  # LIB-CALL


LIB_LINE = line_of("# LIB-CALL")


def test_ctypes_library_leak_loaded_after_start(native_build):
    memhound.start(native=True)
    lib = ctypes.CDLL(str(native_build[0]))
    lib.leak.restype = ctypes.c_void_p
    lib.leak.argtypes = [ctypes.c_size_t]
    assert _core.native_status()["rescans"] >= 1
    call_library(lib, fixed=False)
    size, count = native_by_line().get(LIB_LINE, (0, 0))
    assert count == N and size == N * SIZE


def test_ctypes_library_loaded_before_start(libleaky):
    memhound.start(native=True)
    call_library(libleaky, fixed=False)
    assert native_by_line().get(LIB_LINE, (0, 0)) == (N * SIZE, N)
    call_library(libleaky, fixed=True)
    assert native_by_line().get(LIB_LINE, (0, 0)) == (N * SIZE, N)


def test_ctypes_library_fixed_leaves_nothing(libleaky):
    memhound.start(native=True)
    call_library(libleaky, fixed=True)
    assert LIB_LINE not in native_by_line()


def libc_malloc_loop(malloc, n=N):
    return [malloc(SIZE) for _ in range(n)]  # LIBC-MALLOC


LIBC_LINE = line_of("# LIBC-MALLOC")


def test_ctypes_cdll_none_malloc_is_traced_and_free_untraces():
    memhound.start(native=True)
    malloc, free = libc_functions()
    pointers = libc_malloc_loop(malloc)
    assert native_by_line().get(LIBC_LINE, (0, 0)) == (N * SIZE, N)
    for pointer in pointers:
        free(pointer)
    assert LIBC_LINE not in native_by_line()


def test_allocator_family_is_traced(libleaky):
    memhound.start(native=True)
    out = (ctypes.c_void_p * 6)()
    before = native_total(memhound.take_snapshot())
    libleaky.leak_family(out)
    assert all(out), list(out)
    after = native_total(memhound.take_snapshot())
    # calloc 1000, realloc 2000, posix_memalign 3000, aligned_alloc 4096,
    # strdup 21, mmap 65536 (the realloc'd 10-byte block is gone).
    assert after - before == 1000 + 2000 + 3000 + 4096 + 21 + 65536
    libleaky.free_family(out)
    assert native_total(memhound.take_snapshot()) == before


def test_python_allocations_are_not_counted_twice():
    memhound.start(native=True)
    data = [bytearray(300_000) for _ in range(5)]  # raw domain via libpython
    text = ["x" * 5000 for _ in range(50)]
    snapshot = memhound.take_snapshot()
    native = snapshot.filter_traces([DomainFilter(True, memhound.DOMAIN_NATIVE)])
    sizes = [trace.size for trace in native.traces]
    assert 300_000 not in sizes and 300_001 not in sizes
    assert data and text


def test_native_blocks_carry_the_generation(leakyext):
    memhound.start(native=True)
    run_extension(leakyext, "leak", 5)
    _core.next_generation()
    _core.next_generation()
    run_extension(leakyext, "leak", 7)
    generations = {}
    snapshot = memhound.take_snapshot()
    for trace in snapshot.traces:
        if trace.domain == memhound.DOMAIN_NATIVE and trace.size == SIZE:
            generations[trace.generation] = generations.get(trace.generation, 0) + 1
    assert generations.get(0) == 5 and generations.get(2) == 7


def test_python_false_traces_native_only(leakyext):
    memhound.start(native=True, python=False)
    keep = [bytes(1000) for _ in range(100)]
    run_extension(leakyext, "leak")
    snapshot = memhound.take_snapshot()
    domains = {trace.domain for trace in snapshot.traces}
    assert domains == {memhound.DOMAIN_NATIVE}
    assert native_by_line().get(EXT_LINE, (0, 0)) == (N * SIZE, N)
    assert keep
    with pytest.raises(ValueError):
        memhound.start(python=False)


def test_stop_restores_every_entry_and_passes_through(libleaky, leakyext):
    memhound.start(native=True)
    status = _core.native_status()
    assert status["active"] and status["patched_slots"] > 0
    assert status["failed_slots"] == 0
    kept = run_extension(leakyext, "leak", 5)
    memhound.stop()
    assert _core.native_status() == {
        "active": False,
        "patched_slots": 0,
        "failed_slots": 0,
        "rescans": status["rescans"],
    }
    # Blocks traced before stop are freed after it; blocks allocated after
    # stop are freed while tracing again: neither is counted.
    malloc, free = libc_functions()
    untraced = libc_malloc_loop(malloc, 5)
    memhound.start(native=True)
    for pointer in untraced:
        free(pointer)
    assert LIBC_LINE not in native_by_line()
    assert kept


def test_start_without_native_turns_it_off(leakyext):
    memhound.start(native=True)
    memhound.start()
    assert not _core.native_status()["active"]
    run_extension(leakyext, "leak", 5)
    assert EXT_LINE not in native_by_line()


def test_sampling_applies_to_native_blocks(leakyext):
    memhound.start(native=True, sample=1 << 30)
    run_extension(leakyext, "leak", 5)
    # A 1 GiB mean: of 5 blocks of 4 KB at most one is sampled (the one
    # that may end a countdown this thread drew under an earlier mean);
    # statistics would count a sampled block as ~2**18 estimated blocks.
    sampled = [
        trace
        for trace in memhound.take_snapshot().traces
        if trace.domain == memhound.DOMAIN_NATIVE and trace.size == SIZE
    ]
    assert len(sampled) <= 1
    memhound.stop()
    gc.collect()


# ---- the leak analysis sees native leaks -------------------------------


def leak_check(call, rounds=30, **start):
    memhound.start(**(start or {"native": True}))
    kept = []
    with memhound.LeakCheck() as check:
        for _ in range(rounds):
            kept.append(call(SIZE))  # CHECKED-CALL
            check.checkpoint()
    return check.report(), kept


CHECKED_LINE = line_of("# CHECKED-CALL")


def native_leaks_at_line(report):
    return [
        leak
        for leak in report["leaks"]
        if leak["kind"] == "native"
        and leak["traceback"]
        and leak["traceback"][0]["lineno"] == CHECKED_LINE
        and leak["traceback"][0]["filename"] == __file__
    ]


def test_leakcheck_reports_extension_leak_as_native(leakyext):
    report, kept = leak_check(leakyext.leak)
    leaks = native_leaks_at_line(report)
    assert len(leaks) == 1, report["leaks"]
    assert leaks[0]["live_bytes"] >= 20 * SIZE
    assert kept


def test_leakcheck_reports_ctypes_leak_as_native(libleaky):
    report, kept = leak_check(libleaky.leak)
    assert len(native_leaks_at_line(report)) == 1, report["leaks"]
    assert kept


def test_leakcheck_finds_no_native_leak_when_fixed(leakyext, libleaky):
    for fixed in (leakyext.fixed, libleaky.fixed):
        report, _ = leak_check(fixed)
        assert [leak for leak in report["leaks"] if leak["kind"] == "native"] == []
        memhound.stop()


def test_leak_entries_carry_the_native_frames_of_their_blocks(libleaky, leakyext):
    from memhound.report import format_text

    for call, function in ((libleaky.leak, "leak"), (leakyext.leak, "ext_leak")):
        report, kept = leak_check(call, native_stack=True)
        leaks = native_leaks_at_line(report)
        assert len(leaks) == 1, report["leaks"]
        leak = leaks[0]
        frames = leak["native_frames"]
        assert frames and all(frame["native"] is True for frame in frames)
        # The stack most of the site's blocks share (the interpreter's own
        # frames below the call differ while it specializes the call site,
        # 3.12+: not every block has the same whole stack).
        blocks = leak["native_frames_blocks"]
        assert 0 < blocks <= leak["live_blocks"] and leak["live_blocks"] >= 20
        library = "libleaky.so" if function == "leak" else "leakyext"
        assert library in frames[0]["library"] and frames[0]["offset"] > 0
        if function == "leak" or shutil.which("addr2line"):
            # ext_leak is static: named by the debug information only.
            assert frames[0]["function"] == function, frames[0]
        if shutil.which("addr2line"):
            assert frames[0]["filename"].endswith(("leaky.c", "leakyext.c"))
            assert frames[0]["lineno"] > 0
        text = format_text(report, width=200)
        assert f"allocated by {frames[0]['function']} (" in text, text
        assert f"{blocks} of {leak['live_blocks']} blocks" in text
        # Python sites carry no native frames.
        assert all(
            "native_frames" not in site
            for site in report["largest"]
            if site["kind"] != "native"
        )
        memhound.stop()
        assert kept


def test_leak_entries_say_nothing_of_frames_without_native_stacks(libleaky):
    report, kept = leak_check(libleaky.leak)
    leaks = native_leaks_at_line(report)
    assert len(leaks) == 1, report["leaks"]
    assert "native_frames" not in leaks[0]
    assert "native_frames_blocks" not in leaks[0]
    assert kept


# ---- native stacks -------------------------------------------------------


def test_native_stacks_name_the_allocating_library_function(libleaky, leakyext):
    memhound.start(native_stack=True)
    assert _core.native_status()["active"]
    kept = call_library(libleaky, fixed=False)
    kept += run_extension(leakyext, "leak", 7)
    call_library(libleaky, fixed=True)
    groups = memhound.native_stacks(50)
    leak = [g for g in groups if g["frames"] and g["frames"][0]["function"] == "leak"]
    assert len(leak) == 1, groups
    assert (leak[0]["size"], leak[0]["count"]) == (N * SIZE, N)
    frame = leak[0]["frames"][0]
    assert frame["native"] is True and frame["library"].endswith("libleaky.so")
    assert frame["offset"] > 0 and set(frame) == {
        "filename",
        "lineno",
        "function",
        "native",
        "library",
        "offset",
    }
    ext = [
        g
        for g in groups
        if g["frames"][0]["library"].endswith(".so")
        and "leakyext" in g["frames"][0]["library"]
    ]
    assert sum(g["count"] for g in ext) == 7
    assert kept


def test_native_stacks_forget_freed_blocks_and_stop(libleaky):
    memhound.start(native_stack=True)
    out = (ctypes.c_void_p * 6)()
    libleaky.leak_family(out)
    families = sum(g["count"] for g in memhound.native_stacks(100))
    assert families >= 6
    libleaky.free_family(out)
    assert sum(g["count"] for g in memhound.native_stacks(100)) == families - 6
    memhound.stop()
    assert memhound.native_stacks() == []
    memhound.start(native=True)
    call_library(libleaky, fixed=False, n=3)
    assert memhound.native_stacks() == []
