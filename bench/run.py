"""Run the memhound benchmark suite: workloads x tracing modes, interleaved.

Every measurement is a fresh interpreter running bench/driver.py for one
(workload, mode) pair.  Within a repetition, each workload runs under every
mode back to back (untraced, tracemalloc-1, ..., memhound, ...), and the
repetitions follow each other, so that a burst of noise on this shared
machine hits all modes of a workload alike.  Ratios are paired: a mode's
time in repetition r is divided by the untraced time of the same workload
in the same repetition; the summary gives the median ratio and its min-max.

A mode that is not installed is skipped with the reason; a sample that
crashes or times out is recorded as such (with the tail of its stderr) and
the run goes on.  Raw samples go to JSON (--json, default
bench/results-<python>-<date>.json), the markdown summary to stdout.

    python bench/run.py                       # everything, 5 repetitions
    python bench/run.py --quick               # one repetition, smoke check
    python bench/run.py --workloads own --modes untraced,tracemalloc-1
    python bench/run.py --from-json bench/results-3.11.7-....json
"""

import argparse
import datetime
import json
import math
import os
import shlex
import statistics
import sys

from _common import (
    STDERR_TAIL,
    describe_returncode,
    failure,
    fmt_load,
    loadavg,
    machine_info,
    machine_line,
    parse_result,
    spawn,
)

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(BENCH_DIR, "driver.py")
BASELINE = "untraced"


# --- running -------------------------------------------------------------


def probe(python):
    status, _, rc, out, err = spawn([python, DRIVER, "--probe"], timeout=300)
    result = parse_result(out) if status == "ok" else None
    if result is None:
        sys.exit(
            f"bench: probing {python} failed ({status}, "
            f"{describe_returncode(rc)}):\n{err[-STDERR_TAIL:]}"
        )
    return result


def measure(python, workload, mode, rep, timeout):
    status, wall, rc, out, err = spawn(
        [python, DRIVER, "--workload", workload, "--mode", mode], timeout
    )
    sample = {"rep": rep, "workload": workload, "mode": mode, "wall_s": wall}
    result = parse_result(out) if status == "ok" else None
    if status == "ok" and result is None:
        status = "crash"
    if result is not None and "skipped" in result:
        status = "skipped"
        sample["reason"] = result["skipped"]
    elif result is not None:
        sample.update(result)
    sample["status"] = status
    if status in ("crash", "timeout"):
        sample.update(failure(status, rc, err, timeout))
    return sample


# --- summarising ---------------------------------------------------------


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def fmt_ratio(values):
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}"
    return f"{med:.2f} ({min(values):.2f}–{max(values):.2f})"


def fmt_seconds(values):
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.3f}"
    return f"{med:.3f} ({min(values):.3f}–{max(values):.3f})"


def index_samples(samples):
    by_key = {}
    for s in samples:
        by_key.setdefault((s["workload"], s["mode"]), []).append(s)
    return by_key


def paired_ratios(by_key, workload, mode, field="workload_s"):
    base = {
        s["rep"]: s[field]
        for s in by_key.get((workload, BASELINE), [])
        if s["status"] == "ok"
    }
    ratios = []
    for s in by_key.get((workload, mode), []):
        if s["status"] == "ok" and base.get(s["rep"]):
            ratios.append(s[field] / base[s["rep"]])
    return ratios


def failure_cell(by_key, workload, mode):
    counts = {}
    for s in by_key.get((workload, mode), []):
        if s["status"] != "ok":
            counts[s["status"]] = counts.get(s["status"], 0) + 1
    if not counts:
        return "–"
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items()))


def summarize(run):
    """The markdown report of one run (a dict as written to --json)."""
    meta = run["meta"]
    samples = run["samples"]
    modes = meta["modes"]
    workloads = meta["workloads"]
    by_key = index_samples(samples)
    traced = [m for m in modes if m != BASELINE]
    lines = []
    add = lines.append

    m = meta["machine"]
    add(f"### CPython {m['python']}, {meta['repeat']} repetition(s)")
    add("")
    add(f"- command: `{meta['command']}`")
    add(f"- date: {meta['started']} – {meta['finished']} (UTC)")
    add(f"- interpreter: `{meta['python_executable']}`")
    add(f"- machine: {machine_line(m)}")
    add(
        f"- load average (1/5/15 min) at start: "
        f"{fmt_load(meta.get('loadavg_start'))}, at end: "
        f"{fmt_load(meta.get('loadavg_end'))}"
    )
    add("")
    add(
        "Workload time under each mode ÷ untraced workload time in the same "
        "repetition: median (min–max).  In-process time only: interpreter "
        "start-up and tool set-up/tear-down are excluded (see the last table)."
    )
    add("")
    add("| workload | untraced s | " + " | ".join(traced) + " |")
    add("|---" * (len(traced) + 2) + "|")
    medians = {mode: [] for mode in traced}
    incomplete = {mode: 0 for mode in traced}
    for w in workloads:
        base = [
            s["workload_s"]
            for s in by_key.get((w, BASELINE), [])
            if s["status"] == "ok"
        ]
        cells = [w, fmt_seconds(base) if base else failure_cell(by_key, w, BASELINE)]
        for mode in traced:
            ratios = paired_ratios(by_key, w, mode)
            if ratios:
                cells.append(fmt_ratio(ratios))
                medians[mode].append(statistics.median(ratios))
            else:
                cells.append(failure_cell(by_key, w, mode))
                incomplete[mode] += 1
        add("| " + " | ".join(cells) + " |")
    cells = ["**geomean**", ""]
    for mode in traced:
        if medians[mode]:
            g = f"**{geomean(medians[mode]):.2f}**"
            if incomplete[mode]:
                g += f" ({len(medians[mode])}/{len(workloads)} workloads)"
            cells.append(g)
        else:
            cells.append("–")
    add("| " + " | ".join(cells) + " |")
    add("")

    add(
        "Per mode, over all samples: tool set-up and tear-down (median seconds), "
        "time outside the driver's timed region (interpreter start-up, imports, "
        "workload input set-up, shutdown), and whole-process wall time ÷ "
        "untraced (geomean over workloads of the median paired ratio)."
    )
    add("")
    add("| mode | set-up s | tear-down s | outside s | wall ratio | peak RSS MiB |")
    add("|---|---|---|---|---|---|")
    for mode in modes:
        ok = [s for s in samples if s["mode"] == mode and s["status"] == "ok"]
        if not ok:
            add(f"| {mode} | – | – | – | – | – |")
            continue
        setup = statistics.median(s["setup_s"] for s in ok)
        teardown = statistics.median(s["teardown_s"] for s in ok)
        outside = statistics.median(
            s["wall_s"] - s["setup_s"] - s["workload_s"] - s["teardown_s"] for s in ok
        )
        rss = statistics.median(s["maxrss_bytes"] for s in ok) / 2**20
        wall = [
            statistics.median(r)
            for w in workloads
            if (r := paired_ratios(by_key, w, mode, "wall_s"))
        ]
        wall_cell = f"{geomean(wall):.2f}" if wall else "–"
        add(
            f"| {mode} | {setup:.4f} | {teardown:.4f} | {outside:.3f} | "
            f"{wall_cell} | {rss:.0f} |"
        )
    add("")

    notes = meta.get("skipped", [])
    if notes:
        add("Skipped:")
        add("")
        for note in notes:
            add(f"- {note}")
        add("")

    failures = [s for s in samples if s["status"] in ("crash", "timeout")]
    if failures:
        add("Failures (first per workload and mode):")
        add("")
        seen = set()
        for s in failures:
            key = (s["workload"], s["mode"])
            if key in seen:
                continue
            seen.add(key)
            add(f"- {s['workload']} / {s['mode']}: {s['status']}, {s['detail']}")
            tail = s.get("stderr_tail", "").strip().splitlines()[-8:]
            if tail:
                add("")
                add("  ```")
                lines.extend("  " + t for t in tail)
                add("  ```")
        add("")
    return "\n".join(lines)


# --- command line --------------------------------------------------------


def resolve(requested, known, groups, what):
    """Expand a comma list (with group names) against the known names."""
    if not requested:
        return None
    names = []
    for name in (n.strip() for n in requested.split(",")):
        if not name:
            continue
        members = groups.get(name, [name])
        for member in members:
            if member not in known:
                sys.exit(f"bench: unknown {what} {member!r}; known: {', '.join(known)}")
            if member not in names:
                names.append(member)
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter to benchmark"
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (5)")
    parser.add_argument(
        "--workloads",
        help="comma list of workloads or groups: own, pyperformance (its default"
        " subset), pyperformance-all, all",
    )
    parser.add_argument(
        "--modes", help="comma list of modes (untraced is always included)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one repetition, for smoke checks"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds per sample (300)"
    )
    parser.add_argument("--json", help="raw samples to this file ('-': none)")
    parser.add_argument("--markdown", help="also write the summary to this file")
    parser.add_argument(
        "--list", action="store_true", help="list workloads and modes, then exit"
    )
    parser.add_argument(
        "--from-json", metavar="FILE", help="summarize a previous run, run nothing"
    )
    args = parser.parse_args(argv)

    if args.from_json:
        with open(args.from_json) as f:
            report = summarize(json.load(f))
        print(report)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(report + "\n")
        return 0

    python = os.path.abspath(args.python) if os.sep in args.python else args.python
    info = probe(python)
    all_modes = list(info["modes"])
    all_workloads = list(info["workloads"])
    winfo = info["workloads"]
    own = [w for w in all_workloads if winfo[w]["group"] == "own"]
    pp_all = [w for w in all_workloads if winfo[w]["group"] == "pyperformance"]
    pp = [w for w in pp_all if winfo[w]["default"]]

    if args.list:
        print(f"CPython {info['python']} at {info['executable']}")
        print("modes (* = default):")
        for name, st in info["modes"].items():
            star = "*" if name in info["default_modes"] else " "
            why = "" if st["available"] else f"  [skipped: {st['reason']}]"
            print(f"  {star} {name}{why}")
        print("workloads:")
        for name, st in info["workloads"].items():
            star = "*" if st["default"] else " "
            why = "" if st["available"] else f"  [skipped: {st['reason']}]"
            print(f"  {star} {name}{why}")
        return 0

    modes = resolve(args.modes, all_modes, {}, "mode") or list(info["default_modes"])
    if BASELINE in modes:
        modes.remove(BASELINE)
    modes.insert(0, BASELINE)
    groups = {
        "own": own,
        "pyperformance": pp,
        "pyperformance-all": pp_all,
        "all": own + pp_all,
    }
    workloads = resolve(args.workloads, all_workloads, groups, "workload") or (own + pp)
    repeat = 1 if args.quick else args.repeat
    if repeat < 1:
        sys.exit("bench: --repeat must be at least 1")

    skipped = []
    for name in list(modes):
        st = info["modes"][name]
        if not st["available"]:
            skipped.append(f"mode {name}: {st['reason']}")
            modes.remove(name)
    dropped = {}
    for name in list(workloads):
        st = info["workloads"][name]
        if not st["available"]:
            dropped.setdefault(st["reason"], []).append(name)
            workloads.remove(name)
    for reason, names in dropped.items():
        skipped.append(f"workloads {', '.join(names)}: {reason}")
    for note in skipped:
        print(f"bench: skipped {note}", file=sys.stderr)
    if not workloads:
        sys.exit("bench: no workload can run")

    started = datetime.datetime.now(datetime.timezone.utc)
    json_path = args.json
    if json_path is None:
        stamp = started.strftime("%Y%m%d-%H%M%S")
        json_path = os.path.join(BENCH_DIR, f"results-{info['python']}-{stamp}.json")
    meta = {
        "command": shlex.join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])
        if argv is None
        else shlex.join(["bench/run.py", *argv]),
        "started": started.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_info(info["python"]),
        "python_executable": python,
        "repeat": repeat,
        "timeout_s": args.timeout,
        "modes": modes,
        "workloads": workloads,
        "skipped": skipped,
        "loadavg_start": loadavg(),
    }
    samples = []
    total = repeat * len(workloads) * len(modes)
    interrupted = False
    try:
        for rep in range(repeat):
            for workload in workloads:
                base = None
                for mode in modes:
                    s = measure(python, workload, mode, rep, args.timeout)
                    samples.append(s)
                    if s["status"] == "ok":
                        t = s["workload_s"]
                        if mode == BASELINE:
                            base = t
                        ratio = ""
                        if base and mode != BASELINE:
                            ratio = f"  x{t / base:.2f}"
                        msg = f"{t:.3f} s{ratio}"
                    else:
                        msg = f"{s['status']}: {s.get('detail', s.get('reason'))}"
                    print(
                        f"[{len(samples)}/{total}] rep {rep + 1} {workload} "
                        f"{mode}: {msg}",
                        file=sys.stderr,
                        flush=True,
                    )
    except KeyboardInterrupt:
        interrupted = True
        print("bench: interrupted; summarising what ran", file=sys.stderr)
    meta["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M"
    )
    meta["loadavg_end"] = loadavg()
    meta["interrupted"] = interrupted
    run = {"meta": meta, "samples": samples}
    if json_path != "-":
        with open(json_path, "w") as f:
            json.dump(run, f, indent=1)
        print(f"bench: raw samples in {json_path}", file=sys.stderr)
    report = summarize(run)
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report + "\n")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
