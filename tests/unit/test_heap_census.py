"""memhound.census / census_diff: objects and bytes per type, in C."""

import gc
import sys

import memhound
from memhound import heap


class Leaky:
    pass


KEEP = []


def test_counts_tracked_objects_exactly():
    before = memhound.census()
    KEEP.extend(Leaky() for _ in range(5000))
    after = memhound.census()
    try:
        rows = {r["type"]: r for r in memhound.census_diff(before, after)}
        row = rows[f"{__name__}.Leaky"]
        assert row["count_diff"] == 5000
        assert (
            row["bytes_diff"]
            == 5000 * after.types[f"{__name__}.Leaky"][1] // row["count"]
        )
        assert after.types[f"{__name__}.Leaky"][0] == 5000
    finally:
        KEEP.clear()


def test_counts_untracked_referents_once():
    # Floats alive already (pytest keeps each earlier test's report, with
    # its timings): the bounds below are on top of those.
    already = memhound.census().types.get("float", (0, 0))[0]
    floats = [float(i) + 0.5 for i in range(3000)]
    strings = [f"s{i}-{'x' * 20}" for i in range(2000)]
    shared = [floats, floats]  # the floats are referenced once each
    before_floats = sum(
        1 for o in gc.get_objects() if isinstance(o, list) and o is floats
    )
    assert before_floats == 1
    c = memhound.census()
    assert c.types["float"][0] >= already + 3000
    assert c.types["float"][0] < already + 3000 + 2000
    assert c.types["str"][0] >= 2000
    assert c.types["float"][1] >= 3000 * sys.getsizeof(0.5)
    assert len(strings) == 2000
    del shared, strings


def test_untracked_referents_counted_once_across_many_chunks():
    # 200,000 complex numbers span several MiB of the address space (many
    # chunks of the census's seen-bitmap); each is held by two lists and a tuple of
    # atoms (untracked), and must be counted once.  complex, not float:
    # pytest's own floats (timings) come and go between two censuses.
    n = 200_000
    gc.collect()  # garbage of earlier tests goes before, not between
    before = memhound.census()
    numbers = [complex(i, 0.25) for i in range(n)]
    again = list(reversed(numbers))
    atoms = tuple(numbers[::2])
    gc.collect()  # untracks the tuple of atoms
    assert not gc.is_tracked(atoms)
    KEEP.append((numbers, again))
    try:
        after = memhound.census()
        rows = {r["type"]: r for r in memhound.census_diff(before, after)}
        assert rows["complex"]["count_diff"] == n
        assert rows["complex"]["bytes_diff"] == n * sys.getsizeof(0.25j)
        assert len(atoms) == n // 2
    finally:
        KEEP.clear()
        del numbers, again, atoms
        gc.collect()


def test_bytes_match_getsizeof_for_builtins():
    items = [{"a": i} for i in range(1000)]
    KEEP.append(items)
    try:
        c0 = memhound.census()
        items.extend({"a": i} for i in range(1000))
        c1 = memhound.census()
        rows = {r["type"]: r for r in memhound.census_diff(c0, c1)}
        want = sum(sys.getsizeof(d) + 16 for d in items[1000:])
        # dicts are tracked and carry the 16-byte GC header (3.12+: the
        # pre-header may be larger, never smaller).
        # (+1 or 2: c0 itself keeps a dict of its rows alive.)
        assert 1000 <= rows["dict"]["count_diff"] <= 1002
        assert rows["dict"]["bytes_diff"] >= want - 1000 * 16
    finally:
        KEEP.clear()


def test_census_diff_order_and_shape():
    a = heap.Census({"x": (1, 10), "y": (5, 50), "z": (1, 1)})
    b = heap.Census({"x": (3, 30), "y": (5, 50), "w": (1, 100)})
    diff = memhound.census_diff(a, b)
    assert [r["type"] for r in diff] == ["w", "x", "z"]
    assert diff[0] == {
        "type": "w",
        "count": 1,
        "bytes": 100,
        "count_diff": 1,
        "bytes_diff": 100,
    }
    assert diff[-1]["count_diff"] == -1
    assert memhound.census_diff(a, b, limit=1) == diff[:1]
    assert a.count == 7 and a.bytes == 61
    assert a.top(1) == [("y", 5, 50)]


def test_census_type_names_are_qualified():
    class Inner:
        pass

    KEEP.append(Inner())
    try:
        names = memhound.census().types
        assert (
            f"{__name__}.test_census_type_names_are_qualified.<locals>.Inner" in names
        )
        assert "dict" in names and "builtins.dict" not in names
    finally:
        KEEP.clear()


def test_census_restores_gc_state():
    assert gc.isenabled()
    memhound.census()
    assert gc.isenabled()
    gc.disable()
    try:
        memhound.census()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_counts_what_untracked_containers_hold():
    # The collector untracks dicts and tuples that hold only atoms; the
    # strings in them are the program's all the same.
    gc.collect()  # garbage of earlier tests must not die in between
    before = memhound.census()
    records = [{"name": f"user-{i}-{'y' * 30}"} for i in range(3000)]
    pairs = [(f"key-{i}-{'z' * 30}", i * 1.5) for i in range(2000)]
    assert not gc.is_tracked(records[0]) and not gc.is_tracked(pairs[0])
    now = memhound.census()
    try:
        diff = {r["type"]: r for r in memhound.census_diff(before, now)}
        assert diff["str"]["count_diff"] >= 5000
        assert diff["float"]["count_diff"] >= 2000
    finally:
        del records, pairs


def test_leak_in_untracked_dicts_has_types_and_holder():
    store = []
    with memhound.LeakCheck() as check:
        for i in range(12):
            for j in range(200):
                store.append({"text": f"row {i} {j} " + "q" * 40})
            check.checkpoint(force=True)
    report = check.report()
    by_type = {}
    for leak in report["leaks"]:
        for row in leak["types"]:
            by_type[row["type"]] = by_type.get(row["type"], 0) + row["count"]
    assert by_type.get("str", 0) >= 2000, report["leaks"]
    holders = [
        leak["retention_path"][-1]["object"]
        for leak in report["leaks"]
        if leak["retention_path"]
    ]
    assert any("['text']" in holder for holder in holders), holders


class Counted(int):
    pass


class Flag(int):
    __slots__ = ()


def test_int_sizes_match_getsizeof_for_every_magnitude():
    # int.__sizeof__ counts digits, and their layout changed in 3.12 (a
    # tag word, at least one digit): memhound's sizes must agree with
    # sys.getsizeof for zero, one-, two- and many-digit ints, negative ones,
    # bool and int subclasses (which inherit int.__sizeof__).
    values = [0, 1, 1000, 2**30 - 1, 2**30, 2**40, -(2**40), 10**40, -(10**80)]
    values += [True, Counted(0), Counted(2**40), Flag(10**40)]
    for v in values:
        assert heap.retained_size(v) == sys.getsizeof(v), repr(v)
    # The census sizes the same way (types of their own, so nothing else
    # of the process moves their rows).
    for type_name, make in [
        (f"{__name__}.Counted", lambda: [Counted(i << 40) for i in range(500)]),
        (f"{__name__}.Flag", lambda: [Flag(-i) for i in range(500)]),
    ]:
        before = memhound.census()
        made = make()
        KEEP.append(made)
        try:
            after = memhound.census()
            rows = {r["type"]: r for r in memhound.census_diff(before, after)}
            assert rows[type_name]["count_diff"] == len(made)
            assert rows[type_name]["bytes_diff"] == sum(map(sys.getsizeof, made))
        finally:
            KEEP.clear()
            del made
