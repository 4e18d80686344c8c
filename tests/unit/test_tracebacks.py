"""Traceback capture: the frames memhound records are the ones Python runs.

Uses memhound._core directly, so these tests pin the engine's behaviour on
every supported CPython, whatever the Python layer does with it.
"""

import asyncio
import sys
import threading

import pytest

import memhound
from memhound import _core

from ..markers import marked_line

THIS_FILE = __file__


def frames_of(obj):
    """(function, lineno) pairs of obj's allocation traceback, innermost first."""
    result = _core.get_object_traceback(obj)
    assert result is not None, "object was not traced"
    frames, _total = result
    return [(function, lineno) for filename, lineno, function in frames]


def line_of(marker):
    """The line number in this file of the line containing marker."""
    return marked_line(THIS_FILE, marker)


def make_object():
    return bytes(120)  # MARK-plain


def test_plain_function_innermost_first():
    _core.start(depth=8)
    obj = make_object()  # MARK-caller
    frames = frames_of(obj)
    assert frames[0] == ("make_object", line_of("MARK-plain"))
    assert frames[1][1] == line_of("MARK-caller")
    assert frames[1][0].endswith("test_plain_function_innermost_first")


def test_file_names_are_absolute_source_paths():
    _core.start(depth=4)
    obj = make_object()
    filename = _core.get_object_traceback(obj)[0][0][0]
    assert filename == THIS_FILE


def test_depth_limits_the_frames_kept():
    def recurse(n):
        if n == 0:
            return bytes(100)  # MARK-bottom
        return recurse(n - 1)

    _core.start(depth=5)
    obj = recurse(50)
    frames = frames_of(obj)
    assert len(frames) == 5
    assert frames[0][1] == line_of("MARK-bottom")
    assert all(name.endswith("recurse") for name, _ in frames)


def test_total_frame_count_when_asked():
    def recurse(n):
        if n == 0:
            return bytes(100)
        return recurse(n - 1)

    _core.start(depth=3, count_total=True)
    obj = recurse(40)
    frames, total = _core.get_object_traceback(obj)
    assert len(frames) == 3
    # 41 recurse frames plus at least this test and pytest's frames.
    assert total > 41


def test_deep_stacks_up_to_the_maximum_depth():
    def recurse(n):
        if n == 0:
            return bytes(100)
        return recurse(n - 1)

    _core.start(depth=_core.MAX_DEPTH)
    obj = recurse(300)
    frames = frames_of(obj)
    assert sum(1 for name, _ in frames if name.endswith("recurse")) == 301


def test_generator_frames():
    def gen():
        yield bytes(50)  # MARK-gen

    _core.start(depth=4)
    obj = next(gen())
    assert frames_of(obj)[0][1] == line_of("MARK-gen")


def test_coroutine_frames():
    async def coro():
        await asyncio.sleep(0)
        return bytes(50)  # MARK-coro

    _core.start(depth=16)
    obj = asyncio.run(coro())
    assert frames_of(obj)[0][1] == line_of("MARK-coro")


def test_comprehension_and_lambda():
    _core.start(depth=6)
    objs = [bytes(40 + i) for i in range(3)]  # MARK-comp
    assert frames_of(objs[1])[0][1] == line_of("MARK-comp")
    make = lambda: bytes(40)  # noqa: E731  MARK-lambda
    assert frames_of(make())[0][1] == line_of("MARK-lambda")


def test_method_names_are_qualified_where_python_has_qualnames():
    class Holder:
        def build(self):
            return bytes(40)

    _core.start(depth=4)
    name = frames_of(Holder().build())[0][0]
    if sys.version_info >= (3, 11):
        assert name.endswith("Holder.build")
    else:
        assert name == "build"


def test_allocations_in_other_threads_have_their_own_stacks():
    result = {}

    def worker_function():
        result["obj"] = bytes(40)  # MARK-thread

    _core.start(depth=8)
    thread = threading.Thread(target=worker_function)
    thread.start()
    thread.join()
    frames = frames_of(result["obj"])
    assert frames[0][0].endswith("worker_function")
    assert frames[0][1] == line_of("MARK-thread")
    assert any(name.endswith("Thread.run") or name == "run" for name, _ in frames)


def test_tracebacks_are_interned():
    _core.start(depth=8)
    objs = [[i] * 10 for i in range(2000)]
    before = _core.get_stats()["tracebacks"]
    more = [[i] * 10 for i in range(2000)]
    after = _core.get_stats()["tracebacks"]
    # The same few tracebacks again: the tree barely grows.
    assert after - before < 20
    assert len(objs) == len(more)


def test_alternating_call_sites_keep_distinct_tracebacks():
    def site_a():
        return bytes(30)  # MARK-site-a

    def site_b():
        return bytes(31)  # MARK-site-b

    _core.start(depth=8)
    objs = [site_a() if i % 2 else site_b() for i in range(100)]
    lines = {frames_of(o)[0][1] for o in objs}
    assert lines == {line_of("MARK-site-a"), line_of("MARK-site-b")}


@pytest.mark.parametrize("depth", [0, -1, _core.MAX_DEPTH + 1])
def test_bad_depth(depth):
    with pytest.raises(ValueError):
        _core.start(depth=depth)
    assert not _core.is_tracing()


def test_generations_are_stamped():
    _core.start(depth=2)
    first = [0] * 64
    gen = _core.next_generation()
    second = [0] * 64
    snap = _core.take_snapshot()
    generations = {snap.trace(i)[3] for i in range(len(snap))}
    assert 0 in generations and gen in generations
    del first, second


def test_no_interpreter_shim_frames_in_tracebacks():
    # 3.13 specializes `Class()` into a call through a shim frame whose code
    # object is the interpreter's own (file "__init__", line 0); it is not
    # the program's and must not appear in a traceback.
    class Box:
        def __init__(self):
            self.items = [object() for _ in range(3)]

    memhound.start()
    try:
        boxes = [Box() for _ in range(200)]  # warm up the specialization
        traceback = memhound.get_object_traceback(boxes[-1].items)
    finally:
        memhound.stop()
    assert traceback is not None
    assert all(frame.filename != "__init__" for frame in traceback)
    assert traceback[0].filename == __file__


def test_thread_caches_never_reuse_nodes_of_released_code():
    # A thread remembers its last traceback and recently interned nodes by
    # code address.  Code released by the store (dead code, at a checkpoint)
    # frees its address for new code objects, which must get nodes of their
    # own: here each round's code likely lands where the last one was.
    source = "def build(n):\n    return [bytearray(16) for _ in range(n)]\n"
    memhound.start()
    try:
        kept = []
        for round_ in range(20):
            namespace = {}
            exec(compile(source, f"<round-{round_}>", "exec"), namespace)
            kept.append(namespace["build"](3))
            del namespace
            memhound.checkpoint()  # releases the round's code
        for round_, blocks in enumerate(kept):
            result = _core.get_object_traceback(blocks[0])
            assert result is not None
            names = {f[0] for f in result[0] if f[0].startswith("<round-")}
            assert names == {f"<round-{round_}>"}, (round_, result)
    finally:
        memhound.stop()
