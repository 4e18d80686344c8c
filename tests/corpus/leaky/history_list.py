"""An audit history that records every request and is never trimmed,
under churn much larger than the leak itself."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
history = []


def process(n):
    payload = bytearray(4096)  # churn: 4 KiB per request, freed at once
    total = sum(payload[:16])
    history.append((n, f"request {n} ok"))  # LEAK
    return total


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    process(n)
    n += 1
