"""CPython's test_tracemalloc must pass against memhound.tracemalloc, but for
the tests listed in tests/conformance/run_stdlib_tracemalloc.py (the runner
decides; this makes `make test` enforce it)."""

import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).parents[1] / "conformance" / "run_stdlib_tracemalloc.py"


def test_stdlib_test_tracemalloc_conformance():
    proc = subprocess.run(
        [sys.executable, str(RUNNER)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode == 2:
        pytest.skip(f"stdlib tests not installed: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 unexpected failures" in proc.stdout
