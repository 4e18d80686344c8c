"""What `memhound run --output/--html` records while the program runs: a
timeline of traced memory and RSS, and a snapshot near the peak.

A daemon thread wakes every `interval` seconds, reads the traced memory
(one C call) and the RSS (/proc/self/statm), and takes a snapshot when
traced memory has grown past `peak_margin` times the size of the last peak
snapshot, so the snapshot kept is within that margin of the highest sample
(docs/capture-format.md), unless snapshots come so fast that they would
cost more than ~5% of the run (SNAPSHOT_BUDGET).  take_peak() lets a
runner that has its own checkpoints (generations) offer one instead.
Snapshots are taken in C; the thread never walks the heap in Python, and
what it allocates is not traced (_core._suspend_thread).
"""

from __future__ import annotations

import os
import threading
import time
from array import array

import memhound
from memhound import _core, _quiet_threads

__all__ = ["Recorder", "rss_bytes"]

# Wait this many times the cost of the last peak snapshot before the next.
SNAPSHOT_BUDGET = 20.0

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """Resident set size of this process, or None where /proc is absent."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class Recorder:
    """Samples memory in the background while tracing is on."""

    def __init__(self, interval: float = 0.1, peak_margin: float = 1.1) -> None:
        self.interval = interval
        self.peak_margin = peak_margin
        # Three arrays rather than a dict per point: the recorder's own
        # allocations are traced too, and these stay a few blocks.
        self._t = array("d")
        self._traced = array("q")
        self._rss = array("q")  # -1: unknown
        self.peak_snapshot = None
        self.peak_snapshot_bytes = 0
        self.peak_snapshot_t = None
        self._t0 = time.monotonic()
        self._next_snapshot = 0.0  # time.monotonic() of the next allowed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Recorder:
        _core._suspend_thread()  # the recorder's objects are memhound's own
        try:
            self._t0 = time.monotonic()
            self.sample()
            self._thread = threading.Thread(
                target=self._run, name="memhound-recorder", daemon=True
            )
            _quiet_threads.start(self._thread)
        finally:
            _core._resume_thread()
        return self

    def _run(self) -> None:
        _core._suspend_thread()  # nothing this thread allocates is traced
        while not self._stop.wait(self.interval):
            if not memhound.is_tracing():
                return
            self.sample()

    def sample(self) -> None:
        """Add a timeline point now; take a peak snapshot if memory grew
        past the margin."""
        traced, _peak = memhound.get_traced_memory()
        rss = rss_bytes()
        now = time.monotonic()
        with self._lock:
            self._t.append(now - self._t0)
            self._traced.append(traced)
            self._rss.append(-1 if rss is None else rss)
            grew = traced > self.peak_snapshot_bytes * self.peak_margin
        # Snapshots of a big heap take a while: wait at least SNAPSHOT_BUDGET
        # times the last one's cost between two, so they cost the program
        # at most ~5% of its time however fast it grows.
        if grew and now >= self._next_snapshot:
            self.take_peak(traced)

    def take_peak(self, traced: int | None = None) -> None:
        """Take a snapshot as the peak one if traced memory (now, or the
        given value) is above the last peak snapshot's."""
        if traced is None:
            traced = memhound.get_traced_memory()[0]
        if traced <= self.peak_snapshot_bytes or not memhound.is_tracing():
            return
        started = time.monotonic()
        try:
            snapshot = memhound.take_snapshot()
        except RuntimeError:  # tracing stopped meanwhile
            return
        done = time.monotonic()
        self._next_snapshot = done + SNAPSHOT_BUDGET * (done - started)
        with self._lock:
            if traced > self.peak_snapshot_bytes:
                self.peak_snapshot = snapshot
                self.peak_snapshot_bytes = traced
                self.peak_snapshot_t = round(time.monotonic() - self._t0, 4)

    @property
    def timeline(self) -> list[dict]:
        """The samples as the report's "timeline" entries."""
        with self._lock:
            return [
                {
                    "t": round(t, 4),
                    "traced_bytes": traced,
                    "rss_bytes": None if rss < 0 else rss,
                }
                for t, traced, rss in zip(self._t, self._traced, self._rss, strict=True)
            ]

    def stop(self) -> None:
        """Take a last sample and stop the thread (tracing must still be
        on for the last sample to count)."""
        if memhound.is_tracing():
            _core._suspend_thread()
            try:
                self.sample()
            finally:
                _core._resume_thread()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
