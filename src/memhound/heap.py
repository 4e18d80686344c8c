"""Who holds it: census, retention paths, retained size and cycles.

The work is done in C (memhound._core, heapgraph*.c): a graph of every
object the collector tracks, plus the untracked objects they reference, is
built once per query session by walking tp_traverse; no user Python code
runs while it is built or queried.  This module opens and closes sessions
and shapes the results.  See docs/heap.md.
"""

from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager

from memhound import _core

__all__ = ["format_path", "unreachable_by_site", "why_alive"]

_HERE = __file__
_OUTSIDE = (
    "held from outside the gc graph (a C extension, C code or the "
    "interpreter holds a reference)"
)
_GARBAGE = "unreachable: garbage in a reference cycle (gc would free it)"


@contextmanager
def _graph(*skip):
    """A heap graph for one query session, released on exit.

    The collector is paused meanwhile: the graph holds a reference to every
    object, so a collection could free nothing and would only cost time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    graph = None
    try:
        graph = _core.heap_graph(tuple(skip))
        yield graph
    finally:
        if graph is not None:
            _core.heap_graph_release(graph)
        if was_enabled:
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
    search order.  Module globals first (each module's __dict__, read in
    C), then the locals of every thread's running frames (memhound's own
    frames and skip_frames left out).  A label is ("module", name) or
    ("local", where, name)."""
    objects = []
    labels = []
    for name, namespace in _core.heap_module_dicts():
        objects.append(namespace)
        labels.append(("module", name))
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        thread = names.get(ident, str(ident))
        while frame is not None:
            code = frame.f_code
            if code.co_filename != _HERE and not any(frame is s for s in skip_frames):
                where = f"thread {thread!r}, {code.co_name}()"
                for name, value in list(frame.f_locals.items()):
                    objects.append(value)
                    labels.append(("local", where, name))
            frame = frame.f_back
        del frame
    return objects, labels


def _compose(root, steps, labels):
    """The user-facing path: [{"via", "object", "type"}] from the C path
    (root index, [(kind, text, index, ident, type name)])."""
    first_type = steps[0][4]
    context = None  # what the dict being indexed is the __dict__ of
    if root >= 0 and labels[root][0] == "module":
        via, expr, context = "module", labels[root][1], "module"
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
                }.get(context, "attribute")
                expr = f"{expr.removesuffix('.__dict__')}.{text}"
            else:
                via = "dict value"
                expr = f"{expr}[{text}]"
        elif kind == "dict_key":
            via = "dict key"
            expr = f"{text} (key of {expr})"
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
        elif kind == "frame":
            via = f"local of frame {text}"
            expr = f"<{tname} object>"
        else:
            via = f"referenced by a {text} object"
            expr = f"<{tname} object>"
        if kind != "own_dict" and kind != "dict_value":
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
    thread (the frame calling why_alive is left out: it holds obj).  When
    no labelled root reaches obj, the path starts at an object held from
    outside the graph (C code) or says that obj is unreachable garbage.
    Builds the heap graph once (see docs/heap.md); runs no user code."""
    caller = sys._getframe(1)
    objects, labels = _roots(skip_frames=(caller,))
    del caller
    with _graph(objects) as graph:
        _core.heap_prepare_paths(graph, objects)
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
