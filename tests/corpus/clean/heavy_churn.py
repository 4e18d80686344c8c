"""Heavy temporary churn: megabytes per second allocated and freed."""

import json
import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))

deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    doc = {"id": n, "items": [{"k": i, "v": str(i)} for i in range(50)]}
    text = json.dumps(doc)
    back = json.loads(text)
    blob = bytearray(8192)
    n += len(back["items"]) + len(blob) // 8192
