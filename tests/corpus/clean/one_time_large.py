"""A large buffer allocated once and kept for the whole run, plus churn."""

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
model = [bytearray(1024) for _ in range(20000)]  # 20 MiB, kept on purpose

deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    weights = model[n % len(model)]
    batch = [bytes(weights[:64]) for _ in range(10)]  # churn
    n += 1
