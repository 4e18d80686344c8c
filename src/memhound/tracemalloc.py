"""A drop-in replacement for the standard library's tracemalloc module.

    import memhound.tracemalloc as tracemalloc

The same names, signatures and behaviour as tracemalloc (CPython 3.10 to
3.13), running on memhound's engine: snapshots stay in C (grouping and
filtering run there) and are saved in memhound's file format instead of a
pickle.  docs/tracemalloc-compat.md lists every difference; the main ones:

- Trace.domain is 0 for every Python allocation, as in tracemalloc
  (memhound itself tells the raw, mem and object allocators apart);
- nframe above memhound.MAX_DEPTH is accepted and clamped to it;
- Snapshot.dump() writes memhound's format, not a pickle: attributes set
  on the snapshot object are stored as JSON, so they must be JSON data;
- filter_traces() understands Filter and DomainFilter, not other
  BaseFilter subclasses.

As in tracemalloc, a Traceback stores its frames oldest first (``_frames``)
while the raw trace tuples list them most recent first.

Importing this module starts tracing when the interpreter was started with
PYTHONTRACEMALLOC=N or -X tracemalloc[=N], as the builtin module does.
"""

from __future__ import annotations

import json
import linecache  # noqa: F401 -- part of the API: tests patch tracemalloc.linecache
import operator
import os
import re
import sys
import warnings
from collections.abc import Sequence
from functools import total_ordering

from memhound import _core
from memhound.snapshot import (
    BaseFilter,
    DomainFilter,
    Filter,
    Statistic,
    StatisticDiff,
    _check_key_type,
    _core_filters,
    _format_size,
    _normalize_filename,  # noqa: F401 -- part of tracemalloc's namespace
)

__all__ = [
    "BaseFilter",
    "DomainFilter",
    "Filter",
    "Frame",
    "Snapshot",
    "Statistic",
    "StatisticDiff",
    "Trace",
    "Traceback",
    "clear_traces",
    "get_object_traceback",
    "get_traceback_limit",
    "get_traced_memory",
    "get_tracemalloc_memory",
    "is_tracing",
    "reset_peak",
    "start",
    "stop",
    "take_snapshot",
]

# tracemalloc keeps frame counts in 16 bits.
_MAX_NFRAME = 65535
# Domain numbers as tracemalloc reports them, indexed by memhound domain:
# every Python allocator is tracemalloc's domain 0; memhound's native
# domain keeps its own number.
_DOMAIN_LABELS = (0, 0, 0, _core.DOMAIN_NATIVE)
# How tracemalloc shows a block allocated where no frame could be read.
_UNKNOWN_FRAMES = (("<unknown>", 0),)

# The nframe of the last start(), for get_traceback_limit() while stopped.
_nframe = 1


# ---- tracing -----------------------------------------------------------


def start(nframe=1, /):
    """Start tracing Python memory allocations, storing up to nframe frames
    per traceback (clamped to memhound.MAX_DEPTH)."""
    global _nframe
    nframe = operator.index(nframe)
    if not -(2**31) <= nframe < 2**31:
        raise OverflowError("Python int too large to convert to C int")
    if not 1 <= nframe <= _MAX_NFRAME:
        raise ValueError(f"the number of frames must be in range [1; {_MAX_NFRAME}]")
    # count_total: tracemalloc reports each traceback's whole depth.
    _core.start(depth=min(nframe, _core.MAX_DEPTH), count_total=True)
    _nframe = nframe


# The C functions, as they are: nothing runs (or allocates) between the
# call and the answer, which tests of exact counters rely on.
stop = _core.stop
is_tracing = _core.is_tracing
clear_traces = _core.clear_traces
get_traced_memory = _core.get_traced_memory
reset_peak = _core.reset_peak
get_tracemalloc_memory = _core.get_memory_overhead


def get_traceback_limit():
    """The maximum number of frames stored in a traceback."""
    if _core.is_tracing():
        return _core.get_traceback_limit()
    return min(_nframe, _core.MAX_DEPTH)


def _raw_frames(frames):
    """tracemalloc's raw frames, (filename, lineno) most recent first, from
    _core's (filename, lineno, function) ones, in the same order."""
    if not frames:
        return _UNKNOWN_FRAMES
    return tuple([frame[:2] for frame in frames])


def _get_object_traceback(obj):
    """The raw frames (most recent first) where obj was allocated, or
    None."""
    result = _core.get_object_traceback(obj)
    if result is None:
        return None
    return _raw_frames(result[0])


def get_object_traceback(obj):
    """The Traceback where the Python object obj was allocated, or None if
    not tracing or the allocation was not traced."""
    frames = _get_object_traceback(obj)
    if frames is None:
        return None
    return Traceback(frames)


def _get_traces():
    """Every trace as a (domain, size, frames, total_nframe) tuple; [] when
    not tracing.  Materializes them all: take_snapshot() does not use it."""
    if not _core.is_tracing():
        return []
    return list(_TraceTuples(_core.take_snapshot(), _DOMAIN_LABELS))


# take_snapshot() calls _get_traces() only once it has been replaced.
_ORIGINAL_GET_TRACES = _get_traces


def take_snapshot():
    """A Snapshot of the traces of the memory blocks allocated by Python."""
    if not is_tracing():
        raise RuntimeError(
            "the tracemalloc module must be tracing memory allocations to "
            "take a snapshot"
        )
    if _get_traces is not _ORIGINAL_GET_TRACES:
        # Someone replaced the module's _get_traces (test_tracemalloc
        # patches it to feed take_snapshot): build the snapshot from its
        # tuples, as tracemalloc does.  Otherwise the snapshot is made in
        # C, without a tuple per trace.
        return Snapshot(_get_traces(), get_traceback_limit())
    return Snapshot._wrap(_core.take_snapshot(), _DOMAIN_LABELS, get_traceback_limit())


# ---- frames, tracebacks, traces ----------------------------------------


@total_ordering
class Frame:
    """A frame of a traceback, made from a (filename, lineno) tuple."""

    __slots__ = ("_frame",)

    def __init__(self, frame):
        self._frame = frame

    @property
    def filename(self):
        return self._frame[0]

    @property
    def lineno(self):
        return self._frame[1]

    def __eq__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame == other._frame

    def __lt__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame < other._frame

    def __hash__(self):
        return hash(self._frame)

    def __str__(self):
        return f"{self.filename}:{self.lineno}"

    def __repr__(self):
        return f"<Frame filename={self.filename!r} lineno={self.lineno!r}>"


@total_ordering
class Traceback(Sequence):
    """Frames sorted from the oldest to the most recent.

    Built from raw frames sorted the other way, most recent first, as
    _get_traces() and _get_object_traceback() return them.
    """

    __slots__ = ("_frames", "_total_nframe")

    def __init__(self, frames, total_nframe=None):
        self._frames = tuple(reversed(frames))
        self._total_nframe = total_nframe

    @property
    def total_nframe(self):
        return self._total_nframe

    def __len__(self):
        return len(self._frames)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(Frame(frame) for frame in self._frames[index])
        return Frame(self._frames[index])

    def __contains__(self, frame):
        return frame._frame in self._frames

    def __hash__(self):
        return hash(self._frames)

    def __eq__(self, other):
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._frames == other._frames

    def __lt__(self, other):
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._frames < other._frames

    def __str__(self):
        return str(self[0])

    def __repr__(self):
        text = f"<Traceback {tuple(self)}"
        if self._total_nframe is not None:
            text += f" total_nframe={self._total_nframe}"
        return text + ">"

    def format(self, limit=None, most_recent_first=False):
        """Lines like Python's tracebacks, oldest frame first unless
        most_recent_first; limit > 0 keeps the limit most recent frames,
        limit < 0 the -limit oldest."""
        frames = self._frames
        if limit is not None:
            frames = frames[-limit:] if limit > 0 else frames[:limit]
        if most_recent_first:
            frames = frames[::-1]
        lines = []
        for filename, lineno in frames:
            lines.append(f'  File "{filename}", line {lineno}')
            source = linecache.getline(filename, lineno).strip()
            if source:
                lines.append(f"    {source}")
        return lines


class Trace:
    """A memory block: (domain, size, frames, total_nframe)."""

    __slots__ = ("_trace",)

    def __init__(self, trace):
        self._trace = trace

    @property
    def domain(self):
        return self._trace[0]

    @property
    def size(self):
        return self._trace[1]

    @property
    def traceback(self):
        return Traceback(*self._trace[2:])

    def __eq__(self, other):
        if not isinstance(other, Trace):
            return NotImplemented
        return self._trace == other._trace

    def __hash__(self):
        return hash(self._trace)

    def __str__(self):
        return f"{self.traceback}: {_format_size(self.size, False)}"

    def __repr__(self):
        return (
            f"<Trace domain={self.domain} size={_format_size(self.size, False)}, "
            f"traceback={self.traceback!r}>"
        )


class _TraceTuples(Sequence):
    """A _core snapshot's blocks as tracemalloc's raw trace tuples, built on
    demand.  Stands for the list tracemalloc keeps in _Traces._traces: it
    compares equal to a list of the same tuples.  Frames tuples are shared
    between traces of one traceback, as tracemalloc interns them."""

    __slots__ = ("_core", "_labels", "_tracebacks")

    def __init__(self, core, labels):
        self._core = core
        self._labels = labels
        self._tracebacks = {}

    def _traceback(self, index):
        try:
            return self._tracebacks[index]
        except KeyError:
            frames, total_nframe = self._core.traceback(index)
            if not frames:
                total_nframe = 1  # tracemalloc's "<unknown>" traceback
            pair = (_raw_frames(frames), total_nframe)
            self._tracebacks[index] = pair
            return pair

    def _tuple(self, index):
        code, size, tb_index, _generation = self._core.trace(index)
        frames, total_nframe = self._traceback(tb_index)
        return (self._labels[code], size, frames, total_nframe)

    def __len__(self):
        return len(self._core)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._tuple(i) for i in range(*index.indices(len(self._core)))]
        return self._tuple(index)

    def __iter__(self):
        for i in range(len(self._core)):
            yield self._tuple(i)

    def __eq__(self, other):
        if not isinstance(other, (_TraceTuples, list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(
            a == b for a, b in zip(self, other, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-list semantics

    def copy(self):
        return list(self)

    def __repr__(self):
        return repr(list(self))


class _Traces(Sequence):
    """Snapshot.traces: a sequence of Trace over raw trace tuples."""

    def __init__(self, traces):
        self._traces = traces

    def __len__(self):
        return len(self._traces)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(Trace(trace) for trace in self._traces[index])
        return Trace(self._traces[index])

    def __contains__(self, trace):
        return trace._trace in self._traces

    def __eq__(self, other):
        if not isinstance(other, _Traces):
            return NotImplemented
        return self._traces == other._traces

    def __repr__(self):
        return f"<Traces len={len(self)}>"


# ---- snapshots ---------------------------------------------------------


def _statistic_traceback(frames):
    # _core rows give frames innermost first, like raw frames.
    return Traceback(_raw_frames(frames))


# The instance attributes of a Snapshot itself; dump() saves every other
# one, as JSON, in the file's attributes section.
_SNAPSHOT_FIELDS = frozenset(("_core", "_labels", "traces", "traceback_limit"))
_JSON_SCALARS = (str, int, float, bool, type(None))


def _attribute_name_ok(name):
    """Whether name can be a saved attribute: a str that names neither a
    field of Snapshot nor anything of its class (a method, __class__...),
    which an attribute from a file must not shadow."""
    return (
        type(name) is str
        and name not in _SNAPSHOT_FIELDS
        and not hasattr(Snapshot, name)
    )


def _not_json(value):
    """The first part of value that JSON would not give back as it is
    (anything but dict with str keys, list, str, int, float, bool and
    None, exactly: a tuple would come back as a list), or None.  Visits
    each container once, so it ends on cycles (json.dumps rejects them)."""
    seen = set()
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _JSON_SCALARS:
            continue
        if kind is not list and kind is not dict:
            return item
        if id(item) in seen:
            continue
        seen.add(id(item))
        if kind is list:
            stack.extend(item)
            continue
        for key in item:
            if type(key) is not str:
                return key
        stack.extend(item.values())
    return None


def _attributes_json(attributes):
    """attributes ({name: value}) as one JSON object, or None when empty;
    ValueError for a name that cannot be saved, TypeError for a value that
    JSON would not give back as it is."""
    if not attributes:
        return None
    members = []
    for name, value in attributes.items():
        if not _attribute_name_ok(name):
            raise ValueError(
                f"cannot save the snapshot attribute {name!r}: it shadows a "
                f"Snapshot field or method"
            )
        bad = _not_json(value)
        try:
            if bad is not None:
                raise TypeError(f"{type(bad).__name__} is not JSON data")
            text = json.dumps(value)
        except (TypeError, ValueError, RecursionError) as error:
            raise TypeError(
                f"cannot save the snapshot attribute {name!r}: {error}; dump() "
                f"stores attributes as JSON (dict with str keys, list, str, "
                f"int, float, bool, None)"
            ) from None
        members.append(f"{json.dumps(name)}: {text}")
    return "{" + ", ".join(members) + "}"


def _attributes_from_json(text, filename):
    """The {name: value} that _attributes_json() made, read back from a
    file; ValueError naming filename if it is not such an object."""
    try:
        attributes = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValueError(
            f"{filename}: the attributes section is not valid JSON: {error}"
        ) from None
    if type(attributes) is not dict:
        raise ValueError(
            f"{filename}: the attributes section holds a JSON "
            f"{type(attributes).__name__}, not an object"
        )
    for name in attributes:
        if not _attribute_name_ok(name):
            raise ValueError(
                f"{filename}: the attributes section names {name!r}, which "
                f"is a Snapshot field or method"
            )
    return attributes


class Snapshot:
    """Snapshot of traces of memory blocks allocated by Python.

    Snapshot(traces, traceback_limit) builds one from raw trace tuples
    (domain, size, frames, total_nframe), frames most recent first, as
    tracemalloc does; take_snapshot() and Snapshot.load() make them
    without going through Python tuples.
    """

    def __init__(self, traces, traceback_limit):
        # Domain numbers are labels here: each distinct one gets a _core
        # domain code, at most four per snapshot.
        labels = []
        limit = traceback_limit
        if not isinstance(limit, int) or not 0 <= limit < 2**32:
            limit = 0  # _core only keeps it as a header field
        core = _core.Snapshot._from_traces(traces, limit, labels)
        self._init(core, tuple(labels), traceback_limit)

    @classmethod
    def _wrap(cls, core, labels, traceback_limit):
        self = cls.__new__(cls)
        self._init(core, labels, traceback_limit)
        return self

    def _init(self, core, labels, traceback_limit):
        self._core = core
        self._labels = labels
        self.traces = _Traces(_TraceTuples(core, labels))
        self.traceback_limit = traceback_limit

    def _domain_mask(self, domain):
        mask = 0
        for code, label in enumerate(self._labels):
            if label == domain:
                mask |= 1 << code
        return mask

    def dump(self, filename):
        """Write the snapshot into a file, in memhound's format, with the
        attributes set on this object, which must be JSON data (TypeError
        naming the attribute otherwise)."""
        if self._labels != _DOMAIN_LABELS[: len(self._labels)]:
            raise ValueError(
                "memhound's snapshot file keeps Python allocations (domain 0) "
                f"only; this snapshot has domains {sorted(set(self._labels))}"
            )
        text = _attributes_json(
            {k: v for k, v in vars(self).items() if k not in _SNAPSHOT_FIELDS}
        )
        # Set only when it changes: the setter refuses while another thread
        # dumps the same snapshot.
        if self._core._attributes != text:
            self._core._attributes = text
        self._core.dump(filename)

    @staticmethod
    def load(filename):
        """Load a snapshot written by dump() (memhound's format), with its
        attributes."""
        core = _core.Snapshot.load(filename)
        snapshot = Snapshot._wrap(core, _DOMAIN_LABELS, core.traceback_limit)
        text = core._attributes
        if text is not None:
            vars(snapshot).update(_attributes_from_json(text, filename))
        return snapshot

    def filter_traces(self, filters):
        """A new Snapshot with the traces that pass filters, a list of
        Filter and DomainFilter instances; a copy when filters is empty."""
        core_filters = _core_filters(filters, self._domain_mask)
        return Snapshot._wrap(
            self._core.filter(core_filters), self._labels, self.traceback_limit
        )

    def statistics(self, key_type, cumulative=False):
        """Statistics grouped by key_type ("filename", "lineno" or
        "traceback"), as a sorted list of Statistic."""
        _check_key_type(key_type, cumulative)
        return [
            Statistic(_statistic_traceback(frames), size, count)
            for size, count, frames in self._core.statistics(key_type, bool(cumulative))
        ]

    def compare_to(self, old_snapshot, key_type, cumulative=False):
        """Differences from old_snapshot grouped by key_type, as a sorted
        list of StatisticDiff."""
        if not isinstance(old_snapshot, Snapshot):
            raise TypeError(
                f"old_snapshot must be a Snapshot, not {type(old_snapshot).__name__}"
            )
        _check_key_type(key_type, cumulative)
        return [
            StatisticDiff(
                _statistic_traceback(frames), size, size_diff, count, count_diff
            )
            for size, size_diff, count, count_diff, frames in self._core.compare_to(
                old_snapshot._core, key_type, bool(cumulative)
            )
        ]


# ---- startup options ---------------------------------------------------

# How the interpreter parses the frame count (_Py_str_to_int and
# config_wstr_to_int: strtol in base 10 over the whole string, leading white
# space allowed, and "" is 0).
_NFRAME_RE = re.compile(r"(?:[ \t\n\v\f\r]*[+-]?[0-9]+)?")


def _startup_nframe():
    """The nframe that PYTHONTRACEMALLOC or -X tracemalloc[=N] ask for, read
    as the interpreter reads them at startup (the -X option wins; the
    variable counts unless -E or -I; empty means unset), or 0 for none."""
    value, source = None, None
    if not sys.flags.ignore_environment:
        value = os.environ.get("PYTHONTRACEMALLOC") or None
        source = "PYTHONTRACEMALLOC"
    xoption = sys._xoptions.get("tracemalloc")
    if xoption is not None:
        value = "1" if xoption is True else xoption
        source = "-X tracemalloc"
    if value is None:
        return 0
    if isinstance(value, str) and _NFRAME_RE.fullmatch(value):
        nframe = int(value or "0")
        if 0 <= nframe <= _MAX_NFRAME:
            return nframe
    # The interpreter refuses such a value at startup, so it was changed
    # since (os.environ, sys._xoptions): warn rather than fail the import.
    warnings.warn(
        f"memhound.tracemalloc: ignoring {source}={value!r}, which is not a "
        f"number of frames in [0; {_MAX_NFRAME}]",
        RuntimeWarning,
        stacklevel=1,  # an import: no caller of ours to point at
    )
    return 0


def _start_from_startup_options():
    """Start tracing if the interpreter was asked to trace from startup
    (the builtin module is tracing then too; it is left alone)."""
    nframe = _startup_nframe()
    if nframe and not is_tracing():
        start(nframe)


_start_from_startup_options()
