"""pyperformance benchmarks run in-process with a fixed loop count.

Nothing is vendored: each bm_<name>/run_benchmark.py is executed from the
installed pyperformance package (pip install -r bench/requirements.txt) as
__main__, with pyperf.Runner replaced by a stand-in that records which
function the benchmark would time and with which arguments, instead of
spawning pyperf's calibration and worker processes.  Loading (imports, input
data) happens before the tracer starts; only the returned callable is timed.

LOOPS is calibrated so that each takes roughly 0.3 s untraced on the 2-core
reference machine under CPython 3.11 (more under 3.10 and on a busy machine).
"""

import argparse
import asyncio
import importlib.util
import os
import runpy

# Benchmark name (the bm_<name> directory) -> loop count.
LOOPS = {
    "json_dumps": 28,
    "json_loads": 800,
    "nbody": 4,
    "richards": 9,
    "deltablue": 100,
    "float": 4,
    "regex_v8": 16,
    "pidigits": 2,
    "unpack_sequence": 26000,
    "chaos": 5,
    "go": 3,
}
# Registered but not run by default: together with tracemalloc-64 (25-85x
# slower on them) they would push a 3-repetition run well past 15 minutes.
# Select them with --workloads pyperformance-all (or by name).
NOT_DEFAULT = {"float", "regex_v8", "chaos"}
PREFIX = "pp_"


def names():
    return [PREFIX + name for name in LOOPS]


def is_default(workload):
    return workload[len(PREFIX) :] not in NOT_DEFAULT


def loops(workload):
    return LOOPS[workload[len(PREFIX) :]]


def _benchmarks_dir():
    spec = importlib.util.find_spec("pyperformance")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(spec.submodule_search_locations[0], "data-files", "benchmarks")


def unavailable_reason():
    """None when the benchmarks can run, else why not."""
    root = _benchmarks_dir()
    if root is None:
        return "pyperformance not installed (pip install -r bench/requirements.txt)"
    if not os.path.isdir(root):
        return f"pyperformance has no benchmark directory at {root}"
    if importlib.util.find_spec("pyperf") is None:
        return "pyperf (a pyperformance dependency) not installed"
    return None


class _StandInRunner:
    """Just enough of pyperf.Runner for run_benchmark.py's __main__ block."""

    captured = None

    def __init__(self, *args, add_cmdline_args=None, **kwargs):
        self.metadata = {}
        self.argparser = argparse.ArgumentParser()
        self.args = None

    def parse_args(self, args=None):
        # The benchmark's own defaults, never this process's command line.
        self.args = self.argparser.parse_args([])
        return self.args

    def _capture(self, kind, func, args):
        _StandInRunner.captured = (kind, func, args)

    def bench_func(self, name, func, *args, **kwargs):
        self._capture("func", func, args)

    def bench_time_func(self, name, func, *args, **kwargs):
        self._capture("time_func", func, args)

    def bench_async_func(self, name, func, *args, **kwargs):
        self._capture("async_func", func, args)


def load(workload):
    """Run bm_<name>'s set-up and return a callable doing `loops` iterations."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    import pyperf

    name = workload[len(PREFIX) :]
    path = os.path.join(_benchmarks_dir(), f"bm_{name}", "run_benchmark.py")
    real_runner = pyperf.Runner
    pyperf.Runner = _StandInRunner
    _StandInRunner.captured = None
    try:
        runpy.run_path(path, run_name="__main__")
    finally:
        pyperf.Runner = real_runner
    if _StandInRunner.captured is None:
        raise RuntimeError(f"{path} registered no benchmark function")
    kind, func, args = _StandInRunner.captured
    count = LOOPS[name]

    if kind == "time_func":

        def run():
            func(count, *args)

    elif kind == "async_func":

        def run():
            for _ in range(count):
                asyncio.run(func(*args))

    else:

        def run():
            for _ in range(count):
                func(*args)

    return run
