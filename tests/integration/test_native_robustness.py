# ruff: noqa: F811  (pytest fixtures imported from tests/native/fixtures.py)
"""Native interception inside real programs: threads unknown to Python
hammering malloc, fork, dlclose of a patched library, stop/start cycles,
and `memhound run --native`.  Each scenario runs in its own interpreter so
that a crash or a deadlock fails the test, not pytest."""

import subprocess
import sys

import pytest

from ..native.fixtures import native_build  # noqa: F401
from .helpers import check_ok, run_python

PRELUDE = """
import ctypes, os, sys, threading
import memhound
from memhound import _core, DomainFilter
LIB = sys.argv[1]

def load(path=LIB):
    lib = ctypes.CDLL(path)
    lib.leak.restype = ctypes.c_void_p
    lib.leak.argtypes = [ctypes.c_size_t]
    lib.fixed.argtypes = [ctypes.c_size_t]
    lib.hammer.argtypes = [ctypes.c_int, ctypes.c_long]
    return lib

def native(snapshot=None):
    snapshot = snapshot or memhound.take_snapshot()
    kept = snapshot.filter_traces([DomainFilter(True, memhound.DOMAIN_NATIVE)])
    return sum(s.size for s in kept.statistics("filename")), len(kept.traces)
"""


def run_native(code, lib, timeout=120):
    import textwrap

    script = PRELUDE + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script, str(lib)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None,
    )


@pytest.mark.parametrize("start", ["native=True", "native_stack=True"])
def test_threads_without_python_hammer_malloc(native_build, start):
    # 8 pthreads Python never heard of malloc/realloc/free 200k times each
    # while Python threads leak and the main thread takes snapshots; every
    # hammer block is freed, so only the Python threads' leaks remain.
    out = check_ok(
        run_native(
            """
            memhound.start(START)
            lib = load()
            base_bytes, base_blocks = native()
            done = threading.Event()
            def leaker():
                for _ in range(200):
                    lib.leak(100)
            def snapshots():
                while not done.is_set():
                    native()
            watcher = threading.Thread(target=snapshots)
            watcher.start()
            workers = [threading.Thread(target=leaker) for _ in range(2)]
            for t in workers:
                t.start()
            assert lib.hammer(8, 200000) == 0
            for t in workers:
                t.join()
            done.set()
            watcher.join()
            now_bytes, now_blocks = native()
            stats = memhound.get_stats()
            assert stats["dropped_blocks"] == 0, stats
            print(now_bytes - base_bytes, now_blocks - base_blocks)
            memhound.stop()
            """.replace("START", start),
            native_build[0],
        )
    )
    assert out.split() == [str(400 * 100), "400"]


@pytest.mark.parametrize("start", ["native=True", "native_stack=True"])
def test_fork_child_traces_and_exits(native_build, start):
    out = check_ok(
        run_native(
            """
            memhound.start(START)
            lib = load()
            stop = threading.Event()
            def churn():  # keeps the table lock busy around fork()
                while not stop.is_set():
                    lib.fixed(64)
            t = threading.Thread(target=churn)
            t.start()
            for _ in range(20):
                pid = os.fork()
                if pid == 0:
                    before = native()[0]
                    for _ in range(10):
                        lib.leak(1000)
                    grew = native()[0] - before
                    memhound.stop()
                    os._exit(0 if grew == 10000 else 3)
                _, status = os.waitpid(pid, 0)
                assert os.WEXITSTATUS(status) == 0, status
            stop.set()
            t.join()
            print("forks ok")
            """.replace("START", start),
            native_build[0],
        )
    )
    assert out.strip() == "forks ok"


def test_dlclose_of_a_patched_library_then_stop(native_build, tmp_path):
    # A copy of the library is loaded (and patched), leaks, is closed for
    # good, another is loaded; stop() must not write into the unmapped GOT.
    import shutil

    copy = tmp_path / "libleaky_copy.so"
    shutil.copy(native_build[0], copy)
    out = check_ok(
        run_native(
            f"""
            import _ctypes
            memhound.start(native=True)
            for round in range(5):
                lib = load({str(copy)!r})
                for _ in range(10):
                    lib.leak(500)
                handle = lib._handle
                del lib
                _ctypes.dlclose(handle)
                other = load()
                other.fixed(100)
            print(_core.native_status()["failed_slots"], native()[1] >= 50)
            memhound.stop()
            print(_core.native_status()["patched_slots"])
            """,
            native_build[0],
        )
    )
    assert out.split() == ["0", "True", "0"]


def test_stop_start_cycles_and_frees_of_untraced_blocks(native_build):
    out = check_ok(
        run_native(
            """
            lib = load()
            libc = ctypes.CDLL(None)
            libc.malloc.restype = ctypes.c_void_p
            libc.free.argtypes = [ctypes.c_void_p]
            libc.malloc.argtypes = [ctypes.c_size_t]
            old = [libc.malloc(64) for _ in range(100)]  # before tracing
            for cycle in range(30):
                memhound.start(native=True)
                for p in old:
                    libc.free(p)  # unknown pointers: passed through
                old = [libc.malloc(64) for _ in range(100)]
                for _ in range(10):
                    lib.leak(100)
                assert native()[0] >= 1000
                memhound.stop()
            for p in old:
                libc.free(p)
            print("cycles ok")
            """,
            native_build[0],
        )
    )
    assert out.strip() == "cycles ok"


def test_memhound_run_native_reports_the_leaking_line(native_build, tmp_path):
    script = tmp_path / "leaky_app.py"
    script.write_text(
        "import ctypes, sys\n"
        "lib = ctypes.CDLL(sys.argv[1])\n"
        "lib.leak.restype = ctypes.c_void_p\n"
        "lib.leak.argtypes = [ctypes.c_size_t]\n"
        "def handle():\n"
        "    lib.leak(100000)\n"
        "for _ in range(30):\n"
        "    handle()\n"
    )
    for native_option in ("--native", "--native-only"):
        proc = run_python(
            "import sys; from memhound.cli import main; "
            f"sys.exit(main(['run', '--top', '1', {native_option!r}, "
            f"{str(script)!r}, {str(native_build[0])!r}]))"
        )
        check_ok(proc)
        assert "2.9 MiB in 30 blocks" in proc.stderr, proc.stderr
        if native_option == "--native":
            assert f"{script}:6 in handle" in proc.stderr, proc.stderr


# A program leaking 20 kB per iteration through ctypes (line 9), or not
# with a second argument.
LEAKY_ITERATIONS = (
    "import ctypes, sys, time\n"
    "import memhound\n"
    "lib = ctypes.CDLL(sys.argv[1])\n"
    "lib.leak.restype = ctypes.c_void_p\n"
    "lib.leak.argtypes = [ctypes.c_size_t]\n"
    "lib.fixed.argtypes = [ctypes.c_size_t]\n"
    "fixed = len(sys.argv) > 2\n"
    "for _ in memhound.iterations(range(60)):\n"
    "    (lib.fixed if fixed else lib.leak)(20000)\n"
    "    time.sleep(0.02)\n"
)
LEAKY_LINE = 9


def native_leaks_at_leaky_line(report):
    return [
        leak
        for leak in report["leaks"]
        if leak["kind"] == "native" and leak["traceback"][0]["lineno"] == LEAKY_LINE
    ]


def test_memhound_run_native_json_reports_a_native_leak(native_build, tmp_path):
    import json

    script = tmp_path / "leaky_json.py"
    script.write_text(LEAKY_ITERATIONS)
    for fixed in (False, True):
        out = tmp_path / f"report-{fixed}.json"
        args = [str(native_build[0])] + (["fixed"] if fixed else [])
        proc = run_python(
            "import sys; from memhound.cli import main; "
            f"sys.exit(main(['run', '--native', '--quiet', '--interval', '0.02', "
            f"'--json', {str(out)!r}, "
            f"{str(script)!r}, *{args!r}]))"
        )
        check_ok(proc)
        report = json.loads(out.read_text())
        native = native_leaks_at_leaky_line(report)
        assert len(native) == (0 if fixed else 1), report["leaks"]


def test_memhound_run_native_stack_joins_native_frames_to_the_leak(
    native_build, tmp_path
):
    import json

    script = tmp_path / "leaky_stack.py"
    script.write_text(LEAKY_ITERATIONS)
    out, capture, page = (tmp_path / name for name in ("r.json", "r.mhc", "r.html"))
    proc = run_python(
        "import sys; from memhound.cli import main; "
        "sys.exit(main(['run', '--native-stack', '--interval', '0.02', "
        f"'--json', {str(out)!r}, '--output', {str(capture)!r}, "
        f"'--html', {str(page)!r}, {str(script)!r}, {str(native_build[0])!r}]))"
    )
    check_ok(proc)
    report = json.loads(out.read_text())
    native = native_leaks_at_leaky_line(report)
    assert len(native) == 1, report["leaks"]
    frames = native[0]["native_frames"]
    assert frames[0]["function"] == "leak", frames
    assert frames[0]["library"].endswith("libleaky.so"), frames
    assert 0 < native[0]["native_frames_blocks"] <= native[0]["live_blocks"]
    assert "allocated by leak (libleaky.so+0x" in proc.stderr, proc.stderr
    assert "native_frames" in page.read_text()
    # The capture file keeps the frames: `memhound report` shows them.
    shown = run_python(
        "import sys; from memhound.cli import main; "
        f"sys.exit(main(['report', {str(capture)!r}]))"
    )
    check_ok(shown)
    assert "allocated by leak (libleaky.so+0x" in shown.stdout + shown.stderr


def test_dlopen_of_a_bare_name_uses_the_callers_rpath(tmp_path):
    # libcaller.so (RUNPATH $ORIGIN/deps) dlopens "libdep_mh.so", which
    # only its own search path finds.  Through memhound's dlopen wrapper
    # the caller's search path must still apply, and the new library gets
    # patched: its leak is traced.
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        import pytest

        pytest.skip("no C compiler")
    deps = tmp_path / "deps"
    deps.mkdir()
    (tmp_path / "dep.c").write_text(
        "#include <stdlib.h>\nvoid *dep_leak(void) { return malloc(12345); }\n"
    )
    (tmp_path / "caller.c").write_text(
        "#include <dlfcn.h>\n"
        "void *caller_load(void) {\n"
        '    void *h = dlopen("libdep_mh.so", RTLD_NOW);\n'
        "    if (!h) return 0;\n"
        '    void *(*leak)(void) = (void *(*)(void))dlsym(h, "dep_leak");\n'
        "    return leak ? leak() : 0;\n"
        "}\n"
    )
    for args in (
        ["-o", str(deps / "libdep_mh.so"), str(tmp_path / "dep.c")],
        [
            "-o",
            str(tmp_path / "libcaller.so"),
            str(tmp_path / "caller.c"),
            "-Wl,-rpath,$ORIGIN/deps",
            "-ldl",
        ],
    ):
        subprocess.run([cc, "-shared", "-fPIC", *args], check=True)
    out = check_ok(
        run_native(
            f"""
            memhound.start(native=True)
            caller = ctypes.CDLL({str(tmp_path / "libcaller.so")!r})
            caller.caller_load.restype = ctypes.c_void_p
            pointer = caller.caller_load()
            snapshot = memhound.take_snapshot()
            sizes = [t.size for t in snapshot.traces
                     if t.domain == memhound.DOMAIN_NATIVE]
            print(bool(pointer), sizes.count(12345))
            """,
            "unused",
        )
    )
    assert out.split() == ["True", "1"]
