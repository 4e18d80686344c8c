"""Interpreter and stdlib caches in normal use: many regular expressions
(re's cache turns over), linecache, typing, logging configuration, and
modules imported lazily during the run."""

import importlib
import linecache
import logging
import os
import re
import time
import typing

DURATION = float(os.environ.get("CORPUS_SECONDS", "2.0"))
logging.basicConfig(level=logging.ERROR)
log = logging.getLogger("app")
LAZY = ["json", "csv", "decimal", "fractions", "statistics", "textwrap"]

deadline = time.monotonic() + DURATION
n = 0
while time.monotonic() < deadline:
    pattern = re.compile(rf"item-{n % 2000}-(\d+)")
    pattern.match(f"item-{n % 2000}-42")
    linecache.getline(__file__, 1 + n % 20)
    hint = typing.List[typing.Tuple[int, str]] if n % 2 else typing.Optional[int]
    if n < len(LAZY) * 50 and n % 50 == 0:
        importlib.import_module(LAZY[n // 50])
    log.debug("request %d %s", n, hint)
    n += 1
