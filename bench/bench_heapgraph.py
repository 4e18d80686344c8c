"""Heap-graph queries: memhound against objgraph, guppy3 and pympler.

One process, one synthetic heap (default 1 M objects: N/2 instances, each
with a list holding an int and a str; plus a depth-30 chain of instances
from a module global to a target).  Each operation runs --repeat times,
the tools interleaved (A B A B ...), and the median is printed with the
runs.  Extra memory: the peak RSS (VmHWM, reset through
/proc/self/clear_refs) over the RSS before one full memhound analysis
(graph build, paths, dominators), and the bookkeeping memory memhound holds
before and after it.

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/bench_heapgraph.py --objects 1000000 --repeat 3

Comparison tools are optional: a missing one is reported and skipped.
retained_size() needs no graph (it walks what the object reaches), so its
rows measure that walk; the dominator-tree row measures the tree of the
whole graph.
"""

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections import Counter

import memhound
from memhound import _core, heap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fmt_load, loadavg, machine_info, machine_line  # noqa: E402

CHAIN = None  # the head of the depth-30 chain (a module global)
HEAP = None


class Node:
    __slots__ = ("payload", "next")


def build_heap(n):
    nodes = []
    for i in range(n // 2):
        node = Node()
        node.payload = [i + 1000, f"s{i}"]
        node.next = None
        nodes.append(node)
    return nodes


def build_chain(depth):
    target = Node()
    target.payload = None
    target.next = None
    node = target
    for _ in range(depth):
        outer = Node()
        outer.payload = None
        outer.next = node
        node = outer
    return node, target


def timed(func, *args):
    t0 = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - t0, result


def counter_census():
    return Counter(type(o) for o in gc.get_objects())


def pympler_census(muppy, summary):
    return summary.summarize(muppy.get_objects())


def guppy_domisize(hp, obj):
    return hp.iso(obj).domisize


def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def header(args):
    print(f"- command: `{' '.join(sys.argv)}`")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} (UTC)")
    print(f"- machine: {machine_line(machine_info(platform.python_version()))}")
    print(f"- load average at start: {fmt_load(loadavg())}")


def tools():
    found = {}
    try:
        import objgraph

        found["objgraph"] = objgraph
    except ImportError:
        print("- objgraph: not installed, skipped")
    try:
        from guppy import hpy

        found["guppy3"] = hpy
    except ImportError:
        print("- guppy3: not installed, skipped")
    try:
        from pympler import muppy, summary

        found["pympler"] = (muppy, summary)
    except ImportError:
        print("- pympler: not installed, skipped")
    return found


def main():
    global CHAIN, HEAP
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--slow-repeat",
        type=int,
        default=1,
        help="repetitions of the slow censuses (guppy3 heap(), pympler)",
    )
    args = parser.parse_args()
    header(args)
    found = tools()
    HEAP = build_heap(args.objects)
    CHAIN, target = build_chain(30)
    gc.collect()
    gc.disable()
    ntracked = len(gc.get_objects())
    print(f"- heap: {ntracked} objects tracked by gc")
    times = {}

    def record(name, seconds):
        times.setdefault(name, []).append(seconds)

    # --- operations, interleaved -----------------------------------------
    for rep in range(args.repeat):
        slow = rep < args.slow_repeat
        record("census: memhound.census()", timed(memhound.census)[0])
        record(
            "census: Counter(type(o) for o in gc.get_objects())",
            timed(counter_census)[0],
        )
        if "objgraph" in found:
            record(
                "census: objgraph.typestats()", timed(found["objgraph"].typestats)[0]
            )
        if "pympler" in found and slow:
            muppy, summary = found["pympler"]
            record(
                "census: pympler summarize(muppy.get_objects())",
                timed(pympler_census, muppy, summary)[0],
            )
        if "guppy3" in found and slow:
            hp = found["guppy3"]()
            record("census: guppy3 hpy().heap()", timed(hp.heap)[0])
            del hp

        # memhound phases, one session
        t, graph = timed(_core.heap_graph, ())
        record("graph build (heap_graph)", t)
        objects, labels = heap._roots()
        record(
            "paths: BFS from roots (heap_prepare_paths)",
            timed(heap._prepare_paths, graph, objects, labels, target)[0],
        )
        record(
            "path query (heap_path, graph built)",
            timed(_core.heap_path, graph, target)[0],
        )
        record(
            "dominator tree + retained sizes (heap_retained, first)",
            timed(_core.heap_retained, graph, CHAIN)[0],
        )
        info = _core.heap_graph_info(graph)
        _core.heap_graph_release(graph)
        del objects, labels

        record(
            "first why_alive(target), depth-30 chain, build included",
            timed(memhound.why_alive, target)[0],
        )
        if "objgraph" in found:
            og = found["objgraph"]
            t, chain = timed(og.find_backref_chain, target, og.is_proper_module)
            record("objgraph.find_backref_chain(target), depth-30 chain", t)
            del chain
        for what, obj in (
            ("the chain head", CHAIN),
            ("the list of all instances", HEAP),
        ):
            record(
                f"retained size of {what}: memhound retained_size()",
                timed(heap.retained_size, obj)[0],
            )
            if "guppy3" in found:
                hp = found["guppy3"]()
                record(
                    f"retained size of {what}: guppy3 iso(obj).domisize",
                    timed(guppy_domisize, hp, obj)[0],
                )
                del hp
        gc.collect()

    # --- memory ----------------------------------------------------------
    gc.collect()
    bookkeeping_before = _core.get_stats()["bookkeeping_bytes"]
    rss_before = rss_kib("VmRSS")
    can_reset = reset_peak_rss()
    graph = _core.heap_graph(())
    objects, labels = heap._roots()
    heap._prepare_paths(graph, objects, labels)
    _core.heap_retained(graph, CHAIN)
    _core.heap_sites(graph, [1], True)
    held = _core.heap_graph_info(graph)
    _core.heap_graph_release(graph)
    peak = rss_kib("VmHWM")
    del objects, labels
    bookkeeping_after = _core.get_stats()["bookkeeping_bytes"]

    print()
    print(
        f"Graph: {info['nodes']} nodes ({info['tracked']} tracked), "
        f"{info['edges']} edges"
    )
    print()
    print("| operation | median ms | ms per million nodes | runs (ms) |")
    print("| --- | --- | --- | --- |")
    per_m = 1e6 / info["nodes"]
    for name, values in times.items():
        med = statistics.median(values) * 1e3
        runs = ", ".join(f"{v * 1e3:.3g}" for v in values)
        print(f"| {name} | {med:.3g} | {med * per_m:.3g} | {runs} |")
    print()
    n = held["nodes"]
    print(
        f"- memhound bookkeeping held by the graph after paths + "
        f"dominators + sites: {held['memory']} bytes = "
        f"{held['memory'] / n:.1f} bytes per node (no gc.get_objects() list: "
        f"the collector's lists are walked in place)"
    )
    if can_reset:
        print(
            f"- peak RSS over RSS before one full analysis: "
            f"{(peak - rss_before) * 1024 / n:.1f} bytes per node "
            f"({(peak - rss_before) / 1024:.1f} MiB)"
        )
    else:
        print("- peak RSS: /proc/self/clear_refs not writable, not measured")
    print(
        f"- bookkeeping bytes before / after the analysis: "
        f"{bookkeeping_before} / {bookkeeping_after}"
    )
    print(f"- load average at end: {fmt_load(loadavg())}")


if __name__ == "__main__":
    main()
