"""Per-request reference cycles while gc.disable() is in effect: the
requests become unreachable garbage that is never collected."""
# expect-kind: cycle

import gc
import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
gc.disable()


class Request:
    def __init__(self, n):
        self.n = n
        self.response = Response(self)


class Response:
    def __init__(self, request):
        self.request = request  # the cycle: request <-> response
        self.body = "ok"


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    Request(n)  # LEAK: the request and its response
    temp = [n] * 30  # churn
    n += 1
