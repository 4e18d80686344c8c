"""Live memory as a call tree, built from a snapshot's aggregated sites.

The blocks are grouped by traceback in C (Snapshot.statistics("traceback"));
this module only merges those rows into a tree of frames, outermost caller
at the root, so its loops run over sites and frames, never over blocks.
Both the HTML report's icicle graph and `memhound report --tree` use it.
"""

from __future__ import annotations

__all__ = ["ROOT", "Tree", "build_tree", "site_rows"]

ROOT = ("", 0, "<root>")
UNKNOWN = (("<unknown>", 0, "<no Python frame>"),)


def site_rows(snapshot) -> list:
    """(size, count, frames innermost first) per traceback, largest first,
    straight from the C grouping."""
    return snapshot._core.statistics("traceback", False)


class Tree:
    """Nodes as parallel lists; node 0 is the root, every node's parent has
    a smaller index.  size/count: bytes and blocks allocated in the node's
    frame or below it."""

    __slots__ = ("parent", "frame", "size", "count")

    def __init__(self) -> None:
        self.parent = [-1]
        self.frame = [ROOT]
        self.size = [0]
        self.count = [0]

    def __len__(self) -> int:
        return len(self.parent)

    def children(self) -> list[list[int]]:
        """Children of every node, largest first."""
        kids: list[list[int]] = [[] for _ in self.parent]
        for node in range(1, len(self.parent)):
            kids[self.parent[node]].append(node)
        size = self.size
        for group in kids:
            if len(group) > 1:
                group.sort(key=size.__getitem__, reverse=True)
        return kids

    def pruned(self, min_size: int) -> Tree:
        """A copy without the nodes smaller than min_size (their bytes stay
        counted in their ancestors)."""
        out = Tree()
        out.size[0], out.count[0] = self.size[0], self.count[0]
        new_id = [0] * len(self.parent)
        for node in range(1, len(self.parent)):
            if self.size[node] < min_size:
                new_id[node] = -1
                continue
            parent = new_id[self.parent[node]]
            if parent < 0:
                new_id[node] = -1
                continue
            new_id[node] = len(out.parent)
            out.parent.append(parent)
            out.frame.append(self.frame[node])
            out.size.append(self.size[node])
            out.count.append(self.count[node])
        return out


def _trimmer():
    """A function dropping the frames of `memhound run`'s runner (cli.py
    under runpy) from the outer end of a traceback, as the report does."""
    from memhound.leaks import _is_runner_frame

    cache: dict = {}

    def trim(frames: tuple) -> tuple:
        end = len(frames)
        while end > 1:
            outer = frames[end - 1]
            runner = cache.get(outer)
            if runner is None:
                runner = cache[outer] = _is_runner_frame({"filename": outer[0]})
            if not runner:
                break
            end -= 1
        return frames[:end]

    return trim


def build_tree(rows, trim_runner: bool = True) -> Tree:
    """The call tree of (size, count, frames) rows as site_rows() returns
    them, without memhound's runner frames unless trim_runner is false.
    Rows are sorted by their path from the root, so each row shares a
    prefix with the one before and only its new frames become nodes."""
    tree = Tree()
    parent, frame, size, count = tree.parent, tree.frame, tree.size, tree.count
    trim = _trimmer() if trim_runner else tuple
    paths = sorted(
        ((tuple(reversed(trim(frames or UNKNOWN))), sz, n) for sz, n, frames in rows),
        key=lambda item: item[0],
    )
    path = [0]  # node ids along the previous row's path, root first
    previous: tuple = ()
    for frames, sz, n in paths:
        common = 0
        limit = min(len(frames), len(previous))
        while common < limit and frames[common] == previous[common]:
            common += 1
        del path[common + 1 :]
        for f in frames[common:]:
            parent.append(path[-1])
            frame.append(f)
            size.append(0)
            count.append(0)
            path.append(len(parent) - 1)
        for node in path:
            size[node] += sz
            count[node] += n
        previous = frames
    return tree
