"""JSON round trips: json.dumps and json.loads of nested dicts.

A paginated API response (records with nested address, tags and history) is
serialised compactly and pretty-printed (indent=2 takes the pure-Python
encoder), parsed back, and checked.  Every parsed document is garbage a
moment later, so this is a high-churn mix of dicts, lists, str and floats.
"""

import json
import time

ROUNDS = 1_100


def _record(i):
    return {
        "id": i,
        "name": f"user-{i:05d}",
        "email": f"user{i}@example.org",
        "active": i % 3 != 0,
        "score": i * 1.25,
        "tags": ["alpha", "beta", "gamma"][: 1 + i % 3],
        "address": {"street": f"{i} Main St", "city": "Springfield", "zip": 10000 + i},
        "history": [
            {"ts": 1_700_000_000 + 60 * j, "event": "login", "amount": j / 3}
            for j in range(i % 4)
        ],
        "note": None,
    }


def _page(n):
    return {
        "page": n,
        "per_page": 40,
        "results": [_record(n * 40 + i) for i in range(40)],
        "meta": {"generated": "2024-01-01T00:00:00Z", "version": [1, 2, 3]},
    }


PAGES = [_page(n) for n in range(4)]


def run():
    total = 0
    for r in range(ROUNDS):
        doc = PAGES[r % len(PAGES)]
        if r % 8 == 0:
            text = json.dumps(doc, indent=2, sort_keys=True)
        else:
            text = json.dumps(doc)
        back = json.loads(text)
        total += len(back["results"])
    if back != PAGES[(ROUNDS - 1) % len(PAGES)]:
        raise AssertionError("json round trip changed the document")
    return total


if __name__ == "__main__":
    t0 = time.perf_counter()
    run()
    print(f"{__file__}: {time.perf_counter() - t0:.3f} s")
