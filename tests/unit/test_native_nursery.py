# ruff: noqa: F811  (pytest fixtures imported from tests/native/fixtures.py)
"""The native fast paths (issue 5): a thread allocating again where it
last allocated reuses its last traceback without capturing it
(mh_frames_same), and native blocks allocated with the GIL wait in the
thread's nursery (hooks_nursery.c) before going into the raw table.  Both
must be invisible: the right line for every block, every live block in
every snapshot, no freed block left behind whoever frees it."""

import ctypes
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import memhound
from memhound import DomainFilter

from ..native.fixtures import leakyext, native_build, under_asan  # noqa: F401

N = 40
SIZE = 3000
# More blocks than a nursery holds (MH_NURSERY_SLOTS = 4 in
# hooks_internal.h), so that some of them have moved to the raw table.
MANY = 25


def line_of(marker):
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1):
        if line.rstrip().endswith(marker):
            return number
    raise AssertionError(f"no line ends with {marker!r}")


def native_stats(key="lineno"):
    snapshot = memhound.take_snapshot()
    native = snapshot.filter_traces([DomainFilter(True, memhound.DOMAIN_NATIVE)])
    return native.statistics(key)


def by_line():
    """{lineno in this file: (bytes, blocks)} of native blocks, by the
    innermost frame."""
    found = {}
    for stat in native_stats():
        frame = stat.traceback[0]
        if frame.filename == __file__:
            found[frame.lineno] = (stat.size, stat.count)
    return found


def libc_free():
    # ctypes releases the GIL around the call: the free reaches memhound
    # from a thread without it.
    free = ctypes.CDLL(None).free
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    return free


# ---- traceback reuse ----------------------------------------------------


def two_lines(module):
    kept = []
    for _ in range(N):
        kept.append(module.leak(SIZE))  # LINE-A
        kept.append(module.leak(2 * SIZE))  # LINE-B
    return kept


def test_two_lines_of_one_frame_are_told_apart(leakyext):
    memhound.start(native=True)
    kept = two_lines(leakyext)
    found = by_line()
    assert found.get(line_of("# LINE-A")) == (N * SIZE, N)
    assert found.get(line_of("# LINE-B")) == (N * 2 * SIZE, N)
    assert len(kept) == 2 * N


def inner(module):
    return module.leak(SIZE)  # INNER


def via_first(module):
    return inner(module)  # VIA-FIRST


def via_second(module):
    return inner(module)  # VIA-SECOND


def test_same_innermost_frame_reached_from_two_callers(leakyext):
    # inner's frame sits at the same address, at the same instruction, on
    # both paths: only the callers' frames differ.
    memhound.start(native=True)
    kept = []
    for _ in range(N):
        kept.append(via_first(leakyext))
        kept.append(via_second(leakyext))
    callers = {}
    for stat in native_stats("traceback"):
        frames = [(f.filename, f.lineno) for f in stat.traceback]
        if frames and frames[0] == (__file__, line_of("# INNER")):
            callers[frames[1][1]] = stat.count
    assert callers == {line_of("# VIA-FIRST"): N, line_of("# VIA-SECOND"): N}
    assert len(kept) == 2 * N


def test_restart_with_a_new_store_captures_again(leakyext):
    memhound.start(native=True)
    kept = [leakyext.leak(SIZE) for _ in range(3)]  # BEFORE-CLEAR
    memhound.clear()
    kept += [leakyext.leak(SIZE) for _ in range(3)]  # AFTER-CLEAR
    found = by_line()
    assert line_of("# BEFORE-CLEAR") not in found
    assert found.get(line_of("# AFTER-CLEAR")) == (3 * SIZE, 3)
    assert len(kept) == 6


# ---- nurseries ----------------------------------------------------------


def test_young_blocks_are_in_every_snapshot_and_total(leakyext):
    memhound.start(native=True)
    before, _ = memhound.get_traced_memory()
    kept = [leakyext.leak(SIZE) for _ in range(MANY)]  # MANY-LINE
    assert by_line().get(line_of("# MANY-LINE")) == (MANY * SIZE, MANY)
    traced, _ = memhound.get_traced_memory()
    assert traced - before >= MANY * SIZE
    assert len(kept) == MANY


def test_blocks_freed_in_any_order_leave_nothing(leakyext):
    memhound.start(native=True)
    free = libc_free()
    for order in (reversed, list):
        addresses = [leakyext.leak(SIZE) for _ in range(MANY)]  # ORDER-LINE
        for address in order(addresses[::2]):
            free(address)
        left = by_line().get(line_of("# ORDER-LINE"), (0, 0))
        assert left == (len(addresses[1::2]) * SIZE, len(addresses[1::2]))
        for address in addresses[1::2]:
            free(address)
        assert line_of("# ORDER-LINE") not in by_line()


def test_block_freed_without_the_gil_is_forgotten(leakyext):
    # leak() mallocs with the GIL (the block waits in this thread's
    # nursery); ctypes' free runs without it and can't look there.
    memhound.start(native=True)
    free = libc_free()
    address = leakyext.leak(SIZE)  # NOGIL-FREE
    free(address)
    assert line_of("# NOGIL-FREE") not in by_line()
    # The address is likely handed out again: traced once, at its new line.
    again = [leakyext.leak(SIZE) for _ in range(3)]  # REUSED
    found = by_line()
    assert line_of("# NOGIL-FREE") not in found
    assert found.get(line_of("# REUSED")) == (3 * SIZE, 3)
    for address in again:
        free(address)
    assert line_of("# REUSED") not in by_line()


def test_blocks_freed_by_another_thread_without_the_gil(leakyext):
    memhound.start(native=True)
    free = libc_free()
    for _ in range(3):
        addresses = [leakyext.leak(SIZE) for _ in range(MANY)]  # HANDED-OVER
        worker = threading.Thread(target=lambda a=addresses: [free(x) for x in a])
        worker.start()
        worker.join()
        kept = [leakyext.leak(SIZE) for _ in range(2)]  # AFTER-HANDOVER
        found = by_line()
        assert line_of("# HANDED-OVER") not in found
        assert found.get(line_of("# AFTER-HANDOVER")) == (2 * SIZE, 2)
        for address in kept:
            free(address)


def test_young_blocks_of_an_exited_thread_stay_traced(leakyext):
    memhound.start(native=True)
    kept = []

    def work():
        kept.extend(leakyext.leak(SIZE) for _ in range(3))  # IN-THREAD

    for _ in range(4):
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    assert by_line().get(line_of("# IN-THREAD")) == (12 * SIZE, 12)
    free = libc_free()
    for address in kept:
        free(address)
    assert line_of("# IN-THREAD") not in by_line()


def test_stop_and_start_forget_young_blocks(leakyext):
    memhound.start(native=True)
    kept = [leakyext.leak(SIZE) for _ in range(3)]  # BEFORE-STOP
    memhound.stop()
    memhound.start(native=True)
    assert line_of("# BEFORE-STOP") not in by_line()
    free = libc_free()
    for address in kept:
        free(address)  # freed after the restart: nothing to forget, no error
    assert memhound.get_traced_memory()[0] >= 0


# ---- threads without the GIL: realloc and frees of untraced blocks -------


def libc_realloc():
    # Through ctypes: runs without the GIL, like libc_free.  Looked up after
    # start(): dlsym then gives native.c's wrapper.
    realloc = ctypes.CDLL(None).realloc
    realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    realloc.restype = ctypes.c_void_p
    return realloc


@pytest.mark.skipif(under_asan(), reason="ASan aborts on a huge realloc")
def test_failed_realloc_without_the_gil_keeps_the_nursery_block(leakyext):
    # The block waits in this thread's nursery; the failed realloc (no GIL)
    # leaves it valid, so it must stay traced, then go with its free.
    memhound.start(native=True)
    address = leakyext.leak(SIZE)  # FAILED-REALLOC
    assert libc_realloc()(address, 1 << 62) is None
    assert by_line().get(line_of("# FAILED-REALLOC")) == (SIZE, 1)
    libc_free()(address)
    assert line_of("# FAILED-REALLOC") not in by_line()


def native_blocks_of(size):
    snapshot = memhound.take_snapshot()
    native = snapshot.filter_traces([DomainFilter(True, memhound.DOMAIN_NATIVE)])
    return sum(1 for trace in native.traces if trace.size == size)


def test_realloc_without_the_gil_moves_the_nursery_block(leakyext):
    memhound.start(native=True)
    address = leakyext.leak(SIZE)  # MOVED-REALLOC
    moved = libc_realloc()(address, 4 * SIZE + 8)
    assert moved
    assert line_of("# MOVED-REALLOC") not in by_line()
    assert native_blocks_of(4 * SIZE + 8) == 1
    libc_free()(moved)
    assert native_blocks_of(4 * SIZE + 8) == 0


# The same through CPython's raw domain (hooks.c's realloc hook, not
# native.c's wrapper).  In a child without dev mode: its debug hooks on the
# raw domain abort on a block that libc, not PyMem_RawMalloc, handed out.
RAW_REALLOC_PROGRAM = """
import ctypes, sys
sys.path.insert(0, sys.argv[1])
import leakyext, memhound
from memhound import DomainFilter

SIZE, NEW = 3000, 4 * 3000 + 8


def count(domain, size):
    traces = memhound.take_snapshot().filter_traces([DomainFilter(True, domain)])
    return sum(1 for trace in traces.traces if trace.size == size)


memhound.start(native=True)
process = ctypes.CDLL(None)  # CDLL: every call below runs without the GIL
process.PyMem_RawRealloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
process.PyMem_RawRealloc.restype = ctypes.c_void_p
process.PyMem_RawFree.argtypes = [ctypes.c_void_p]
process.free.argtypes = [ctypes.c_void_p]
address = leakyext.leak(SIZE)  # waits in this thread's nursery
if sys.argv[2] == "fail":
    failed = process.PyMem_RawRealloc(address, 1 << 62) is None
    kept = count(memhound.DOMAIN_NATIVE, SIZE)
    process.free(address)
    print(failed, kept, count(memhound.DOMAIN_NATIVE, SIZE))
else:
    moved = process.PyMem_RawRealloc(address, NEW)
    old = count(memhound.DOMAIN_NATIVE, SIZE)
    new = count(memhound.DOMAIN_RAW, NEW)
    process.PyMem_RawFree(moved)
    print(bool(moved), old, new, count(memhound.DOMAIN_RAW, NEW))
"""


@pytest.mark.parametrize(
    "outcome, expected",
    [
        # failed, the block still traced, then gone with its free
        ("fail", "True 1 0"),
        # moved, the old block gone, the new one traced, then gone
        ("move", "True 0 1 0"),
    ],
)
def test_raw_realloc_without_the_gil_of_a_nursery_block(
    native_build, outcome, expected
):
    if outcome == "fail" and under_asan():
        pytest.skip("ASan aborts on a huge realloc")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    if "debug" in env.get("PYTHONMALLOC", ""):
        del env["PYTHONMALLOC"]
    done = subprocess.run(
        [sys.executable, "-c", RAW_REALLOC_PROGRAM, str(native_build[1]), outcome],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected


def test_frees_of_untraced_blocks_without_the_gil_are_not_queued(
    leakyext, native_build
):
    # Blocks allocated before tracing, freed by a thread without the GIL
    # while a nursery holds a block and no Python thread drains the remote
    # list: nothing is to be noted for them (the list used to keep every
    # such address until the next nursery operation, ~8 bytes each).
    lib = ctypes.CDLL(str(native_build[0]))
    lib.alloc_many.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_size_t]
    lib.free_many.argtypes = [ctypes.c_void_p, ctypes.c_long]
    count = 100_000
    blocks = (ctypes.c_void_p * count)()
    lib.alloc_many(blocks, count, 24)
    memhound.start(native=True)
    before = memhound.get_memory_overhead()
    kept = leakyext.leak(SIZE)  # QUEUE-KEPT
    lib.free_many(blocks, count)
    grown = memhound.get_memory_overhead() - before
    assert grown < count * 8 // 4
    assert by_line().get(line_of("# QUEUE-KEPT")) == (SIZE, 1)
    libc_free()(kept)


@pytest.mark.skipif(under_asan(), reason="ASan's allocator does not reuse addresses")
def test_frees_at_a_noted_address_are_not_queued_again(leakyext, native_build):
    # A nursery block freed without the GIL is noted once.  libc then hands
    # its address to memory of its own (asprintf), freed here again and
    # again without the GIL while no Python thread drains the list: each of
    # those frees finds the stale nursery entry, and must not note it again.
    lib = ctypes.CDLL(str(native_build[0]))
    lib.free_then_reuse.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int]
    lib.free_then_reuse.restype = ctypes.c_long
    memhound.start(native=True)
    # (Reading the overhead moves nursery blocks to the table: read it
    # before the block is made.)
    before = memhound.get_memory_overhead()
    address = leakyext.leak(96)  # REUSED-ADDRESS
    rounds = 200_000
    reused = lib.free_then_reuse(address, rounds, 95)
    grown = memhound.get_memory_overhead() - before
    assert reused > rounds // 2, "libc did not reuse the address"
    assert grown < 4096
    assert line_of("# REUSED-ADDRESS") not in by_line()


def test_c_threads_taking_and_dropping_the_gil_leave_nothing(leakyext):
    # Each round a C thread gets a fresh thread state (PyGILState_Ensure),
    # often at the address another thread's just-deleted one had: the
    # "do I hold the GIL" check must not take another thread's state for
    # its own.  Every block is freed; none may stay traced.
    memhound.start(native=True)
    assert leakyext.churn_gilstate(4, 3000) == 4
    snapshot = memhound.take_snapshot()
    native = snapshot.filter_traces([DomainFilter(True, memhound.DOMAIN_NATIVE)])
    left = [t.size for t in native.traces if 48 <= t.size < 64 or t.size == 80]
    assert left == []
