"""No leak, but work for the garbage collector: cycles made per request.

Each "request" builds a small tree whose children point back to their
parent, then drops it.  Nothing leaks (the collector frees every tree),
but only the collector can free them, and it spends time finding them.
Run it under memhound to see the cycle churn section of the report:

    memhound run examples/cycle_churn.py

Making `parent` a weakref.ref (or calling tree.clear() when done) lets
reference counting free each tree at once; the section then goes away.
"""

import time

DURATION = 2.0  # seconds of "traffic"


class Node:
    def __init__(self, parent=None):
        self.parent = parent  # the back reference: a cycle with children
        self.children = []

    def add(self):
        child = Node(self)
        self.children.append(child)
        return child


def handle(request_id):
    root = Node()
    for _ in range(8):
        root.add()
    return len(root.children)


def main():
    deadline = time.monotonic() + DURATION
    requests = children = 0
    while time.monotonic() < deadline:
        children += handle(requests)
        requests += 1
    print(f"served {requests} requests, made {children} children")


if __name__ == "__main__":
    main()
