"""A service that behaves for its first 40% (warm-up fills a cache that
then plateaus), and then starts leaking session objects."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
warm_cache = {}
sessions = []

start = time.monotonic()
deadline = start + DURATION
n = 0
while time.monotonic() < deadline:
    if len(warm_cache) < 2000:
        warm_cache[n] = str(n) * 4
    elif time.monotonic() - start > 0.4 * DURATION:
        sessions.append({"id": n, "roles": ["user"]})  # LEAK
    scratch = [bytes(32) for _ in range(20)]  # churn
    n += 1
