"""Live memory as a call tree, built from a snapshot's aggregated sites.

The blocks are grouped by traceback in C (Snapshot.statistics("traceback"));
this module only merges those rows into a tree of frames, outermost caller
at the root, so its loops run over sites and frames, never over blocks.
Both the HTML report's icicle graph and `memhound report --tree` use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Node", "build_tree", "flatten", "site_rows"]


@dataclass
class Node:
    """One frame in the tree: bytes and blocks allocated in it or below."""

    frame: tuple  # (filename, lineno, function); ("", 0, "<root>") at the top
    size: int = 0
    count: int = 0
    self_size: int = 0  # allocated by this very line
    children: dict = field(default_factory=dict)  # frame -> Node


def site_rows(snapshot) -> list[tuple[int, int, tuple]]:
    """(size, count, frames innermost first) per traceback, largest first,
    straight from the C grouping."""
    return [
        (size, count, frames)
        for size, count, frames in snapshot._core.statistics("traceback", False)
    ]


def build_tree(rows) -> Node:
    """The call tree of rows as site_rows() returns them."""
    root = Node(("", 0, "<root>"))
    for size, count, frames in rows:
        root.size += size
        root.count += count
        node = root
        if not frames:
            frames = (("<unknown>", 0, "<no Python frame>"),)
        for frame in reversed(frames):
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = Node(frame)
            child.size += size
            child.count += count
            node = child
        node.self_size += size
    return root


def flatten(root: Node, min_size: int = 0):
    """The tree as parallel lists for the HTML report, children after their
    parent and largest first: (parents, frame_ids, sizes, counts, frames).
    Subtrees smaller than min_size are folded into their parent's self size
    (the report says how much was folded)."""
    frames_index: dict = {}
    frames: list = []
    parents, frame_ids, sizes, counts = [], [], [], []
    stack = [(root, -1)]
    while stack:
        node, parent = stack.pop()
        fid = frames_index.get(node.frame)
        if fid is None:
            fid = frames_index[node.frame] = len(frames)
            frames.append(node.frame)
        me = len(sizes)
        parents.append(parent)
        frame_ids.append(fid)
        sizes.append(node.size)
        counts.append(node.count)
        kept = [c for c in node.children.values() if c.size >= min_size]
        kept.sort(key=lambda c: c.size)
        stack.extend((child, me) for child in kept)
    return parents, frame_ids, sizes, counts, frames
