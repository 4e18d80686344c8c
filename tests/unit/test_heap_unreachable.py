"""memhound.heap.unreachable_by_site: garbage cycles by allocation site,
computed without collecting."""

import gc

import pytest

import memhound
from memhound import _core, heap


class Node:
    # Slots: no instance dict, which CPython 3.10 would allocate at another
    # line (another site).
    __slots__ = ("other",)


def make_cycles(n):
    for _ in range(n):
        a = Node()
        b = Node()
        a.other = b
        b.other = a


def make_held(n, keep):
    for _ in range(n):
        a = Node()
        b = Node()
        a.other = b
        b.other = a
        keep.append(a)


@pytest.fixture
def gc_off():
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    if was:
        gc.enable()


def site_of(obj):
    site = _core.heap_object_site(obj)
    assert site is not None
    return site[0]


def test_not_tracing_is_empty():
    assert heap.unreachable_by_site() == {}


def test_cycles_found_by_site(gc_off):
    memhound.start()
    make_cycles(500)
    probe = Node()  # allocated at another line: a different site
    result = heap.unreachable_by_site()
    cycle_sites = {site: v for site, v in result.items() if v[1] == 500}
    # a = Node() and b = Node() are two sites of 500 blocks each.
    assert len(cycle_sites) == 2
    size = _core.heap_object_site(Node())[1]
    for nbytes, blocks in cycle_sites.values():
        assert blocks == 500
        assert nbytes == 500 * size
    assert site_of(probe) not in result


def test_held_cycles_are_not_garbage(gc_off):
    memhound.start()
    keep = []
    make_held(300, keep)
    result = heap.unreachable_by_site()
    assert site_of(keep[0]) not in result
    assert site_of(keep[0].other) not in result


def test_no_finalizer_runs_and_nothing_collected(gc_off):
    memhound.start()
    finalized = []

    class Fin:
        def __del__(self):
            finalized.append(1)

    for _ in range(50):
        f = Fin()
        f.me = f
    del f
    before = len(gc.get_objects())
    result = heap.unreachable_by_site()
    assert sum(blocks for _, blocks in result.values()) >= 50
    assert finalized == []
    # The cycles are still there: the query collected nothing.
    assert len(gc.get_objects()) >= before
    assert gc.collect() >= 50
    assert len(finalized) == 50


def test_after_collect_nothing_left(gc_off):
    memhound.start()
    make_cycles(200)
    gc.collect()
    result = heap.unreachable_by_site()
    assert all(blocks < 200 for _, blocks in result.values())


def test_restores_gc_state():
    gc.enable()
    memhound.start()
    heap.unreachable_by_site()
    assert gc.isenabled()
