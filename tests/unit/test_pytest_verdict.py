"""The pytest plugin's reading of a leak report (docs/report-schema.md),
fed hand-made reports, and its option parsing."""

import pytest

from memhound import pytest_plugin as plugin

TEST_FILE = "/proj/tests/test_x.py"


def leak(survivors, traceback=None, **extra):
    """A LEAK entry whose survivors are {generation: bytes}."""
    entry = {
        "kind": "python",
        "confidence": 0.9,
        "live_bytes": sum(survivors.values()),
        "growth_bytes": sum(survivors.values()),
        "generations_with_survivors": len(survivors),
        "traceback": traceback
        or [{"filename": TEST_FILE, "lineno": 12, "function": "test_y"}],
        "survivors": [
            {"generation": g, "bytes": b, "blocks": 1} for g, b in survivors.items()
        ],
    }
    entry.update(extra)
    return entry


def report(*leaks, rounds=5):
    # As LeakCheck numbers them: round k allocates in generation k - 1; the
    # last checkpoint opens generation `rounds`, where no round ran.
    return {
        "generations": [{"generation": g} for g in range(rounds + 1)],
        "leaks": list(leaks),
    }


def test_survivors_of_every_measured_round_leak():
    verdict = plugin._verdict(report(leak({2: 100, 3: 120, 4: 110})), 3)
    assert verdict["leaked"] is True
    assert verdict["per_round"] == [100, 120, 110]
    assert verdict["growth_bytes_per_round"] == 110.0
    (site,) = verdict["sites"]
    assert site["per_round"] == [100, 120, 110]
    assert site["traceback"][0]["lineno"] == 12


def test_warmup_survivors_alone_are_not_a_leak():
    # generations 0-1 are the warm-up rounds: caches filled once
    assert not plugin._verdict(report(leak({0: 5000, 1: 80})), 3)["leaked"]


def test_a_round_without_survivors_is_not_a_leak():
    verdict = plugin._verdict(report(leak({2: 100, 4: 100})), 3)
    assert verdict == {
        "leaked": False,
        "growth_bytes_per_round": 0.0,
        "per_round": [0, 0, 0],
        "sites": [],
    }


def test_min_growth_is_per_round():
    entry = leak({2: 64, 3: 64, 4: 64})
    assert plugin._verdict(report(entry), 3, min_growth=64)["leaked"]
    assert not plugin._verdict(report(entry), 3, min_growth=65)["leaked"]


def test_sites_sorted_and_summed():
    small = leak({2: 10, 3: 10, 4: 10})
    big = leak({2: 1000, 3: 1000, 4: 1000})
    verdict = plugin._verdict(report(small, big), 3)
    assert [s["growth_bytes_per_round"] for s in verdict["sites"]] == [1000, 10]
    assert verdict["per_round"] == [1010, 1010, 1010]


def test_runner_allocations_are_not_the_tests():
    pytest_frame = {
        "filename": "/venv/lib/python3.11/site-packages/_pytest/fixtures.py",
        "lineno": 1284,
        "function": "FixtureDef.execute",
    }
    stdlib_frame = {
        "filename": plugin._stdlib_dirs()[0] + "contextlib.py",
        "lineno": 105,
        "function": "__init__",
    }
    test_frame = {"filename": TEST_FILE, "lineno": 3, "function": "test_y"}
    generated = {"filename": "<string>", "lineno": 3, "function": "__init__"}
    rounds = {2: 64, 3: 64, 4: 64}
    runner = leak(rounds, [pytest_frame, test_frame])
    via_stdlib = leak(rounds, [stdlib_frame, generated, pytest_frame])
    stdlib_from_test = leak(rounds, [stdlib_frame, test_frame, pytest_frame])
    verdict = plugin._verdict(report(runner, via_stdlib, stdlib_from_test), 3)
    assert [s["traceback"] for s in verdict["sites"]] == [
        [stdlib_frame, test_frame, pytest_frame]
    ]


def test_in_process_keys_are_stripped():
    entry = leak({2: 1, 3: 1, 4: 1}, site=object())
    (site,) = plugin._verdict(report(entry), 3)["sites"]
    assert "site" not in site


def test_measured_rounds_are_the_last_generations():
    # 1 warm-up + 2 measured: generations 1 and 2; 3 is the final one
    entry = leak({1: 8, 2: 8})
    assert plugin._verdict(report(entry, rounds=3), 2)["leaked"]
    with pytest.raises(ValueError, match="fewer than 5 measured rounds"):
        plugin._verdict(report(entry, rounds=3), 5)


def test_format_verdict_names_sites_and_retention():
    # frames from the first of pytest's on are cut
    pytest_frame = {
        "filename": "/venv/lib/python3.11/site-packages/_pytest/python.py",
        "lineno": 157,
        "function": "pytest_pyfunc_call",
    }
    test_frame = {"filename": TEST_FILE, "lineno": 12, "function": "test_y"}
    entry = leak(
        {2: 2048, 3: 2048, 4: 2048},
        [test_frame, pytest_frame],
        retention_path=[
            {"via": "module", "object": "app.cache"},
            {"via": "module global", "object": "app.cache._store"},
        ],
    )
    verdict = plugin._verdict(report(entry), 3)
    text = plugin.format_verdict("tests/test_x.py::test_y", verdict, warmup=2)
    assert text.splitlines() == [
        "memhound: tests/test_x.py::test_y leaks 2.0 KiB per round (2.0 KiB, "
        "2.0 KiB, 2.0 KiB in 3 measured rounds after 2 warm-up) at 1 site:",
        "#1: +2.0 KiB per round (2.0 KiB, 2.0 KiB, 2.0 KiB), python",
        f"   > {TEST_FILE}:12 in test_y",
        "     held by: app.cache (module) -> app.cache._store (module global)",
    ]


@pytest.mark.parametrize(
    "text, size",
    [
        (1000, 1000),
        ("24 MB", 24_000_000),
        ("24MiB", 24 << 20),
        ("64 KiB", 65536),
        ("1.5k", 1536),
        ("100", 100),
        ("2 GB", 2_000_000_000),
    ],
)
def test_parse_size(text, size):
    assert plugin.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "12 parsecs", "-5", -1, "1e"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        plugin.parse_size(text)


def test_parse_rounds():
    assert plugin.parse_rounds("2:3") == (2, 3)
    assert plugin.parse_rounds("0:1") == (0, 1)
    for bad in ("3", "a:b", "1:0", "-1:3", "1:2:3"):
        with pytest.raises(ValueError):
            plugin.parse_rounds(bad)


def test_between_rounds_caches_are_emptied():
    import linecache
    import re

    re.compile("memhound-cache-probe-[0-9]+")
    linecache.getline(__file__, 1)
    assert __file__ in linecache.cache
    plugin._settle()
    assert __file__ not in linecache.cache
    assert not any("memhound-cache-probe" in str(key) for key in re._cache)
