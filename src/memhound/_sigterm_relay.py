"""SIGTERM in a --follow-fork child, handled by a thread of memhound's.

CPython runs a Python signal handler in the main thread when that thread
next checks for signals; a blocking call ends early (EINTR) only when the
signal lands while the thread is inside the system call.  One that lands
just before it, or while the call retries by itself, trips the handler and
never runs it: a multiprocessing.Pool worker woken from sem_wait() on its
queue lock, which the pool's terminate() takes first, goes back to waiting,
and the SIGTERM that terminate() then sends is lost; the pool joins that
worker forever.  SIGTERM's default action, which memhound replaced, would
have ended it.  So in a followed child sigrelay.c's handler hands SIGTERM to
a memhound thread, which calls on_sigterm (report, then exit) whatever the
main thread is doing.
"""

from __future__ import annotations

import os
import signal
import threading

from memhound import _core, _quiet_threads

# Seconds a SIGTERMed child has to write its report before it ends anyway
# (status 143, no report): a report that can't get the GIL (the main thread
# holds it in a blocking C call) or waits for a lock the stopped main
# thread holds must not keep a terminating pool waiting forever.
REPORT_DEADLINE_S = 60


def _deadline() -> int:
    value = os.environ.get("MEMHOUND_CHILD_REPORT_DEADLINE", "")
    try:
        return max(1, int(value)) if value else REPORT_DEADLINE_S
    except ValueError:
        return REPORT_DEADLINE_S


def start(on_sigterm) -> bool:
    """Hand SIGTERM to a new daemon thread that calls on_sigterm() there (it
    should not return).  Call from the main thread, after SIGTERM's Python
    handler is set, with SIGTERM blocked (the at-fork step): the relay
    replaces that handler's C part, and a handler the program sets later
    replaces the relay.  False when the thread or the handler can't be had;
    SIGTERM then stays with its Python handler."""
    thread = threading.Thread(
        target=_wait, args=(on_sigterm,), name="memhound-sigterm", daemon=True
    )
    try:
        _core._sigrelay_start(signal.SIGTERM)
    except OSError:
        return False
    try:
        _quiet_threads.start(thread)
    except RuntimeError:  # no thread: the Python handler again
        _core._sigrelay_stop()
        return False
    return True


def _wait(on_sigterm) -> None:
    _core._suspend_thread()  # the report's work is memhound's
    deadline = _deadline()
    while _core._sigrelay_wait(deadline):
        on_sigterm()
