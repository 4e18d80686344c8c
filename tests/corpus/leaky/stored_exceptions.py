"""Failed jobs keep their exception "for the error page"; each exception
holds its traceback, and the traceback holds the frames."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
errors = []


def run_job(n):
    data = list(range(20))  # churn
    if n % 2 == 0:
        raise ValueError(f"job {n} failed")  # LEAK
    return sum(data)


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    try:
        run_job(n)  # LEAK: on 3.10 each call's frame object, kept by its traceback
    except ValueError as error:
        errors.append(error)
    n += 1
