"""`memhound run`: the program runs as under python, the report follows."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import memhound


def run_cli(args, cwd, timeout=120, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "memhound", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        **kwargs,
    )


def write(path, code):
    path.write_text(textwrap.dedent(code))
    return path


def test_script_argv_stdout_exit_status_and_report(tmp_path):
    script = write(
        tmp_path / "app.py",
        """
        import sys
        kept = [bytes(1000) for _ in range(2000)]  # the big site
        print("argv", sys.argv[1:], __name__)
        sys.exit(3)
        """,
    )
    proc = run_cli(["run", str(script), "a", "--flag"], tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "argv ['a', '--flag'] __main__\n"
    assert "memhound:" in proc.stderr
    assert "app.py:3" in proc.stderr  # the allocating line, with its file
    assert "kept = [bytes(1000)" in proc.stderr  # and its source


def test_module_and_code_targets(tmp_path):
    write(tmp_path / "mymod.py", "import sys\nprint('mod', sys.argv[1:])\n")
    proc = run_cli(["run", "--quiet", "-m", "mymod", "x"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "mod ['x']\n"
    assert "memhound:" not in proc.stderr

    proc = run_cli(["run", "-c", "import sys; print(sys.argv)", "y"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['-c', 'y']\n"


def test_uncaught_exception_is_printed_as_python_does(tmp_path):
    script = write(tmp_path / "boom.py", "raise ValueError('boom')\n")
    proc = run_cli(["run", str(script)], tmp_path)
    assert proc.returncode == 1
    assert "ValueError: boom" in proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr


def test_missing_script_and_bad_options(tmp_path):
    proc = run_cli(["run", "nope.py"], tmp_path)
    assert proc.returncode == 2
    assert "can't run 'nope.py'" in proc.stderr
    proc = run_cli(["run", "--sample", "lots", "x.py"], tmp_path)
    assert proc.returncode == 2
    assert "not a byte count" in proc.stderr
    proc = run_cli(["run", "--depth", "0", "-c", "pass"], tmp_path)
    assert proc.returncode == 2
    assert "depth" in proc.stderr


def test_sampling_and_dump(tmp_path):
    out = tmp_path / "exit.mhs"
    proc = run_cli(
        [
            "run",
            "--sample",
            "64KiB",
            "--dump",
            str(out),
            "-c",
            "kept = [bytes(4000) for _ in range(5000)]",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sampled, mean 64.0 KiB" in proc.stderr
    snapshot = memhound.Snapshot.load(out)
    assert snapshot.sample_mean == 65536
    assert len(snapshot) > 0


def test_sigterm_still_reports(tmp_path):
    script = write(
        tmp_path / "server.py",
        """
        import time
        kept = [bytes(500) for _ in range(1000)]
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "memhound", "run", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "memhound:" in err and "Largest live allocation sites" in err


def test_console_script_is_installed():
    bindir = os.path.dirname(sys.executable)
    script = os.path.join(bindir, "memhound")
    assert os.path.exists(script), script
    proc = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == memhound.__version__


def test_program_arguments_are_the_programs(tmp_path):
    # Everything after the target goes to the program, memhound-looking
    # options included, as with python.
    write(tmp_path / "mymod.py", "import sys\nprint(sys.argv[1:])\n")
    proc = run_cli(["run", "--quiet", "-m", "mymod", "--depth", "3", "-c"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['--depth', '3', '-c']\n"
    proc = run_cli(["run", "--quiet", "mymod.py", "-m", "x"], tmp_path)
    assert proc.stdout == "['-m', 'x']\n"


def test_nothing_to_run(tmp_path):
    proc = run_cli(["run"], tmp_path)
    assert proc.returncode == 2
    assert "nothing to run" in proc.stderr
