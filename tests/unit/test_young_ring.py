"""The young ring and the leaf-only traceback path (hooks_young.h, issue 5).

The last few blocks allocated with the GIL wait in a ring before reaching
the live table, and a capture whose outer frames equal the last one's
interns only the innermost frame.  Neither may change what a reader sees:
these tests look at blocks that are still in the ring, blocks freed there,
blocks freed after leaving it, and tracebacks whose outer frames change
while the innermost one does not.
"""

import sys

import pytest

from memhound import _core

from ..markers import marked_line
from ..native.fixtures import under_asan

THIS_FILE = __file__
SIZE = 3001  # no other block in these tests has this payload


def line_of(marker):
    """The line number in this file of the line containing marker."""
    return marked_line(THIS_FILE, marker)


def blocks_from(snapshot, lineno):
    """Traces of the snapshot allocated at this file's line lineno."""
    found = []
    for i in range(len(snapshot)):
        _domain, size, traceback_index, _generation = snapshot.trace(i)
        frames = snapshot.traceback(traceback_index)[0]
        if frames and frames[0][0] == THIS_FILE and frames[0][1] == lineno:
            found.append(size)
    return found


def make():
    return bytes(SIZE)  # MARK-make


def test_a_block_allocated_just_now_is_seen_by_every_reader():
    _core.start(depth=4)
    obj = make()
    # Nothing allocated since: the block is still in the ring.
    snapshot = _core.take_snapshot()
    assert len(blocks_from(snapshot, line_of("MARK-make"))) == 1
    result = _core.get_object_traceback(obj)
    assert result is not None and result[0][0][1] == line_of("MARK-make")


def test_blocks_freed_young_or_old_leave_no_trace():
    _core.start(depth=4)
    kept = []
    for i in range(300):
        obj = make()
        if i % 3 == 0:
            del obj  # freed while still in the ring
        elif i % 3 == 1:
            ballast = [[j] for j in range(40)]  # pushes it out of the ring
            del obj, ballast  # freed from the table
        else:
            kept.append(obj)
            del obj
    snapshot = _core.take_snapshot()
    sizes = blocks_from(snapshot, line_of("MARK-make"))
    assert len(sizes) == len(kept) == 100
    del kept
    snapshot = _core.take_snapshot()
    assert blocks_from(snapshot, line_of("MARK-make")) == []


def test_traced_memory_counts_blocks_in_the_ring():
    _core.start(depth=4)
    before = _core.get_traced_memory()[0]
    obj = make()
    grown = _core.get_traced_memory()[0]
    assert grown - before >= SIZE
    del obj
    assert _core.get_traced_memory()[0] - before < SIZE


def test_clear_and_stop_forget_blocks_in_the_ring():
    _core.start(depth=4)
    obj = make()
    _core.clear_traces()
    assert _core.get_object_traceback(obj) is None
    assert _core.get_traced_memory()[0] < SIZE
    obj = make()
    _core.stop()
    _core.start(depth=4)
    assert _core.get_object_traceback(obj) is None
    del obj
    assert _core.get_traced_memory()[0] < SIZE


def alternate(n):
    """Objects from two lines of one frame, in turn."""
    out = []
    for i in range(n):
        if i % 2:
            out.append(bytes(SIZE + 1))  # MARK-odd
        else:
            out.append(bytes(SIZE + 2))  # MARK-even
    return out


def caller_a():
    return alternate(6)  # MARK-caller-a


def caller_b():
    return alternate(6)  # MARK-caller-b


@pytest.mark.parametrize("depth", [1, 2, 3, 16])
def test_outer_frames_are_right_when_only_the_innermost_repeats(depth):
    # Each capture's innermost frame repeats one of two lines; what changes
    # between callers is a frame further out, which the leaf-only path
    # must not miss, whatever the traceback limit cuts.
    _core.start(depth=depth)
    made = []
    for _ in range(10):
        made.append(("a", caller_a()))
        made.append(("b", caller_b()))
    for caller, objs in made:
        for obj in objs:
            frames, _total = _core.get_object_traceback(obj)
            assert len(frames) <= depth
            want_line = line_of("MARK-odd" if len(obj) == SIZE + 1 else "MARK-even")
            assert frames[0][1:] == (want_line, "alternate")
            if depth >= 2:
                assert frames[1][1] == line_of(f"MARK-caller-{caller}")
            else:
                assert len(frames) == 1


def leaf():
    return bytes(SIZE + 3)  # MARK-leaf


def via_x():
    return leaf()  # MARK-via-x


def via_y():
    return leaf()  # MARK-via-y


def twice():
    first = leaf()  # MARK-first
    second = leaf()  # MARK-second
    return first, second


@pytest.mark.parametrize("depth", [2, 16])
def test_the_same_innermost_frame_under_another_caller(depth):
    # Back-to-back captures, nothing allocated in between, with the same
    # innermost frame and instruction: only a frame further out tells them
    # apart (another function, or another instruction of the same one).
    _core.start(depth=depth)
    objs = [None] * 200
    for i in range(0, 200, 2):  # small ints: the loop allocates nothing
        objs[i] = via_x()
        objs[i + 1] = via_y()
    pairs = [twice() for _ in range(50)]
    for i, obj in enumerate(objs):
        frames = _core.get_object_traceback(obj)[0]
        assert frames[0][1] == line_of("MARK-leaf")
        assert frames[1][1] == line_of("MARK-via-y" if i % 2 else "MARK-via-x")
    for first, second in pairs:
        assert _core.get_object_traceback(first)[0][1][1] == line_of("MARK-first")
        assert _core.get_object_traceback(second)[0][1][1] == line_of("MARK-second")


def test_raising_the_limit_lengthens_the_next_tracebacks():
    # The leaf-only path compares a stack against the last traceback, which
    # was cut at the old limit: after start() raises it, tracebacks must
    # grow, not keep the old length.
    _core.start(depth=1)
    short = caller_a()
    _core.start(depth=8)
    longer = caller_a()
    assert len(_core.get_object_traceback(short[-1])[0]) == 1
    frames = _core.get_object_traceback(longer[-1])[0]
    assert len(frames) >= 3
    assert frames[1][1] == line_of("MARK-caller-a")


def test_lowering_the_limit_shortens_the_next_tracebacks():
    # The same from a thread whose whole stack fits the old limit, so that
    # the last traceback is not cut, and which allocates nothing between
    # its last capture under the old limit and its first under the new one
    # (it spins on plain flags meanwhile): the last traceback's length alone
    # must not let the leaf-only path answer with more frames than the new
    # limit allows.
    import threading

    results = [None, None]
    ready = [False, False]
    go = [False, False]

    def work():
        for slot in range(2):
            results[slot] = caller_a()
            ready[slot] = True
            while not go[slot]:
                pass

    _core.start(depth=16)
    thread = threading.Thread(target=work)
    thread.start()
    while not ready[0]:
        thread.join(0.001)
    _core.start(depth=1)
    go[0] = True
    while not ready[1]:
        thread.join(0.001)
    go[1] = True
    thread.join()
    assert len(_core.get_object_traceback(results[0][-1])[0]) > 2
    assert len(_core.get_object_traceback(results[1][0])[0]) == 1
    assert len(_core.get_object_traceback(results[1][-1])[0]) == 1


UNSEEN_FREE_PROGRAM = """
import ctypes, gc
from memhound import _core
api = ctypes.pythonapi
api.PyMem_Malloc.restype = ctypes.c_void_p
api.PyMem_Malloc.argtypes = [ctypes.c_size_t]
api.PyMem_Free.argtypes = [ctypes.c_void_p]
unseen_free = ctypes.CDLL(None).PyMem_Free  # CDLL: called without the GIL
unseen_free.argtypes = [ctypes.c_void_p]
gc.disable()
_core.start(depth=4)
before = _core.get_traced_memory()[0]
first = api.PyMem_Malloc(200)
unseen_free(first)
reused = False
for _ in range(1000):
    again = api.PyMem_Malloc(200)
    reused = reused or again == first
    api.PyMem_Free(again)
snapshot = _core.take_snapshot()
print(reused, _core.get_traced_memory()[0] - before,
      sum(1 for i in range(len(snapshot)) if snapshot.trace(i)[1] == 200))
"""


@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="3.12+ itself crashes on PyMem_Free without the GIL "
    "(its allocator state is the current interpreter's)",
)
@pytest.mark.skipif(under_asan(), reason="ASan's allocator does not reuse addresses")
def test_a_free_memhound_cannot_see_leaves_no_phantom_block():
    # PyMem_Free without the GIL (through ctypes.CDLL, which releases it)
    # is a free memhound can't see; CPython forbids it, C extensions do it.
    # The table replaces the stale entry when pymalloc hands the address
    # out again, so the ring must not keep the blocks that reuse it from
    # reaching the table (review of issue 5, session 5: the stale 200-byte
    # block stayed in every snapshot).  In a child without dev mode, whose
    # allocator debug hooks abort on that free.
    import os
    import subprocess

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDEVMODE", "PYTHONMALLOC")
    }
    done = subprocess.run(
        [sys.executable, "-c", UNSEEN_FREE_PROGRAM],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reused, grown, blocks = done.stdout.split()
    assert reused == "True", "pymalloc did not hand the address out again"
    assert int(grown) < 200
    assert blocks == "0"


SUBINTERPRETER_PROGRAM = """
import threading, _interpreters
from memhound import _core
_core.start(depth=4)
interp = _interpreters.create()  # own GIL, runs in parallel with main
code = "x = 0\\nfor i in range(200000):\\n    t = (i, i + 1.5)\\n    x += t[1]\\n"
thread = threading.Thread(target=_interpreters.exec, args=(interp, code))
thread.start()
keep = [(i, str(i)) for i in range(200000)]
thread.join()
print("traced", _core.get_stats()["traced_blocks"] > 0)
_core.stop()
_interpreters.destroy(interp)
"""


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.13's creation hook")
def test_objects_made_by_a_subinterpreter_with_its_own_gil():
    # 3.13's object-creation hook (free-list re-tracing) sees every
    # interpreter's objects; one with its own GIL runs in parallel with the
    # main thread, which resizes the live table meanwhile.  The hook read
    # the table before checking whose thread it was on: a segfault in 5 of
    # 6 runs (review of issue 5, session 5).
    import subprocess

    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", SUBINTERPRETER_PROGRAM],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "traced True"
