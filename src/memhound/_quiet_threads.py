"""Starting memhound's own background threads (the generation clock, the
HTML recorder) with the program's signals blocked in them.

A signal sent to the process (SIGTERM, SIGINT, ...) goes to any thread
that does not block it.  CPython runs the Python handler in the main thread
either way, but interrupts a blocking call (a lock, a read) only in the
thread the signal reached: one that reached memhound's thread would leave
the program's main thread blocked.  multiprocessing.Pool's terminate()
relies on SIGTERM interrupting workers blocked on a queue lock, and a
worker traced under --follow-fork then hung.  Started with the signals
blocked, memhound's threads never receive them.
"""

from __future__ import annotations

import signal
import threading

# Faults the thread itself raises are delivered to it whatever its mask.
_SYNCHRONOUS = {
    getattr(signal, name)
    for name in (
        "SIGSEGV",
        "SIGBUS",
        "SIGFPE",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGSYS",
    )
    if hasattr(signal, name)
}


def start(thread: threading.Thread) -> None:
    """thread.start(), with every asynchronous signal blocked in thread (it
    inherits the mask of the thread that starts it)."""
    if not hasattr(signal, "pthread_sigmask"):
        thread.start()
        return
    old = signal.pthread_sigmask(
        signal.SIG_BLOCK, signal.valid_signals() - _SYNCHRONOUS
    )
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
