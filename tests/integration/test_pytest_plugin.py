"""The pytest plugin (memhound.pytest_plugin) on real pytest runs: each
run is a separate pytest process (pytester's runpytest_subprocess), since
the plugin hooks the allocators.  Leaky and clean tests of every shape,
the markers, the failure messages, the JSON file, xdist, and memhound's
own tests under --memhound."""

import json
from pathlib import Path

import pytest

from ..native.fixtures import native_build  # noqa: F401

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]

# Every shape of test, each leaky (keeps blocks in a module global every
# round) or clean.  COUNTS records how often each fixture was set up.
SHAPES = """\
import re, threading, unittest, warnings, pytest

KEPT = []
COUNTS = {}

def count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1

@pytest.fixture(scope="module")
def module_list():
    count("module")
    yield []

@pytest.fixture
def fresh():
    count("function")
    return object()

def test_clean_function(fresh, tmp_path):
    data = [bytes(100) for _ in range(200)]
    (tmp_path / "f").write_text("x")

def test_leaky_function():
    KEPT.append([bytes(100) for _ in range(40)])  # LEAK-FUNCTION

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    if n == 2:
        KEPT.append(bytearray(3000))  # LEAK-PARAM

def test_leaks_into_module_fixture(module_list, fresh):
    module_list.append(bytes(2000))  # LEAK-MODULE-FIXTURE

class TestClass:
    @pytest.fixture(scope="class", autouse=True)
    def class_fixture(self):
        count("class")

    def test_clean_method(self):
        assert [1] * 10

    def test_leaky_method(self):
        KEPT.append(bytes(2500))  # LEAK-METHOD

class UnitTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        count("setUpClass")

    def setUp(self):
        count("setUp")
        self.scratch = bytes(1000)

    def test_clean_unittest(self):
        self.assertTrue(self.scratch is not None)

    def test_leaky_unittest(self):
        KEPT.append(bytes(1500))  # LEAK-UNITTEST

def test_clean_thread():
    out = []
    thread = threading.Thread(target=lambda: out.append(bytes(500)))
    thread.start(); thread.join()

def test_leaky_thread():
    keep = lambda: KEPT.append(bytearray(4000))  # LEAK-THREAD
    thread = threading.Thread(target=keep)
    thread.start(); thread.join()

ROUND = [0]

def test_caches_and_warnings_are_not_leaks():
    ROUND[0] += 1
    re.compile(f"new pattern {ROUND[0]}+")   # a new entry in re's cache
    warnings.warn(f"round {ROUND[0]}", UserWarning)

@pytest.mark.skip(reason="skipped")
def test_skipped():
    KEPT.append(bytes(1000))

@pytest.mark.xfail(reason="expected")
def test_xfail():
    assert False

def test_zz_counts():
    print("COUNTS", sorted(COUNTS.items()))
"""

LEAKY = {
    "test_shapes.py::test_leaky_function",
    "test_shapes.py::test_param[2]",
    "test_shapes.py::test_leaks_into_module_fixture",
    "test_shapes.py::TestClass::test_leaky_method",
    "test_shapes.py::UnitTests::test_leaky_unittest",
    "test_shapes.py::test_leaky_thread",
}
CLEAN = {
    "test_shapes.py::test_clean_function",
    "test_shapes.py::test_param[1]",
    "test_shapes.py::TestClass::test_clean_method",
    "test_shapes.py::UnitTests::test_clean_unittest",
    "test_shapes.py::test_clean_thread",
    "test_shapes.py::test_caches_and_warnings_are_not_leaks",
    "test_shapes.py::test_zz_counts",
}


def line_of(source, marker):
    for number, line in enumerate(source.splitlines(), 1):
        if marker in line:
            return number
    raise AssertionError(marker)


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def verdicts(path):
    return {test["nodeid"]: test for test in json.loads(path.read_text())["tests"]}


@pytest.mark.parametrize(
    "native", [[], ["--memhound-native"]], ids=["python", "native"]
)
def test_every_shape_leaky_and_clean(pytester, native):
    # With native tracing on too, the same verdicts: the runner's and the
    # interpreter's own native memory is not charged to the tests.
    pytester.makepyfile(test_shapes=SHAPES)
    out = pytester.path / "out.json"
    result = run(pytester, "--memhound", *native, f"--memhound-json={out}", "-s", "-rA")
    result.assert_outcomes(failed=len(LEAKY), passed=len(CLEAN), skipped=1, xfailed=1)
    found = verdicts(out)
    assert set(found) == LEAKY | CLEAN  # skipped and xfailed tests were not checked
    assert {nodeid for nodeid, test in found.items() if test["leaked"]} == LEAKY
    for nodeid in CLEAN:
        assert found[nodeid]["sites"] == [] and found[nodeid]["per_round"] == [0] * 3
    text = result.stdout.str()
    for nodeid, marker, size in [
        ("test_shapes.py::test_leaky_function", "LEAK-FUNCTION", 40 * 133),
        ("test_shapes.py::test_param[2]", "LEAK-PARAM", 3000),
        ("test_shapes.py::test_leaks_into_module_fixture", "LEAK-MODULE-FIXTURE", 2000),
        ("test_shapes.py::TestClass::test_leaky_method", "LEAK-METHOD", 2500),
        ("test_shapes.py::UnitTests::test_leaky_unittest", "LEAK-UNITTEST", 1500),
        ("test_shapes.py::test_leaky_thread", "LEAK-THREAD", 4000),
    ]:
        test = found[nodeid]
        lineno = line_of(SHAPES, marker)
        top = test["sites"][0]
        assert top["traceback"][0]["lineno"] == lineno, (nodeid, top)
        assert top["traceback"][0]["filename"].endswith("test_shapes.py")
        assert "site" not in top
        # every measured round kept at least the leaked object
        assert len(test["per_round"]) == 3 and min(test["per_round"]) >= size, test
        assert size <= test["growth_bytes_per_round"] < 2 * size + 1024
        # the failure names the site; the summary lists the test
        assert f"test_shapes.py:{lineno} in " in text
        assert f"LEAK {nodeid}: +" in text
    result.stdout.fnmatch_lines(
        [
            "*memhound: test_shapes.py::test_leaky_function leaks * per round "
            "(*, *, * in 3 measured rounds after 2 warm-up) at * site*:",
            "memhound: 13 tests checked (2 warm-up + 3 measured rounds), 6 leaking",
            "FAILED test_shapes.py::test_leaky_function - Failed: memhound: *",
        ]
    )
    # Function fixtures and setUp ran once per round (5 rounds per test);
    # module, class and setUpClass fixtures once.  The last test's print is
    # from its final round, after every earlier test.
    counts = [line for line in text.splitlines() if line.startswith("COUNTS")]
    assert counts[-1] == (
        "COUNTS [('class', 1), ('function', 10), ('module', 1), "
        "('setUp', 10), ('setUpClass', 1)]"
    )
    # The warnings of the repeated test are reported once, from the last round.
    assert text.count("UserWarning: round") == 1


def test_warn_mode_lists_but_passes(pytester):
    pytester.makepyfile(
        """
        KEPT = []
        def test_leaks():
            KEPT.append(bytes(5000))
        """
    )
    result = run(pytester, "--memhound", "--memhound-mode=warn")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*= memhound =*",
            "LEAK test_warn_mode_lists_but_passes.py::test_leaks: +*per round*",
            "memhound: 1 tests checked (2 warm-up + 3 measured rounds), 1 leaking",
        ]
    )


def test_code_compiled_per_round_is_not_a_leak(pytester):
    # namedtuple, dataclass and exec compile new code objects every round;
    # memhound's traceback store once kept them all alive.
    pytester.makepyfile(
        """
        import collections, dataclasses

        def test_defines_types_per_round():
            point = collections.namedtuple("Point", "x y")
            record = dataclasses.make_dataclass("Record", ["a", "b"])
            namespace = {}
            exec("def f(v):\\n    return [v] * 4\\n", namespace)
            assert point(1, 2).x == 1 and record(1, 2).b == 2
            assert namespace["f"](3) == [3, 3, 3, 3]
        """
    )
    result = run(pytester, "--memhound")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["memhound: 1 tests checked (2 warm-up + 3 measured rounds), 0 leaking"]
    )


NATIVE = """\
import leakyext  # a C extension that mallocs n bytes per leak(n) call

def test_native_leak():
    leakyext.leak(6000)  # NATIVE-LEAK

def test_native_clean():
    leakyext.fixed(6000)
"""


def test_native_option_finds_a_native_leak(pytester, native_build, monkeypatch):  # noqa: F811
    # The leaked memory is malloc's, not Python's: the test keeps no object,
    # so only --memhound-native can see it.
    monkeypatch.setenv("PYTHONPATH", str(native_build[1]))
    pytester.makepyfile(test_native=NATIVE)
    out = pytester.path / "out.json"
    result = run(pytester, "--memhound", "--memhound-native", f"--memhound-json={out}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["memhound: 2 tests checked (2 warm-up + 3 measured rounds), 1 leaking"]
    )
    by_test = {nodeid.split("::")[-1]: entry for nodeid, entry in verdicts(out).items()}
    assert by_test["test_native_clean"]["leaked"] is False
    leaky = by_test["test_native_leak"]
    assert leaky["leaked"] is True
    site = leaky["sites"][0]
    assert site["kind"] == "native"
    assert site["traceback"][0]["lineno"] == line_of(NATIVE, "# NATIVE-LEAK")
    assert min(site["per_round"]) >= 6000

    # Without the option the same run sees no leak: Python memory is clean.
    result = run(pytester, "--memhound")
    result.assert_outcomes(passed=2)


MARKERS = """\
import sys
import pytest

KEPT = []

def test_unmarked_leak_is_not_checked_nor_traced():
    KEPT.append(bytes(5000))
    import memhound
    assert not memhound.is_tracing()

@pytest.mark.no_leaks
def test_no_leaks_leaky():
    KEPT.append(bytes(5000))

@pytest.mark.no_leaks
def test_no_leaks_clean():
    data = bytes(5000)

@pytest.mark.memhound_limit("1 MB")
def test_limit_exceeded():
    data = bytearray(3_000_000)

@pytest.mark.memhound_limit("8 MiB")
def test_limit_respected():
    data = bytearray(3_000_000)

@pytest.mark.memhound_limit(1000)
@pytest.mark.xfail(reason="over the limit", strict=True)
def test_limit_xfail():
    data = bytes(100_000)

@pytest.mark.memhound_skip
def test_exempt():
    KEPT.append(bytes(5000))
"""


def test_retention_path_of_a_leak(pytester):
    pytester.makepyfile(
        test_registry="""
        class Record:
            def __init__(self, i):
                self.payload = [i] * 50

        REGISTRY = []

        def test_registers():
            REGISTRY.append(Record(len(REGISTRY)))
        """
    )
    out = pytester.path / "out.json"
    result = run(pytester, "--memhound", f"--memhound-json={out}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "   > test_registry.py:3 in *__init__",  # Record.__init__ on 3.11+
            "     held by: test_registry (module) -> test_registry.REGISTRY "
            "(module global) -> test_registry.REGISTRY[[]0[]] (list item) -> "
            "test_registry.REGISTRY[[]0[]].payload (attribute)",
        ]
    )
    (test,) = verdicts(out).values()
    assert [step["via"] for step in test["sites"][0]["retention_path"]] == [
        "module",
        "module global",
        "list item",
        "attribute",
    ]
    assert test["sites"][0]["types"][0]["type"] == "list"


def test_markers_without_the_flag(pytester):
    pytester.makepyfile(test_markers=MARKERS)
    result = run(pytester, "--strict-markers", "-rA")
    result.assert_outcomes(passed=4, failed=2, xfailed=1)
    result.stdout.fnmatch_lines_random(
        [
            "memhound: test_markers.py::test_no_leaks_leaky leaks * per round *",
            "FAILED test_markers.py::test_no_leaks_leaky - Failed: memhound: *",
            "memhound: peak traced memory 2.9 MiB (3* bytes) exceeds the limit "
            "976.6 KiB (1000000 bytes) of test_markers.py::test_limit_exceeded",
            "FAILED test_markers.py::test_limit_exceeded - Failed: memhound: *",
            "PASSED test_markers.py::test_no_leaks_clean",
            "PASSED test_markers.py::test_limit_respected",
            "PASSED test_markers.py::test_exempt",
            "memhound: 2 tests checked (2 warm-up + 3 measured rounds), 1 leaking",
        ]
    )


def test_memhound_skip_and_no_leaks_with_the_flag(pytester):
    pytester.makepyfile(test_markers=MARKERS)
    out = pytester.path / "out.json"
    result = run(
        pytester,
        "--memhound",
        "--memhound-mode=warn",
        f"--memhound-json={out}",
        "-k",
        "no_leaks or exempt or unmarked",
    )
    # warn mode, but no_leaks still fails; the unmarked test is now traced
    result.assert_outcomes(passed=2, failed=2)
    found = verdicts(out)
    assert "test_markers.py::test_exempt" not in found
    assert found["test_markers.py::test_no_leaks_leaky"]["leaked"] is True
    assert found["test_markers.py::test_no_leaks_clean"]["leaked"] is False


def test_rounds_option_and_bad_options(pytester):
    pytester.makepyfile(
        """
        import pytest
        SETUPS = []
        @pytest.fixture
        def fixture():
            SETUPS.append(1)
        def test_rounds(fixture):
            print("SETUPS", len(SETUPS))
        """
    )
    out = pytester.path / "out.json"
    result = run(
        pytester, "--memhound", "--memhound-rounds=1:4", "-s", f"--memhound-json={out}"
    )
    result.assert_outcomes(passed=1)
    assert "SETUPS 5" in result.stdout.str()
    assert verdicts(out)["test_rounds_option_and_bad_options.py::test_rounds"][
        "per_round"
    ] == [0, 0, 0, 0]
    for bad, message in [
        ("--memhound-rounds=3", "*--memhound-rounds wants W:N such as 2:3*"),
        ("--memhound-rounds=2:0", "*W >= 0 warm-up and N >= 1 measured rounds*"),
        ("--memhound-min-growth=lots", "*not a size: 'lots'*"),
        ("--memhound-min-confidence=2", "*--memhound-min-confidence must be in *"),
        ("--memhound-depth=0", "*--memhound-depth must be in *"),
    ]:
        result = run(pytester, "--memhound", bad)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([message])


DOCTEST = '''
def double(x):
    """
    >>> double(2)
    4
    """
    return 2 * x
'''


def test_failures_skips_and_unsupported_tests(pytester):
    pytester.makepyfile(
        """
        import pytest, memhound
        RUNS = []
        def test_fails():
            assert 1 == 2
        def test_fails_in_third_round():
            RUNS.append(1)
            assert len(RUNS) < 3, "flaky"
        def test_skips_itself():
            pytest.skip("not today")
        def test_stops_tracing():
            memhound.stop()
        def test_after():
            pass
        """
    )
    pytester.makepyfile(doc=DOCTEST)
    out = pytester.path / "out.json"
    result = run(
        pytester, "--memhound", f"--memhound-json={out}", "-rA", "--doctest-modules"
    )
    result.assert_outcomes(failed=2, passed=3, skipped=1)
    result.stdout.fnmatch_lines_random(
        [
            "*assert 1 == 2",
            "E       AssertionError: flaky",
            "FAILED *::test_fails_in_third_round*",
            "NOT CHECKED *::test_stops_tracing: the test stopped memhound's tracing",
            "NOT CHECKED doc.py::doc.double: doctests are not leak-checked: *",
            "memhound: 1 tests checked *, 0 leaking, 2 could not be checked",
        ]
    )
    found = verdicts(out)
    assert set(found) == {
        "test_failures_skips_and_unsupported_tests.py::test_stops_tracing",
        "test_failures_skips_and_unsupported_tests.py::test_after",
        "doc.py::doc.double",
    }
    assert (
        found["test_failures_skips_and_unsupported_tests.py::test_stops_tracing"][
            "leaked"
        ]
        is None
    )


def test_subtests_are_reported_once(pytester):
    pytester.makepyfile(
        """
        import unittest
        KEPT = []
        class Sub(unittest.TestCase):
            def test_clean(self):
                for i in range(3):
                    with self.subTest(i=i):
                        self.assertLess(i, 5)
            def test_leaky(self):
                for i in range(2):
                    with self.subTest(i=i):
                        KEPT.append(bytes(1000))
        """
    )
    plain = run(pytester, "-q").outlines[-1].split(" in ")[0]
    checked = run(pytester, "-q", "--memhound")
    checked.assert_outcomes(passed=1, failed=1)
    # as many subtests (pytest >= 9 counts them with -q) as without rounds
    expected = plain.replace("2 passed", "1 failed, 1 passed")
    assert checked.outlines[-1].split(" in ")[0] == expected


def test_inactive_unless_asked(pytester):
    # The plugin module lives in the memhound package, so memhound is
    # imported; nothing is traced.
    pytester.makepyfile(
        """
        import memhound
        def test_nothing_traced():
            assert not memhound.is_tracing()
            assert memhound.get_stats()["traced_blocks"] == 0
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "memhound" not in result.stdout.str().split("collected")[1]


def test_explicit_loading(pytester, monkeypatch):
    pytester.makepyfile(
        """
        KEPT = []
        def test_leaks():
            KEPT.append(bytes(5000))
        """
    )
    # by entry-point name; by module with the entry point blocked (else
    # pytest would register the same module twice)
    for args in (
        ["-p", "memhound"],
        ["-p", "no:memhound", "-p", "memhound.pytest_plugin"],
    ):
        result = run(pytester, *args, "--memhound")
        result.assert_outcomes(failed=1)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for args in (["-p", "memhound"], ["-p", "memhound.pytest_plugin"]):
        result = run(pytester, *args, "--memhound")
        result.assert_outcomes(failed=1)
    # without autoloading the plugin is absent unless named
    result = run(pytester, "--memhound")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_xdist_workers_report_to_the_controller(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_shapes=SHAPES)
    out = pytester.path / "out.json"
    result = run(pytester, "-n", "2", "--memhound", f"--memhound-json={out}")
    result.assert_outcomes(failed=len(LEAKY), passed=len(CLEAN), skipped=1, xfailed=1)
    found = verdicts(out)
    assert {nodeid for nodeid, test in found.items() if test["leaked"]} == LEAKY
    assert set(found) == LEAKY | CLEAN
    result.stdout.fnmatch_lines(
        ["memhound: 13 tests checked (2 warm-up + 3 measured rounds), 6 leaking"]
    )


def test_memhounds_own_tests_do_not_leak(pytester):
    """A subset of memhound's own suite that leaves tracing alone (its
    conftest stops tracing around every test, hence --noconftest)."""
    targets = [
        str(REPO / "tests/unit/test_tracemalloc_attributes.py"),
        str(REPO / "tests/integration/test_cli.py") + "::test_nothing_to_run",
    ]
    out = pytester.path / "out.json"
    result = run(
        pytester,
        "--noconftest",
        f"--rootdir={REPO}",
        "--memhound",
        f"--memhound-json={out}",
        "-k",
        "survive or malformed or no_attributes or refuses_what or hostile or "
        "nothing_to_run",
        *targets,
    )
    found = verdicts(out)
    assert len(found) >= 10
    assert not [nodeid for nodeid, test in found.items() if test["leaked"] is not False]
    result.assert_outcomes(passed=len(found))
