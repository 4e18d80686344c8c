"""Helpers shared by the bench scripts: child processes, machine facts, RSS.

Every measurement runs in a child interpreter that prints one line starting
with RESULT_PREFIX followed by JSON; spawn() runs such a child with a
timeout (killing its whole process group when it expires) and never raises
for a child that crashes, so that one bad mode cannot abort a run.
Standard library only: this module is imported by the children too.
"""

import json
import os
import platform
import signal
import subprocess
import sys
import time

RESULT_PREFIX = "MEMHOUND-BENCH-RESULT "
STDERR_TAIL = 1500
# Environment variables that would change what every mode measures.
SCRUBBED_ENV = (
    "PYTHONTRACEMALLOC",
    "PYTHONDEVMODE",
    "PYTHONMALLOCSTATS",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONASYNCIODEBUG",
    "PYTHONBREAKPOINT",
)


def child_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env["PYTHONHASHSEED"] = "0"
    env.update(extra or {})
    return env


def spawn(argv, timeout, env_extra=None):
    """Run argv; return (status, wall_s, returncode, stdout, stderr).

    The child gets child_env(), plus env_extra when given.

    status is "ok" (exit code 0), "crash" (any other exit, or a signal) or
    "timeout" (killed, with its process group, after timeout seconds).
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(env_extra),
        start_new_session=True,
        text=True,
        errors="replace",
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else "crash"
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        status = "timeout"
    except BaseException:
        # KeyboardInterrupt while waiting: do not leave the child running.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    return status, time.perf_counter() - t0, proc.returncode, out, err


def parse_result(stdout):
    """The JSON of the last RESULT_PREFIX line, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None


def print_result(result):
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def describe_returncode(rc):
    if rc is not None and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def failure(status, rc, err, timeout):
    """The fields recorded for a child that did not finish normally."""
    return {
        "status": status,
        "returncode": rc,
        "detail": (
            f"timed out after {timeout:g} s"
            if status == "timeout"
            else describe_returncode(rc)
        ),
        "stderr_tail": err[-STDERR_TAIL:],
    }


def machine_info(python_version):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": python_version,
        "pythonmalloc": os.environ.get("PYTHONMALLOC", ""),
    }


def machine_line(m):
    return (
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, CPython {m['python']}"
        + (f", PYTHONMALLOC={m['pythonmalloc']}" if m.get("pythonmalloc") else "")
    )


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def fmt_load(load):
    return "/".join(f"{x:.2f}" for x in load) if load else "unknown"


def rss_bytes():
    """Resident set size of this process now, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def python_version(python):
    """The version string of another interpreter, e.g. '3.11.7'."""
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()
