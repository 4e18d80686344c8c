"""memhound run's leak report as a whole process: --fail-on-leak, --json,
--interval, --follow-fork, the live status line on a terminal, and signals."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

LEAKY = """
import time
store = []
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    store.append("x" * 40 + str(len(store)))  # the leak
    scratch = [bytes(32) for _ in range(8)]
"""

CLEAN = """
import time
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    scratch = [bytes(32) for _ in range(8)]
"""


def write(tmp_path, name, code, **fmt):
    path = tmp_path / name
    path.write_text(textwrap.dedent(code.format(**fmt)))
    return path


def memhound_run(args, cwd, **kwargs):
    env = dict(os.environ)
    env.pop("PYTHONDEVMODE", None)
    return subprocess.run(
        [sys.executable, "-m", "memhound", "run", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env=env,
        **kwargs,
    )


def test_fail_on_leak_exit_status_and_json_to_stdout(tmp_path):
    app = write(tmp_path, "app.py", LEAKY, seconds=1.2)
    proc = memhound_run(["--fail-on-leak", "--json", "-", str(app)], tmp_path)
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert report["leaks"][0]["traceback"][0]["lineno"] == 6
    assert "1 leak found" in proc.stderr
    assert "app.py:6" in proc.stderr


def test_fail_on_leak_clean_program_exits_zero(tmp_path):
    app = write(tmp_path, "app.py", CLEAN, seconds=1.0)
    proc = memhound_run(["--fail-on-leak", str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no leak found" in proc.stderr


def test_program_status_wins_over_fail_on_leak(tmp_path):
    app = write(tmp_path, "app.py", LEAKY + "\nraise SystemExit(7)\n", seconds=1.0)
    proc = memhound_run(["--fail-on-leak", str(app)], tmp_path)
    assert proc.returncode == 7


def test_interval_sets_generations(tmp_path):
    app = write(tmp_path, "app.py", CLEAN, seconds=1.0)
    out = tmp_path / "r.json"
    proc = memhound_run(["--interval", "0.05", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["settings"]["interval_s"] == 0.05
    assert report["summary"]["generations"] >= 10  # ~20 in 1 s


@pytest.mark.parametrize(
    "args,message",
    [
        (["--interval", "0"], "interval"),
        (["--interval", "soon"], "not a number"),
        (["--min-confidence", "2"], "confidence"),
    ],
)
def test_bad_options(tmp_path, args, message):
    proc = memhound_run([*args, "-c", "pass"], tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_min_confidence_one_reports_nothing(tmp_path):
    app = write(tmp_path, "app.py", LEAKY, seconds=1.0)
    proc = memhound_run(["--min-confidence", "1", "--fail-on-leak", str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_sigterm_still_reports_the_leak(tmp_path):
    app = write(
        tmp_path,
        "app.py",
        """
        import sys, time
        store = []
        print("ready", flush=True)
        while True:
            store.append(bytes(100))
            time.sleep(0.0005)
        """,
    )
    env = dict(os.environ)
    env.pop("PYTHONDEVMODE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "memhound", "run", "--json", "r.json", str(app)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline() == "ready\n"
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["leaks"], err
    assert report["leaks"][0]["traceback"][0]["lineno"] == 6


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_follow_fork_reports_children_once(tmp_path, method):
    app = write(
        tmp_path,
        "app.py",
        """
        import multiprocessing as mp
        import time

        store = []

        def work(n):
            deadline = time.monotonic() + 1.2
            while time.monotonic() < deadline:
                store.append(f"item {{n}} {{len(store)}}")  # child leak
                scratch = [bytes(64) for _ in range(8)]

        if __name__ == "__main__":
            ctx = mp.get_context("{method}")
            workers = [ctx.Process(target=work, args=(k,)) for k in range(2)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            print([w.exitcode for w in workers])
        """,
        method=method,
    )
    out = tmp_path / "r.json"
    proc = memhound_run(["--follow-fork", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 0]"
    report = json.loads(out.read_text())
    assert len(report["children"]) == 2
    pids = {child["pid"] for child in report["children"]}
    assert os.getpid() not in pids
    for child in report["children"]:
        assert child["report"]["leaks"], child
    merged = [leak for leak in report["leaks"] if leak.get("children")]
    assert len(merged) == 1  # the same site in two children: shown once
    assert merged[0]["children"] == 2
    assert sorted(merged[0]["pids"]) == sorted(pids)
    assert merged[0]["traceback"][0]["lineno"] == 10
    assert "in 2 child processes" in proc.stderr


def test_pool_workers_terminated_by_the_pool_still_report(tmp_path):
    # Leaving a Pool's `with` block calls terminate(): SIGTERM to workers
    # that may already be writing their reports.  Each still reports.
    app = write(
        tmp_path,
        "app.py",
        """
        import multiprocessing as mp
        import time

        cache = []

        def work(i):
            cache.append(bytes(2000) + str(i).encode())  # worker leak
            return len(cache)

        if __name__ == "__main__":
            with mp.get_context("fork").Pool(2) as pool:
                for _ in range(25):
                    pool.map(work, range(100))
                    time.sleep(0.05)
            print("done")
        """,
    )
    out = tmp_path / "r.json"
    proc = memhound_run(["--follow-fork", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert len(report["children"]) == 2, proc.stderr
    for child in report["children"]:
        lines = [leak["traceback"][0]["lineno"] for leak in child["report"]["leaks"]]
        assert 8 in lines, child["report"]["leaks"]


# A forked child whose main thread waits where no signal ends the wait (a
# second pthread_mutex_lock of a mutex it holds): a Python SIGTERM handler
# would never run there, as in a Pool worker that the SIGTERM reaches between
# two futex waits of sem_wait() (docs/cli.md).  The parent gives up after
# 60 s and says "stuck".
BLOCKED_CHILD = """
import ctypes, os, signal, sys, time

cache = []

def child(ready):
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        cache.append(bytes(200) + str(len(cache)).encode())  # child leak
        scratch = [bytes(64) for _ in range(8)]
{own_handler}
    with open("blocked.pid", "w") as f:
        f.write(str(os.getpid()))
    libc = ctypes.CDLL(None)
    mutex = ctypes.create_string_buffer(64)  # zeros: PTHREAD_MUTEX_INITIALIZER
    libc.pthread_mutex_lock(mutex)
    os.write(ready, b"x")
    libc.pthread_mutex_lock(mutex)  # waits for good

def forked(ready, depth):
    pid = os.fork()
    if pid == 0:
        if depth > 1:  # a child that waits for its own child
            status = wait(forked(ready, depth - 1))
            os._exit(status if isinstance(status, int) else 99)
        child(ready)
        os._exit(0)
    return pid

def wait(pid):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "stuck"

if __name__ == "__main__":
    r, w = os.pipe()
    pid = forked(w, {depth})
    os.read(r, 1)
    with open("blocked.pid") as f:
        os.kill(int(f.read()), signal.SIGTERM)
    print(wait(pid))
"""


@pytest.mark.parametrize("depth", [1, 2])
def test_sigterm_ends_a_child_that_never_runs_python_handlers(tmp_path, depth):
    app = write(tmp_path, "app.py", BLOCKED_CHILD, depth=depth, own_handler="")
    leak_line = (
        app.read_text()
        .splitlines()
        .index(
            "        cache.append(bytes(200) + str(len(cache)).encode())  # child leak"
        )
    )
    out = tmp_path / "r.json"
    proc = memhound_run(["--follow-fork", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The blocked child reported and exited as SIGTERM ends a child (depth
    # 2: then its parent, a child too, passed the status on and reported).
    assert proc.stdout.split() == [str(128 + signal.SIGTERM)], proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert len(report["children"]) == depth, proc.stderr
    leaky = [
        child["pid"]
        for child in report["children"]
        if any(
            leak["traceback"][0]["lineno"] == leak_line + 1
            for leak in child["report"]["leaks"]
        )
    ]
    assert len(leaky) == 1, [c["report"]["leaks"] for c in report["children"]]


def test_a_childs_own_sigterm_handler_still_runs(tmp_path):
    # memhound relays SIGTERM only while the handler is its own: one the
    # child sets replaces the relay, as it replaces any handler.
    own = "    signal.signal(signal.SIGTERM, lambda *a: os._exit(7))"
    app = write(tmp_path, "app.py", BLOCKED_CHILD, depth=1, own_handler=own)
    app.write_text(
        app.read_text().replace(
            "    libc.pthread_mutex_lock(mutex)  # waits for good",
            # Short sleeps: a signal that lands just before a long one
            # would run the program's handler only when it ends.
            "    while True:\n        time.sleep(0.05)  # the handler ends this",
        )
    )
    proc = memhound_run(["--follow-fork", str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["7"], proc.stdout + proc.stderr


def test_a_child_that_holds_the_gil_for_good_still_ends(tmp_path, monkeypatch):
    # The child's main thread blocks in a C call that keeps the GIL: the
    # relay thread can't take the GIL to report, so the deadline ends the
    # child (143, no report) instead of leaving its parent waiting forever.
    monkeypatch.setenv("MEMHOUND_CHILD_REPORT_DEADLINE", "2")
    app = write(tmp_path, "app.py", BLOCKED_CHILD, depth=1, own_handler="")
    app.write_text(
        app.read_text().replace(
            "libc = ctypes.CDLL(None)", "libc = ctypes.PyDLL(None)  # keeps the GIL"
        )
    )
    out = tmp_path / "r.json"
    started = time.monotonic()
    proc = memhound_run(["--follow-fork", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(128 + signal.SIGTERM)], proc.stdout + proc.stderr
    assert time.monotonic() - started < 50
    assert json.loads(out.read_text())["children"] == []


def test_sigterm_during_a_childs_own_report_does_not_lose_it(tmp_path):
    # The program saves and restores SIGTERM's handler (CPython's own C
    # handler is back, the relay bypassed), ends normally, and a SIGTERM
    # lands while memhound writes the child's report (sent from a gc
    # callback, which the report's collection runs): the handler runs
    # inside the report and must not end the child before it is written.
    app = write(
        tmp_path,
        "app.py",
        """
        import gc, os, signal
        ARMED = []
        def on_gc(phase, info):
            if ARMED and phase == "start":
                ARMED.clear()
                os.kill(os.getpid(), signal.SIGTERM)
        pid = os.fork()
        if pid == 0:
            old = signal.signal(signal.SIGTERM, lambda *a: None)
            signal.signal(signal.SIGTERM, old)
            keep = [bytes(100) for _ in range(20000)]
            gc.callbacks.append(on_gc)
            ARMED.append(True)  # the script ends: memhound reports next
        else:
            print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """,
    )
    out = tmp_path / "r.json"
    proc = memhound_run(["--follow-fork", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(out.read_text())["children"]) == 1, proc.stdout + proc.stderr


def test_forked_child_without_follow_fork_prints_no_report(tmp_path):
    app = write(
        tmp_path,
        "app.py",
        """
        import os, sys
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # the child leaves through memhound's runner too
        os.waitpid(pid, 0)
        """,
    )
    proc = memhound_run([str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("memhound:") == 1  # the parent's report only


def test_status_line_on_a_terminal(tmp_path):
    app = write(tmp_path, "app.py", CLEAN, seconds=3.0)
    primary, secondary = pty.openpty()
    env = dict(os.environ)
    env.pop("PYTHONDEVMODE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "memhound", "run", str(app)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(primary)
    text = seen.decode(errors="replace")
    assert "\rmemhound:" in text and "generation" in text
    assert "traced" in text
    assert "no leak found" in text
    assert "\x1b[" in text  # colour on a terminal


HELD = """
import time

class Registry:
    def __init__(self):
        self.entries = {{}}

registry = Registry()
deadline = time.monotonic() + {seconds}
n = 0
while time.monotonic() < deadline:
    registry.entries[f"req-{{n}}"] = {{"payload": [n] * 8}}  # the leak
    scratch = [bytes(32) for _ in range(8)]
    n += 1
"""


def test_report_says_who_holds_the_leak(tmp_path):
    app = write(tmp_path, "app.py", HELD, seconds=1.5)
    out = tmp_path / "r.json"
    proc = memhound_run(["--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    top = report["leaks"][0]
    assert top["traceback"][0]["lineno"] == 12
    holder = top["retention_path"][-1]["object"]
    assert holder.startswith("__main__.registry.entries['req-"), holder
    assert {t["type"] for t in top["types"]} & {"dict", "list"}
    assert top["retained_bytes"] > 0
    assert any(row["type"] == "dict" for row in report["types_grew"])
    assert "held by: __main__.registry.entries['req-" in proc.stderr
    assert "Types that grew:" in proc.stderr


def test_no_graph_skips_the_heap_fields(tmp_path):
    app = write(tmp_path, "app.py", HELD, seconds=1.0)
    out = tmp_path / "r.json"
    proc = memhound_run(["--no-graph", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    top = json.loads(out.read_text())["leaks"][0]
    assert top["retention_path"] is None and top["retained_bytes"] is None
    assert "held by" not in proc.stderr


def test_leakcheck_under_memhound_run_says_why_not(tmp_path):
    app = write(
        tmp_path,
        "app.py",
        """
        import memhound
        try:
            with memhound.LeakCheck():
                pass
        except RuntimeError as error:
            print("refused:", error)
        for _ in memhound.iterations(range(3)):
            pass
        """,
    )
    proc = memhound_run(["--quiet", str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "memhound.iterations()" in proc.stdout
