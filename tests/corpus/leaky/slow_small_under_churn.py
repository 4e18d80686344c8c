"""A slow leak of small objects hidden under heavy churn: one 48-byte
float pair in 50 requests is kept, while each request allocates ~20 KiB."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
samples = []


def handle(n):
    frame = [bytes(512) for _ in range(40)]  # 20 KiB of churn per request
    if n % 50 == 0:
        samples.append((n * 0.5, n * 1.5))  # LEAK
    return len(frame)


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    handle(n)
    n += 1
