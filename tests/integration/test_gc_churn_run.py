"""Cycle churn under `memhound run`: the report's "cycle_churn" and "gc",
the text section, and forked children (--follow-fork)."""

from __future__ import annotations

import json
import textwrap

from tests.integration.test_run_leaks import memhound_run

CYCLES = """
import gc, os, sys

class Node:
    __slots__ = ("other",)

def make_pair():
    a, b = Node(), Node()  # the cycle
    a.other = b
    b.other = a

for _ in range({pairs}):
    make_pair()
gc.collect()
print("made", 2 * {pairs})
"""


def test_run_reports_the_cycle_line(tmp_path):
    pairs = 30000
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(CYCLES.format(pairs=pairs)))
    out = tmp_path / "r.json"
    proc = memhound_run(["--no-graph", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"made {2 * pairs}"
    report = json.loads(out.read_text())
    top = report["cycle_churn"][0]
    assert top["traceback"][0]["filename"] == str(app)
    assert top["traceback"][0]["lineno"] == 8
    collections = sum(report["gc"]["collections"])
    assert 2 * pairs <= top["objects"] <= 2 * pairs + 2 * collections
    assert "site" not in top  # in-process only
    assert "Cycle churn" in proc.stderr
    assert "app.py:8 in make_pair" in proc.stderr


def test_run_without_cycles_has_no_churn_section(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            kept = []
            for i in range(60000):
                item = {"i": i, "s": str(i)}
                if i % 50 == 0:
                    kept.append(item)
            """
        )
    )
    out = tmp_path / "r.json"
    proc = memhound_run(["--no-graph", "--json", str(out), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["cycle_churn"] == []
    assert report["gc"]["enabled"] is True
    assert "Cycle churn" not in proc.stderr


def test_forked_children_churn_is_merged_by_site(tmp_path):
    """Each child counts its own churn (its report under "children"); the
    parent's "cycle_churn" lists its own sites, then each site that churned
    in children once, with how many children and their pids (as leaks)."""
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import gc, os

            class Node:
                __slots__ = ("other",)

            def make_pair():
                a, b = Node(), Node()  # the children's cycle
                a.other = b
                b.other = a

            def parent_pair():
                a, b = Node(), Node()  # the parent's cycle
                a.other = b
                b.other = a

            for _ in range(3000):
                parent_pair()
            pids = []
            for pairs in (20000, 10000):
                pid = os.fork()
                if pid == 0:
                    for _ in range(pairs):
                        make_pair()
                    gc.collect()
                    os._exit(0)
                pids.append(pid)
            for pid in pids:
                os.waitpid(pid, 0)
            gc.collect()
            print(*pids)
            """
        )
    )
    out = tmp_path / "r.json"
    proc = memhound_run(
        ["--no-graph", "--follow-fork", "--json", str(out), str(app)], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    report = json.loads(out.read_text())
    lines = [site["traceback"][0]["lineno"] for site in report["cycle_churn"]]
    assert lines == [13, 8]  # the parent's own first, then the children's
    parent, children = report["cycle_churn"]
    assert "children" not in parent
    assert 6000 <= parent["objects"] <= 6000 + 2 * sum(report["gc"]["collections"])
    assert children["children"] == 2
    assert sorted(children["pids"]) == sorted(pids)
    by_pid = {}
    for child in report["children"]:
        child_churn = child["report"]["cycle_churn"]
        assert [s["traceback"][0]["lineno"] for s in child_churn] == [8]
        collections = sum(child["report"]["gc"]["collections"])
        by_pid[child["pid"]] = (child_churn[0], collections)
    made = {pids[0]: 40000, pids[1]: 20000}
    for pid, (site, collections) in by_pid.items():
        assert made[pid] <= site["objects"] <= made[pid] + 2 * collections
    # The parent's entry sums the children's.
    for field in ("objects", "blocks", "bytes", "collections"):
        assert children[field] == sum(site[field] for site, _ in by_pid.values())
    assert children["objects_by_gc_generation"] == [
        sum(site["objects_by_gc_generation"][g] for site, _ in by_pid.values())
        for g in range(3)
    ]
    assert "(in 2 child processes)" in proc.stderr
    assert "app.py:8 in make_pair" in proc.stderr


def test_run_html_shows_the_churn(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(CYCLES.format(pairs=20000)))
    page_path = tmp_path / "r.html"
    proc = memhound_run(["--no-graph", "--html", str(page_path), str(app)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = page_path.read_text()
    start = page.index('id="mh-data">') + len('id="mh-data">')
    data = json.loads(page[start : page.index("</script>", start)])
    site = data["churn"]["sites"][0]
    assert site["objects"] >= 40000
    assert site["traceback"][0] == {
        "filename": str(app),
        "lineno": 8,
        "function": "make_pair",
    }
    assert data["sources"][f"{app}:8"] == "a, b = Node(), Node()  # the cycle"
    assert 'id="churn-section"' in page
