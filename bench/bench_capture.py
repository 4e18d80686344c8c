"""Capture size and report time: memhound vs memray on one long run.

    .venv/bin/python bench/bench_capture.py [--seconds 60] [--renders 3]

The program (written to a temporary directory) serves requests with
bench/workloads/request_handler.py for --seconds, allocation-heavy (every
request allocates and frees hundreds of objects) and with a slow leak (a
cache that keeps one entry per 50 requests).  It runs once under
`memhound run --output run.mhc` and once under `memray run
--trace-python-allocators -o run.bin` (when memray is installed:
bench/requirements.txt).  Then the HTML
reports are rendered --renders times, alternating memhound and memray
(`memhound report run.mhc --html`, `memray flamegraph`), and the medians
are printed.  Results go to bench/RESULTS.md by hand, with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import machine_info, machine_line  # noqa: E402

PROGRAM = """\
import sys, time
sys.path.insert(0, {workloads!r})
import request_handler as app

cache = {{}}
deadline = time.monotonic() + {seconds}
i = 0
while time.monotonic() < deadline:
    for _ in range(200):
        app.handle(app.RAW[i % len(app.RAW)])
        if i % 50 == 0:
            cache[i] = bytearray(300)   # the leak
        i += 1
print("requests", i)
"""


def timed(argv, cwd):
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return wall, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--renders", type=int, default=3)
    parser.add_argument("--keep", help="directory to keep the files in")
    parser.add_argument(
        "--sites",
        type=int,
        help="instead: time render_html of a synthetic snapshot with this "
        "many sites (tests/report_fixture.synthetic_snapshot)",
    )
    args = parser.parse_args()
    if args.sites:
        return bench_sites(args.sites, args.renders)
    work = args.keep or tempfile.mkdtemp(prefix="bench-capture-")
    os.makedirs(work, exist_ok=True)
    program = os.path.join(work, "service.py")
    with open(program, "w") as out:
        out.write(
            PROGRAM.format(
                workloads=os.path.join(HERE, "workloads"), seconds=args.seconds
            )
        )
    py = sys.executable
    have_memray = shutil.which("memray") or _importable("memray")
    results: dict = {
        "seconds": args.seconds,
        "machine": machine_info(sys.version.split()[0]),
    }
    results["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]

    mhc = os.path.join(work, "run.mhc")
    wall, proc = timed(
        [py, "-m", "memhound", "run", "--quiet", "--output", mhc, program], work
    )
    results["memhound"] = {
        "run_s": round(wall, 2),
        "capture_bytes": os.path.getsize(mhc),
        "stdout": proc.stdout.strip(),
    }
    if have_memray:
        binfile = os.path.join(work, "run.bin")
        wall, proc = timed(
            [py, "-m", "memray", "run", "-f", "-o", binfile, program], work
        )
        results["memray"] = {
            "run_s": round(wall, 2),
            "capture_bytes": os.path.getsize(binfile),
            "stdout": [x for x in proc.stdout.splitlines() if "requests" in x][0],
        }

    # Renders, alternating (A B A B ...): the machine is shared and noisy.
    renders: dict = {"memhound": [], "memray": []}
    for k in range(args.renders):
        out = os.path.join(work, f"memhound-{k}.html")
        wall, _ = timed([py, "-m", "memhound", "report", mhc, "--html", out], work)
        renders["memhound"].append(wall)
        results["memhound"]["html_bytes"] = os.path.getsize(out)
        if have_memray:
            out = os.path.join(work, f"memray-{k}.html")
            wall, _ = timed(
                [py, "-m", "memray", "flamegraph", "-f", "-o", out, binfile], work
            )
            renders["memray"].append(wall)
            results["memray"]["html_bytes"] = os.path.getsize(out)
    for tool, times in renders.items():
        if times:
            results[tool]["report_s_runs"] = [round(t, 3) for t in times]
            results[tool]["report_s_median"] = round(statistics.median(times), 3)
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(machine_line(results["machine"]))
    print(
        f"load average at start {results['loadavg_start']}, "
        f"at end {results['loadavg_end']}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1))
    print(f"files in {work}")


def bench_sites(nsites: int, renders: int) -> None:
    """render_html of a report with nsites allocation sites (peak and exit
    the same synthetic snapshot), in-process, renders times."""
    sys.path.insert(0, os.path.dirname(HERE))
    from memhound.html import render_html
    from tests.report_fixture import make_report, synthetic_snapshot

    snapshot = synthetic_snapshot(nsites)
    report = make_report()
    times = []
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "big.html")
        for _ in range(renders):
            t0 = time.perf_counter()
            render_html(report, snapshot, snapshot, out)
            times.append(time.perf_counter() - t0)
        size = os.path.getsize(out)
    print(machine_line(machine_info(sys.version.split()[0])))
    print(f"load average {[round(x, 2) for x in os.getloadavg()]}")
    print(
        f"{nsites} sites: render_html {[round(t, 3) for t in times]} s, "
        f"median {statistics.median(times):.3f} s, page {size:,} bytes"
    )


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
