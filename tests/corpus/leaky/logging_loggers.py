"""A leak inside the standard library caused by the user's call: a logger
per request id.  logging keeps every logger it ever created."""
# expect-kind: python

import logging
import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
logging.basicConfig(level=logging.WARNING)


def handle(request_id):
    log = logging.getLogger(f"app.request.{request_id}")  # LEAK
    log.debug("handling %s", request_id)  # LEAK: each logger's level cache
    body = " ".join(str(i) for i in range(50))  # churn
    return len(body)


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    handle(n)
    n += 1
