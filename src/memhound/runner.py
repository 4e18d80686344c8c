"""The tracing session of `memhound run`: generations on a clock, a live
status line, worker processes, and the report at the end.

A Session starts tracing and a background clock that begins a generation
every `interval` seconds (adaptive by default: 0.1 s at first, then about
1/40 of the elapsed time), or sooner when the program has allocated as much
as its whole live heap (at least VOLUME_MIN bytes) since the last one, so
that bursts of allocation get generations of their own; never so often
that the scans of the live table cost more than ~5% of the run.  The
clock thread's own allocations are not traced.  finish() stops the clock
and returns the report dict.

With follow_fork, a child process created by fork() gets a session of its
own (the inherited traces become its generation 0); when it exits, through
a normal exit or os._exit() as multiprocessing and pre-fork servers do, it
writes its report where the parent collects it; a SIGTERM makes it report
and exit from a thread of memhound's (_sigterm_relay.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

from memhound import _core, _quiet_threads, _sigterm_relay, churn
from memhound.leaks import DEFAULT_MIN_CONFIDENCE, SCAN_BUDGET, build_report

_current = None  # the Session of this process, if any

# The clock's adaptive interval: MIN_INTERVAL at first, then
# elapsed / TARGET_GENERATIONS, at most MAX_INTERVAL.
MIN_INTERVAL = 0.1
MAX_INTERVAL = 10.0
TARGET_GENERATIONS = 40
# The volume trigger: checked every VOLUME_POLL seconds; fires when the
# bytes allocated since the last generation reach max(VOLUME_MIN, the live
# heap), at most once per VOLUME_MIN_INTERVAL.
VOLUME_POLL = 0.05
VOLUME_MIN = 16 << 20
VOLUME_MIN_INTERVAL = 0.05
STATUS_AFTER = 2.0  # seconds before the live status line appears
STATUS_EVERY = 0.5


def current_session() -> Session | None:
    """The session of this process, when it runs under `memhound run`."""
    return _current


class _Clock(threading.Thread):
    """Begins a generation every interval; draws the status line."""

    def __init__(self, session: Session) -> None:
        super().__init__(name="memhound-clock", daemon=True)
        self.session = session
        self.stopping = threading.Event()
        self.last_cost = 0.0
        self.status_shown = False

    def next_interval(self, elapsed: float) -> float:
        fixed = self.session.interval
        if fixed is not None:
            base = fixed
        else:
            base = min(MAX_INTERVAL, max(MIN_INTERVAL, elapsed / TARGET_GENERATIONS))
        return max(base, self.last_cost * SCAN_BUDGET)

    def run(self) -> None:
        _core._suspend_thread()  # the clock's own work is not the program's
        started = self.session.started
        next_status = started + STATUS_AFTER
        last_tick = started
        next_tick = started + self.next_interval(0.0)
        volume_mark = 0
        volume_due = VOLUME_MIN
        while not self.stopping.is_set():
            now = time.monotonic()
            wake = min(next_tick, now + VOLUME_POLL)
            if self.session.status:
                wake = min(wake, next_status)
            if self.stopping.wait(max(0.0, wake - now)):
                break
            now = time.monotonic()
            tick = now >= next_tick
            if not tick and now - last_tick >= max(
                VOLUME_MIN_INTERVAL, self.last_cost * SCAN_BUDGET
            ):
                stats = _core.get_stats()
                tick = stats["allocated_bytes"] - volume_mark >= volume_due
            if tick:
                try:
                    _gen, self.last_cost = _core.gens_checkpoint(
                        iteration=self.session.iteration_or_unknown()
                    )
                    stats = _core.get_stats()
                except RuntimeError:  # tracing was stopped under us
                    break
                volume_mark = stats["allocated_bytes"]
                volume_due = max(VOLUME_MIN, stats["traced_bytes"])
                last_tick = now
                next_tick = now + self.next_interval(now - started)
            if self.session.status and now >= next_status:
                self.draw_status(now - started)
                next_status = now + STATUS_EVERY

    def draw_status(self, elapsed: float) -> None:
        from memhound.report import format_size

        traced, _peak = _core.get_traced_memory()
        info = _core.gens_info() or {}
        line = (
            f"memhound: {elapsed:6.1f} s  traced {format_size(traced):>10}  "
            f"generation {info.get('generation', 0)}"
        )
        self.status_shown = _status_note(line)
        if not self.status_shown:
            self.session.status = False

    def stop(self) -> None:
        self.stopping.set()
        if self is not threading.current_thread():
            self.join(timeout=5.0)
        if self.status_shown:
            _status_note("")


class Session:
    """One process's tracing for `memhound run`."""

    def __init__(
        self,
        *,
        depth: int | None = None,
        sample: int | None = None,
        interval: float | None = None,
        status: bool = False,
        follow_fork: bool = False,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        graph: bool = True,
        start_options: dict | None = None,
    ) -> None:
        self.depth = depth
        self.sample = sample
        self.interval = interval
        self.status = status
        self.follow_fork = follow_fork
        self.min_confidence = min_confidence
        self.graph = graph
        self.baseline = None  # memhound.heap.Census at the start
        # More memhound.start() keywords (native=, python=: docs/native.md).
        self.start_options = dict(start_options or {})
        self.iterations = 0
        self.pid = os.getpid()
        self.started = time.monotonic()
        self.clock = None
        self.children_dir = None
        self.is_child = False
        self._real_exit = None
        self._fork_mask = None  # the forking thread's signal mask, over fork()
        # In a followed child: the lock that lets one thread report (the
        # program's exit or SIGTERM's relay thread).
        self._report_lock = None
        self._reported = False
        self._reporting_thread = None  # the thread writing a child's report

    # -- life cycle ------------------------------------------------------
    def start(self) -> None:
        """Start tracing (ValueError/TypeError for bad settings)."""
        global _current
        import memhound

        args = {}
        if self.depth is not None:
            args["depth"] = self.depth
        if self.sample is not None:
            args["sample"] = self.sample
        args.update(self.start_options)
        memhound.start(**args)
        if self.graph:
            from memhound import heap

            _core._suspend_thread()
            try:
                self.baseline = heap.census()
            finally:
                _core._resume_thread()
        _core.gens_restart()
        if self.follow_fork:
            if self.children_dir is None:
                self.children_dir = tempfile.mkdtemp(prefix="memhound-children-")
            os.register_at_fork(
                before=self._before_fork,
                after_in_parent=self._after_fork_in_parent,
                after_in_child=self._after_fork_in_child,
            )
            _follow_spawned_children(self.children_dir)
        self.started = time.monotonic()
        _core._suspend_thread()  # the clock's objects are memhound's own
        try:
            self.clock = _Clock(self)
            _quiet_threads.start(self.clock)
        finally:
            _core._resume_thread()
        _current = self

    def count_iteration(self) -> None:
        self.iterations += 1

    def iteration_or_unknown(self) -> int:
        return self.iterations if self.iterations else -1

    def finish(self, argv=None) -> dict | None:
        """Stop the clock and return the report; None in a child process
        that fork() made without follow_fork (its parent reports), or in a
        followed child that has reported already."""
        lock = self._report_lock
        if lock is None or os.getpid() != self.pid:
            return self._finish(argv)
        # A child reports once, from the first thread that gets here: the
        # program's exit or SIGTERM's relay thread, which ends the process
        # (the other waits for that).
        with lock:
            if self._reported:
                return None
            self._reported = True
            self._reporting_thread = threading.get_ident()
            return self._finish(argv)

    def _finish(self, argv) -> dict | None:
        global _current
        if self.clock is not None:
            self.clock.stop()
            self.clock = None
        if os.getpid() != self.pid:
            return None
        if not _core.is_tracing():
            return None
        if self.status and self.graph:
            _status_note("memhound: analysing the heap...")
        report = build_report(
            iteration=self.iteration_or_unknown(),
            min_confidence=self.min_confidence,
            argv=argv,
            graph=self.graph,
            baseline=self.baseline,
        )
        if self.status and self.graph:
            _status_note("")
        report["settings"]["interval_s"] = self.interval
        if self.is_child:
            self._write_child_report(report)
        elif self.children_dir is not None:
            _merge_children(report, self.children_dir)
            shutil.rmtree(self.children_dir, ignore_errors=True)
        _current = None if not self.is_child else _current
        return report

    # -- worker processes ------------------------------------------------
    def _before_fork(self) -> None:
        # SIGTERM stays blocked in the child until its handler is set:
        # before that, on_sigterm's SystemExit would be raised inside an
        # at-fork callback, which swallows it (a Pool that terminates while
        # it forks a replacement worker then waits for it forever).
        self._fork_mask = None
        if _current is self and _core.is_tracing():
            self._fork_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def _after_fork_in_parent(self) -> None:
        if self._fork_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._fork_mask)
            self._fork_mask = None

    def _after_fork_in_child(self) -> None:
        try:
            self._start_child()
        finally:
            self._after_fork_in_parent()  # the same mask to restore

    def _start_child(self) -> None:
        if _current is not self or not _core.is_tracing():
            return
        # The parent's clock thread does not exist here: start ours, and
        # count what the child inherited as generation 0.
        self.pid = os.getpid()
        self.is_child = True
        self.iterations = 0
        _core.gens_restart()
        self.started = time.monotonic()
        self.status = False
        self.clock = _Clock(self)
        _quiet_threads.start(self.clock)
        if self._real_exit is None:
            self._real_exit = os._exit
            os._exit = self._child_exit
        self._report_lock = threading.RLock()
        self._reported = False
        self._reporting_thread = None
        # A SystemExit raised by on_sigterm can be lost in a child: code
        # that reports exceptions as unraisable (a finalizer, an at-fork
        # callback) swallows it, and a multiprocessing.Pool worker then
        # waits forever on a queue lock its terminate() holds.  The child
        # reports and exits from the handler itself instead.
        handler = signal.getsignal(signal.SIGTERM)
        if handler is on_sigterm or handler == self._child_on_sigterm:
            try:
                signal.signal(signal.SIGTERM, self._child_on_sigterm)
            except ValueError:  # not the interpreter's main thread
                return
            # And a thread of memhound's takes SIGTERM rather than that
            # handler, which the main thread may never run
            # (_sigterm_relay.py).
            _sigterm_relay.start(self._relayed_sigterm)

    def _child_on_sigterm(self, signum, frame):
        if self._reporting_thread == threading.get_ident():
            # Run inside the report this thread is writing (CPython's own
            # handler is back: a program's save-and-restore of SIGTERM's
            # handler bypasses the relay).  Exiting now would lose the
            # report; the program ends once it is written.
            return
        self._child_exit(128 + signum)

    def _relayed_sigterm(self) -> None:
        self._child_exit(128 + signal.SIGTERM)

    def _child_exit(self, status=0):
        try:
            if os.getpid() == self.pid and _core.is_tracing():
                # A parent may SIGTERM a worker that is already leaving:
                # multiprocessing.Pool's terminate() (its `with` block's
                # exit) does, then waits for it.  The report is finished
                # first (a SIGTERM would cut it short); the exit follows.
                _ignore_sigterm()
                self.finish()
        except BaseException:  # never keep a worker from exiting
            pass
        finally:
            self._real_exit(status)

    def _write_child_report(self, report: dict) -> None:
        from memhound.report import to_json_data

        report["argv"] = list(sys.argv)
        path = os.path.join(self.children_dir, f"child-{os.getpid()}.json")
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as out:
                json.dump(to_json_data(report), out)
            os.replace(path + ".tmp", path)
        except OSError:
            pass


def on_sigterm(signum, frame):
    """`memhound run`'s SIGTERM handler (when the program has none): a
    normal exit, so that the report is still printed."""
    raise SystemExit(128 + signum)


def _ignore_sigterm() -> None:
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread: its handler stays
        pass


def _follow_spawned_children(children_dir: str) -> None:
    """Make multiprocessing's spawn (and forkserver) children start a child
    session first: their command line runs `python -c "from
    multiprocessing.spawn import spawn_main; ..."`, which gets a prefix."""
    _core._suspend_thread()
    try:
        import multiprocessing.spawn as spawn
    finally:
        _core._resume_thread()
    original = getattr(spawn.get_command_line, "__wrapped__", spawn.get_command_line)

    def get_command_line(**kwds):
        command = original(**kwds)
        if "-c" in command:
            at = command.index("-c") + 1
            command[at] = (
                "import memhound.runner as _memhound_runner; "
                f"_memhound_runner._start_spawned_child({children_dir!r}); "
                + command[at]
            )
        return command

    get_command_line.__wrapped__ = original
    spawn.get_command_line = get_command_line


def _start_spawned_child(children_dir: str) -> None:
    """In a child process started by multiprocessing's spawn: trace it and
    write its report where the parent collects it when it exits."""
    import atexit

    if not os.path.isdir(children_dir):
        return
    session = Session(follow_fork=True)
    session.children_dir = children_dir
    session.is_child = True
    try:
        session.start()
    except (ValueError, TypeError, MemoryError):
        return

    def finish_child():
        try:
            session.finish()
        except Exception:  # never keep a worker from exiting
            pass
        _core.stop()

    atexit.register(finish_child)


def _status_note(text: str) -> bool:
    """A transient line on the terminal (cleared by an empty text); False
    when stderr can't take it."""
    try:
        sys.stderr.write("\r" + text[:79] + "\x1b[K")
        sys.stderr.flush()
    except (OSError, ValueError):
        return False
    return True


def _site_key(leak: dict) -> tuple:
    """What makes two children's leaks the same site: the kind, the
    innermost frame and the frames in the user's own code.  Library frames
    outside the user's code may differ between children (how each worker
    was started) and do not count."""
    return (leak["kind"],) + _frames_key(leak["traceback"])


def _frames_key(frames: list) -> tuple:
    """_site_key's frames part (also how children's cycle churn is
    matched)."""
    from memhound.report import is_library

    key = []
    if frames:
        key.append((frames[0]["filename"], frames[0]["lineno"]))
    key += [
        (f["filename"], f["lineno"]) for f in frames if not is_library(f["filename"])
    ]
    return tuple(key)


def _merge_children(report: dict, directory: str) -> None:
    """Add the children's reports, and list each site that leaks in
    children once among the leaks, with how many children it leaked in;
    the same for the sites of their cycle churn."""
    merged: dict[tuple, dict] = {}
    churn_sites: dict[tuple, list] = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                child = json.load(f)
        except (OSError, ValueError):
            report["warnings"].append(f"unreadable child report {name}")
            continue
        report["children"].append(
            {"pid": child.get("pid"), "argv": child.get("argv"), "report": child}
        )
        for leak in child.get("leaks", []):
            key = _site_key(leak)
            entry = merged.get(key)
            if entry is None:
                entry = dict(leak, children=0, pids=[])
                merged[key] = entry
            entry["children"] += 1
            entry["pids"].append(child.get("pid"))
        for site in child.get("cycle_churn") or []:
            key = _frames_key(site["traceback"])
            churn_sites.setdefault(key, []).append((child.get("pid"), site))
    report["leaks"].extend(
        sorted(merged.values(), key=lambda e: -e["growth_bytes"] * e["confidence"])
    )
    # Each site the collector churned in children, once, after the
    # parent's own (as for leaks).
    report["cycle_churn"].extend(churn.merge_children(list(churn_sites.values())))
