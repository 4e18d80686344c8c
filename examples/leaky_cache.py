"""A small service with a classic leak: a cache that never evicts.

Each "request" builds a response and memoizes it under a key that is
different every time, so the cache only grows.  Run it under memhound:

    memhound run examples/leaky_cache.py
"""

import json
import random
import time

DURATION = 3.0  # seconds of "traffic"

_response_cache = {}


def render(user_id, request_id):
    payload = {"user": user_id, "request": request_id, "items": list(range(20))}
    return json.dumps(payload)


def handle(request_id):
    user_id = random.randrange(1000)
    key = (user_id, request_id)  # a new key on every call: never a hit
    if key not in _response_cache:
        _response_cache[key] = render(user_id, request_id)
    return _response_cache[key]


def main():
    churn = []
    deadline = time.monotonic() + DURATION
    request_id = 0
    while time.monotonic() < deadline:
        handle(request_id)
        request_id += 1
        churn.append(bytearray(256))  # temporary garbage, freed below
        if len(churn) > 100:
            churn.clear()
    print(f"served {request_id} requests, cache holds {len(_response_cache)} entries")


if __name__ == "__main__":
    main()
