"""The evaluation corpus: memhound run --json on every program of
tests/corpus/.  A leaky program's top-ranked leak must name the marked line
and have the expected kind; a clean program must report no leak."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
LEAKY = sorted((CORPUS / "leaky").glob("*.py"))
CLEAN = sorted((CORPUS / "clean").glob("*.py"))
# Packages run with -m: (directory to run from, module, files with markers).
PACKAGES = [("webapp", "webapp.server")]
SECONDS = os.environ.get("CORPUS_SECONDS", "2.0")


def run_memhound(target: list[str], cwd: Path, tmp_path: Path) -> dict:
    out = tmp_path / "report.json"
    env = dict(os.environ, CORPUS_SECONDS=SECONDS, PYTHONWARNINGS="ignore")
    env.pop("PYTHONDEVMODE", None)  # dev mode's warnings are not the program's
    proc = subprocess.run(
        [sys.executable, "-m", "memhound", "run", "--quiet", "--json", str(out)]
        + target,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def marked_lines(paths) -> set[tuple[str, int]]:
    marks = set()
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "# LEAK" in line:
                marks.add((str(path.resolve()), number))
    assert marks, f"no # LEAK marker in {paths}"
    return marks


def expected_kind(paths) -> str:
    for path in paths:
        found = re.search(r"# expect-kind: (\w+)", path.read_text())
        if found:
            return found.group(1)
    raise AssertionError(f"no expect-kind in {paths}")


def check_top_leak(report: dict, marks, kind: str) -> None:
    leaks = report["leaks"]
    assert leaks, f"no leak found; largest sites: {report['largest'][:3]}"
    top = leaks[0]
    frames = {(os.path.realpath(f["filename"]), f["lineno"]) for f in top["traceback"]}
    assert frames & marks, (
        f"top leak {top['traceback'][:3]} does not reach any of {sorted(marks)}"
    )
    assert top["kind"] == kind
    assert 0.5 <= top["confidence"] <= 1.0
    assert top["growth_bytes"] > 0 and top["growth_bytes_per_s"] > 0
    assert top["live_bytes"] >= top["growth_bytes"] > 0
    assert top["first_generation"] >= 1
    assert top["series"] and top["survivors"]


def test_corpus_size():
    # The issue asks for at least 14 leaky and 7 clean programs.
    assert len(LEAKY) + len(PACKAGES) >= 14
    assert len(CLEAN) >= 7


@pytest.mark.parametrize("program", LEAKY, ids=lambda p: p.stem)
def test_leaky_program(program, tmp_path):
    report = run_memhound([str(program)], program.parent, tmp_path)
    check_top_leak(report, marked_lines([program]), expected_kind([program]))


@pytest.mark.parametrize("package,module", PACKAGES)
def test_leaky_package(package, module, tmp_path):
    root = CORPUS / "leaky"
    files = sorted((root / package).glob("*.py"))
    report = run_memhound(["-m", module], root, tmp_path)
    check_top_leak(report, marked_lines(files), expected_kind(files))


@pytest.mark.parametrize("program", CLEAN, ids=lambda p: p.stem)
def test_clean_program(program, tmp_path):
    report = run_memhound([str(program)], program.parent, tmp_path)
    assert report["leaks"] == [], [
        (leak["confidence"], leak["traceback"][:2]) for leak in report["leaks"]
    ]
    assert report["summary"]["generations"] >= 5
