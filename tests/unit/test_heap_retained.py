"""Retained sizes: one object without a dominator tree, and per type."""

import random
import sys

import memhound
from memhound import _core, heap


class Leaf:
    __slots__ = ("x",)


class Holder:
    __slots__ = ("items",)


class Node:
    __slots__ = ("refs", "pad")


HOLD = {}


def _rows():
    return {r["type"]: r for r in memhound.retained_by_type(None)}


def test_retained_by_type_counts_a_type_once_under_itself():
    # l1 -> l2 -> l3 (each held only by the one before), l4 alone, all
    # reached from a list.  The type retains 4 leaves, not 3 + 2 + 1 + 1.
    l1, l2, l3, l4 = Leaf(), Leaf(), Leaf(), Leaf()
    l1.x, l2.x, l3.x, l4.x = l2, l3, None, None
    HOLD["leaves"] = [l1, l4]
    del l1, l2, l3, l4
    try:
        row = _rows()[f"{__name__}.Leaf"]
        assert row["count"] == 4
        size = row["bytes"] // 4
        assert row["bytes"] == 4 * size
        assert row["retained_bytes"] == 4 * size
    finally:
        HOLD.clear()


def test_retained_by_type_matches_retained_sizes_of_its_tops():
    # Two holders, each with its own list of 5 leaves, and one leaf that
    # both lists hold.  The shared leaf is dominated by neither holder (its
    # immediate dominator is the list of holders), so it is in neither
    # holder's retained size nor in the Holder type's: the type's value is
    # the sum over its objects that no other Holder dominates (Eclipse
    # MAT's definition, a lower bound of "freed if every Holder went").
    shared = Leaf()
    shared.x = None
    holders = []
    for _ in range(2):
        h = Holder()
        h.items = [Leaf() for _ in range(5)] + [shared]
        for leaf in h.items:
            leaf.x = None
        holders.append(h)
    HOLD["holders"] = holders
    del h, leaf, shared
    try:
        rows = _rows()
        hrow = rows[f"{__name__}.Holder"]
        lrow = rows[f"{__name__}.Leaf"]
        assert hrow["count"] == 2 and lrow["count"] == 11
        leaf = lrow["bytes"] // 11
        each = [heap.retained_size(h) for h in holders]
        # a holder retains itself, its list and its 5 own leaves
        assert each[0] == each[1]
        assert each[0] > 5 * leaf + hrow["bytes"] // 2
        assert hrow["retained_bytes"] == sum(each)
        # no leaf dominates another: the Leaf type retains the 11 leaves
        assert lrow["retained_bytes"] == 11 * leaf
        # a Holder's retained size is its own, its list's and its leaves'
        items = heap.retained_size(holders[0].items)
        assert each[0] == hrow["bytes"] // 2 + items
        assert items > 5 * leaf
    finally:
        HOLD.clear()


def _three_methods_agree(sample):
    """Retained sizes of sample by the dominator tree, checked against the
    three-walk answer in the same graph and the graph-free one."""
    # (graph-free first, outside any graph session: a graph holds a
    # reference to every object, which would make each one held from
    # outside)
    alone = [_core.heap_retained_alone(o) for o in sample]
    objects, labels = heap._roots()
    with heap._graph(objects) as graph:
        heap._prepare_paths(graph, objects, labels)
        one = [_core.heap_retained_one(graph, objects, o) for o in sample]
        tree = [_core.heap_retained(graph, o) for o in sample]
    assert None not in one
    assert one == tree
    assert alone == tree
    return tree


def test_retained_one_equals_the_dominator_tree():
    # A random graph with sharing and cycles, held by a module global; for
    # a sample of its nodes the three-walk answer must be the dominator
    # tree's, exactly, in the same graph.
    rng = random.Random(4)
    nodes = [Node() for _ in range(400)]
    for i, node in enumerate(nodes):
        node.pad = None
        k = rng.choice((0, 1, 1, 2, 3))
        node.refs = [nodes[rng.randrange(400)] for _ in range(k)]
        if i % 50 == 0:
            node.pad = list(range(i))  # some weight
    HOLD["entries"] = nodes[:10]
    sample = rng.sample(nodes, 40) + nodes[:5]
    del nodes
    try:
        tree = _three_methods_agree(sample)
        assert len(set(tree)) > 5  # the sample is not all alike
    finally:
        HOLD.clear()


def test_retained_one_equals_the_dominator_tree_with_shared_leaves():
    # Leaves (objects without out-edges: strings, floats) skip the
    # Lengauer-Tarjan search when they have one holder, and are placed
    # under the common dominator of their holders when they have several.
    # Random nodes hold unique leaves, leaves from a small shared pool, and
    # each other; the dominator tree must agree with the three-walk answer
    # for nodes and leaves alike.
    rng = random.Random(11)
    pool = [f"shared-{i}-" + "p" * rng.randrange(200) for i in range(12)]
    pool += [float(i) / 7 for i in range(12)]
    nodes = [Node() for _ in range(300)]
    for i, node in enumerate(nodes):
        refs = [nodes[rng.randrange(300)] for _ in range(rng.choice((0, 1, 2)))]
        refs += [rng.choice(pool) for _ in range(rng.choice((0, 1, 2, 3)))]
        if rng.random() < 0.5:
            refs.append(f"own-{i}-" + "o" * rng.randrange(300))
        rng.shuffle(refs)
        node.refs = refs
        node.pad = None
    HOLD["entries"] = nodes[:8]
    HOLD["pool"] = pool[:3]  # a few shared leaves are roots' too
    leaves = [r for n in nodes for r in n.refs if not isinstance(r, Node)]
    sample = rng.sample(nodes, 30) + rng.sample(leaves, 30) + pool[:6]
    del nodes, leaves, pool
    try:
        tree = _three_methods_agree(sample)
        assert len(set(tree[:30])) > 5 and len(set(tree[30:])) > 5
    finally:
        HOLD.clear()


def test_retained_size_of_a_shared_object_is_its_own_size():
    leaf = Leaf()
    leaf.x = None
    HOLD["a"] = [leaf]
    HOLD["b"] = [leaf]
    try:
        row = _rows()[f"{__name__}.Leaf"]
        assert heap.retained_size(leaf) == row["bytes"] // row["count"]
        assert heap.retained_size(HOLD["a"]) < heap.retained_size(HOLD)
    finally:
        HOLD.clear()


def test_retained_size_counts_holders_outside_its_reach():
    inner = [bytearray(10_000)]
    HOLD["outer"] = [inner]
    try:
        # this frame's local `inner` holds the inner list: not retained
        held = heap.retained_size(HOLD["outer"])
        del inner
        alone = heap.retained_size(HOLD["outer"])
        assert alone >= held + 10_000
        # a reference cycle through the target is retained with it
        cycle = [bytearray(5_000)]
        cycle.append([cycle])
        HOLD["cycle"] = cycle
        del cycle
        assert heap.retained_size(HOLD["cycle"]) >= 5_000
    finally:
        HOLD.clear()


def test_traced_containers_count_the_buffers_they_own():
    # A traced object's block is its header alone: the item array of a
    # list, a bytearray's bytes and a dict's tables are blocks of their own.
    # Retained sizes count them, as sys.getsizeof does.
    memhound.start()
    try:
        items = [None] * 100_000
        data = bytearray(300_000)
        table = {i: None for i in range(5_000)}
        assert heap.retained_size(items) == sys.getsizeof(items)
        assert heap.retained_size(data) == sys.getsizeof(data)
        assert heap.retained_size(table) >= sys.getsizeof(table)
    finally:
        memhound.stop()


BIG = None


def test_largest_retainers_list_locals_and_globals_not_registries():
    global BIG
    memhound.start()
    try:
        BIG = [None] * 400_000  # 3.2 MB
        local_batch = [bytes(100) for _ in range(20_000)]  # ~2.6 MB
        rows = heap.largest_retainers(2)
    finally:
        memhound.stop()
    names = [row["retention_path"][-1]["object"] for row in rows]
    assert names[0] == f"{__name__}.BIG", names
    assert rows[0]["retained_bytes"] == sys.getsizeof(BIG)
    BIG = None
    local = rows[1]["retention_path"]
    assert local[-1]["object"] == "local_batch", names
    assert local[0]["via"].startswith("local of thread 'MainThread'")
    assert rows[1]["retained_bytes"] >= 20_000 * 133
    assert local_batch


SIZEOF_CALLS = []


class SizeReporting:
    @classmethod
    def __sizeof__(cls):
        SIZEOF_CALLS.append(cls)  # user code: must never run in an analysis
        return 0


def test_sizes_never_run_a_classes_own_sizeof():
    # A class's size is type.__sizeof__'s; looking "__sizeof__" up on the
    # class itself would call this classmethod.
    memhound.start()
    try:
        heap.largest_retainers(1)
        heap.retained_by_type(1)
    finally:
        memhound.stop()
    assert SIZEOF_CALLS == []
