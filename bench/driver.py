"""One benchmark measurement: enable a tracing mode, run a workload, disable.

bench/run.py spawns this script once per (workload, mode, repetition) in a
fresh interpreter, so that no mode inherits another's heap, caches or hooks.
It prints one result line (_common.RESULT_PREFIX, then JSON) with:

    workload_s  the workload's own elapsed time, tracer on (the primary number)
    setup_s     importing and starting the tool (tracemalloc.start(), ...)
    teardown_s  stopping it (freeing traces, flushing memray's file, ...)
    load_s      interpreter-side preparation before setup (importing the
                workload, building its input data); the same in every mode
    driver_s    from the first line of this file to the end of teardown

`python bench/driver.py --probe` prints what this interpreter can run
(modes and workloads, with the reason when not).  Only the standard library
is needed; the tools are imported lazily, inside the timed set-up.
"""

import time

_T_MAIN = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from _common import print_result  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
WORKLOAD_DIR = os.path.join(BENCH_DIR, "workloads")


class Unavailable(Exception):
    """The mode or workload cannot run in this interpreter (not an error)."""


# --- modes ---------------------------------------------------------------
#
# A mode is a class with available() (raises Unavailable with the reason),
# start() and stop().  start() includes importing the tool: that is part of
# the tool's set-up cost, reported separately from the workload time.


class Untraced:
    """No tracer: the baseline every other mode is divided by."""

    def available(self):
        pass

    def start(self):
        pass

    def stop(self):
        return {}


class Tracemalloc:
    """The standard library's tracemalloc with a fixed traceback depth."""

    def __init__(self, nframe):
        self.nframe = nframe

    def available(self):
        pass

    def start(self):
        import tracemalloc

        tracemalloc.start(self.nframe)

    def stop(self):
        import tracemalloc

        traced, peak = tracemalloc.get_traced_memory()
        overhead = tracemalloc.get_tracemalloc_memory()
        tracemalloc.stop()
        return {
            "traced_bytes_at_end": traced,
            "traced_peak_bytes": peak,
            "tool_memory_bytes_at_end": overhead,
        }


class Memray:
    """memray's Python API, writing to a temporary file removed afterwards.

    memray is a bench-only dependency (bench/requirements.txt); it is never
    a dependency of memhound.
    """

    def __init__(self, trace_python_allocators=False, aggregated=False):
        self.trace_python_allocators = trace_python_allocators
        self.aggregated = aggregated
        self.tracker = None
        self.tmpdir = None

    def available(self):
        try:
            import memray
        except Exception as exc:  # ImportError, or a broken wheel
            raise Unavailable(
                f"memray not importable ({type(exc).__name__}: {exc}); "
                "pip install -r bench/requirements.txt"
            ) from None
        if self.aggregated and not hasattr(memray, "FileFormat"):
            raise Unavailable("this memray has no FileFormat.AGGREGATED_ALLOCATIONS")

    def start(self):
        import memray

        self.tmpdir = tempfile.mkdtemp(prefix="memhound-bench-memray-")
        kwargs = {"trace_python_allocators": self.trace_python_allocators}
        if self.aggregated:
            kwargs["file_format"] = memray.FileFormat.AGGREGATED_ALLOCATIONS
        self.path = os.path.join(self.tmpdir, "capture.bin")
        self.tracker = memray.Tracker(self.path, **kwargs)
        self.tracker.__enter__()

    def stop(self):
        try:
            self.tracker.__exit__(None, None, None)
            size = os.path.getsize(self.path)
        finally:
            self.tracker = None
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        return {"capture_file_bytes": size}


def _import_memhound(submodule=None):
    """Import memhound (or memhound.<submodule>), or raise Unavailable."""
    name = "memhound" + (f".{submodule}" if submodule else "")
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # ImportError, or the extension failing to load
        raise Unavailable(
            f"{name} not importable ({type(exc).__name__}: {exc}); "
            "run `make build` and use its venv"
        ) from None
    return module


class Memhound:
    """memhound.start(depth=..., sample=...); unset arguments are not passed,
    so that `Memhound()` measures whatever memhound.start() defaults to."""

    def __init__(self, **start_kwargs):
        self.start_kwargs = start_kwargs

    def available(self):
        memhound = _import_memhound()
        for name in ("start", "stop"):
            if not callable(getattr(memhound, name, None)):
                raise Unavailable(f"memhound has no {name}() yet")

    def start(self):
        import memhound

        memhound.start(**self.start_kwargs)

    def stop(self):
        import memhound

        extra = {}
        overhead = getattr(memhound, "get_memory_overhead", None)
        if callable(overhead):
            extra["tool_memory_bytes_at_end"] = overhead()
        memhound.stop()
        return extra


class MemhoundTracemalloc:
    """The drop-in facade: memhound.tracemalloc.start(1)."""

    def available(self):
        tm = _import_memhound("tracemalloc")
        for name in ("start", "stop"):
            if not callable(getattr(tm, name, None)):
                raise Unavailable(f"memhound.tracemalloc has no {name}() yet")

    def start(self):
        import memhound.tracemalloc as tm

        tm.start(1)

    def stop(self):
        import memhound.tracemalloc as tm

        extra = {}
        overhead = getattr(tm, "get_tracemalloc_memory", None)
        if callable(overhead):
            extra["tool_memory_bytes_at_end"] = overhead()
        tm.stop()
        return extra


class MemhoundRun:
    """What `memhound run` does around a program: tracing, the generation
    clock (with its scans of the live table) and, in stop(), the leak
    analysis of the end report.  The workload time includes the clock's
    work; the analysis is in teardown_s."""

    def __init__(self, **session_kwargs):
        self.session_kwargs = session_kwargs
        self.session = None

    def available(self):
        memhound = _import_memhound()
        if not hasattr(memhound, "LeakCheck"):
            raise Unavailable("memhound has no leak analysis yet")

    def start(self):
        from memhound.runner import Session

        self.session = Session(status=False, **self.session_kwargs)
        self.session.start()

    def stop(self):
        import memhound

        report = self.session.finish(argv=["bench"])
        memhound.stop()
        return {"leaks_reported": len(report["leaks"]) if report else None}


# Name -> factory.  Order is the column order of the summary tables.
MODES = {
    "untraced": Untraced,
    "tracemalloc-1": lambda: Tracemalloc(1),
    "tracemalloc-64": lambda: Tracemalloc(64),
    "memray": lambda: Memray(),
    "memray-pyalloc": lambda: Memray(trace_python_allocators=True),
    "memray-aggregated": lambda: Memray(aggregated=True),
    "memhound-1": lambda: Memhound(depth=1),
    "memhound": lambda: Memhound(),
    "memhound-256": lambda: Memhound(depth=256),
    "memhound-sample": lambda: Memhound(sample=65536),
    "memhound.tracemalloc": MemhoundTracemalloc,
    "memhound-run": lambda: MemhoundRun(),
    "memhound-run-sample": lambda: MemhoundRun(sample=65536),
}
# Modes that run unless --modes says otherwise (memray-aggregated is opt-in).
DEFAULT_MODES = [name for name in MODES if name != "memray-aggregated"]


# --- workloads -----------------------------------------------------------


def _load_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def own_workloads():
    """The names of bench/workloads/*.py, without private helpers."""
    names = []
    for entry in sorted(os.listdir(WORKLOAD_DIR)):
        if entry.endswith(".py") and not entry.startswith("_"):
            names.append(entry[:-3])
    return names


def _pyperformance():
    return _load_file(
        "_bench_pyperformance", os.path.join(WORKLOAD_DIR, "_pyperformance.py")
    )


def all_workloads():
    return own_workloads() + _pyperformance().names()


def load_workload(name):
    """Return a zero-argument callable doing the workload's fixed work.

    Raises Unavailable when the workload cannot run here (pyperformance not
    installed); everything else is a real error and propagates.
    """
    if name in own_workloads():
        module = _load_file(
            f"_bench_workload_{name}", os.path.join(WORKLOAD_DIR, f"{name}.py")
        )
        return module.run
    pp = _pyperformance()
    if name in pp.names():
        return pp.load(name)
    raise SystemExit(f"unknown workload {name!r}; known: {all_workloads()}")


# --- entry points --------------------------------------------------------


def probe():
    modes = {}
    for name, factory in MODES.items():
        try:
            factory().available()
            modes[name] = {"available": True}
        except Unavailable as exc:
            modes[name] = {"available": False, "reason": str(exc)}
    workloads = {
        name: {"available": True, "default": True, "group": "own"}
        for name in own_workloads()
    }
    pp = _pyperformance()
    reason = pp.unavailable_reason()
    for name in pp.names():
        entry = {"default": pp.is_default(name), "group": "pyperformance"}
        if reason:
            entry.update(available=False, reason=reason)
        else:
            entry.update(available=True, loops=pp.loops(name))
        workloads[name] = entry
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "default_modes": DEFAULT_MODES,
        "modes": modes,
        "workloads": workloads,
    }


def measure(workload_name, mode_name):
    mode = MODES[mode_name]()
    work = load_workload(workload_name)
    gc.collect()
    t0 = time.perf_counter()
    # Importing the tool is part of its set-up cost, so it is timed here.
    mode.available()
    mode.start()
    t1 = time.perf_counter()
    try:
        work()
    except BaseException:
        # Still stop the tool (memray's temporary file goes with it); the
        # exception makes this sample a crash in the report.
        with contextlib.suppress(Exception):
            mode.stop()
        raise
    t2 = time.perf_counter()
    extra = mode.stop()
    t3 = time.perf_counter()
    return {
        "workload": workload_name,
        "mode": mode_name,
        "workload_s": t2 - t1,
        "setup_s": t1 - t0,
        "teardown_s": t3 - t2,
        "load_s": t0 - _T_MAIN,
        "driver_s": t3 - _T_MAIN,
        # ru_maxrss is in KiB on Linux.
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "extra": extra,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--workload")
    parser.add_argument("--mode", choices=sorted(MODES))
    args = parser.parse_args(argv)
    if args.probe:
        result = probe()
    else:
        if not args.workload or not args.mode:
            parser.error("--workload and --mode are required (or --probe)")
        try:
            result = measure(args.workload, args.mode)
        except Unavailable as exc:
            result = {"skipped": str(exc)}
    print_result(result)


if __name__ == "__main__":
    main()
