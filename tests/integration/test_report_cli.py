"""`memhound run --output/--html`, `memhound report` and `memhound diff`
on real programs, in subprocesses."""

import json
import os

from memhound.capture import read_capture
from tests.integration.test_cli import run_cli, write

LEAKY = """
import time
cache = []
def handle(i):
    cache.append(bytearray(2000))  # the leaking line
    scratch = [str(j) for j in range(100)]
    return len(scratch)
for i in range(1500):
    handle(i)
    if i % 500 == 0:
        time.sleep(0.3)  # the 0.1 s sampler gets a turn even on a loaded machine
"""


def _capture(tmp_path, name="run.mhc", extra=()):
    script = write(tmp_path / "app.py", LEAKY)
    out = tmp_path / name
    proc = run_cli(
        ["run", "--quiet", "--output", str(out), *extra, str(script)], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    return script, out, proc


def test_run_output_and_html(tmp_path):
    html = tmp_path / "run.html"
    script, out, proc = _capture(tmp_path, extra=("--html", str(html)))
    assert f"wrote {out}" in proc.stderr and f"wrote {html}" in proc.stderr
    capture = read_capture(out)
    report = capture.report
    assert report["format"] == "memhound-report"
    assert report["argv"][0] == str(script)
    assert len(report["timeline"]) >= 3  # the sampler ran during the sleeps
    assert all(p["rss_bytes"] > 0 for p in report["timeline"])
    assert capture.exit_snapshot is not None and capture.peak_snapshot is not None
    top = capture.exit_snapshot.statistics("lineno")[0]
    assert top.traceback[0].filename == str(script) and top.traceback[0].lineno == 5
    assert top.size >= 1500 * 2000
    # memhound's own modules were imported before tracing began, and the
    # recorder thread's allocations are not traced.
    for snapshot in (capture.exit_snapshot, capture.peak_snapshot):
        files = {
            frame.filename
            for stat in snapshot.statistics("traceback")
            for frame in stat.traceback
        }
        mine = ("capture.py", "html.py", "recorder.py", "cli_report.py")
        assert not any(name.endswith(mine) for name in files), files
    page = html.read_text()
    assert "<script" in page and "cache.append(bytearray(2000))" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


def test_report_views(tmp_path):
    script, out, _ = _capture(tmp_path)
    proc = run_cli(["report", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "memhound report" in proc.stdout or "leak" in proc.stdout

    proc = run_cli(["report", str(out), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == read_capture(out).report

    proc = run_cli(["report", str(out), "--tree", "--width", "80"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    leak = [line for line in lines if "handle  app.py:5" in line]
    assert leak, proc.stdout
    assert "%" in leak[0]

    proc = run_cli(["report", str(out), "--top", "3", "--width", "80"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("#1 ") and "handle  app.py:5" in lines[2]
    assert sum(line.startswith("#") for line in lines) == 3
    assert all(len(line) <= 80 for line in lines)

    html = tmp_path / "later.html"
    proc = run_cli(["report", str(out), "--html", str(html)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert html.stat().st_size > 10_000


def test_report_of_a_snapshot_file(tmp_path):
    script = write(tmp_path / "app.py", LEAKY)
    dump = tmp_path / "exit.mhs"
    proc = run_cli(["run", "--quiet", "--dump", str(dump), str(script)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(["report", str(dump), "--top", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "handle  app.py:5" in proc.stdout


def test_diff(tmp_path):
    script = write(
        tmp_path / "grow.py",
        """
        import sys, memhound
        data = []
        memhound.take_snapshot().dump(sys.argv[1])
        data += [bytearray(500) for _ in range(3000)]  # grows
        memhound.take_snapshot().dump(sys.argv[2])
        """,
    )
    a, b = tmp_path / "a.mhs", tmp_path / "b.mhs"
    proc = run_cli(["run", "--quiet", str(script), str(a), str(b)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for by in ("lineno", "filename", "traceback"):
        proc = run_cli(["diff", str(a), str(b), "--by", by, "--width", "80"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        first = proc.stdout.splitlines()[1]
        assert first.lstrip().startswith("+") and "+6,00" in first, proc.stdout
        assert by != "lineno" or first.endswith("grow.py:5"), proc.stdout
        assert all(len(line) <= 80 for line in proc.stdout.splitlines())
    proc = run_cli(["diff", str(a), str(b), "--by", "traceback", "--json"], tmp_path)
    data = json.loads(proc.stdout)
    assert data["format"] == "memhound-diff" and data["by"] == "traceback"
    top = data["diffs"][0]
    # bytearray(500): the object and its buffer, two blocks each (3.12: one
    # more, the list's growth charged to the same line).
    assert 6000 <= top["count_diff"] <= 6001 and top["size_diff"] >= 3000 * 500
    assert top["traceback"][0]["lineno"] == 5
    html = tmp_path / "diff.html"
    proc = run_cli(["diff", str(a), str(b), "--html", str(html)], tmp_path)
    assert proc.returncode == 0 and html.stat().st_size > 5000


def test_bad_files_are_errors_not_crashes(tmp_path):
    junk = tmp_path / "junk.mhc"
    junk.write_bytes(b"\x89MHC\r\n\x1a\n" + os.urandom(100))
    for args in (["report", str(junk)], ["diff", str(junk), str(junk)]):
        proc = run_cli(args, tmp_path)
        assert proc.returncode == 1
        assert proc.stderr.startswith("memhound: ") and "Traceback" not in proc.stderr
    proc = run_cli(["report", str(tmp_path / "missing.mhc")], tmp_path)
    assert proc.returncode == 1 and "No such file" in proc.stderr


def test_run_output_with_forked_children(tmp_path):
    script = write(
        tmp_path / "forks.py",
        """
        import os
        kept = [bytearray(1000) for _ in range(500)]
        pid = os.fork()
        if pid == 0:
            junk = [bytearray(10) for _ in range(100)]
            raise SystemExit(0)
        os.waitpid(pid, 0)
        """,
    )
    out = tmp_path / "run.mhc"
    proc = run_cli(
        ["run", "--quiet", "--follow-fork", "--output", str(out), str(script)],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(f"wrote {out}") == 1, proc.stderr
    capture = read_capture(out)
    assert capture.report["pid"] != 0
    top = capture.exit_snapshot.statistics("lineno")[0]
    assert top.traceback[0].lineno == 3 and top.count >= 500


def test_exit_snapshot_holds_the_program_not_the_report(tmp_path):
    _script, out, _ = _capture(tmp_path)
    capture = read_capture(out)
    files = {
        frame.filename
        for stat in capture.exit_snapshot.statistics("traceback")
        for frame in stat.traceback
    }
    assert not any(name.endswith(("leaks.py", "heap.py")) for name in files), files
