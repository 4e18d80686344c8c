"""Attributes set on memhound.tracemalloc snapshots survive dump()/load()
(as JSON in the file's attributes section, never a pickle), hostile files
give clear exceptions, and take_snapshot() follows a replaced _get_traces."""

import json
import math
import struct
import sys
from enum import IntEnum

import pytest

import memhound
import memhound.tracemalloc as tm
from memhound import _core

MAX_ATTRIBUTES = 16 << 20  # MH_SNAPDATA_MAX_ATTRIBUTES


def crc32c(data):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    c = 0xFFFFFFFF
    for byte in data:
        c = (c >> 8) ^ table[(c ^ byte) & 0xFF]
    return c ^ 0xFFFFFFFF


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def with_attributes_section(plain, payload, announced=None):
    """plain (a file without attributes) with an attributes section holding
    payload before END, file size and checksum made consistent."""
    if announced is None:
        announced = len(payload)
    body = bytearray(plain[:-6] + b"\x05" + varint(announced) + payload + b"\0\0")
    struct.pack_into("<Q", body, 16, len(body) + 4)
    return bytes(body) + struct.pack("<I", crc32c(body))


@pytest.fixture
def snapshot():
    return tm.Snapshot([(0, 10, (("a.py", 2), ("b.py", 4)), 3)], 2)


# ---- round trips -------------------------------------------------------


def test_attributes_survive_dump_and_load(tmp_path, snapshot):
    values = {
        "test_attr": "new",
        "count": 3,
        "big": 2**100,
        "ratio": 0.25,
        "flag": False,
        "nothing": None,
        "nested": {"list": [1, [2.5, "x"], {"k": None}], "": "empty key"},
        "text": "caf\xe9 \u65e5 \U0001f40d \udc80",  # a lone surrogate too
        "\u00e9t\u00e9": [],
    }
    for name, value in values.items():
        setattr(snapshot, name, value)
    path = tmp_path / "attrs.mhs"
    snapshot.dump(path)
    loaded = tm.Snapshot.load(path)
    for name, value in values.items():
        assert getattr(loaded, name) == value
        assert type(getattr(loaded, name)) is type(value)
    # In the order they were set, and the facade's own fields untouched.
    extra = [k for k in vars(loaded) if k not in tm._SNAPSHOT_FIELDS]
    assert extra == list(values)
    assert loaded.traces == snapshot.traces
    assert loaded.traceback_limit == 2


def test_nan_and_infinity_survive(tmp_path, snapshot):
    snapshot.values = [math.nan, math.inf, -math.inf]
    snapshot.dump(tmp_path / "f.mhs")
    loaded = tm.Snapshot.load(tmp_path / "f.mhs").values
    assert math.isnan(loaded[0]) and loaded[1:] == [math.inf, -math.inf]


def test_no_attributes_no_section(tmp_path, snapshot):
    path = tmp_path / "plain.mhs"
    snapshot.dump(path)
    assert _core.Snapshot.load(path)._attributes is None
    plain = path.read_bytes()
    # Setting then deleting an attribute writes the same file again.
    snapshot.temp = 1
    snapshot.dump(path)
    assert json.loads(_core.Snapshot.load(path)._attributes) == {"temp": 1}
    del snapshot.temp
    snapshot.dump(path)
    assert path.read_bytes()[48:-4] == plain[48:-4]  # sections; not timestamp
    assert not hasattr(tm.Snapshot.load(path), "temp")


def test_taken_snapshot_keeps_attributes(tmp_path):
    tm.start(3)
    keep = [bytes(100) for _ in range(20)]
    snapshot = tm.take_snapshot()
    snapshot.test_attr = "new"
    snapshot.dump(tmp_path / "t.mhs")
    loaded = tm.Snapshot.load(tmp_path / "t.mhs")
    assert loaded.test_attr == "new"
    assert loaded.traces == snapshot.traces  # same order, too
    del keep


def test_memhound_snapshot_keeps_the_text(tmp_path, snapshot):
    # A file written by the facade, loaded and saved again by _core (as
    # memhound's own API does), keeps the attributes section.
    snapshot.test_attr = "new"
    snapshot.dump(tmp_path / "a.mhs")
    core = _core.Snapshot.load(tmp_path / "a.mhs")
    core.dump(tmp_path / "b.mhs")
    assert tm.Snapshot.load(tmp_path / "b.mhs").test_attr == "new"


# ---- what dump() refuses -----------------------------------------------


class Color(IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value, culprit",
    [
        ((1, 2), "tuple"),
        ({1, 2}, "set"),
        (b"bytes", "bytes"),
        (object(), "object"),
        (Color.RED, "Color"),
        ({1: "int key"}, "int"),
        ([1, {"ok": (2,)}], "tuple"),
        (tm.Snapshot, "type"),
    ],
)
def test_dump_refuses_what_json_would_change(tmp_path, snapshot, value, culprit):
    snapshot.bad = value
    path = tmp_path / "x.mhs"
    with pytest.raises(TypeError, match=rf"attribute 'bad': {culprit} is not JSON"):
        snapshot.dump(path)
    assert not path.exists()


def test_dump_refuses_cycles_and_deep_nesting(tmp_path, snapshot):
    cycle = []
    cycle.append(cycle)
    snapshot.cycle = cycle
    with pytest.raises(TypeError, match="attribute 'cycle'"):
        snapshot.dump(tmp_path / "x.mhs")
    del snapshot.cycle
    deep = []
    for _ in range(100_000):
        deep = [deep]
    snapshot.deep = deep
    with pytest.raises(TypeError, match="attribute 'deep'"):
        snapshot.dump(tmp_path / "x.mhs")


@pytest.mark.parametrize("name", ["statistics", "dump", "_init", "__class__"])
def test_dump_refuses_names_of_the_class(tmp_path, snapshot, name):
    vars(snapshot)[name] = 1
    with pytest.raises(ValueError, match=f"attribute {name!r}"):
        tm.Snapshot.dump(snapshot, tmp_path / "x.mhs")


def test_dump_refuses_oversized_attributes(tmp_path, snapshot):
    snapshot.big = "x" * MAX_ATTRIBUTES
    with pytest.raises(ValueError, match="at most 16777216"):
        snapshot.dump(tmp_path / "x.mhs")
    assert not (tmp_path / "x.mhs").exists()


# ---- hostile files -----------------------------------------------------


@pytest.fixture
def plain(tmp_path, snapshot):
    snapshot.dump(tmp_path / "plain.mhs")
    return (tmp_path / "plain.mhs").read_bytes()


def test_spliced_section_is_read(tmp_path, plain):
    path = tmp_path / "s.mhs"
    path.write_bytes(with_attributes_section(plain, b'{"x": [1]}'))
    assert tm.Snapshot.load(path).x == [1]


@pytest.mark.parametrize(
    "payload, announced, message",
    [
        (b'{"x": "\xc0\x80"}', None, "attributes section: not valid UTF-8"),
        (b'{"x": 1}\xff', None, r"not valid UTF-8 \(byte 8"),
        (b"{}", 40, "truncated file: attributes section needs 40 bytes"),
        (b"{}", 1, "unknown section tag 125"),
    ],
)
def test_malformed_sections(tmp_path, plain, payload, announced, message):
    path = tmp_path / "h.mhs"
    path.write_bytes(with_attributes_section(plain, payload, announced))
    with pytest.raises(ValueError, match=message):
        tm.Snapshot.load(path)
    with pytest.raises(ValueError, match=message):
        _core.Snapshot.load(path)


def test_every_truncation_is_refused(tmp_path, plain):
    data = with_attributes_section(plain, b'{"a": "b"}')
    path = tmp_path / "t.mhs"
    for n in range(len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(ValueError):
            tm.Snapshot.load(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("cos\nsystem\n(S'echo owned'\ntR.", "not valid JSON"),  # a pickle
        ("[" * 200_000 + "]" * 200_000, "not valid JSON"),
        ('{"n": ' + "9" * 100_000 + "}", "not valid JSON"),
        ("[1, 2]", "holds a JSON list, not an object"),
        ('"text"', "holds a JSON str, not an object"),
        ('{"_core": 1}', "names '_core'"),
        ('{"traces": []}', "names 'traces'"),
        ('{"statistics": 1}', "names 'statistics'"),
        ('{"__class__": "x"}', "names '__class__'"),
        ('{"__dict__": {}}', "names '__dict__'"),
    ],
)
def test_hostile_attribute_texts(tmp_path, text, message):
    # A file the format accepts whose text is not what dump() writes.
    core = _core.Snapshot._from_traces([], 1)
    core._attributes = text
    path = tmp_path / "hostile.mhs"
    core.dump(path)
    with pytest.raises(ValueError, match=message) as info:
        tm.Snapshot.load(path)
    assert str(path) in str(info.value)


# ---- _core.Snapshot._attributes ----------------------------------------


def test_core_attributes_property(tmp_path):
    core = _core.Snapshot._from_traces([], 1)
    assert core._attributes is None
    before = core.memory()
    core._attributes = "\udc80 caf\xe9"
    assert core._attributes == "\udc80 caf\xe9"
    assert core.memory() == before + len(
        "\udc80 caf\xe9".encode("utf-8", "surrogatepass")
    )
    core._attributes = ""
    assert core._attributes == ""  # empty, not None
    core.dump(tmp_path / "e.mhs")
    assert _core.Snapshot.load(tmp_path / "e.mhs")._attributes == ""
    del core._attributes
    assert core._attributes is None and core.memory() == before
    with pytest.raises(TypeError, match="str or None, not bytes"):
        core._attributes = b"{}"
    core._attributes = "x" * MAX_ATTRIBUTES  # the limit itself is fine
    with pytest.raises(ValueError, match="at most 16777216"):
        core._attributes = "\xe9" * (MAX_ATTRIBUTES // 2 + 1)  # 2 bytes each
    assert len(core._attributes) == MAX_ATTRIBUTES  # unchanged


def test_attributes_leak_nothing(tmp_path):
    path = tmp_path / "l.mhs"
    text = "".join(["{", '"a": 1', "}"])  # a fresh str: its refcount is ours

    def churn():
        for _ in range(100):
            snapshot = tm.Snapshot([(0, 10, (("a.py", 2),), 1)], 1)
            snapshot.a = [1, "x"]
            snapshot.dump(path)
            assert tm.Snapshot.load(path).a == [1, "x"]
            core = _core.Snapshot._from_traces([], 1)
            core._attributes = text
            core._attributes = None
            core._attributes = text
            with pytest.raises(TypeError):
                core._attributes = 5

    churn()
    refs = memhound.get_stats()["bookkeeping_bytes"]
    text_refs = sys.getrefcount(text)
    churn()
    assert memhound.get_stats()["bookkeeping_bytes"] == refs
    assert sys.getrefcount(text) == text_refs


# ---- take_snapshot() and a replaced _get_traces ------------------------


def test_take_snapshot_uses_a_replaced_get_traces(monkeypatch):
    tm.start(2)
    fast = tm.take_snapshot()
    assert fast._labels == tm._DOMAIN_LABELS  # built in C

    calls = []

    def fake():
        calls.append(1)
        return [(0, 5, (("a.py", 2),), 10)]

    monkeypatch.setattr(tm, "_get_traces", fake)
    snapshot = tm.take_snapshot()
    assert calls == [1]
    assert snapshot.traceback_limit == 2
    assert len(snapshot.traces) == 1
    trace = snapshot.traces[0]
    assert (trace.size, trace.traceback.total_nframe) == (5, 10)
    assert trace.traceback[0].filename == "a.py"

    monkeypatch.undo()
    assert tm._get_traces is tm._ORIGINAL_GET_TRACES
    assert tm.take_snapshot()._labels == tm._DOMAIN_LABELS
    assert calls == [1]


def test_take_snapshot_still_requires_tracing(monkeypatch):
    monkeypatch.setattr(tm, "_get_traces", lambda: [])
    with pytest.raises(RuntimeError, match="must be tracing"):
        tm.take_snapshot()
