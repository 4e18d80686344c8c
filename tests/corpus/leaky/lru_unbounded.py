"""functools.lru_cache(maxsize=None) over arguments that never repeat."""
# expect-kind: python

import functools
import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


@functools.cache
def price_table(customer_id, day):
    return [customer_id * 1000 + day * k for k in range(8)]  # LEAK


def quote(customer_id, day):
    table = price_table(customer_id, day)  # LEAK: the cache's key and entry
    temp = [x * 2 for x in table]  # churn
    return sum(temp)


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    quote(n, n % 7)
    n += 1
