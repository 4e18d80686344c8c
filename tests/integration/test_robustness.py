"""The tracer inside a real program: threads, fork, shutdown, exhaustion.

Each scenario runs in its own interpreter, because what is being tested is
that the traced program keeps working and ends normally.
"""

import sys

import pytest

from .helpers import check_ok, run_python


def test_threads_allocating_while_snapshots_are_taken():
    # 8 threads allocate and free for about two seconds while the main
    # thread takes snapshots.  Then every thread's blocks are released, and
    # the accounting must be exact: no block allocated in work() is still
    # traced, and none was dropped.
    out = check_ok(
        run_python(
            """
            import gc, threading, time
            from memhound import _core

            _core.start(depth=16)
            stop = threading.Event()
            kept = [[] for _ in range(8)]

            def work(i):
                mine = kept[i]
                n = 0
                while not stop.is_set():
                    mine.append(bytearray(64 + (n % 512)))
                    if len(mine) > 2000:
                        del mine[: 1000]
                    n += 1

            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            snaps = 0
            seen_work = 0
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                snap = _core.take_snapshot()
                for size, count, frames in snap.statistics("lineno"):
                    if frames[0][2] == "work":
                        seen_work += count
                snaps += 1
            stop.set()
            for t in threads:
                t.join()
            # The bytearray line only: 3.10 keeps a spare frame object for
            # Event.is_set() that was allocated on work's loop line.
            append_line = work.__code__.co_firstlineno + 4
            live_in_work = lambda: sum(
                count
                for size, count, frames in _core.take_snapshot().statistics("lineno")
                if frames[0][2] == "work" and frames[0][1] == append_line
            )
            held = sum(len(k) for k in kept)
            assert live_in_work() >= held, (live_in_work(), held)
            for k in kept:
                k.clear()
            gc.collect()
            assert live_in_work() == 0, live_in_work()
            stats = _core.get_stats()
            assert stats["dropped_blocks"] == 0, stats
            assert snaps >= 2 and seen_work > 0, (snaps, seen_work)
            print("snaps", snaps, "dropped", stats["dropped_blocks"])
            """
        )
    )
    assert "dropped 0" in out


def test_exact_accounting_after_threads_free_everything():
    check_ok(
        run_python(
            """
            import threading
            from memhound import _core

            _core.start(depth=8)
            before = _core.get_traced_memory()[0]
            def work():
                for _ in range(20):
                    objs = [bytes(100 + i % 300) for i in range(5000)]
                    del objs
            threads = [threading.Thread(target=work) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            del threads, t
            import gc; gc.collect()
            after = _core.get_traced_memory()[0]
            # Only bookkeeping noise of the interpreter itself may remain:
            # the 800k bytes objects must all be gone from the accounting.
            assert after - before < 64 * 1024, (before, after)
            """
        )
    )


def test_fork_child_and_parent_stay_correct():
    out = check_ok(
        run_python(
            """
            import os
            from memhound import _core

            _core.start(depth=8)
            data = [bytes(1000) for _ in range(1000)]
            pid = os.fork()
            if pid == 0:
                more = [bytes(2000) for _ in range(1000)]
                cur, peak = _core.get_traced_memory()
                snap = _core.take_snapshot()
                ok = cur >= 3_000_000 and len(snap) > 2000
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            cur, _ = _core.get_traced_memory()
            assert 1_000_000 <= cur < 2_500_000, cur
            print("fork ok")
            """
        )
    )
    assert "fork ok" in out


def test_fork_while_other_threads_allocate():
    # The table lock must not be inherited locked by the child.
    check_ok(
        run_python(
            """
            import os, threading, time
            from memhound import _core

            _core.start(depth=4)
            stop = threading.Event()
            def churn():
                while not stop.is_set():
                    [bytes(50) for _ in range(100)]
            threads = [threading.Thread(target=churn) for _ in range(3)]
            for t in threads:
                t.start()
            for _ in range(20):
                pid = os.fork()
                if pid == 0:
                    [bytes(10) for _ in range(1000)]
                    _core.take_snapshot()
                    os._exit(0)
                _, status = os.waitpid(pid, 0)
                assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            stop.set()
            for t in threads:
                t.join()
            """,
            timeout=120,
        )
    )


def test_start_stop_a_thousand_times():
    check_ok(
        run_python(
            """
            from memhound import _core
            for i in range(1000):
                _core.start(depth=1 + i % 64)
                x = [bytes(10) for _ in range(20)]
                assert _core.get_traced_memory()[0] > 0
                if i % 100 == 0:
                    _core.take_snapshot().statistics("traceback")
                _core.stop()
                assert _core.get_traced_memory() == (0, 0)
            """
        )
    )


def test_tracing_left_on_at_interpreter_shutdown():
    proc = run_python(
        """
        import threading, time
        from memhound import _core
        _core.start(depth=32)
        keep = [bytes(100) for _ in range(10000)]
        def daemon():
            while True:
                [bytes(10) for _ in range(100)]
        threading.Thread(target=daemon, daemon=True).start()
        time.sleep(0.2)
        print("exiting")
        """
    )
    check_ok(proc)
    assert "exiting" in proc.stdout


def test_tracing_left_on_without_atexit_stop():
    # Even if memhound's own atexit handler never runs (os._exit skips it,
    # and here we also exit through an uncaught SystemExit path), the
    # process must end normally.
    proc = run_python(
        """
        import sys
        from memhound import _core
        _core.start()
        x = [dict(a=i) for i in range(1000)]
        sys.exit(7)
        """
    )
    assert proc.returncode == 7, proc.stderr


def test_table_exhaustion_degrades_and_counts():
    out = check_ok(
        run_python(
            """
            from memhound import _core
            _core.start(depth=8)
            _core._inject_alloc_failures(0)
            kept = [bytes(100) for _ in range(200_000)]
            stats = _core.get_stats()
            assert stats["dropped_blocks"] > 0 or stats["lost_tracebacks"] > 0, stats
            # The program itself is unaffected.
            assert len(kept) == 200_000 and kept[-1] == bytes(100)
            try:
                _core.take_snapshot()
            except MemoryError:
                pass
            _core._inject_alloc_failures(-1)
            more = [bytes(100) for _ in range(1000)]
            snap = _core.take_snapshot()
            assert len(snap) > 0
            print("dropped", stats["dropped_blocks"], "lost", stats["lost_tracebacks"])
            """
        )
    )
    assert "dropped" in out


def test_exhaustion_at_every_point_of_start_and_snapshot():
    check_ok(
        run_python(
            """
            from memhound import _core
            for k in range(0, 60):
                _core._inject_alloc_failures(k)
                try:
                    _core.start(depth=4)
                    data = [str(i) * 3 for i in range(300)]
                    try:
                        _core.take_snapshot().statistics("lineno")
                    except MemoryError:
                        pass
                except MemoryError:
                    pass
                finally:
                    _core._inject_alloc_failures(-1)
                    _core.stop()
            """
        )
    )


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_memhound_does_not_leak_itself():
    # Repeated start / allocate / snapshot / stop cycles must not grow the
    # process: neither memhound's bookkeeping nor references it holds.
    out = check_ok(
        run_python(
            """
            import gc, os, sys
            from memhound import _core

            def rss():
                with open("/proc/self/statm") as f:
                    return int(f.read().split()[1]) * 4096

            def cycle():
                _core.start(depth=32)
                data = [bytes(64) for _ in range(20000)]
                snap = _core.take_snapshot()
                snap.statistics("traceback")
                snap.statistics("lineno", cumulative=True)
                del data, snap
                _core.stop()

            for _ in range(5):
                cycle()
            gc.collect()
            # memhound's own bookkeeping is all given back at stop().
            assert _core.get_stats()["bookkeeping_bytes"] == 0, _core.get_stats()
            rss0 = rss()
            blocks0 = sys.getallocatedblocks()
            for _ in range(30):
                cycle()
                assert _core.get_stats()["bookkeeping_bytes"] == 0
            gc.collect()
            grew = rss() - rss0
            blocks = sys.getallocatedblocks() - blocks0
            print("rss growth", grew, "blocks growth", blocks)
            # Python objects memhound made (results, snapshots) are gone.
            assert blocks < 200, blocks
            # Under AddressSanitizer freed memory sits in quarantine, so RSS
            # says nothing there.
            if "libasan" not in os.environ.get("LD_PRELOAD", ""):
                assert grew < 4 * 1024 * 1024, grew
            """
        )
    )
    assert "rss growth" in out


def test_living_with_the_stdlib_tracemalloc_in_any_order():
    # Another tool (here the builtin tracemalloc) hooking the allocators on
    # top of memhound, then restoring what it saw, must neither crash nor
    # leave memhound silently tracing nothing.
    out = check_ok(
        run_python(
            """
            import tracemalloc
            from memhound import _core

            def traced_here():
                keep = [bytes(300) for _ in range(500)]
                snap = _core.take_snapshot()
                lines = {frames[0][1] for size, count, frames
                         in snap.statistics("lineno") if count >= 500}
                return keep, lines

            # tracemalloc first, memhound on top; stop in both orders.
            tracemalloc.start()
            _core.start(depth=4)
            keep, lines = traced_here()
            assert lines, "memhound saw nothing under tracemalloc"
            _core.stop()
            tracemalloc.stop()

            # memhound first, tracemalloc on top, tracemalloc stops first:
            # it restores memhound's hook, memhound keeps working.
            _core.start(depth=4)
            tracemalloc.start()
            tracemalloc.stop()
            keep, lines = traced_here()
            assert lines
            _core.stop()

            # memhound first, tracemalloc on top, memhound stops first: its
            # hook stays chained (passing through) below tracemalloc's...
            _core.start(depth=4)
            tracemalloc.start()
            _core.stop()
            # ...then tracemalloc restores the allocator it saw: memhound's.
            tracemalloc.stop()
            _core.start(depth=4)
            keep, lines = traced_here()
            assert lines, "memhound lost its hook"
            _core.stop()

            # tracemalloc first, memhound on top, tracemalloc stops first:
            # memhound's hook is dropped from the chain by tracemalloc.
            tracemalloc.start()
            _core.start(depth=4)
            tracemalloc.stop()
            _core.stop()
            _core.start(depth=4)
            keep, lines = traced_here()
            assert lines, "memhound did not notice its hook was dropped"
            _core.stop()
            print("ok")
            """
        )
    )
    assert "ok" in out
