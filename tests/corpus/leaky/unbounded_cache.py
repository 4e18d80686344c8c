"""A memoizing cache keyed by request id: every key is new, so it never hits
and never stops growing.  Heavy per-request churn around it."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
_cache = {}


def render(request_id):
    rows = [{"id": i, "name": f"item-{i}"} for i in range(30)]  # churn
    return f"<html>{request_id}:{len(rows)}</html>" * 4


def handle(request_id):
    if request_id not in _cache:
        _cache[request_id] = render(request_id)  # LEAK
    return _cache[request_id]


def main():
    deadline = time.monotonic() + DURATION
    request_id = 0
    while time.monotonic() < deadline:
        handle(request_id)
        request_id += 1


main()
