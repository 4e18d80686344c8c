"""How soon memhound flags each leak of the corpus with confidence >= 0.9.

Runs every leaky program of tests/corpus/leaky under `memhound run --json`
for increasing lengths (CORPUS_SECONDS), stopping at the first length at
which a leak reaching the program's marked line has confidence >= 0.9, and
prints a markdown table: seconds and generations needed, in exact mode and
in sampling mode.

    python bench/time_to_detect.py                      # both modes
    python bench/time_to_detect.py --sample-only
    python bench/time_to_detect.py --lengths 0.5,1,2 --sample-lengths 2,5,10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus" / "leaky"
THRESHOLD = 0.9


def marked_lines(paths):
    marks = set()
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "# LEAK" in line:
                marks.add((str(path.resolve()), number))
    return marks


def programs():
    """(name, target argv, cwd, marks) for every leaky program."""
    for path in sorted(CORPUS.glob("*.py")):
        yield path.stem, [str(path)], CORPUS, marked_lines([path])
    for package in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        if (package / "server.py").exists():
            files = sorted(package.glob("*.py"))
            yield (
                package.name,
                ["-m", f"{package.name}.server"],
                CORPUS,
                (marked_lines(files)),
            )


def run(target, cwd, seconds, sample):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        args = [sys.executable, "-m", "memhound", "run", "--quiet"]
        args += ["--json", str(out)]
        if sample:
            args += ["--sample", str(sample)]
        env = dict(os.environ, CORPUS_SECONDS=str(seconds), PYTHONWARNINGS="ignore")
        subprocess.run(
            args + target, cwd=cwd, env=env, capture_output=True, timeout=600
        )
        return json.loads(out.read_text())


def best_confidence(report, marks):
    best = 0.0
    for leak in report["leaks"]:
        frames = {
            (os.path.realpath(f["filename"]), f["lineno"]) for f in leak["traceback"]
        }
        if frames & marks:
            best = max(best, leak["confidence"])
    return best


def measure(lengths, sample):
    rows = []
    for name, target, cwd, marks in programs():
        found = None
        tried = []
        for seconds in lengths:
            report = run(target, cwd, seconds, sample)
            confidence = best_confidence(report, marks)
            gens = report["summary"]["generations"]
            tried.append(f"{seconds}s:{confidence:.2f}")
            if confidence >= THRESHOLD:
                found = (seconds, gens, report["duration_s"], confidence)
                break
        rows.append((name, found, tried))
        print(
            f"  {name}: {found or 'not within ' + str(lengths[-1]) + ' s'}",
            file=sys.stderr,
        )
    return rows


def table(title, rows):
    lines = [
        f"### {title}",
        "",
        "| program | run length | generations | "
        "confidence | tried (length: best confidence) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, found, tried in rows:
        if found:
            seconds, gens, duration, confidence = found
            lines.append(
                f"| {name} | {seconds} s ({duration:.1f} s traced) | "
                f"{gens} | {confidence:.2f} | {', '.join(tried)} |"
            )
        else:
            lines.append(f"| {name} | not flagged | - | - | {', '.join(tried)} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="0.5,1,1.5,2,3,5")
    parser.add_argument("--sample-lengths", default="2,5,10,20")
    parser.add_argument("--sample", type=int, default=65536)
    parser.add_argument("--sample-only", action="store_true")
    parser.add_argument("--exact-only", action="store_true")
    options = parser.parse_args()
    print(
        f"Machine: {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; command: "
        f"python bench/time_to_detect.py {' '.join(sys.argv[1:])}\n"
    )
    if not options.sample_only:
        lengths = [float(x) for x in options.lengths.split(",")]
        print(table("Exact mode (default)", measure(lengths, None)) + "\n")
    if not options.exact_only:
        lengths = [float(x) for x in options.sample_lengths.split(",")]
        rows = measure(lengths, options.sample)
        print(table(f"Sampling mode (--sample {options.sample})", rows))


if __name__ == "__main__":
    main()
