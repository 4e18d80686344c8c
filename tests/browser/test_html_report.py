"""The HTML report in a real browser: headless Chromium (Debian's chromium
and chromium-driver) driven by selenium.  Checks that the charts, leaks,
icicle graph and tables render with real content, that clicking zooms and
typing searches, and keeps screenshots in tests/artifacts/.

Skipped when chromium, chromedriver or selenium is missing, except in CI
(CI=true), where a missing browser is a failure."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from memhound.html import render_diff_html, render_html
from tests.report_fixture import (
    LEAK_LINE,
    TRANSIENT_LINE,
    make_report,
    synthetic_snapshot,
    take_snapshots,
)

ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "artifacts")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    if CHROMIUM is None or DRIVER is None:
        return (
            "chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        "--no-first-run",
    ):
        options.add_argument(arg)
    # The browser is not the code under test: under `make sanitize` it must
    # not inherit the ASan runtime preloaded into python.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC")
    }
    service = Service(executable_path=DRIVER, env=env)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(driver, path, timeout=30.0):
    driver.get("file://" + os.fspath(path))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script(
            "return [document.body.getAttribute('data-rendered'),"
            " document.body.getAttribute('data-error')]"
        )
        if state[1]:
            pytest.fail(f"the page's script failed: {state[1]}")
        if state[0] == "1":
            return
        time.sleep(0.05)
    pytest.fail("the page did not finish rendering")


def _shot(driver, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    driver.save_screenshot(path)
    assert os.path.getsize(path) > 10_000
    return path


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    peak, exit_ = take_snapshots(3000)
    report = make_report()
    path = tmp_path_factory.mktemp("html") / "report.html"
    render_html(report, peak, exit_, path)
    return path, report


def _css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def test_overview_and_leaks(browser, report_page):
    path, report = report_page
    _open(browser, path)
    series = _css(browser, "#overview-chart path.series")
    assert [s.get_attribute("data-name") for s in series] == ["traced memory", "RSS"]
    # One path command per timeline point, drawn with a real width.
    d = series[0].get_attribute("d")
    assert d.count("L") == len(report["timeline"]) - 1
    assert series[0].size["width"] > 500
    assert len(_css(browser, "#overview-chart line.gen")) == len(report["generations"])
    peak = _css(browser, "#overview-chart line.peak")
    assert len(peak) == 1
    assert "peak" in _css(browser, "#overview-chart text.peaklabel")[0].text

    leaks = _css(browser, ".leak")
    assert len(leaks) == len(report["leaks"])
    for leak in leaks:
        growth = leak.find_element("css selector", "path.series")
        assert (
            growth.get_attribute("d").count("L")
            == len(report["leaks"][0]["series"]) - 1
        )
        assert growth.size["width"] > 300
    first = leaks[0].text
    assert "report_fixture.py" in first and "store.append(bytearray" in first
    assert "app.cache._store" in first and "module global" in first
    assert "retains" in first
    # The source line is embedded only when the file exists.
    sources = [e.text for e in leaks[0].find_elements("css selector", ".src")]
    assert any("store.append" in s for s in sources)
    assert str(LEAK_LINE) in first
    _shot(browser, "report-top.png")


def test_cycle_churn_section(browser, report_page, tmp_path):
    path, report = report_page
    _open(browser, path)
    sites = _css(browser, "#churn .churn-site")
    assert len(sites) == len(report["cycle_churn"]) == 1
    text = sites[0].text
    site = report["cycle_churn"][0]
    assert f"#1 {site['objects']:,} objects at _transient" in text
    assert f"report_fixture.py:{TRANSIENT_LINE}" in text
    assert "freed in 57 collections" in text and "1.8 MiB" in text
    assert "12,500 objects/s" in text
    assert "by gc generation 36,000 / 3,900 / 100" in text
    # The source line of the churning site is embedded.
    assert any(
        "str(i) * 3" in e.text for e in sites[0].find_elements("css selector", ".src")
    )
    assert "at least 1,000 objects" in _css(browser, "#churn-note")[0].text
    gc_line = _css(browser, "#churn-gc")[0].text
    assert gc_line == "gc: 58 collections (52/5/1), 0.009 s, 0.3% of the run"
    browser.execute_script("arguments[0].scrollIntoView()", sites[0])
    _shot(browser, "churn.png")

    # Below the text report's threshold, or no churn at all: no section.
    report = dict(report, cycle_churn=[dict(site, objects=999)])
    quiet = tmp_path / "quiet.html"
    render_html(report, None, None, quiet)
    _open(browser, quiet)
    assert not _css(browser, "#churn .churn-site")
    assert not _css(browser, "#churn-section")[0].is_displayed()


def test_flame_graph_zoom_and_search(browser, report_page):
    path, _ = report_page
    _open(browser, path)
    flame = _css(browser, "#flame")[0]
    browser.execute_script("arguments[0].scrollIntoView()", flame)
    width = flame.size["width"]
    nodes = _css(browser, "#flame .fnode")
    assert len(nodes) >= 4
    labels = [n.text for n in nodes]
    assert "all live memory" in labels
    leak_nodes = [n for n in nodes if n.text.startswith("_leaky_cache")]
    assert leak_nodes, labels
    before = leak_nodes[0].size["width"]
    assert before < width - 10  # the transient lists share the peak graph

    leak_nodes[0].click()
    zoomed = [
        n for n in _css(browser, "#flame .fnode") if n.text.startswith("_leaky_cache")
    ]
    assert zoomed and zoomed[0].size["width"] >= width - 4
    assert "anc" in _css(browser, "#flame .fnode")[0].get_attribute("class")
    assert "zoomed into _leaky_cache" in _css(browser, "#flame-info")[0].text
    _shot(browser, "flame-zoomed.png")

    # Click the faded root bar: back to the whole graph.
    _css(browser, "#flame .fnode.anc")[0].click()
    assert _css(browser, "#flame .fnode")[0].text == "all live memory"
    assert "zoomed" not in _css(browser, "#flame-info")[0].text

    search = _css(browser, "#flame-search")[0]
    search.send_keys("_transient")
    matches = _css(browser, "#flame .fnode.match")
    assert matches
    assert all("_transient" in m.text for m in matches if m.text)
    info = _css(browser, "#flame-info")[0].text
    assert "matches" in info and "%" in info and "0.0%" not in info
    _shot(browser, "flame-search.png")

    # The exit tab: the transient lists are gone.
    tabs = _css(browser, "#flame-tabs button")
    assert [t.text.split(" (")[0] for t in tabs] == ["at peak", "at exit"]
    tabs[1].click()
    assert "on" in tabs[1].get_attribute("class")
    assert not _css(browser, "#flame .fnode.match")


def test_tables_sort_and_filter(browser, report_page):
    path, _ = report_page
    _open(browser, path)

    def column(index):
        rows = sorted(
            _css(browser, "#sites .row"),
            key=lambda r: float(r.value_of_css_property("top")[:-2]),
        )
        return [r.find_elements("css selector", "div")[index].text for r in rows]

    lines = column(3)
    assert any("_leaky_cache" in line for line in lines)
    heads = _css(browser, "#sites .head div")
    heads[1].click()  # blocks, largest first
    counts = [int(c.replace(",", "")) for c in column(1)]
    assert counts == sorted(counts, reverse=True) and len(counts) >= 2
    heads[1].click()  # again: ascending
    counts = [int(c.replace(",", "")) for c in column(1)]
    assert counts == sorted(counts)
    everything = len(column(3))
    box = _css(browser, "#sites-filter")[0]
    box.send_keys("_leaky_cache")
    kept = column(3)
    assert 0 < len(kept) < everything
    assert all("_leaky_cache" in line for line in kept)
    box.send_keys("-no-such-name")
    assert column(3) == []
    types = _css(browser, "#types .row")
    assert any("bytearray" in t.text for t in types)
    grew = [r.text for r in _css(browser, "#types-grew .row")]
    assert any("bytearray" in t and "+1,100" in t for t in grew), grew
    retainers = [r.text for r in _css(browser, "#retainers .row")]
    assert any("app.cache \u2192 app.cache._store" in t for t in retainers), retainers


def test_hundred_thousand_sites(browser, tmp_path):
    snapshot = synthetic_snapshot(100_000)
    path = tmp_path / "big.html"
    render_html(make_report(), snapshot, snapshot, path)
    _open(browser, path, timeout=60)
    title = [e.text for e in _css(browser, ".tsec h2")]
    assert "Allocation sites at exit (100,000)" in title
    # Virtualized: a screenful of rows in the DOM, not 100,000.
    assert 5 < len(_css(browser, "#sites .row")) < 100
    body = _css(browser, "#sites .body")[0]
    browser.execute_script("arguments[0].scrollTop = 24 * 50000", body)
    browser.execute_script("arguments[0].dispatchEvent(new Event('scroll'))", body)
    tops = [
        float(r.value_of_css_property("top")[:-2]) for r in _css(browser, "#sites .row")
    ]
    assert min(tops) > 24 * 49000
    # The icicle graph draws a bounded number of bars.
    nodes = _css(browser, "#flame .fnode")
    assert 10 < len(nodes) <= 4000
    search = _css(browser, "#flame-search")[0]
    search.send_keys("step3_7")  # one branch in ten at that level
    assert _css(browser, "#flame .fnode.match")
    info = _css(browser, "#flame-info")[0].text
    share = float(info.split("(")[1].split("%")[0])
    assert 5 < share < 15, info
    _shot(browser, "big-report.png")


def test_diff_page(browser, tmp_path):
    old, new = take_snapshots(1000)
    path = tmp_path / "diff.html"
    render_diff_html(new, old, path, key_type="traceback", names=("exit", "peak"))
    _open(browser, path)
    rows = _css(browser, "#diff .row")
    # The line that made the transient lists (its function is "<listcomp>"
    # on 3.10, "_transient.<locals>.<listcomp>" on 3.11 and 3.12).
    where = f"report_fixture.py:{TRANSIENT_LINE}"
    assert rows and any(where in r.text for r in rows), [r.text for r in rows]
    assert any("+" in r.text for r in rows)
    assert any("_transient" in n.text for n in _css(browser, "#flame .fnode"))
    assert "\u2192" in _css(browser, "#title")[0].text
    _shot(browser, "diff.png")
