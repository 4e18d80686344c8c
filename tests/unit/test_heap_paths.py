"""memhound.why_alive: shortest retention paths and their labels."""

import ctypes
import functools
import gc
import threading

import pytest

import memhound
from memhound import heap

MOD = __name__


class Thing:
    pass


class Holder:
    registry: dict = {}

    def __init__(self):
        self.items = []

    def callback(self):
        return self


class Slotted:
    __slots__ = ("slot",)


HOLD = {}


@pytest.fixture(autouse=True)
def _clean():
    HOLD.clear()
    Holder.registry.clear()
    yield
    HOLD.clear()
    Holder.registry.clear()


def objects_of(path):
    return [step["object"] for step in path]


def last(path):
    return path[-1]


def test_module_global_and_dict_key():
    target = Thing()
    HOLD["req-991"] = [target]
    path = memhound.why_alive(target)
    assert path[0] == {"via": "module", "object": MOD, "type": "dict"}
    assert path[1]["via"] == "module global"
    assert path[1]["object"] == f"{MOD}.HOLD"
    assert path[2] == {
        "via": "dict value",
        "object": f"{MOD}.HOLD['req-991']",
        "type": "list",
    }
    assert last(path) == {
        "via": "list item",
        "object": f"{MOD}.HOLD['req-991'][0]",
        "type": f"{MOD}.Thing",
    }


def test_dict_key_labels_are_safe_reprs():
    class Evil:
        def __repr__(self):  # must never be called
            raise AssertionError("user __repr__ called")

        def __hash__(self):
            return 1

    target = Thing()
    HOLD[(1, "a", 2.5, b"x", None)] = target
    assert last(memhound.why_alive(target))["object"] == (
        f"{MOD}.HOLD[(1, 'a', 2.5, b'x', None)]"
    )
    HOLD.clear()
    evil = Evil()
    HOLD[evil] = target
    obj = last(memhound.why_alive(target))["object"]
    assert obj.startswith(f"{MOD}.HOLD[<{MOD}.") and "Evil object at 0x" in obj
    HOLD.clear()
    HOLD["k" * 500] = target
    obj = last(memhound.why_alive(target))["object"]
    assert len(obj) < 200 and "..." in obj


def test_object_as_dict_key():
    target = Thing()
    HOLD[target] = 1
    path = memhound.why_alive(target)
    assert last(path)["via"] == "dict key"
    assert last(path)["object"].startswith(f"{MOD}.HOLD<key <{MOD}.Thing object")


def test_a_step_into_a_dict_key_reads_left_to_right():
    # An int inside a tuple key (the demo's leaking ints): the steps after
    # the key index into it, as the program would.
    target = int("4242")  # a fresh object: only the key and this frame hold it
    HOLD[(7, target)] = "value"
    path = memhound.why_alive(target)
    assert path[-2]["via"] == "dict key"
    assert last(path) == {
        "via": "tuple item",
        "object": f"{MOD}.HOLD<key (7, 4242)>[1]",
        "type": "int",
    }


def test_class_attribute():
    target = Thing()
    Holder.registry["x"] = target
    path = memhound.why_alive(target)
    assert [s["via"] for s in path[1:]] == [
        "module global",
        "class attribute",
        "dict value",
    ]
    assert last(path)["object"] == f"{MOD}.Holder.registry['x']"


def test_instance_attribute_and_slots():
    holder = Holder()
    target = Thing()
    holder.items.append(target)
    HOLD["h"] = holder
    path = memhound.why_alive(target)
    assert objects_of(path)[-2:] == [
        f"{MOD}.HOLD['h'].items",
        f"{MOD}.HOLD['h'].items[0]",
    ]
    assert path[-2]["via"] == "attribute"
    slotted = Slotted()
    slotted.slot = target
    HOLD.clear()
    HOLD["s"] = slotted
    path = memhound.why_alive(target)
    assert last(path)["object"] == f"{MOD}.HOLD['s'].slot"
    assert last(path)["via"] == "attribute"


def test_instance_dict_with_materialized_dict():
    holder = Holder()
    vars(holder)  # a real __dict__ object: the edge goes through it
    holder.extra = target = Thing()
    HOLD["h"] = holder
    assert last(memhound.why_alive(target))["object"] == f"{MOD}.HOLD['h'].extra"


def test_tuple_index_and_set_member():
    target = Thing()
    HOLD["t"] = (0, 1, target)
    path = memhound.why_alive(target)
    assert last(path) == {
        "via": "tuple item",
        "object": f"{MOD}.HOLD['t'][2]",
        "type": f"{MOD}.Thing",
    }
    HOLD.clear()
    HOLD["s"] = {target}
    path = memhound.why_alive(target)
    assert last(path)["via"] == f"member of set {MOD}.HOLD['s']"
    assert "Thing object at 0x" in last(path)["object"]


def make_closure():
    cache = [Thing()]

    def handler():
        return cache

    return handler


def test_closure_cell():
    handler = make_closure()
    HOLD["handler"] = handler
    target = handler()[0]
    path = memhound.why_alive(target)
    assert path[-2] == {
        "via": "closure variable 'cache'",
        "object": f"{MOD}.HOLD['handler'].__closure__[0].cell_contents",
        "type": "list",
    }


def test_bound_method_callback():
    holder = Holder()
    HOLD["callbacks"] = [holder.callback]
    path = memhound.why_alive(holder)
    assert path[-2]["type"] == "method"
    assert last(path) == {
        "via": "attribute",
        "object": f"{MOD}.HOLD['callbacks'][0].__self__",
        "type": f"{MOD}.Holder",
    }


def test_functools_partial_member():
    target = Thing()
    HOLD["p"] = functools.partial(print, target)
    path = memhound.why_alive(target)
    assert path[-2]["object"] == f"{MOD}.HOLD['p'].args"
    assert last(path)["object"] == f"{MOD}.HOLD['p'].args[0]"


def test_thread_local_storage():
    # A threading.local keeps one attribute dict per thread in a table keyed
    # by an object standing for the thread: plumbing a user never writes.
    # The path reads as the program does, `local.batch`, in whichever
    # thread set it.
    local = threading.local()
    local.batch = target = Thing()
    HOLD["local"] = local
    found = {}

    def in_worker():
        local.batch = Thing()  # held by the thread-local only
        found["worker_path"] = memhound.why_alive(local.batch)

    worker = threading.Thread(target=in_worker, name="worker-3")
    worker.start()
    worker.join()
    try:
        main_path = memhound.why_alive(target)
        assert main_path[1]["object"] == f"{MOD}.HOLD"
        assert last(main_path)["object"] == f"{MOD}.HOLD['local'].batch"
        # From the worker, this test's frame is running: its variable
        # `local` is the shorter way.
        assert last(found["worker_path"])["object"] == "local.batch"
        for path in (main_path, found["worker_path"]):
            assert last(path)["via"] == "thread-local attribute"
            assert last(path)["type"] == f"{MOD}.Thing"
            assert not any("weakref" in s["object"] for s in path)
            assert not any("dummy" in s["object"] for s in path)
    finally:
        del HOLD["local"]


def test_running_frame_local_of_another_thread():
    ready = threading.Event()
    done = threading.Event()
    box = []

    def handle():
        batch = [Thing()]
        box.append(batch[0])
        ready.set()
        done.wait(10)
        return batch

    worker = threading.Thread(target=handle, name="worker-2")
    worker.start()
    try:
        assert ready.wait(10)
        target = box.pop()
        path = memhound.why_alive(target)
        assert path[0]["via"] == "local of thread 'worker-2', handle()"
        assert path[0]["object"] == "batch"
        assert last(path)["object"] == "batch[0]"
    finally:
        done.set()
        worker.join()


def test_caller_frame_is_not_a_root():
    target = Thing()
    path = memhound.why_alive(target)
    # Held only by this frame, which is left out: the interpreter's
    # reference (3.11+ frames are not objects) or the frame object.
    assert "held from outside" in path[0]["via"] or "frame" in str(path)


def test_held_from_a_c_extension():
    target = Thing()
    target.inner = Thing()
    inner = target.inner
    ref = ctypes.py_object(target)
    del target
    ctypes.pythonapi.Py_IncRef(ref)  # a reference no traversal reports
    try:
        path = memhound.why_alive(inner)
        # (inner is this frame's local too, but this frame is left out and
        # the path through the C-held object is found first.)
        assert path[0]["via"].startswith("held from outside the gc graph")
        assert path[0]["type"] == f"{MOD}.Thing"
        assert last(path)["object"].endswith(".inner")
    finally:
        ctypes.pythonapi.Py_DecRef(ref)


def test_shortest_path_in_a_million_objects():
    """A target reachable by a 30-step chain and a 4-step one: the path
    found is the short one, among a million other objects."""
    big = [Thing() for _ in range(1_000_000)]
    HOLD["big"] = big
    node = target = Thing()
    chain = []
    for _ in range(30):
        outer = Thing()
        outer.next = node
        node = outer
        chain.append(outer)
    HOLD["long"] = node
    HOLD["short"] = [[[target]]]
    path = memhound.why_alive(target)
    assert last(path)["object"] == f"{MOD}.HOLD['short'][0][0][0]"
    del HOLD["short"]
    path = memhound.why_alive(target)
    assert len(path) == 2 + 1 + 30
    assert last(path)["object"] == f"{MOD}.HOLD['long']" + ".next" * 30
    del big, chain


def test_format_path():
    target = Thing()
    HOLD["x"] = target
    text = heap.format_path(memhound.why_alive(target))
    assert f"{MOD}.HOLD['x']" in text.splitlines()[-1]


def test_retained_size():
    block = [bytearray(1000) for _ in range(100)]
    HOLD["block"] = block
    retained = heap.retained_size(block)
    assert retained >= 100 * 1000
    assert retained < 100 * 1000 + 10_000
    shared = bytearray(50_000)
    HOLD["a"] = [shared]
    HOLD["b"] = [shared]
    # Held twice: neither list retains the shared buffer.
    assert heap.retained_size(HOLD["a"]) < 1000


def test_largest_retainers():
    HOLD["big"] = [bytearray(1 << 20) for _ in range(8)]
    top = heap.largest_retainers(10)
    assert top[0]["retained_bytes"] >= 8 << 20
    sizes = [t["retained_bytes"] for t in top]
    assert sizes == sorted(sizes, reverse=True)
    mine = [t for t in top if t["retention_path"][-1]["object"] == f"{MOD}.HOLD['big']"]
    assert len(mine) == 1
    assert 8 << 20 <= mine[0]["retained_bytes"] < (8 << 20) + 10_000
    assert mine[0]["type"] == "list"


def test_no_user_code_runs():
    calls = []

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            raise AttributeError(name)

        def __eq__(self, other):
            calls.append("eq")
            return False

        def __hash__(self):
            calls.append("hash")
            return 0

        @property
        def prop(self):
            calls.append("prop")

    spy = Spy()
    HOLD["spy"] = spy
    spy.x = target = Thing()
    HOLD[spy] = spy
    calls.clear()
    path = memhound.why_alive(target)
    assert last(path)["object"].endswith(".x")
    memhound.census()
    heap.largest_retainers(3)
    assert calls == []


def _subclasses_in(registry):
    """The live types a subclass registry's weak references point at."""
    return {ref() for ref in registry.values()} - {None}


def test_subclass_registries_are_the_interpreters():
    # Checks the version files' reading of where each type keeps its
    # registry (in the interpreter state for static builtin types from
    # 3.12): for every type with subclasses, the registry memhound finds
    # holds exactly what type.__subclasses__() lists.  datetime's types are
    # an extension's static types, in a table of their own on 3.13.
    import datetime

    assert type.__subclasses__(datetime.date)
    found = {
        id(t): registry for _, t, registry in heap._core.heap_subclass_registries()
    }
    seen, queue = {id(object)}, [object]
    for t in queue:
        subclasses = type.__subclasses__(t)
        if subclasses:
            assert _subclasses_in(found[id(t)]) == set(subclasses), t
        for sub in subclasses:
            if id(sub) not in seen:
                seen.add(id(sub))
                queue.append(sub)
    assert set(found) <= seen
    assert len(found) > 50  # builtin (int, dict, Exception...) and heap types


def _why_alive_of_a_registry_entry(base):
    registry = next(r for _, t, r in heap._core.heap_subclass_registries() if t is base)
    ref = next(iter(registry.values()))
    del registry
    return memhound.why_alive(ref)


def test_a_subclass_registry_is_named_not_anonymous():
    class Base:
        pass

    subclasses = [type(f"Sub{i}", (Base,), {}) for i in range(3)]
    path = _why_alive_of_a_registry_entry(Base)
    assert path[0] == {
        "via": "the interpreter's registry of a type's subclasses",
        "object": "<subclasses of Base>",
        "type": "dict",
    }
    assert path[-1]["type"] == "weakref.ReferenceType"
    assert subclasses
    # A static builtin type's registry lives in the interpreter state from
    # CPython 3.12 on: named all the same.
    assert _why_alive_of_a_registry_entry(Exception)[0]["object"] == (
        "<subclasses of Exception>"
    )


@functools.cache  # lru_cache(maxsize=None)
def cached_lookup(key):
    return [key] * 3


def test_unnamed_reference_says_whose_it_is():
    # An lru_cache keeps its results in a dict C code holds without a name:
    # the path names it after its owner.
    result = cached_lookup("k")
    try:
        path = memhound.why_alive(result)
    finally:
        cached_lookup.cache_clear()
    assert path[-2] == {
        "via": "referenced by a functools._lru_cache_wrapper object",
        "object": f"<dict in {MOD}.cached_lookup>",
        "type": "dict",
    }
    assert path[-1]["object"] == f"<dict in {MOD}.cached_lookup>['k']"


class Kept:
    pass


def _fail():
    kept_local = Kept()
    raise ValueError(type(kept_local).__name__)


def _store_error():
    try:
        _fail()
    except ValueError as error:
        HOLD["error"] = error


def test_a_stored_exception_names_the_frame_local_it_keeps():
    # A kept exception keeps its traceback, its frames and their locals.
    _store_error()
    kept = next(o for o in gc.get_objects() if type(o) is Kept)
    path = memhound.why_alive(kept)
    error = f"{MOD}.HOLD['error']"
    assert [step["object"] for step in path[-4:]] == [
        f"{error}.__traceback__",
        f"{error}.__traceback__.tb_next",
        f"{error}.__traceback__.tb_next.tb_frame",
        f"{error}.__traceback__.tb_next.tb_frame.f_locals['kept_local']",
    ], path
    assert path[-1]["via"] == "local 'kept_local' of frame _fail()"


class KeptByGenerator:
    pass


def _producer():
    payload = KeptByGenerator()
    yield 1
    yield payload


def test_a_suspended_generator_names_its_local():
    # 3.11+ embed the generator's frame (no frame object between them);
    # 3.10 reaches the same local through gi_frame.  The same path.
    gen = _producer()
    next(gen)
    HOLD["gen"] = gen
    del gen
    kept = next(o for o in gc.get_objects() if type(o) is KeptByGenerator)
    path = memhound.why_alive(kept)
    assert path[-1] == {
        "via": "local 'payload' of frame _producer()",
        "object": f"{MOD}.HOLD['gen'].gi_frame.f_locals['payload']",
        "type": f"{MOD}.KeptByGenerator",
    }, path
