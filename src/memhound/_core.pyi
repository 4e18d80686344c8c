"""Type stubs for memhound._core, the C extension (src/memhound/_core/).

A frame is (filename, lineno, function); frames tuples list the innermost
frame first.  Traceback index 0 of every snapshot is the empty traceback.
"""

from collections.abc import Iterable
from os import PathLike
from typing import final

_Frame = tuple[str, int, str]
_Frames = tuple[_Frame, ...]
# (inclusive, pattern or None, lineno, all_frames, domain_mask[, has_lineno])
_Filter = (
    tuple[bool, str | None, int, bool, int]
    | tuple[bool, str | None, int, bool, int, bool]
)
# (domain, size, frames innermost first[, total_nframe]); a frame may also
# be (filename, lineno).
_RawTrace = (
    tuple[int, int, tuple[tuple[str, int] | _Frame, ...]]
    | tuple[int, int, tuple[tuple[str, int] | _Frame, ...], int | None]
)

DEFAULT_DEPTH: int
MAX_DEPTH: int
DOMAIN_RAW: int
DOMAIN_MEM: int
DOMAIN_OBJ: int
DOMAIN_NATIVE: int

@final
class Snapshot:
    @property
    def traceback_limit(self) -> int: ...
    @property
    def sample_mean(self) -> int: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def ntracebacks(self) -> int: ...
    _attributes: str | None
    """Opaque UTF-8 text saved by dump() and restored by load() (the
    tracemalloc facade keeps a JSON object of user attributes there)."""
    def statistics(
        self, key_type: str, cumulative: bool = False
    ) -> list[tuple[int, int, _Frames]]: ...
    def compare_to(
        self, old: Snapshot, key_type: str, cumulative: bool = False
    ) -> list[tuple[int, int, int, int, _Frames]]: ...
    def filter(self, filters: list[_Filter], /) -> Snapshot: ...
    def __len__(self) -> int: ...
    def trace(self, index: int, /) -> tuple[int, int, int, int]:
        """(domain, size, traceback_index, generation)"""
    def traceback(self, index: int, /) -> tuple[_Frames, int]:
        """(frames, total_nframe)"""
    def dump(self, path: str | bytes | PathLike[str] | PathLike[bytes], /) -> None: ...
    @classmethod
    def load(cls, path: str | bytes | PathLike[str] | PathLike[bytes], /) -> Snapshot:
        """ValueError naming the problem for a bad file; OSError for I/O."""
    @classmethod
    def _from_traces(
        cls,
        traces: Iterable[_RawTrace],
        traceback_limit: int,
        domains: list[int] | None = None,
    ) -> Snapshot:
        """domains=None: each domain is
        a memhound domain (0-3); a list: domains are labels, each distinct
        one (at most 4) gets the next code and is appended."""
    def memory(self) -> int: ...

def start(
    depth: int = 64,
    sample: int = 0,
    count_total: bool = False,
    native: bool = False,
    python: bool = True,
    native_stack: bool = False,
) -> None: ...
def native_stacks(
    limit: int, /
) -> list[tuple[int, int, tuple[tuple[str | None, str | None, int, int], ...]]]:
    """(size, count, frames) by native stack; a frame is (library,
    function, offset, pc)"""

def native_status() -> dict[str, bool | int]:
    """active, patched_slots, failed_slots, rescans (docs/native.md)"""

def stop() -> None: ...
def is_tracing() -> bool: ...
def clear_traces() -> None: ...
def get_traced_memory() -> tuple[int, int]: ...
def reset_peak() -> None: ...
def get_traceback_limit() -> int: ...
def get_memory_overhead() -> int: ...
def get_stats() -> dict[str, bool | int]: ...
def next_generation() -> int: ...
def get_object_traceback(obj: object, /) -> tuple[_Frames, int] | None: ...
def take_snapshot() -> Snapshot: ...

# Capture files (capfile.c, docs/capture-format.md).
def capture_encode(
    report: str, peak: Snapshot | None, exit: Snapshot | None, /
) -> bytes: ...
def capture_decode(data: bytes, /) -> tuple[str, Snapshot | None, Snapshot | None]:
    """ValueError naming what is wrong with a bad capture."""

def _inject_alloc_failures(after: int, /) -> None:
    """Test support: let `after` more bookkeeping allocations succeed, then
    fail every one (-1: never fail)."""

# Leak analysis (leaks_binding.c): the process-wide history of generations.
def gens_restart(iteration: int = -1) -> None: ...
def gens_checkpoint(iteration: int = -1, scan: bool = True) -> tuple[int, float]: ...
def gens_info() -> dict | None: ...
def gens_analyze(
    iteration: int = -1,
    min_confidence: float = 0.5,
    min_generations: int = 3,
    max_leaks: int = 50,
    largest: int = 10,
) -> dict:
    """The verdicts; with native stacks recorded, each native site also has
    "native_stack": (blocks, bytes, frames), frames as native_stacks()'s"""

def _suspend_thread() -> None: ...
def _resume_thread() -> None: ...

# The signal relay (sigrelay.c): signum, handed to a waiting thread.
def _sigrelay_start(signum: int) -> None: ...
def _sigrelay_stop() -> None: ...
def _sigrelay_wait(deadline: int = 0, /) -> int: ...

# Cycle churn (gcchurn_binding.c): what the cyclic collector freed, by site.
def gc_churn(limit: int = 10, min_objects: float = 1.0) -> dict: ...
def _gc_churn_hold(on: bool, /) -> None: ...

# Heap graph (heap_binding.c; memhound.heap is the API).  A graph is an
# opaque capsule for one query session: release it with heap_graph_release.
_Graph = object
# (kind, text, index, ident, type name) per step; the first is ("root", ...).
_Step = tuple[str, str, int, bool, str]
# (root: labelled-root index, -1 held from outside, -2 garbage; steps)
_Path = tuple[int, list[_Step]]

def heap_graph(skip: tuple[object, ...], /) -> _Graph: ...
def heap_graph_release(graph: _Graph, /) -> None: ...
def heap_graph_info(graph: _Graph, /) -> dict[str, int]: ...
def heap_unreachable_by_site(graph: _Graph, /) -> dict[int, tuple[int, int]]: ...
def heap_object_site(obj: object, /) -> tuple[int, int] | None: ...
def heap_module_dicts() -> list[tuple[str, dict]]: ...
def heap_subclass_registries() -> list[tuple[str, type, dict]]: ...
def heap_prepare_paths(
    graph: _Graph, roots: list[object], structural: int, last: object = ..., /
) -> int: ...
def heap_path(graph: _Graph, obj: object, /) -> _Path | None: ...
def heap_sites(graph: _Graph, sites: list[int], retained: bool, /) -> list[dict]: ...
def heap_largest_retainers(
    graph: _Graph, k: int, /
) -> list[tuple[_Path, int, int]]: ...
def heap_retained(graph: _Graph, obj: object, /) -> int | None: ...
def heap_retained_one(
    graph: _Graph, roots: list[object], obj: object, /
) -> int | None: ...
def heap_retained_alone(obj: object, /) -> int: ...
def heap_retained_by_type(graph: _Graph, /) -> list[tuple[str, int, int, int]]: ...
def heap_garbage_types(graph: _Graph, /) -> list[tuple[str, int, int, bool]]: ...
def heap_census(skip: tuple[object, ...], /) -> dict[str, tuple[int, int]]: ...
