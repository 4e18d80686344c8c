"""Bounded queues and ring buffers: a deque(maxlen=...) of recent events,
and a queue.Queue between a producer and a consumer thread."""

import collections
import os
import queue
import threading
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
recent = collections.deque(maxlen=2000)
work = queue.Queue(maxsize=500)


def consumer():
    while True:
        item = work.get()
        if item is None:
            return
        recent.append({"seen": item, "note": f"event {item}"})


thread = threading.Thread(target=consumer)
thread.start()
deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    work.put([n, n * 2])
    n += 1
work.put(None)
thread.join()
