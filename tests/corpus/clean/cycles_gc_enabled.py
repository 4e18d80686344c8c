"""Per-request reference cycles with the garbage collector enabled: they
are collected, so nothing leaks."""

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


class Node:
    def __init__(self, n):
        self.n = n
        self.peer = Peer(self)


class Peer:
    def __init__(self, node):
        self.node = node
        self.data = [node.n] * 10


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    Node(n)
    n += 1
