"""Capture files: round trip, and hostile input gives ValueError."""

import json
import os
import struct

import pytest

from memhound import _core
from memhound.capture import (
    check_report,
    decode_capture,
    encode_capture,
    load,
    read_capture,
    write_capture,
)
from memhound.snapshot import Snapshot
from tests.report_fixture import make_report, take_snapshots


@pytest.fixture(scope="module")
def snapshots():
    return take_snapshots(500)


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _reseal(data: bytearray) -> bytes:
    data[16:24] = struct.pack("<Q", len(data))
    data[-4:] = struct.pack("<I", _crc32c(bytes(data[:-4])))
    return bytes(data)


def test_round_trip(tmp_path, snapshots):
    peak, exit_ = snapshots
    report = make_report()
    path = tmp_path / "run.mhc"
    write_capture(path, report, peak, exit_)
    capture = read_capture(path)
    assert capture.report == report
    for got, want in ((capture.peak_snapshot, peak), (capture.exit_snapshot, exit_)):
        assert len(got) == len(want)
        assert got.statistics("traceback") == want.statistics("traceback")
        assert got.timestamp == want.timestamp
    assert load(path).report == report
    assert not [p for p in os.listdir(tmp_path) if p != "run.mhc"]


def test_snapshots_optional(snapshots):
    report = make_report(ngen=3, nleaks=1)
    for peak, exit_ in ((None, None), (snapshots[0], None), (None, snapshots[1])):
        capture = decode_capture(encode_capture(report, peak, exit_))
        assert capture.report == report
        assert (capture.peak_snapshot is None) == (peak is None)
        assert (capture.exit_snapshot is None) == (exit_ is None)


def test_layout():
    data = encode_capture({"format": "memhound-report"}, None, None)
    assert data[:8] == b"\x89MHC\r\n\x1a\n"
    assert struct.unpack_from("<HHIQ", data, 8) == (1, 0, 0, len(data))
    text = b'{"format":"memhound-report"}'
    assert data[24:26] == bytes([1, len(text)]) and data[26 : 26 + len(text)] == text
    assert data[26 + len(text) : -4] == b"\x00\x00"
    assert struct.unpack("<I", data[-4:])[0] == _crc32c(data[:-4])


def test_load_snapshot_file(tmp_path, snapshots):
    path = tmp_path / "exit.mhs"
    snapshots[1].dump(path)
    capture = load(path)
    assert capture.peak_snapshot is None and len(capture.exit_snapshot) == len(
        snapshots[1]
    )
    assert capture.report["leaks"] == []
    assert capture.report["summary"]["traced_blocks"] == len(snapshots[1])
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="bad magic"):
        load(tmp_path / "junk")


GOOD = encode_capture(make_report(ngen=2, nleaks=1), None, None)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"\x89MH", "truncated"),
        (b"\x89MHS\r\n\x1a\n" + bytes(40), "bad magic"),
        (GOOD[:-1], "truncated file"),
        (GOOD + b"x", "trailing data"),
        (GOOD[:8] + b"\x07" + GOOD[9:], "unsupported capture format version 7"),
        (GOOD[:30] + bytes([GOOD[30] ^ 1]) + GOOD[31:], "checksum mismatch"),
    ],
)
def test_bad_files(data, message):
    with pytest.raises(ValueError, match=message):
        decode_capture(data)


def _sections(*sections) -> bytes:
    body = bytearray(b"\x89MHC\r\n\x1a\n" + struct.pack("<HHIQ", 1, 0, 0, 0))
    for tag, payload in sections:
        body += bytes([tag, len(payload)]) + payload
    return _reseal(body + bytes(4))


@pytest.mark.parametrize(
    "sections, message",
    [
        ([(0, b"")], "missing report section"),
        ([(2, b""), (0, b"")], "missing report section"),
        ([(1, b"{}"), (1, b"{}"), (0, b"")], "duplicate or out of order"),
        ([(1, b"{}"), (3, b""), (2, b""), (0, b"")], "embedded snapshot"),
        ([(1, b"{}"), (9, b""), (0, b"")], "unknown section tag 9"),
        ([(1, b"\xff"), (0, b"")], "not valid UTF-8"),
        ([(1, b"{}")], "no end section"),
        ([(1, b"{}"), (0, b"x")], "between it and the checksum"),
        ([(1, b"{,}"), (0, b"")], "not valid JSON"),
        ([(1, b"[1]"), (0, b"")], "should be an object"),
        ([(1, b'{"duration_s": NaN}'), (0, b"")], "NaN is not a JSON number"),
        ([(1, b'{"format": "other"}'), (0, b"")], "not a memhound report"),
        (
            [(1, b'{"leaks": [{"traceback": []}]}'), (0, b"")],
            r"leaks\[0\].kind is missing",
        ),
        ([(1, b'{"duration_s": null}'), (0, b"")], "duration_s should be"),
        ([(1, b'{"generations": [{"t": 1}]}'), (0, b"")], "generation is missing"),
        (
            [
                (
                    1,
                    b'{"leaks": [{"kind": "python", "live_bytes": 1, "live_blocks": 1,'
                    b' "first_generation": 1, "growth_bytes": 1, "confidence": 1,'
                    b' "traceback": [{"filename": "a",'
                    b' "lineno": "x"}]}]}',
                ),
                (0, b""),
            ],
            r"leaks\[0\].traceback\[0\].lineno should be an integer",
        ),
        ([(1, b'{"timeline": [{"t": true}]}'), (0, b"")], "timeline"),
        ([(1, b"[" * 100000 + b"]" * 100000), (0, b"")], "JSON|object"),
    ],
)
def test_hostile_sections(sections, message):
    data = (
        _sections(*[(t, p) for t, p in sections])
        if all(len(p) < 128 for _, p in sections)
        else None
    )
    if data is None:  # long payload: two-byte length varints
        body = bytearray(b"\x89MHC\r\n\x1a\n" + struct.pack("<HHIQ", 1, 0, 0, 0))
        for tag, payload in sections:
            n, varint = len(payload), bytearray()
            while n >= 0x80:
                varint.append(n & 0x7F | 0x80)
                n >>= 7
            varint.append(n)
            body += bytes([tag]) + varint + payload
        data = _reseal(body + bytes(4))
    with pytest.raises(ValueError, match=message):
        decode_capture(data)


def test_embedded_snapshot_is_validated(tmp_path, snapshots):
    path = tmp_path / "s.mhs"
    snapshots[1].dump(path)
    snap = path.read_bytes()
    data = _sections((1, b"{}"), (3, snap[:100]), (0, b""))
    with pytest.raises(ValueError, match="snapshot_exit section .*embedded snapshot"):
        decode_capture(data)


def test_every_truncation_and_byte_flip_is_an_error(snapshots):
    data = encode_capture(make_report(ngen=2, nleaks=1), None, snapshots[1])
    for n in range(0, len(data), max(1, len(data) // 300)):
        with pytest.raises(ValueError):
            decode_capture(data[:n])
    for i in range(0, len(data), max(1, len(data) // 300)):
        bad = bytearray(data)
        bad[i] ^= 0x40
        with pytest.raises(ValueError):
            decode_capture(bytes(bad))


def test_write_errors(tmp_path, snapshots):
    with pytest.raises(TypeError):
        write_capture(tmp_path / "a.mhc", [], None, None)
    with pytest.raises(TypeError):
        _core.capture_encode("{}", 42, None)
    with pytest.raises(ValueError):
        encode_capture({"x": float("nan")}, None, None)
    with pytest.raises(OSError):
        write_capture(tmp_path / "missing" / "a.mhc", {}, None, None)
    with pytest.raises(OSError):
        read_capture(tmp_path / "nothing.mhc")


def test_check_report_accepts_fixture_and_lone_snapshot(snapshots):
    from memhound.capture import report_from_snapshot

    check_report(make_report())
    check_report(json.loads(json.dumps(report_from_snapshot(snapshots[1]))))
    assert isinstance(snapshots[1], Snapshot)


def _paths(value, path=()):
    """Every (path, value) inside a JSON value."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def test_mutated_reports_are_rejected_or_rendered(tmp_path, snapshots):
    """A report that passes check_report renders as text and HTML; one
    that does not is a ValueError.  Nothing else may happen."""
    import copy
    import random

    from memhound.html import render_html
    from memhound.report import format_text

    base = make_report(ngen=4, nleaks=2)
    places = [p for p, _ in _paths(base) if p]
    odd_values = [None, "x", "", [], {}, -1, 0, 2**70, 1.5, True, [1], {"a": 1}]
    rnd = random.Random(int(os.environ.get("MH_MUTATION_SEED", "7")))
    accepted = rejected = 0
    for _ in range(300):
        report = copy.deepcopy(base)
        for _ in range(rnd.randint(1, 3)):
            path = rnd.choice(places)
            target = report
            try:
                for key in path[:-1]:
                    target = target[key]
                if rnd.random() < 0.2 and isinstance(target, dict):
                    target.pop(path[-1], None)
                else:
                    target[path[-1]] = copy.deepcopy(rnd.choice(odd_values))
            except (KeyError, IndexError, TypeError):
                continue
        data = json.loads(json.dumps(report))
        try:
            check_report(data)
        except ValueError:
            rejected += 1
            continue
        accepted += 1
        format_text(data, width=80)
        render_html(data, snapshots[0], None, tmp_path / "r.html")
    assert accepted > 20 and rejected > 20


def test_html_quotes_python_sources_only(tmp_path):
    from memhound.html import render_html

    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    code = tmp_path / "app.py"
    code.write_text("x = 1\ncache.append(bytearray(10))  # here\n")
    report = make_report(ngen=2, nleaks=1)
    report["leaks"][0]["traceback"] = [
        {"filename": str(secret), "lineno": 1, "function": "f"},
        {"filename": str(code), "lineno": 2, "function": "g"},
    ]
    page = render_html(report, None, None)
    assert "hunter2" not in page
    assert "cache.append(bytearray(10))  # here" in page
    # Text from the report cannot close the data block or inject markup.
    report["leaks"][0]["traceback"][0]["function"] = "</script><script>alert(1)"
    page = render_html(report, None, None)
    assert "</script><script>alert(1)" not in page
    assert page.count("</script>") == 2  # the data block and the code
