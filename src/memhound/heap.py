"""Who holds it: census, retention paths, retained size and cycles.

The work is done in C (memhound._core, heapgraph*.c): a graph of every
object the collector tracks, plus the untracked objects they reference, is
built once per query session by walking tp_traverse; no user Python code
runs while it is built or queried.  This module opens and closes sessions
and shapes the results.  See docs/heap.md.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

from memhound import _core

__all__ = [
    "Census",
    "annotate_report",
    "census",
    "census_diff",
    "format_path",
    "largest_retainers",
    "retained_by_type",
    "retained_size",
    "unreachable_by_site",
    "why_alive",
]

# memhound's own source files: their frames are not the program's.
_PACKAGE = os.path.dirname(__file__) + os.sep
_OUTSIDE = (
    "held from outside the gc graph (a C extension, C code or the "
    "interpreter holds a reference)"
)
_GARBAGE = "unreachable: garbage in a reference cycle (gc would free it)"


class _graph:
    """A heap graph for one query session, released on exit (`with
    _graph(*skip) as graph`; the objects of skip are left out).

    The collector is paused meanwhile: the graph holds a reference to every
    object, so a collection could free nothing and would only cost time,
    and builtin __sizeof__ calls made while sizing nodes must not run
    finalizers.
    """

    __slots__ = ("_skip", "_graph", "_was_enabled")

    def __init__(self, *skip):
        self._skip = skip
        self._graph = None
        self._was_enabled = False

    def __enter__(self):
        self._was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._graph = _core.heap_graph(self._skip)
        except BaseException:
            if self._was_enabled:
                gc.enable()
            raise
        return self._graph

    def __exit__(self, *exc):
        graph, self._graph = self._graph, None
        try:
            _core.heap_graph_release(graph)
        finally:
            if self._was_enabled:
                gc.enable()


def unreachable_by_site() -> dict[int, tuple[int, int]]:
    """{site (traceback index): (bytes, blocks)} of the traced objects that
    are unreachable garbage right now: reference cycles that nothing outside
    them holds, which the collector would free.  Computed the collector's
    way (references from outside = refcount minus references seen), without
    running gc.collect() or any finalizer.  {} when not tracing."""
    if not _core.is_tracing():
        return {}
    with _graph() as graph:
        return _core.heap_unreachable_by_site(graph)


# ---- roots -----------------------------------------------------------------


def _roots(skip_frames=()):
    """(objects, labels): the labelled roots of the retention paths, in
    search order.  First the program's structure: module globals (each
    module's __dict__, read in C) and the interpreter's registries of each
    type's subclasses (dicts of weak references that C holds, which would
    otherwise show as anonymous).  Then the locals of every thread's
    running frames (memhound's own frames, anywhere in the package, and
    skip_frames left out: the report being built is not a retainer of the
    program's).  A label is ("module", name), ("registry", type name) or
    ("local", where, name)."""
    objects = []
    labels = []
    for name, namespace in _core.heap_module_dicts():
        objects.append(namespace)
        labels.append(("module", name))
    namespaces = {id(namespace) for namespace in objects}
    for name, _type, registry in _core.heap_subclass_registries():
        objects.append(registry)
        labels.append(("registry", name))
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        thread = names.get(ident, str(ident))
        while frame is not None:
            if not frame.f_code.co_filename.startswith(_PACKAGE) and not any(
                frame is s for s in skip_frames
            ):
                _add_locals(frame, thread, namespaces, objects, labels)
            frame = frame.f_back
        del frame
    return objects, labels


def _add_locals(frame, thread, namespaces, objects, labels):
    """Add frame's locals as roots, unless they are a module's globals (a
    module's top-level code runs with its globals for locals: they are
    roots already, named as module globals, app.cache)."""
    local_vars = frame.f_locals
    if local_vars is frame.f_globals and id(local_vars) in namespaces:
        return
    where = f"thread {thread!r}, {frame.f_code.co_name}()"
    for name, value in list(local_vars.items()):
        objects.append(value)
        labels.append(("local", where, name))


def _prepare_paths(graph, objects, labels, *last):
    """Shortest paths from the roots (and then from `last`, why_alive's
    target).  The roots before the first local are the program's
    structure: never listed as retainers, while frame locals are data."""
    structural = next(
        (i for i, label in enumerate(labels) if label[0] == "local"), len(labels)
    )
    _core.heap_prepare_paths(graph, objects, structural, *last)


_FRAME_OF = {
    "generator": ".gi_frame",
    "coroutine": ".cr_frame",
    "async_generator": ".ag_frame",
}


def _compose(root, steps, labels):
    """The user-facing path: [{"via", "object", "type"}] from the C path
    (root index, [(kind, text, index, ident, type name)])."""
    first_type = steps[0][4]
    context = None  # what the dict being indexed is the __dict__ of
    if root >= 0 and labels[root][0] == "module":
        via, expr, context = "module", labels[root][1], "module"
    elif root >= 0 and labels[root][0] == "registry":
        via = "the interpreter's registry of a type's subclasses"
        expr = f"<subclasses of {labels[root][1]}>"
    elif root >= 0:
        via, expr = f"local of {labels[root][1]}", labels[root][2]
    elif root == -1:
        via, expr = _OUTSIDE, f"<{first_type} object>"
    else:
        via, expr = _GARBAGE, f"<{first_type} object>"
    out = [{"via": via, "object": expr, "type": first_type, "_show": True}]
    closure_name = None
    for kind, text, index, ident, tname in steps[1:]:
        show = True
        holder_type = out[-1]["type"]
        if kind == "own_dict":
            context = text
            expr = f"{expr}.__dict__"
            via = f"{text} __dict__"
            show = False
        elif kind == "dict_value":
            if context is not None and ident:
                via = {
                    "module": "module global",
                    "class": "class attribute",
                    "thread-local": "thread-local attribute",
                }.get(context, "attribute")
                expr = f"{expr.removesuffix('.__dict__')}.{text}"
            else:
                via = "dict value"
                expr = f"{expr}[{text!r}]" if ident else f"{expr}[{text}]"
        elif kind == "dict_key":
            # Not Python (a key can't be indexed by itself), but steps into
            # the key still read left to right: `cache<key (7, 1)>[1]`.
            via = "dict key"
            expr = f"{expr}<key {text}>"
        elif kind == "index":
            via = f"{holder_type} item"
            expr = f"{expr}[{index}]"
        elif kind == "set":
            via = f"member of {holder_type} {expr}"
            expr = text
        elif kind == "attr":
            via = "class attribute" if holder_type == "type" else "attribute"
            expr = f"{expr}.{text}"
            show = text != "__closure__"
        elif kind == "closure":
            closure_name = text
            via = f"closure cell {text!r}"
            expr = f"{expr}[{index}]"
            show = False
        elif kind == "cell":
            via = (
                f"closure variable {closure_name!r}"
                if closure_name is not None
                else "cell contents"
            )
            expr = f"{expr}.cell_contents"
            closure_name = None
        elif kind == "thread_data":
            # One thread's attributes of a threading.local: `local.name`.
            via = "one thread's attributes of a threading.local"
            show = False
        elif kind == "frame":
            function, _, variable = text.partition(" ")
            if variable and not expr.startswith("<"):
                # A generator or coroutine holds its frame's locals itself.
                frame = _FRAME_OF.get(holder_type, "")
                via = f"local {variable!r} of frame {function}"
                expr = f"{expr}{frame}.f_locals[{variable!r}]"
            else:
                via = f"local of frame {function}"
                expr = f"<{tname} object>"
        else:
            # A reference C code keeps without a name (an lru_cache's dict):
            # say whose it is, as the name of what follows builds on it.
            via = f"referenced by a {text} object"
            owner = "object" if expr.startswith("<") else f"in {expr}"
            expr = f"<{tname} {owner}>"
        if kind not in ("own_dict", "dict_value", "thread_data"):
            context = None
        elif kind == "dict_value":
            context = None
        out.append({"via": via, "object": expr, "type": tname, "_show": show})
    out[-1]["_show"] = True
    return [
        {"via": s["via"], "object": s["object"], "type": s["type"]}
        for s in out
        if s["_show"]
    ]


def format_path(path) -> str:
    """One line per step of a retention path, root first."""
    return "\n".join(f"{s['object']}  ({s['via']}; {s['type']})" for s in path)


def why_alive(obj) -> list[dict]:
    """The shortest chain of references that keeps obj alive, root first:
    a list of {"via": how the step holds the next, "object": the object as
    a user would write it, "type": its type}.

    Roots are module globals, then the locals of running frames of every
    thread (the frame calling why_alive is left out: it holds obj); the
    interpreter's registries of each type's subclasses come between.  When
    no labelled root reaches obj, the path starts at an object held from
    outside the graph (C code) or says that obj is unreachable garbage.
    Builds the heap graph once (see docs/heap.md); runs no user code."""
    caller = sys._getframe(1)
    objects, labels = _roots(skip_frames=(caller,))
    del caller
    with _graph(objects) as graph:
        _prepare_paths(graph, objects, labels, obj)
        found = _core.heap_path(graph, obj)
        if found is None:
            for i, root in enumerate(objects):
                if root is obj:
                    return _compose(
                        i, [("root", "", 0, False, _type_name(obj))], labels
                    )
            return [
                {
                    "via": "not in the heap graph: referenced only from "
                    "outside it (C code or the interpreter)",
                    "object": f"<{_type_name(obj)} object>",
                    "type": _type_name(obj),
                }
            ]
        root, steps = found
        return _compose(root, steps, labels)


def _type_name(obj) -> str:
    tp = type(obj)
    module = tp.__module__
    if module == "builtins":
        return tp.__qualname__
    return f"{module}.{tp.__qualname__}"


# ---- census ----------------------------------------------------------------


class Census:
    """Objects and bytes per type at one moment: every object the collector
    tracks, plus the untracked objects (ints, floats, strings, and the
    dicts and tuples of atoms the collector untracks, with what they hold)
    reachable from them, each counted once.  Bytes are sys.getsizeof()'s
    view (no user __sizeof__ is called).  Take one with census() or
    Census.take(); compare two with census_diff().

    types: {type name: (count, bytes)}; time: when it was taken (epoch s).
    """

    __slots__ = ("types", "time")

    def __init__(self, types: dict[str, tuple[int, int]], time: float = 0.0):
        self.types = types
        self.time = time

    def __repr__(self) -> str:
        return (
            f"<Census {len(self.types)} types, {self.count} objects, "
            f"{self.bytes} bytes>"
        )

    @classmethod
    def take(cls) -> Census:
        return census()

    @property
    def count(self) -> int:
        return sum(c for c, _ in self.types.values())

    @property
    def bytes(self) -> int:
        return sum(b for _, b in self.types.values())

    def top(self, n: int = 10) -> list[tuple[str, int, int]]:
        """(type, count, bytes) of the n types with the most bytes."""
        rows = sorted(self.types.items(), key=lambda kv: (-kv[1][1], kv[0]))
        return [(name, c, b) for name, (c, b) in rows[:n]]


def census() -> Census:
    """A Census of the heap now (built in C; see Census)."""
    return Census(_core.heap_census(()), time.time())


def census_diff(old: Census, new: Census, limit: int | None = None) -> list[dict]:
    """Types whose count or bytes changed from old to new, the largest
    growth in bytes first: [{"type", "count", "bytes", "count_diff",
    "bytes_diff"}] (count and bytes are new's)."""
    rows = []
    for name in old.types.keys() | new.types.keys():
        c0, b0 = old.types.get(name, (0, 0))
        c1, b1 = new.types.get(name, (0, 0))
        if c0 != c1 or b0 != b1:
            rows.append(
                {
                    "type": name,
                    "count": c1,
                    "bytes": b1,
                    "count_diff": c1 - c0,
                    "bytes_diff": b1 - b0,
                }
            )
    rows.sort(key=lambda r: (-r["bytes_diff"], -r["count_diff"], r["type"]))
    return rows if limit is None else rows[:limit]


# ---- retained size ---------------------------------------------------------


def retained_size(obj) -> int:
    """Bytes that would be freed if obj went away: its own size plus that
    of every object only reachable through it (what obj dominates in the
    heap graph).  Computed from obj's reach alone, without the graph: an
    object obj reaches whose reference count exceeds the references it
    gets from obj's reach is held from elsewhere, with what it reaches."""
    return _core.heap_retained_alone(obj)


def retained_by_type(n: int | None = 10) -> list[dict]:
    """Per type, the bytes that would be freed if every object of the type
    went (Eclipse MAT's "retained heap" of a class: the retained sizes of
    the type's objects that no other object of the type dominates), the
    largest first: [{"type", "count", "bytes", "retained_bytes"}], the
    first n (all when n is None)."""
    objects, labels = _roots()
    with _graph(objects) as graph:
        _prepare_paths(graph, objects, labels)
        return _by_type(graph, n)


def _by_type(graph, n):
    rows = _core.heap_retained_by_type(graph)
    return [
        {"type": name, "count": count, "bytes": nbytes, "retained_bytes": retained}
        for name, count, nbytes, retained in (rows if n is None else rows[:n])
    ]


def largest_retainers(n: int = 10) -> list[dict]:
    """The n objects with the largest retained sizes (modules, classes and
    their namespaces left out): [{"type", "bytes", "retained_bytes",
    "retention_path"}]."""
    objects, labels = _roots()
    with _graph(objects) as graph:
        _prepare_paths(graph, objects, labels)
        return _retainers(graph, labels, n)


def _retainers(graph, labels, n, hidden_root=None):
    """The n largest retainers, leaving out what is reached from the root
    hidden_root (the report being built: memhound's, not the program's)."""
    out = []
    extra = 0 if hidden_root is None else 4
    for (root, steps), retained, size in _core.heap_largest_retainers(graph, n + extra):
        if root == hidden_root or len(out) == n:
            continue
        path = _compose(root, steps, labels)
        out.append(
            {
                "type": path[-1]["type"],
                "bytes": size,
                "retained_bytes": retained,
                "retention_path": path,
            }
        )
    return out


# ---- the leak report -------------------------------------------------------


def _site_entry(info, labels):
    paths = []
    for (root, steps), objects, garbage in info["groups"]:
        path = _compose(root, steps, labels)
        paths.append({"steps": path, "objects": objects, "unreachable": garbage})
    return {
        "types": [
            {"type": name, "count": count, "bytes": nbytes}
            for name, count, nbytes in info["types"]
        ],
        "retention_path": paths[0]["steps"] if paths else [],
        "paths": paths,
        "retained_bytes": info["retained_bytes"],
        "unreachable_bytes": info["unreachable_bytes"],
        "unreachable_blocks": info["unreachable_blocks"],
    }


def sites_info(sites: list[int], retained: bool = True) -> dict[int, dict]:
    """For each allocation site (traceback index, as the live-block table
    and report leaks carry it): {"types": [{type, count, bytes}],
    "retention_path": the path holding most of its objects, "paths":
    [{"steps", "objects", "unreachable"}] (up to 5 ways its objects are
    held, most objects first), "retained_bytes", "unreachable_bytes",
    "unreachable_blocks"}.  One heap-graph session for all sites."""
    objects, labels = _roots()
    with _graph(objects) as graph:
        _prepare_paths(graph, objects, labels)
        infos = _core.heap_sites(graph, [int(s) for s in sites], retained)
        return {info["site"]: _site_entry(info, labels) for info in infos}


def annotate_report(
    report: dict,
    baseline: Census | None = None,
    retainers: int = 10,
) -> None:
    """Fill the heap-graph fields of a leak report (docs/report-schema.md)
    in place, in one heap-graph session:

    * each entry of report["leaks"] with an in-process "site" key (as
      memhound.leaks sets it: traceback index << 1 | native; native sites
      are left alone) gets "types", "retention_path", "paths",
      "retained_bytes", "unreachable_bytes" and "unreachable_blocks";
    * report["types_grew"]: census_diff(baseline, now), the 20 types that
      grew most (only when a baseline Census is given);
    * report["largest_retainers"]: the `retainers` largest retainers;
    * report["retained_by_type"]: retained_by_type(10);
    * report["cycle_sites"]: {"unreachable": [{"site", "bytes", "blocks"}]
      of traced garbage in reference cycles by site, "types": [{"type",
      "count", "bytes", "finalizer"}] of that garbage, "gc_garbage":
      [{"type", "site", "count"}] of gc.garbage}.

    Skipping it (the CLI's --no-graph) costs nothing: nothing here runs
    unless called."""
    # The report's in-process "site" is traceback << 1 | native
    # (memhound.leaks); native blocks are not Python objects.
    leaks = [
        leak
        for leak in report.get("leaks", [])
        if "site" in leak and not int(leak["site"]) & 1
    ]
    if baseline is not None:
        report["types_grew"] = [
            row for row in census_diff(baseline, census()) if row["bytes_diff"] > 0
        ][:20]
    objects, labels = _roots()
    # The report itself is a root searched last, so that it and what only
    # it holds are named as memhound's and left out of the retainers.
    objects.append(report)
    labels.append(("local", "memhound", "report"))
    with _graph(objects) as graph:
        _prepare_paths(graph, objects, labels)
        infos = _core.heap_sites(
            graph, [int(leak["site"]) >> 1 for leak in leaks], True
        )
        for leak, info in zip(leaks, infos, strict=True):
            leak.update(_site_entry(info, labels))
        report["largest_retainers"] = _retainers(
            graph, labels, retainers, hidden_root=len(objects) - 1
        )
        # The dominator tree is built already: one more walk of it.
        report["retained_by_type"] = _by_type(graph, 10)
        cycles = {
            "unreachable": [
                {"site": site, "bytes": nbytes, "blocks": blocks}
                for site, (nbytes, blocks) in _core.heap_unreachable_by_site(
                    graph
                ).items()
            ],
            "types": [
                {"type": name, "count": count, "bytes": nbytes, "finalizer": fin}
                for name, count, nbytes, fin in sorted(
                    _core.heap_garbage_types(graph), key=lambda r: -r[2]
                )[:20]
            ],
        }
    cycles["gc_garbage"] = _gc_garbage()
    report["cycle_sites"] = cycles


def _gc_garbage():
    """gc.garbage grouped by (type, allocation site)."""
    groups: dict[tuple[str, int | None], int] = {}
    for obj in gc.garbage:
        site = _core.heap_object_site(obj)
        key = (_type_name(obj), None if site is None else site[0])
        groups[key] = groups.get(key, 0) + 1
    return [
        {"type": name, "site": site, "count": count}
        for (name, site), count in sorted(groups.items(), key=lambda kv: -kv[1])
    ]
