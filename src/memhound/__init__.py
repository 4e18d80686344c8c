"""memhound: find memory leaks in Python programs.

    import memhound
    memhound.start()                 # trace every allocation, 64 frames deep
    ...
    snapshot = memhound.take_snapshot()
    for stat in snapshot.statistics("lineno")[:10]:
        print(stat)

    with memhound.LeakCheck() as check:  # which sites leak, how fast
        for item in work:
            process(item)
            check.checkpoint()
    print(check.report()["leaks"])

The tracing engine is the C extension memhound._core; this module checks
arguments and wraps results (memhound.snapshot).  memhound.tracemalloc is a
drop-in replacement for the standard library's tracemalloc module.

Importing memhound registers an atexit handler that stops tracing, so a
program may exit with tracing still on.
"""

from __future__ import annotations

import atexit

from memhound import _core
from memhound.churn import cycle_churn
from memhound.heap import Census, census, census_diff, retained_by_type, why_alive
from memhound.leaks import LeakCheck, assert_no_leaks, checkpoint, iterations
from memhound.snapshot import (
    DomainFilter,
    Filter,
    Frame,
    Snapshot,
    Statistic,
    StatisticDiff,
    Trace,
    Traceback,
)

__version__ = "0.2.0"

__all__ = [
    "Census",
    "DEFAULT_DEPTH",
    "DOMAIN_MEM",
    "DOMAIN_NATIVE",
    "DOMAIN_OBJ",
    "DOMAIN_RAW",
    "DomainFilter",
    "Filter",
    "Frame",
    "LeakCheck",
    "MAX_DEPTH",
    "Snapshot",
    "Statistic",
    "StatisticDiff",
    "Trace",
    "Traceback",
    "__version__",
    "assert_no_leaks",
    "census",
    "census_diff",
    "retained_by_type",
    "checkpoint",
    "clear",
    "cycle_churn",
    "get_memory_overhead",
    "get_object_traceback",
    "get_stats",
    "get_traceback_limit",
    "get_traced_memory",
    "is_tracing",
    "native_stacks",
    "iterations",
    "reset_peak",
    "start",
    "stop",
    "take_snapshot",
    "why_alive",
]

DEFAULT_DEPTH: int = _core.DEFAULT_DEPTH
MAX_DEPTH: int = _core.MAX_DEPTH
# Allocator domains, as Trace.domain and DomainFilter use them.
DOMAIN_RAW: int = _core.DOMAIN_RAW  # PyMem_RawMalloc family
DOMAIN_MEM: int = _core.DOMAIN_MEM  # PyMem_Malloc family
DOMAIN_OBJ: int = _core.DOMAIN_OBJ  # PyObject_Malloc family
DOMAIN_NATIVE: int = _core.DOMAIN_NATIVE  # libc malloc from native code

# Largest accepted sample mean: the C side keeps it in 64 bits; anything
# near that would sample nothing at all.
_MAX_SAMPLE = 2**62


def _check_int(name: str, value: object) -> int:
    # bool is an int subclass, but start(depth=True) is surely a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def start(
    depth: int = DEFAULT_DEPTH,
    sample: int | None = None,
    *,
    native: bool = False,
    python: bool = True,
    native_stack: bool = False,
) -> None:
    """Start tracing memory allocations.

    depth: frames kept per traceback, 1 to MAX_DEPTH.
    sample: None or 0 traces every block; a positive number N samples
    blocks with a mean of N bytes between samples (e.g. 65536), which costs
    far less, and statistics then report unbiased estimates.

    native: also trace what extension modules and shared libraries
    allocate with libc's malloc family and anonymous mmap (domain
    DOMAIN_NATIVE), attributed to the Python line that called them; see
    docs/native.md.  python=False (with native=True) traces native
    allocations only.  native_stack=True (implies native) also records
    the C call stack of each native block, for native_stacks().

    Calling start() while tracing changes the settings and keeps the
    traces already recorded.  Raises TypeError or ValueError for bad
    arguments.
    """
    depth = _check_int("depth", depth)
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be in the range [1; {MAX_DEPTH}], got {depth}")
    if sample is None:
        sample = 0
    sample = _check_int("sample", sample)
    if not 0 <= sample <= _MAX_SAMPLE:
        raise ValueError(
            f"sample must be None, 0 or a mean number of bytes between "
            f"samples in [1; 2**62], got {sample}"
        )
    native = bool(native or native_stack)
    if not python and not native:
        raise ValueError("python=False traces nothing without native=True")
    _core.start(
        depth=depth,
        sample=sample,
        native=native,
        python=bool(python),
        native_stack=bool(native_stack),
    )


def stop() -> None:
    """Stop tracing and forget every trace.  Does nothing when not
    tracing."""
    _core.stop()


def is_tracing() -> bool:
    """True while memhound traces memory allocations."""
    return _core.is_tracing()


def clear() -> None:
    """Forget every trace and reset the traced and peak sizes; tracing
    goes on."""
    _core.clear_traces()


def get_traced_memory() -> tuple[int, int]:
    """(current, peak): bytes of the traced blocks alive now, and the most
    alive at once since start(), clear() or reset_peak().  (0, 0) when not
    tracing.  Exact only when not sampling."""
    return _core.get_traced_memory()


def reset_peak() -> None:
    """Set the peak traced size to the current one."""
    _core.reset_peak()


def get_traceback_limit() -> int:
    """The number of frames kept per traceback (start()'s depth)."""
    return _core.get_traceback_limit()


def get_memory_overhead() -> int:
    """Bytes memhound itself uses for its traces and tracebacks."""
    return _core.get_memory_overhead()


def get_stats() -> dict:
    """The tracer's counters: traced blocks and bytes, peak, blocks left
    untraced or tracebacks lost for lack of memory, interned tracebacks,
    memory overhead, configuration (see docs/api.md)."""
    return _core.get_stats()


def get_object_traceback(obj: object) -> Traceback | None:
    """The Traceback (innermost frame first) where obj was allocated, or
    None when not tracing or obj's allocation was not traced (made before
    start(), or not sampled)."""
    result = _core.get_object_traceback(obj)
    if result is None:
        return None
    frames, total_nframe = result
    return Traceback._from_core(frames, total_nframe)


def take_snapshot() -> Snapshot:
    """A Snapshot of every traced block alive now.  RuntimeError when not
    tracing."""
    return Snapshot(_core.take_snapshot())


def native_stacks(limit: int = 20) -> list[dict]:
    """Live native blocks grouped by the C call stack that allocated them,
    largest first, at most `limit` groups: [{"size", "count", "frames"}],
    frames innermost first as in docs/report-schema.md ("native": True,
    "library", "offset" from the library's load address, "function" from
    its dynamic symbols or "??").  Empty unless started with
    native_stack=True.  See docs/native.md."""
    limit = _check_int("limit", limit)
    if limit < 0:
        raise ValueError("limit must be >= 0")
    from memhound import _native_cli

    groups = [
        {"size": size, "count": count, "frames": _native_cli.frame_dicts(frames)}
        for size, count, frames in _core.native_stacks(limit)
    ]
    _native_cli.add_source_lines([f for group in groups for f in group["frames"]])
    return groups


def _stop_at_exit() -> None:
    # Tracing left on at shutdown: stop while the interpreter is whole.
    if _core.is_tracing():
        _core.stop()


atexit.register(_stop_at_exit)
