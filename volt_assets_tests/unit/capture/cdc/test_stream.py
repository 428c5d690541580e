"""The stream's decoding and routing on pgoutput messages built byte for byte as the protocol
lays them out: a commit on each side of midnight lands on its own commit day, values keep
their text, and a message this capture cannot read is a clear error."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import struct

import pytest

from volt_assets.lib.capture.cdc import pgoutput as po
from volt_assets.lib.capture.cdc.spool import ChangeSpool
from volt_assets.lib.capture.cdc.stream import CaptureError, StreamReader
from volt_assets.lib.capture.cdc.values import json_value, utc_text

INT8, TEXT, NUMERIC, TIMESTAMPTZ = 20, 25, 1700, 1184


def cstring(text: str) -> bytes:
    return text.encode() + b"\0"


def micros(instant: str) -> int:
    delta = dt.datetime.fromisoformat(instant) - po.PG_EPOCH
    return delta // dt.timedelta(microseconds=1)


def relation(oid: int = 16400) -> bytes:
    columns = [(1, "id", INT8), (0, "name", TEXT), (0, "price", NUMERIC)]
    body = struct.pack("!I", oid) + cstring("public") + cstring("parts") + b"f"
    body += struct.pack("!h", len(columns))
    for flags, name, oid_ in columns:
        body += struct.pack("!B", flags) + cstring(name) + struct.pack("!Ii", oid_, -1)
    return b"R" + body


def tuple_data(*values) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is po.UNCHANGED:
            out += b"u"
        else:
            raw = v.encode()
            out += b"t" + struct.pack("!i", len(raw)) + raw
    return out


def begin(lsn: int, instant: str) -> bytes:
    return b"B" + struct.pack("!QqI", lsn, micros(instant), 700)


def commit(lsn: int, instant: str) -> bytes:
    return b"C" + struct.pack("!BQQq", 0, lsn, lsn + 40, micros(instant))


def heartbeat(token: str, lsn: int) -> bytes:
    content = json.dumps({"drain": token, "at": "2026-01-03T00:00:05.000000Z"}).encode()
    return (
        b"M"
        + struct.pack("!BQ", 0, lsn)
        + cstring("volt_assets_cdc")
        + struct.pack("!i", len(content))
        + content
    )


def spooled(tmp_path, payloads: list[bytes]) -> tuple[StreamReader, ChangeSpool]:
    spool = ChangeSpool(tmp_path, "part-x", lambda t, d: None)
    reader = StreamReader({"parts": "id"}, spool, "tok")
    for payload in payloads:
        reader.handle(payload)
    spool.close()
    return reader, spool


def lines(spool: ChangeSpool, day: str) -> list[dict]:
    part = spool.parts[("parts", dt.date.fromisoformat(day))]
    return [json.loads(x) for x in gzip.decompress(part.path.read_bytes()).splitlines()]


def test_commits_on_each_side_of_midnight_land_on_their_commit_days(tmp_path) -> None:
    before, after = "2026-01-02T23:59:59.999999+00:00", "2026-01-03T00:00:00+00:00"
    reader, spool = spooled(
        tmp_path,
        [
            relation(),
            begin(0x1000, before),
            b"I" + struct.pack("!I", 16400) + b"N" + tuple_data("1", "fuse", "0.10"),
            commit(0x1000, before),
            begin(0x2000, after),
            b"U"
            + struct.pack("!I", 16400)
            + b"O"
            + tuple_data("1", "fuse", "0.10")
            + b"N"
            + tuple_data("1", po.UNCHANGED, "12.50"),
            commit(0x2000, after),
            heartbeat("tok", 0x3000),
        ],
    )
    assert reader.heartbeat == (0x3000, "2026-01-03T00:00:05.000000Z")
    (late,) = lines(spool, "2026-01-02")
    (early,) = lines(spool, "2026-01-03")
    assert late == {
        "op": "insert",
        "key": 1,
        "commit_at": "2026-01-02T23:59:59.999999Z",
        "commit_lsn": "0/1000",
        "position": 0,
        "before": None,
        "after": {"id": 1, "name": "fuse", "price": 0.1},
    }
    assert early["commit_at"] == "2026-01-03T00:00:00.000000Z" and early["commit_lsn"] == "0/2000"
    assert early["after"]["name"] == "fuse"  # the unchanged value, from the old row
    text = gzip.decompress(spool.parts[("parts", dt.date(2026, 1, 3))].path.read_bytes())
    assert b'"price":12.50' in text  # the numeric's own digits


def test_values_render_as_a_window_capture_renders_them() -> None:
    assert utc_text("2026-07-01 02:30:00.25+05:30") == "2026-06-30T21:00:00.250000Z"
    assert utc_text("1900-01-01 00:00:00+00:53:28") == "1899-12-31T23:06:32.000000Z"
    assert utc_text("infinity") == "infinity"
    assert json_value(NUMERIC, "NaN") == '"NaN"' and json_value(701, "-Infinity") == '"-Infinity"'
    assert json_value(NUMERIC, "-0.000001") == "-0.000001"
    assert json_value(16, "t") == "true" and json_value(16, "f") == "false"
    assert json_value(3802, '{"a": [1,\n 2]}') == '{"a": [1,  2]}'  # one line, same JSON
    assert json_value(TEXT, 'naïve "q"') == '"naïve \\"q\\""'
    assert json_value(1114, "2026-01-02 10:11:12.5") == '"2026-01-02T10:11:12.5"'


def test_unreadable_messages_are_clear_errors(tmp_path) -> None:
    with pytest.raises(po.DecodeError, match="cut short"):
        po.Decoder().decode(begin(1, "2026-01-02T00:00:00+00:00")[:9])
    with pytest.raises(po.DecodeError, match="before its Relation message"):
        po.Decoder().decode(b"I" + struct.pack("!I", 99) + b"N" + tuple_data("1"))
    with pytest.raises(po.DecodeError, match="unknown pgoutput message"):
        po.Decoder().decode(b"Z")
    key_only = [
        relation(),
        begin(0x1000, "2026-01-02T10:00:00+00:00"),
        b"U" + struct.pack("!I", 16400) + b"N" + tuple_data("1", po.UNCHANGED, "1.00"),
    ]
    with pytest.raises(CaptureError, match="REPLICA IDENTITY FULL"):
        spooled(tmp_path, key_only)
