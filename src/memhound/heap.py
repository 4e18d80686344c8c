"""Who holds it: census, retention paths, retained size and cycles.

The work is done in C (memhound._core, heapgraph*.c): a graph of every
object the collector tracks, plus the untracked objects they reference, is
built once per query session by walking tp_traverse; no user Python code
runs while it is built or queried.  This module opens and closes sessions
and shapes the results.  See docs/heap.md.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

from memhound import _core

__all__ = ["unreachable_by_site"]


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
