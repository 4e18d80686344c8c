"""Retry callbacks capture each request's buffer in a closure and are
queued on a list that is never drained."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
pending_retries = []


def send(n):
    buffer = bytes(200) + str(n).encode()  # LEAK

    def retry():
        return len(buffer)

    pending_retries.append(retry)
    noise = {i: i * i for i in range(30)}  # churn
    return len(noise)


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    send(n)
    n += 1
