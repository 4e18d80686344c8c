"""memhound's results: frames, tracebacks, traces, statistics and snapshots.

A Snapshot wraps a ``memhound._core.Snapshot``: grouping, diffing, filtering
and the file format all run in C, and this module only turns result rows
into objects.  Nothing here loops over the traced blocks in Python:
``Snapshot.traces`` is a lazy sequence that builds a Trace when asked for
one.

Order of frames: a memhound Traceback lists its frames innermost first, so
``traceback[0]`` is the line that allocated the block and ``traceback[-1]``
the outermost caller that was kept (tracemalloc stores the reverse; see
memhound.tracemalloc for the drop-in API).

The filter classes (BaseFilter, Filter, DomainFilter) and the Statistic
classes are shared with memhound.tracemalloc, which re-exports them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import total_ordering

from memhound import _core

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
    "Traces",
]

KEY_TYPES = ("traceback", "filename", "lineno")
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def _format_size(size: float, sign: bool) -> str:
    """A size for humans, as tracemalloc prints it: "12.3 KiB", "+1024 B"."""
    for unit in _SIZE_UNITS:
        # Three significant digits past bytes; up to five digits otherwise.
        if unit != "B" and abs(size) < 100:
            return f"{size:+.1f} {unit}" if sign else f"{size:.1f} {unit}"
        if abs(size) < 10 * 1024 or unit == _SIZE_UNITS[-1]:
            return f"{size:+.0f} {unit}" if sign else f"{size:.0f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _normalize_filename(filename: str) -> str:
    """tracemalloc's file name normalization: normcase, ".pyc" -> ".py"."""
    filename = os.path.normcase(filename)
    if filename.endswith(".pyc"):
        filename = filename[:-1]
    return filename


def _check_key_type(key_type: object, cumulative: bool) -> None:
    # The C layer checks too; this gives tracemalloc's messages for any
    # type of key_type (C would raise TypeError for a non-str).
    if key_type not in KEY_TYPES:
        raise ValueError(f"unknown key_type: {key_type!r}")
    if cumulative and key_type == "traceback":
        raise ValueError(f"cumulative mode cannot by used with key type {key_type!r}")


# ---- frames and tracebacks ---------------------------------------------


@total_ordering
class Frame:
    """One frame of a traceback: file, line and function.

    Equal frames (and their hashes) are those with the same file and line,
    as in tracemalloc; the function name is extra information.
    """

    __slots__ = ("_frame",)

    def __init__(self, filename: str, lineno: int, function: str = "") -> None:
        self._frame = (filename, lineno, function)

    @classmethod
    def _from_tuple(cls, frame: tuple) -> Frame:
        self = cls.__new__(cls)
        self._frame = frame if len(frame) == 3 else (*frame, "")
        return self

    @property
    def filename(self) -> str:
        return self._frame[0]

    @property
    def lineno(self) -> int:
        return self._frame[1]

    @property
    def function(self) -> str:
        return self._frame[2]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame[:2] == other._frame[:2]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame[:2] < other._frame[:2]

    def __hash__(self) -> int:
        return hash(self._frame[:2])

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def __repr__(self) -> str:
        return (
            f"<Frame filename={self.filename!r} lineno={self.lineno!r} "
            f"function={self.function!r}>"
        )


def _frame_tuple(frame: Frame | tuple) -> tuple:
    if isinstance(frame, Frame):
        return frame._frame
    if isinstance(frame, tuple) and len(frame) in (2, 3):
        return frame if len(frame) == 3 else (*frame, "")
    raise TypeError(
        f"a frame must be a Frame or a (filename, lineno[, function]) "
        f"tuple, not {frame!r}"
    )


@total_ordering
class Traceback(Sequence):
    """The frames where a block was allocated, innermost first.

    ``traceback[0]`` is the allocating line, ``traceback[-1]`` the outermost
    frame kept (at most the depth tracing was started with).
    ``total_nframe`` is the depth of the whole stack when it was recorded,
    or None when unknown.  An empty traceback stands for a block allocated
    where no Python frame could be read (for example a raw allocation made
    without the GIL).
    """

    __slots__ = ("_frames", "_total_nframe")

    def __init__(
        self, frames: Iterable[Frame | tuple] = (), total_nframe: int | None = None
    ) -> None:
        self._frames = tuple(_frame_tuple(frame) for frame in frames)
        self._total_nframe = total_nframe

    @classmethod
    def _from_core(cls, frames: tuple, total_nframe: int | None) -> Traceback:
        # frames: _core's tuple of (filename, lineno, function), as is.
        self = cls.__new__(cls)
        self._frames = frames
        self._total_nframe = total_nframe
        return self

    @property
    def total_nframe(self) -> int | None:
        return self._total_nframe

    def _key(self) -> tuple:
        return tuple(frame[:2] for frame in self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(Frame._from_tuple(f) for f in self._frames[index])
        return Frame._from_tuple(self._frames[index])

    def __contains__(self, frame: object) -> bool:
        if not isinstance(frame, Frame):
            return False
        return frame._frame[:2] in self._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        # The allocating line: what a one-line summary needs.
        return str(self[0]) if self._frames else "<unknown>"

    def __repr__(self) -> str:
        text = f"<Traceback {tuple(self)!r}"
        if self._total_nframe is not None:
            text += f" total_nframe={self._total_nframe}"
        return text + ">"

    def format(
        self, limit: int | None = None, most_recent_first: bool = False
    ) -> list[str]:
        """Lines like Python's tracebacks, with the source line under each.

        As in tracemalloc: the oldest frame comes first unless
        most_recent_first; limit > 0 keeps the limit most recent frames,
        limit < 0 the -limit oldest ones.  The function name follows the
        line number when it is known.
        """
        import linecache

        frames = self._frames  # innermost first
        if limit is not None:
            # The most recent frames are the first ones, the oldest the last.
            frames = frames[:limit] if limit > 0 else frames[limit:] if limit else ()
        if not most_recent_first:
            frames = frames[::-1]
        lines = []
        for filename, lineno, function in frames:
            where = f'  File "{filename}", line {lineno}'
            lines.append(f"{where}, in {function}" if function else where)
            source = linecache.getline(filename, lineno).strip()
            if source:
                lines.append(f"    {source}")
        return lines


# ---- traces and statistics ---------------------------------------------


class Trace:
    """One traced block: its domain (memhound.DOMAIN_*), size in bytes,
    traceback and the generation it was allocated in."""

    __slots__ = ("domain", "size", "traceback", "generation")

    def __init__(
        self, domain: int, size: int, traceback: Traceback, generation: int = 0
    ) -> None:
        self.domain = domain
        self.size = size
        self.traceback = traceback
        self.generation = generation

    def _key(self) -> tuple:
        return (self.domain, self.size, self.traceback, self.generation)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"{self.traceback}: {_format_size(self.size, False)}"

    def __repr__(self) -> str:
        return (
            f"<Trace domain={self.domain} size={_format_size(self.size, False)}, "
            f"traceback={self.traceback!r} generation={self.generation}>"
        )


class Statistic:
    """Blocks grouped under one key: total size and number of blocks.

    In a sampled snapshot both are estimates.
    """

    __slots__ = ("traceback", "size", "count")

    def __init__(self, traceback: object, size: int, count: int) -> None:
        self.traceback = traceback
        self.size = size
        self.count = count

    def __hash__(self) -> int:
        return hash((self.traceback, self.size, self.count))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Statistic):
            return NotImplemented
        return (self.traceback, self.size, self.count) == (
            other.traceback,
            other.size,
            other.count,
        )

    def __str__(self) -> str:
        text = (
            f"{self.traceback}: size={_format_size(self.size, False)}, "
            f"count={self.count}"
        )
        if self.count:
            text += f", average={_format_size(self.size / self.count, False)}"
        return text

    def __repr__(self) -> str:
        return (
            f"<Statistic traceback={self.traceback!r} size={self.size} "
            f"count={self.count}>"
        )

    def _sort_key(self) -> tuple:
        return (self.size, self.count, self.traceback)


class StatisticDiff:
    """One key of a comparison: size and count in the new snapshot and
    their differences from the old one."""

    __slots__ = ("traceback", "size", "size_diff", "count", "count_diff")

    def __init__(
        self, traceback: object, size: int, size_diff: int, count: int, count_diff: int
    ) -> None:
        self.traceback = traceback
        self.size = size
        self.size_diff = size_diff
        self.count = count
        self.count_diff = count_diff

    def _fields(self) -> tuple:
        return (
            self.traceback,
            self.size,
            self.size_diff,
            self.count,
            self.count_diff,
        )

    def __hash__(self) -> int:
        return hash(self._fields())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatisticDiff):
            return NotImplemented
        return self._fields() == other._fields()

    def __str__(self) -> str:
        text = (
            f"{self.traceback}: size={_format_size(self.size, False)} "
            f"({_format_size(self.size_diff, True)}), "
            f"count={self.count} ({self.count_diff:+d})"
        )
        if self.count:
            text += f", average={_format_size(self.size / self.count, False)}"
        return text

    def __repr__(self) -> str:
        return (
            f"<StatisticDiff traceback={self.traceback!r} "
            f"size={self.size} ({self.size_diff:+d}) "
            f"count={self.count} ({self.count_diff:+d})>"
        )

    def _sort_key(self) -> tuple:
        return (
            abs(self.size_diff),
            self.size,
            abs(self.count_diff),
            self.count,
            self.traceback,
        )


# ---- filters -----------------------------------------------------------

# How a filter's domain number becomes a set of _core domains: a function
# from the number to a bit mask (1 << code), 0 when no block can have it.
DomainMasker = Callable[[int], int]


def _memhound_domain_mask(domain: int) -> int:
    if isinstance(domain, int) and 0 <= domain <= _core.DOMAIN_NATIVE:
        return 1 << domain
    return 0


class BaseFilter:
    """Base class of trace filters; only Filter and DomainFilter are
    understood by Snapshot.filter_traces."""

    def __init__(self, inclusive: bool) -> None:
        self.inclusive = inclusive

    def _match(self, trace: tuple) -> bool:
        raise NotImplementedError

    def _to_core(self, domain_mask: DomainMasker) -> tuple | None:
        raise TypeError(
            f"filter_traces() supports Filter and DomainFilter, not "
            f"{type(self).__name__}"
        )


class Filter(BaseFilter):
    """Keep (inclusive) or drop (exclusive) traces by file name pattern.

    filename_pattern is an fnmatch pattern; lineno None matches any line;
    all_frames looks at every frame instead of the innermost one only;
    domain restricts the filter to one domain (None: any).  The rules are
    tracemalloc's.
    """

    def __init__(
        self,
        inclusive: bool,
        filename_pattern: str,
        lineno: int | None = None,
        all_frames: bool = False,
        domain: int | None = None,
    ) -> None:
        super().__init__(inclusive)
        self._filename_pattern = _normalize_filename(filename_pattern)
        self.lineno = lineno
        self.all_frames = all_frames
        self.domain = domain

    @property
    def filename_pattern(self) -> str:
        return self._filename_pattern

    def __repr__(self) -> str:
        return (
            f"<Filter inclusive={self.inclusive!r} "
            f"filename_pattern={self._filename_pattern!r} lineno={self.lineno!r} "
            f"all_frames={self.all_frames!r} domain={self.domain!r}>"
        )

    # The _match* methods judge one frame, traceback or raw trace tuple in
    # Python, as tracemalloc's do; snapshots are filtered in C.
    def _match_frame_impl(self, filename: str, lineno: int) -> bool:
        import fnmatch

        if not fnmatch.fnmatch(_normalize_filename(filename), self._filename_pattern):
            return False
        return self.lineno is None or lineno == self.lineno

    def _match_frame(self, filename: str, lineno: int) -> bool:
        return self._match_frame_impl(filename, lineno) ^ (not self.inclusive)

    def _match_traceback(self, traceback: Sequence[tuple]) -> bool:
        if not traceback:
            traceback = (("<unknown>", 0),)
        if self.all_frames:
            hit = any(self._match_frame_impl(f[0], f[1]) for f in traceback)
            return hit if self.inclusive else not hit
        return self._match_frame(traceback[0][0], traceback[0][1])

    def _match(self, trace: tuple) -> bool:
        domain, _size, traceback = trace[:3]
        res = self._match_traceback(traceback)
        if self.domain is None:
            return res
        if self.inclusive:
            return res and domain == self.domain
        return res or domain != self.domain

    def _to_core(self, domain_mask: DomainMasker) -> tuple | None:
        """The _core filter tuple, or None for a filter that keeps every
        trace (an exclusive filter of a domain no block has)."""
        if not isinstance(self._filename_pattern, str):
            raise TypeError(
                f"filename_pattern must be a str, not "
                f"{type(self._filename_pattern).__name__}"
            )
        mask = 0
        if self.domain is not None:
            mask = domain_mask(self.domain)
            if mask == 0:
                # No block is in that domain: an inclusive filter matches
                # nothing (an empty domain filter), an exclusive one keeps
                # everything.
                return (True, None, 0, False, 0) if self.inclusive else None
        if self.lineno is None:
            return (
                bool(self.inclusive),
                self._filename_pattern,
                0,
                bool(self.all_frames),
                mask,
            )
        return (
            bool(self.inclusive),
            self._filename_pattern,
            _check_lineno(self.lineno),
            bool(self.all_frames),
            mask,
            True,
        )


def _check_lineno(lineno: object) -> int:
    if not isinstance(lineno, int):
        raise TypeError(f"lineno must be an int or None, not {type(lineno).__name__}")
    if not -(2**31) <= lineno < 2**31:
        raise ValueError(f"lineno out of range: {lineno}")
    return lineno


class DomainFilter(BaseFilter):
    """Keep (inclusive) or drop (exclusive) the traces of one domain."""

    def __init__(self, inclusive: bool, domain: int) -> None:
        super().__init__(inclusive)
        self._domain = domain

    @property
    def domain(self) -> int:
        return self._domain

    def __repr__(self) -> str:
        return f"<DomainFilter inclusive={self.inclusive!r} domain={self._domain!r}>"

    def _match(self, trace: tuple) -> bool:
        return (trace[0] == self._domain) ^ (not self.inclusive)

    def _to_core(self, domain_mask: DomainMasker) -> tuple | None:
        return (bool(self.inclusive), None, 0, False, domain_mask(self._domain))


def _core_filters(filters: object, domain_mask: DomainMasker) -> list[tuple]:
    if not isinstance(filters, Iterable):
        raise TypeError(
            f"filters must be a list of filters, not {type(filters).__name__}"
        )
    result = []
    for trace_filter in filters:
        if not isinstance(trace_filter, BaseFilter):
            raise TypeError(
                f"filters must be Filter or DomainFilter instances, not "
                f"{type(trace_filter).__name__}"
            )
        core_filter = trace_filter._to_core(domain_mask)
        if core_filter is not None:
            result.append(core_filter)
    return result


# ---- snapshots ---------------------------------------------------------


class Traces(Sequence):
    """The traced blocks of a snapshot, as a lazy sequence of Trace."""

    __slots__ = ("_core",)

    def __init__(self, core: _core.Snapshot) -> None:
        self._core = core

    def __len__(self) -> int:
        return len(self._core)

    def _trace(self, index: int) -> Trace:
        domain, size, tb_index, generation = self._core.trace(index)
        frames, total_nframe = self._core.traceback(tb_index)
        return Trace(
            domain, size, Traceback._from_core(frames, total_nframe), generation
        )

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self._trace(i) for i in range(*index.indices(len(self._core))))
        return self._trace(index)

    def __iter__(self) -> Iterator[Trace]:
        for i in range(len(self._core)):
            yield self._trace(i)

    def __repr__(self) -> str:
        return f"<Traces len={len(self)}>"


class Snapshot:
    """The traced blocks at one moment, with their tracebacks.

    Made by memhound.take_snapshot(), Snapshot.load() or filter_traces().
    """

    __slots__ = ("_core",)

    def __init__(self, core: _core.Snapshot) -> None:
        if not isinstance(core, _core.Snapshot):
            raise TypeError(
                "Snapshot objects come from memhound.take_snapshot() or Snapshot.load()"
            )
        self._core = core

    @property
    def traces(self) -> Traces:
        return Traces(self._core)

    @property
    def traceback_limit(self) -> int:
        """The depth tracing was started with."""
        return self._core.traceback_limit

    @property
    def sample_mean(self) -> int:
        """0 when every block was traced; else the mean number of bytes
        between samples, and sizes and counts are estimates."""
        return self._core.sample_mean

    @property
    def timestamp(self) -> float:
        """When the snapshot was taken, in seconds since the epoch."""
        return self._core.timestamp

    def __len__(self) -> int:
        return len(self._core)

    def __repr__(self) -> str:
        return (
            f"<memhound.Snapshot blocks={len(self._core)} "
            f"traceback_limit={self.traceback_limit} "
            f"sample_mean={self.sample_mean}>"
        )

    def statistics(
        self, key_type: str = "lineno", cumulative: bool = False
    ) -> list[Statistic]:
        """Blocks grouped by "lineno", "filename" or "traceback", largest
        first.  cumulative counts a block under every frame of its
        traceback (not with "traceback")."""
        _check_key_type(key_type, cumulative)
        return [
            Statistic(Traceback._from_core(frames, None), size, count)
            for size, count, frames in self._core.statistics(key_type, bool(cumulative))
        ]

    def compare_to(
        self, old: Snapshot, key_type: str = "lineno", cumulative: bool = False
    ) -> list[StatisticDiff]:
        """What changed since old, grouped by key_type, biggest change
        first."""
        if not isinstance(old, Snapshot):
            raise TypeError(f"old must be a Snapshot, not {type(old).__name__}")
        _check_key_type(key_type, cumulative)
        return [
            StatisticDiff(
                Traceback._from_core(frames, None), size, size_diff, count, count_diff
            )
            for size, size_diff, count, count_diff, frames in self._core.compare_to(
                old._core, key_type, bool(cumulative)
            )
        ]

    def filter_traces(
        self,
        filters: Iterable[BaseFilter] = (),
        *,
        min_size: int | None = None,
        max_size: int | None = None,
    ) -> Snapshot:
        """A new snapshot with the traces that pass the filters
        (tracemalloc's rules) and, when given, whose block size lies in
        [min_size, max_size]; with neither, a copy."""
        core_filters = _core_filters(filters, _memhound_domain_mask)
        bounds = {}
        for name, value in (("min_size", min_size), ("max_size", max_size)):
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if not 0 <= value < 2**64:
                raise ValueError(f"{name} must be in [0, 2**64), got {value}")
            bounds[name] = value
        return Snapshot(self._core.filter(core_filters, **bounds))

    def dump(self, filename: str | os.PathLike) -> None:
        """Write the snapshot to a file in memhound's format."""
        self._core.dump(filename)

    @classmethod
    def load(cls, filename: str | os.PathLike) -> Snapshot:
        """Read a snapshot written by dump().  ValueError says what is
        wrong with a bad file; OSError when it can't be read."""
        return cls(_core.Snapshot.load(filename))
