"""A leak inside the interpreter caused by the user's call: a warning whose
text differs every time fills the module's __warningregistry__."""
# expect-kind: python

import os
import time
import warnings

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
warnings.simplefilter("default")
warnings.showwarning = lambda *args, **kwargs: None  # keep the output quiet


def parse(value):
    if value % 3 == 0:
        warnings.warn(f"value {value} is deprecated", DeprecationWarning)  # LEAK
    return [value] * 10  # churn


deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    parse(n)
    n += 1
