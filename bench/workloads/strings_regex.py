"""String and regex work: build log lines, parse them, rewrite them.

f-strings and str.format, split/join/replace/strip, case changes,
encode/decode, compiled regex match/findall/sub with groups, and a
Counter over the results: the text-munging core of scripts and ETL jobs.
"""

import re
import time
from collections import Counter

ROUNDS = 11
LINES = 4_000

LOG = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) (?P<level>[A-Z]+) "
    r"\[(?P<mod>[\w.]+)\] (?P<msg>.*)$"
)
WORD = re.compile(r"[A-Za-z]+")
NUMBER = re.compile(r"\b\d+\b")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MODULES = ("app.db", "app.http", "app.cache", "worker.queue")


def _line(i):
    ts = f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"
    level = LEVELS[i % 4]
    mod = MODULES[i % len(MODULES)]
    # All three formatting styles on purpose: they allocate differently.
    addr = "10.0.%d.%d" % (i % 256, (i * 3) % 256)  # noqa: UP031
    msg = "request {} took {} ms for user {} from {}".format(
        i, (i * 37) % 1000, f"u{i % 313}", addr
    )
    return f"{ts} {level} [{mod}] {msg}"


def run():
    words = Counter()
    rewritten = 0
    for r in range(ROUNDS):
        text = "\n".join(_line(r * LINES + i) for i in range(LINES))
        for line in text.split("\n"):
            m = LOG.match(line)
            if m is None:
                raise AssertionError(f"unparsed line {line!r}")
            msg = m.group("msg")
            words.update(w.lower() for w in WORD.findall(msg))
            masked = NUMBER.sub("N", msg)
            fields = masked.replace(" for ", "|").replace(" from ", "|").split("|")
            out = ";".join(f.strip().upper() for f in fields)
            rewritten += len(out.encode("utf-8").decode("ascii"))
        words[m.group("level").title()] += 1
    return rewritten, len(words)


if __name__ == "__main__":
    t0 = time.perf_counter()
    run()
    print(f"{__file__}: {time.perf_counter() - t0:.3f} s")
