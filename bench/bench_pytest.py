"""Overhead of `pytest --memhound` on a real project's test suite.

    python bench/bench_pytest.py                      # more-itertools 11.2.1
    python bench/bench_pytest.py --sdist toolz==1.0.0 --tests toolz/tests

Downloads the project's sdist from PyPI (pip download, cached under
--workdir), then runs its tests alternately without and with --memhound
(A B A B ...), each in a fresh pytest process, and prints the medians:
T0 (plain), T (--memhound with W warm-up + N measured rounds, R = W + N)
and the overhead per round T / (R * T0), the cost beyond the repeats
themselves.  Times are the wall time of the whole pytest process.
Run with the venv that has memhound installed (make build).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import loadavg, machine_info, machine_line, spawn  # noqa: E402

# Tests of more-itertools that spend seconds in pure computation or thread
# contention; with them one run takes minutes on the shared machine.
DEFAULT_DESELECT = (
    "not TestConcurrentTee and not test_roundtrip and not test_all_orderings "
    "and not test_concurrent_calls and not test_lcg_mitigation"
)


def fetch_sdist(spec, workdir):
    """Download and unpack spec's sdist once; return the unpacked folder."""
    os.makedirs(workdir, exist_ok=True)
    name, _, version = spec.partition("==")
    existing = [
        f
        for f in os.listdir(workdir)
        if f.endswith(".tar.gz")
        and version in f
        and f.lower().replace("-", "_").startswith(name.lower().replace("-", "_"))
    ]
    if not existing:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-binary",
                ":all:",
                "--no-deps",
                "-d",
                workdir,
                spec,
            ],
            check=True,
        )
        existing = [
            f for f in os.listdir(workdir) if f.endswith(".tar.gz") and version in f
        ]
    archive = os.path.join(workdir, sorted(existing)[0])
    folder = archive[: -len(".tar.gz")]
    if not os.path.isdir(folder):
        # The "data" filter refuses links and paths out of workdir (PEP 706).
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        with tarfile.open(archive) as tar:
            tar.extractall(workdir, **safe)
    return folder


def run_once(args, folder, memhound):
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        *args.tests,
    ]
    if args.deselect:
        argv += ["-k", args.deselect]
    if memhound:
        argv += [
            "--memhound",
            f"--memhound-rounds={args.rounds}",
            "--memhound-mode=warn",
        ]
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        status, wall, rc, out, err = spawn(argv, timeout=args.timeout)
    finally:
        os.chdir(cwd)
    summary = (out.strip().splitlines() or [""])[-1]
    leaking = re.search(r"(\d+) leaking", out)
    return {
        "status": status,
        "wall_s": wall,
        "summary": summary,
        "leaking": int(leaking.group(1)) if leaking else None,
        "stderr": err[-500:] if status != "ok" else "",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", default="more-itertools==11.2.1")
    parser.add_argument("--tests", nargs="+", default=["tests/test_more.py"])
    parser.add_argument(
        "--deselect",
        default=DEFAULT_DESELECT,
        help="a -k expression ('' for every test)",
    )
    parser.add_argument("--rounds", default="2:3", help="W:N as --memhound-rounds")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--workdir", default="/tmp/memhound-bench-pytest")
    parser.add_argument("--json", help="also write the runs to this file")
    args = parser.parse_args()

    warmup, measured = (int(x) for x in args.rounds.split(":"))
    total_rounds = warmup + measured
    folder = fetch_sdist(args.sdist, args.workdir)
    version = ".".join(map(str, sys.version_info[:3]))
    print(
        f"# bench_pytest: {args.sdist}, tests {' '.join(args.tests)}"
        + (f" -k '{args.deselect}'" if args.deselect else "")
    )
    print(f"# {machine_line(machine_info(version))}")
    print(f"# load average at start: {loadavg()}")
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"rounds {args.rounds} (R = {total_rounds}), {args.pairs} pairs"
    )
    runs = {"plain": [], "memhound": []}
    for pair in range(args.pairs):
        for mode in ("plain", "memhound"):
            result = run_once(args, folder, mode == "memhound")
            runs[mode].append(result)
            print(
                f"pair {pair + 1} {mode:8} {result['wall_s']:7.2f} s  "
                f"{result['status']}  {result['summary']}"
                + (
                    f"  leaking={result['leaking']}"
                    if result["leaking"] is not None
                    else ""
                )
            )
            if result["status"] != "ok" and result["stderr"]:
                print(f"   stderr: {result['stderr']}")
    t0 = statistics.median(r["wall_s"] for r in runs["plain"])
    t = statistics.median(r["wall_s"] for r in runs["memhound"])
    ratios = [
        m["wall_s"] / (total_rounds * p["wall_s"])
        for p, m in zip(runs["plain"], runs["memhound"], strict=True)
    ]
    print(f"# load average at end: {loadavg()}")
    print(f"T0 (plain) median      {t0:.2f} s")
    print(f"T  (--memhound) median {t:.2f} s")
    print(f"T / T0                 {t / t0:.2f}x")
    print(
        f"overhead per round T/(R*T0): median of pairs "
        f"{statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "runs": runs}, out, indent=1)


if __name__ == "__main__":
    main()
