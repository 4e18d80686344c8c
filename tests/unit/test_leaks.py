"""The leak-analysis API: LeakCheck, iterations, assert_no_leaks,
checkpoint, and the report dict they produce."""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

import pytest

import memhound
from memhound import _core
from memhound.report import format_text, to_json_data, write_json

THIS_FILE = __file__


def leak_line(report):
    """(filename, lineno) of the top leak's innermost frame."""
    frame = report["leaks"][0]["traceback"][0]
    return frame["filename"], frame["lineno"]


def test_leakcheck_finds_a_growing_list():
    kept = []
    with memhound.LeakCheck() as check:
        for i in range(12):
            for _ in range(200):
                kept.append(f"item {i} {len(kept)}")  # the leak
            check.checkpoint(force=True)
    report = check.report()
    assert report["leaks"], report["largest"][:2]
    filename, _lineno = leak_line(report)
    assert filename == THIS_FILE
    top = report["leaks"][0]
    assert top["traceback"][0]["function"].endswith(
        "test_leakcheck_finds_a_growing_list"
    )
    assert top["kind"] == "python"
    assert top["confidence"] >= 0.9
    assert top["growth_bytes_per_iteration"] > 0
    assert top["generations_with_survivors"] >= 9
    assert report["summary"]["iterations"] == 12
    assert not memhound.is_tracing()  # LeakCheck stopped what it started


def test_leakcheck_clean_loop_reports_nothing():
    with memhound.LeakCheck() as check:
        for _ in range(12):
            temp = [str(j) * 3 for j in range(500)]  # churn only
            del temp
            check.checkpoint(force=True)
    report = check.report()
    assert report["leaks"] == []
    assert report["summary"]["generations"] == 12


def test_plateauing_cache_is_not_a_leak():
    cache = {}
    with memhound.LeakCheck() as check:
        for i in range(16):
            for j in range(300):
                cache[i * 300 + j] = f"value {i} {j}"
                while len(cache) > 600:  # bounded: evicts the oldest
                    del cache[next(iter(cache))]
            check.checkpoint(force=True)
    assert check.report()["leaks"] == []


def test_leakcheck_keeps_tracing_it_did_not_start():
    memhound.start()
    with memhound.LeakCheck() as check:
        check.checkpoint()
    assert memhound.is_tracing()
    assert check.report()["format"] == "memhound-report"


def test_checkpoint_outside_block_and_report_before_block():
    check = memhound.LeakCheck()
    with pytest.raises(RuntimeError):
        check.report()
    with pytest.raises(RuntimeError):
        check.checkpoint()


def test_leakcheck_rejects_bad_settings():
    with pytest.raises(ValueError):
        memhound.LeakCheck(min_confidence=1.5)
    with pytest.raises(ValueError):
        memhound.LeakCheck(min_generations=0)


def test_iterations_reports_growth_per_iteration():
    kept = []
    loop = memhound.iterations(range(20), print_report=False)
    for i in loop:
        kept.append(bytearray(100 + i % 3))
    report = loop.report()
    assert loop.count == 20
    assert report["leaks"]
    top = report["leaks"][0]
    assert top["traceback"][0]["filename"] == THIS_FILE
    # ~ one block of 100+ bytes per iteration
    assert 100 <= top["growth_bytes_per_iteration"] <= 400


def test_iterations_prints_a_report_on_leak(capsys):
    kept = []
    for _ in memhound.iterations(range(15)):
        kept.append(bytearray(64))
    err = capsys.readouterr().err
    assert "leak found" in err or "leaks found" in err


def test_assert_no_leaks_passes_clean_function():
    def clean():
        return sorted(str(i) for i in range(100))

    report = memhound.assert_no_leaks(clean, iterations=10)
    assert report["leaks"] == []


def test_assert_no_leaks_names_the_site():
    store = []

    def leaky():
        store.append({"payload": "x" * 100})  # LEAK-ASSERT

    with pytest.raises(AssertionError) as info:
        memhound.assert_no_leaks(leaky, iterations=10)
    message = str(info.value)
    assert "leaky leaks" in message
    lineno = next(
        number
        for number, line in enumerate(Path(THIS_FILE).read_text().splitlines(), 1)
        if "# LEAK-ASSERT" in line and "store.append" in line
    )
    # The top leak is the append line itself (not memhound's bookkeeping).
    first_site = message.split("#1 ", 1)[1]
    assert f"test_leaks.py:{lineno} in " in first_site.split("#2 ", 1)[0], message


def test_assert_no_leaks_needs_iterations():
    with pytest.raises(ValueError):
        memhound.assert_no_leaks(lambda: None, iterations=2)


def test_checkpoint_needs_tracing():
    with pytest.raises(RuntimeError):
        memhound.checkpoint()
    memhound.start()
    first = memhound.checkpoint()
    assert memhound.checkpoint() == first + 1


def test_collectable_cycles_are_not_leaks():
    class Node:
        def __init__(self):
            self.me = self
            self.data = [0] * 20

    assert gc.isenabled()
    with memhound.LeakCheck() as check:
        for _ in range(12):
            for _ in range(100):
                Node()
            check.checkpoint(force=True)
    assert check.report()["leaks"] == []


def test_report_shape_matches_schema(tmp_path):
    kept = []
    with memhound.LeakCheck() as check:
        for i in range(10):
            kept.extend(str(i) * 50 + str(j) for j in range(100))
            check.checkpoint(force=True)
    report = check.report()
    for key in ("format", "version", "memhound", "python", "argv", "duration_s"):
        assert key in report
    assert report["format"] == "memhound-report" and report["version"] == 1
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    leak = report["leaks"][0]
    for key in (
        "kind",
        "confidence",
        "live_bytes",
        "live_blocks",
        "growth_bytes",
        "growth_bytes_per_s",
        "traceback",
    ):
        assert key in leak
    assert set(leak["traceback"][0]) >= {"filename", "lineno", "function"}
    for site in report["largest"]:
        assert "confidence" not in site and "leaking" in site
    assert report["timeline"][0].keys() == {"t", "traced_bytes", "rss_bytes"}
    assert report["timeline"][-1]["rss_bytes"] > 0
    # JSON: in-process keys dropped, everything serializable.
    path = tmp_path / "r.json"
    write_json(report, str(path))
    data = json.loads(path.read_text())
    assert "site" not in data["leaks"][0]
    assert data == to_json_data(report)


def test_text_report_fits_80_columns_and_says_no_leak():
    with memhound.LeakCheck() as check:
        for _ in range(5):
            check.checkpoint(force=True)
    text = format_text(check.report())
    assert "no leak found" in text
    assert "\x1b[" not in text  # no colour unless asked
    colored = format_text(check.report(), color=True)
    assert "\x1b[" in colored


def test_text_report_names_leak_with_source_line():
    kept = []
    with memhound.LeakCheck() as check:
        for i in range(12):
            kept.extend(bytes(50 + i) for _ in range(50))  # growing store
            check.checkpoint(force=True)
    text = format_text(check.report(), width=80)
    assert "python leak, confidence" in text
    assert "growing store" in text  # the source line is shown
    for line in text.splitlines():
        if "test_leaks.py" not in line:  # the user's own path may be long
            assert len(line) <= 80, line


def test_generation_numbers_restart_per_check():
    with memhound.LeakCheck() as check:
        for _ in range(3):
            check.checkpoint(force=True)
    with memhound.LeakCheck() as check:
        check.checkpoint(force=True)
        info = _core.gens_info()
        assert info["generation"] == 1
    assert check.report()["summary"]["generations"] == 1


@pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="before 3.13 CPython reports free-list reuse to its own tracemalloc "
    "only (docs/leak-analysis.md, Limits)",
)
def test_free_list_reuse_is_charged_to_the_reusing_line():
    kept = []

    def churn():
        temp = [x * 2.5 for x in range(50)]  # floats back to the free list
        del temp

    memhound.start()
    for i in range(50):
        churn()
        kept.append(i * 1.5 + 0.25)  # the float the free list hands out
    traceback = memhound.get_object_traceback(kept[-1])
    assert traceback is not None
    assert "kept.append" in linecache_line(traceback[0])


def linecache_line(frame):
    import linecache

    return linecache.getline(frame.filename, frame.lineno)


def test_report_inside_the_block_is_kept_on_exit():
    kept = []
    with memhound.LeakCheck(graph=False) as check:
        for _ in range(8):
            kept.extend(bytes(60) for _ in range(30))
            check.checkpoint(force=True)
        inner = check.report()
    assert check.report() is inner  # not analysed a second time
    assert inner["leaks"] and inner["leaks"][0]["retention_path"] is None


def test_leakcheck_graph_setting():
    with pytest.raises(ValueError):
        memhound.LeakCheck(graph="sometimes")


def test_a_scan_lost_for_memory_is_reported():
    with memhound.LeakCheck(graph=False) as check:
        # A new site the scan must make room for...
        kept = [bytearray(300) for _ in range(50)]
        _core._inject_alloc_failures(0)  # ...and the first scan can't get memory
        try:
            check.checkpoint(force=True)
        finally:
            _core._inject_alloc_failures(-1)
        for _ in range(4):
            check.checkpoint(force=True)
    del kept
    warnings = check.report()["warnings"]
    assert any("scans of the live table were dropped" in w for w in warnings)


def test_report_leaves_memhound_itself_out():
    # The report being built and the cache cleaning memhound does before
    # the verdict are memhound's: not a retainer, not an allocation site.
    kept = []
    with memhound.LeakCheck(graph=True) as check:
        for _ in range(10):
            kept.append([str(j) * 20 for j in range(300)])  # the leak
            check.checkpoint(force=True)
    report = check.report()
    holders = [
        step["object"]
        for retainer in report["largest_retainers"]
        for step in retainer["retention_path"]
    ]
    assert not [h for h in holders if "['largest']" in h or "['leaks']" in h], holders
    package = os.path.dirname(memhound.__file__) + os.sep
    innermost = [
        (site["traceback"][0]["filename"], site["traceback"][0]["function"])
        for site in report["largest"]
    ]
    mine = [(f, fn) for f, fn in innermost if f.startswith(package)]
    if sys.version_info < (3, 13):
        # Checkpoints stay traced before 3.13 (leaks._memhound_work_313).
        mine = [(f, fn) for f, fn in mine if "checkpoint" not in fn]
        mine = [(f, fn) for f, fn in mine if "want_scan" not in fn]
    assert not mine, innermost
