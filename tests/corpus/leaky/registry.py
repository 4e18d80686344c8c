"""A plugin registry: every request registers a handler object that is
never unregistered."""
# expect-kind: python

import os
import time

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


class Handler:
    def __init__(self, name):
        self.name = name
        self.options = {"retries": 3, "timeout": 1.5}


class Registry:
    def __init__(self):
        self.handlers = []

    def register(self, name):
        handler = Handler(name)  # LEAK
        self.handlers.append(handler)
        return handler


registry = Registry()


def serve(i):
    handler = registry.register(f"job-{i}")
    scratch = [bytes(64) for _ in range(20)]  # churn
    return handler.name, len(scratch)


deadline = time.monotonic() + DURATION
i = 0
while time.monotonic() < deadline:
    serve(i)
    i += 1
