"""memhound.heap.annotate_report / sites_info: the leak report's heap-graph
fields, by allocation site; and the tool's own leaks."""

import gc

import pytest

import memhound
from memhound import _core, heap


class Request:
    pass


class Cache:
    def __init__(self):
        self._store = {}


CACHE = Cache()
OTHER = []


def site_of(obj):
    return _core.heap_object_site(obj)[0]


def leak_requests(n):
    for i in range(n):
        CACHE._store[f"req-{i}"] = Request()


def leak_to_other(n):
    for _ in range(n):
        OTHER.append(Request())


@pytest.fixture(autouse=True)
def _clean():
    CACHE._store.clear()
    OTHER.clear()
    yield
    CACHE._store.clear()
    OTHER.clear()


def test_sites_info_types_paths_retained():
    memhound.start()
    leak_requests(300)
    leak_to_other(100)  # another site
    site = site_of(CACHE._store["req-0"])
    info = heap.sites_info([site])[site]
    # Block sizes vary (3.13 sizes the first instances' inline values
    # differently): the sum of the traced blocks.
    size = sum(_core.heap_object_site(o)[1] for o in CACHE._store.values())
    assert info["types"] == [
        {"type": f"{__name__}.Request", "count": 300, "bytes": size}
    ]
    assert info["paths"][0]["objects"] == 300
    steps = info["retention_path"]
    assert steps[-2]["object"] == f"{__name__}.CACHE._store"
    assert steps[-1]["object"].startswith(f"{__name__}.CACHE._store['req-")
    assert info["retained_bytes"] == size
    assert info["unreachable_bytes"] == 0 and info["unreachable_blocks"] == 0


def test_several_ways_most_common_first():
    memhound.start()
    objs = [Request() for _ in range(30)]
    for i, obj in enumerate(objs):
        if i < 20:
            CACHE._store[i] = obj
        else:
            OTHER.append(obj)
    site = site_of(objs[0])
    del objs, obj
    info = heap.sites_info([site])[site]
    assert [p["objects"] for p in info["paths"]] == [20, 10]
    assert info["paths"][0]["steps"][-2]["object"] == f"{__name__}.CACHE._store"
    assert info["paths"][1]["steps"][-2]["object"] == f"{__name__}.OTHER"


def test_chains_of_one_site_group_under_their_holder():
    memhound.start()
    head = None
    for _ in range(200):
        node = Request()
        node.next = head
        head = node
    OTHER.append(head)
    site = site_of(head)
    del head, node
    info = heap.sites_info([site])[site]
    assert info["paths"][0]["objects"] == 200
    assert len(info["paths"]) == 1
    assert info["retained_bytes"] >= 200 * _core.heap_object_site(OTHER[0])[1]


class Session:
    def __init__(self, payload):
        self.payload = payload


TABLES = {}
SECOND = {}


def test_objects_held_the_same_way_are_one_group():
    # Each payload has its own holder (its Session, in one of 7 lists), but
    # they are all held as TABLES[k][i].payload: one way, not 700.  A
    # different global is a different way, although the holders' types are
    # the same.
    memhound.start()
    try:
        payloads = [bytearray(64) for _ in range(710)]
        for i, payload in enumerate(payloads[:700]):
            TABLES.setdefault(i % 7, []).append(Session(payload))
        for i, payload in enumerate(payloads[700:]):
            SECOND.setdefault(i % 7, []).append(Session(payload))
        site = site_of(payloads[0])
        del payloads, payload
        info = heap.sites_info([site])[site]
    finally:
        TABLES.clear()
        SECOND.clear()
    assert [p["objects"] for p in info["paths"]] == [700, 10]
    first, second = (p["steps"][-1]["object"] for p in info["paths"])
    assert first.startswith(f"{__name__}.TABLES[") and first.endswith(".payload")
    assert second.startswith(f"{__name__}.SECOND[")


@pytest.fixture
def gc_off():
    gc.collect()
    gc.disable()
    yield
    gc.collect()
    gc.enable()


def self_cycles(cls, n):
    """n objects of cls that reference themselves; their site."""
    for _ in range(n):
        obj = cls()
        obj.me = obj
    return site_of(obj)


def test_cycles_with_gc_disabled_are_unreachable(gc_off):
    memhound.start()
    site = self_cycles(Request, 50)
    info = heap.sites_info([site])[site]
    assert info["unreachable_blocks"] == 50
    assert info["paths"][0]["unreachable"] is True
    assert "unreachable" in info["retention_path"][0]["via"]


def test_annotate_report_fills_schema_fields():
    memhound.start()
    baseline = heap.Census.take()
    leak_requests(500)
    site = site_of(CACHE._store["req-0"])
    report = {
        "leaks": [
            # The report's site: traceback index << 1 | native.
            {"kind": "python", "site": site << 1, "live_bytes": 1},
            {"kind": "native"},  # no site: left alone
            {"kind": "native", "site": site << 1 | 1},  # native: left alone
        ]
    }
    heap.annotate_report(report, baseline=baseline)
    leak = report["leaks"][0]
    assert leak["types"][0]["type"] == f"{__name__}.Request"
    assert leak["types"][0]["count"] == 500
    assert leak["retention_path"][-2]["object"] == f"{__name__}.CACHE._store"
    assert leak["retained_bytes"] > 0
    assert leak["unreachable_blocks"] == 0
    assert "types" not in report["leaks"][1]
    assert "types" not in report["leaks"][2]
    grew = {row["type"]: row for row in report["types_grew"]}
    assert grew[f"{__name__}.Request"]["count_diff"] == 500
    assert isinstance(report["largest_retainers"], list)
    assert report["largest_retainers"][0]["retained_bytes"] > 0
    by_type = report["retained_by_type"]
    assert len(by_type) == 10
    assert set(by_type[0]) == {"type", "count", "bytes", "retained_bytes"}
    kept = [row["retained_bytes"] for row in by_type]
    assert kept == sorted(kept, reverse=True)
    assert all(row["retained_bytes"] >= row["bytes"] > 0 for row in by_type)
    assert set(report["cycle_sites"]) == {"unreachable", "types", "gc_garbage"}
    import json

    json.dumps(report)  # plain data only
    from memhound.report import format_text

    text = format_text({"leaks": [], "retained_by_type": by_type}, width=100)
    assert "Retained by type:" in text
    assert by_type[0]["type"] in text


def test_cycle_sites_and_finalizer_types(gc_off):
    class WithDel:
        def __del__(self):
            pass

    memhound.start()
    site = self_cycles(WithDel, 40)
    report = {"leaks": []}
    heap.annotate_report(report)
    unreachable = {r["site"]: r for r in report["cycle_sites"]["unreachable"]}
    assert unreachable[site]["blocks"] == 40
    types = {r["type"]: r for r in report["cycle_sites"]["types"]}
    name = f"{__name__}.test_cycle_sites_and_finalizer_types.<locals>.WithDel"
    assert types[name]["count"] == 40
    assert types[name]["finalizer"] is True


def test_gc_garbage_listed_with_sites():
    memhound.start()
    obj = Request()
    gc.garbage.append(obj)
    try:
        report = {"leaks": []}
        heap.annotate_report(report)
        rows = report["cycle_sites"]["gc_garbage"]
        assert {"type": f"{__name__}.Request", "site": site_of(obj), "count": 1} in rows
    finally:
        gc.garbage.remove(obj)


def test_queries_do_not_leak():
    """Many queries: the object count and traced memory come back to
    where they were (sys.gettotalrefcount is not in release builds)."""
    memhound.start()
    leak_requests(100)
    site = site_of(CACHE._store["req-0"])
    target = CACHE._store["req-5"]

    def run_all():
        memhound.why_alive(target)
        heap.sites_info([site])
        heap.unreachable_by_site()
        memhound.census()
        heap.retained_size(target)
        heap.annotate_report({"leaks": [{"site": site << 1}]})

    run_all()
    gc.collect()
    objects = len(gc.get_objects())
    traced = memhound.get_traced_memory()[0]
    for _ in range(8):
        run_all()
    gc.collect()
    assert len(gc.get_objects()) <= objects + 5
    assert memhound.get_traced_memory()[0] <= traced + 64 * 1024
    # Bookkeeping memory comes back exactly once tracing (whose traceback
    # store legitimately grows) is off.
    memhound.stop()
    bookkeeping = _core.get_stats()["bookkeeping_bytes"]
    for _ in range(2):
        run_all()
    assert _core.get_stats()["bookkeeping_bytes"] == bookkeeping


def test_graph_memory_is_freed():
    before = _core.get_stats()["bookkeeping_bytes"]
    graph = _core.heap_graph(())
    info = _core.heap_graph_info(graph)
    assert info["nodes"] > 1000 and info["memory"] > 0
    assert _core.get_stats()["bookkeeping_bytes"] >= before + info["memory"]
    _core.heap_graph_release(graph)
    assert _core.get_stats()["bookkeeping_bytes"] == before
    with pytest.raises(ValueError):
        _core.heap_graph_info(graph)


def test_out_of_memory_raises_and_recovers():
    for after in (0, 1, 3, 10, 50):
        _core._inject_alloc_failures(after)
        try:
            heap.unreachable_by_site()
            memhound.why_alive(CACHE)
            memhound.census()
        except MemoryError:
            pass
        finally:
            _core._inject_alloc_failures(-1)
    assert memhound.why_alive(CACHE)[-1]["object"] == f"{__name__}.CACHE"


def test_annotates_a_real_leak_report():
    """End to end: LeakCheck finds the site, annotate_report says who
    holds it."""
    baseline = heap.census()
    with memhound.LeakCheck(min_generations=3) as check:
        for i in range(30):
            CACHE._store[f"req-{i}"] = Request()
            check.checkpoint(force=True)
        report = check.report()
        leaks = [leak for leak in report["leaks"] if leak["kind"] == "python"]
        assert leaks, report["leaks"]
        heap.annotate_report(report, baseline=baseline)
    ours = [
        leak
        for leak in leaks
        if leak["types"] and leak["types"][0]["type"] == f"{__name__}.Request"
    ]
    assert len(ours) == 1
    leak = ours[0]
    assert leak["types"][0]["count"] == 30
    assert leak["retention_path"][-2]["object"] == f"{__name__}.CACHE._store"
    assert leak["retained_bytes"] >= leak["types"][0]["bytes"]
