"""What `memhound run`'s generation clock adds to tracing alone.

For each workload of bench/workloads, interleaved repetitions of three fresh
processes: untraced, memhound.start() alone ("alone"), and
memhound.runner.Session().start() ("run": tracing plus the clock that
begins generations and scans the live table, plus the analysis after).
Only the workload's run() is timed.  Prints medians, the paired run/alone
ratio, and how many scans the clock made and the seconds they took.

    python bench/clock_overhead.py [--repeat 5] [WORKLOAD ...]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = [
    "json_roundtrip",
    "small_objects",
    "strings_regex",
    "request_handler",
    "deep_recursion",
    "large_buffers",
]
CHILD = r"""
import importlib.util, json, sys, time
name, mode, path = sys.argv[1:4]
spec = importlib.util.spec_from_file_location(name, path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
costs = []
if mode != "none":
    import memhound
    from memhound import _core
    original = _core.gens_checkpoint
    def counted(*args, **kwargs):
        result = original(*args, **kwargs)
        costs.append(result[1])
        return result
    _core.gens_checkpoint = counted
    if mode == "alone":
        memhound.start()
    else:
        from memhound.runner import Session
        session = Session(status=False)
        session.start()
started = time.perf_counter()
module.run()
elapsed = time.perf_counter() - started
if mode == "run":
    session.finish(argv=[])
print(json.dumps({"t": elapsed, "scans": len(costs), "scan_s": sum(costs)}))
"""


def sample(workload, mode):
    path = HERE / "workloads" / f"{workload}.py"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, workload, mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("workloads", nargs="*", default=DEFAULT)
    options = parser.parse_args()
    print(
        "| workload | untraced s | alone s | run s | run / alone (paired median) "
        "| scans per run | seconds in scans per run |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for workload in options.workloads:
        times = {"none": [], "alone": [], "run": []}
        scans = []
        for _ in range(options.repeat):
            for mode in times:
                result = sample(workload, mode)
                times[mode].append(result["t"])
                if mode == "run":
                    scans.append((result["scans"], result["scan_s"]))
        ratio = statistics.median(
            a / b for a, b in zip(times["run"], times["alone"], strict=True)
        )
        counts = [n for n, _ in scans]
        seconds = [s for _, s in scans]
        print(
            f"| {workload} | {statistics.median(times['none']):.3f} | "
            f"{statistics.median(times['alone']):.3f} | "
            f"{statistics.median(times['run']):.3f} | {ratio:.2f} | "
            f"{min(counts)}-{max(counts)} | {min(seconds):.4f}-{max(seconds):.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
