"""The webapp's request loop."""
# expect-kind: python

import os
import time

from webapp import helpers

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))


def handle(n):
    helpers.check_token(f"tok-{n:08d}")
    page = helpers.render(range(20))  # churn
    return len(page)


def main():
    deadline = time.monotonic() + DURATION
    n = 0
    while time.monotonic() < deadline:
        handle(n)
        n += 1


if __name__ == "__main__":
    main()
