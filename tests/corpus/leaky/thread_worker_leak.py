"""Worker threads consume a queue; each result is also kept in a shared
results dict that nobody reads."""
# expect-kind: python

import os
import queue
import threading
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
results = {}
lock = threading.Lock()
jobs = queue.Queue(maxsize=100)


def worker():
    while True:
        n = jobs.get()
        if n is None:
            return
        value = [n, n + 1, n + 2]  # LEAK
        with lock:
            results[n] = value
        scratch = bytes(300)  # churn


threads = [threading.Thread(target=worker) for _ in range(3)]
for t in threads:
    t.start()
deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    jobs.put(n)
    n += 1
for _ in threads:
    jobs.put(None)
for t in threads:
    t.join()
