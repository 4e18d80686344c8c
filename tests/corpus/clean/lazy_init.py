"""Lazy initialization early in the run (big tables built on first use,
then kept), followed by steady work."""

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
_tables = {}


def table(name):
    if name not in _tables:
        _tables[name] = {i: str(i) * 5 for i in range(20000)}
    return _tables[name]


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    t = table(("users", "items", "prices")[n % 3])
    row = t[n % 20000]
    parts = row.split("0")  # churn
    n += 1
