"""pgoutput's binary messages (logical replication protocol version 1) as Python objects.

Values stay the text PostgreSQL rendered (the text format: numerics keep every digit), None
for SQL NULL, or `UNCHANGED` for a TOASTed value the update did not touch (pgoutput leaves it
out; the old row of a REPLICA IDENTITY FULL table has it). Message layouts: PostgreSQL's
"Logical Replication Message Formats".
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # pgoutput's timestamps count µs from here


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


class DecodeError(ValueError):
    """A message this decoder cannot read (a protocol it was not asked for, a cut payload)."""


def lsn_text(lsn: int) -> str:
    """`16/B374D848`: how PostgreSQL writes an LSN (pg_lsn)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_of(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def pg_instant(micros: int) -> dt.datetime:
    return PG_EPOCH + dt.timedelta(microseconds=micros)


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    key: bool  # part of the replica identity


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str  # pg_class.relreplident: d(efault), n(othing), f(ull), i(ndex)
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    commit_lsn: int  # the transaction's final LSN, its commit record
    commit_time: dt.datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int  # confirming this skips the transaction on the next start
    commit_time: dt.datetime


@dataclass(frozen=True)
class RowChange:
    """An insert, update or delete; `old` is the old row (update, delete) or only its key
    columns (`old_is_key`: the table's replica identity is not FULL)."""

    op: str  # insert | update | delete
    relation: Relation
    new: tuple | None
    old: tuple | None
    old_is_key: bool = False


@dataclass(frozen=True)
class Truncate:
    relations: tuple[Relation, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    """`pg_logical_emit_message`'s message (sent with the `messages` option)."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True)
class Ignored:
    """Origin and Type messages: nothing the lake keeps."""

    kind: str


class _Reader:
    def __init__(self, payload: bytes):
        self.buf, self.at = memoryview(payload), 0

    def take(self, n: int) -> memoryview:
        if self.at + n > len(self.buf):
            raise DecodeError(f"pgoutput message cut short at byte {self.at} (needs {n} more)")
        part = self.buf[self.at : self.at + n]
        self.at += n
        return part

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        end = bytes(self.buf[self.at :]).find(b"\0")
        if end < 0:
            raise DecodeError("pgoutput string without its terminating zero byte")
        text = bytes(self.take(end)).decode("utf-8")
        self.at += 1
        return text

    def tuple_data(self) -> tuple:
        values = []
        for _ in range(self.unpack("!h")):
            kind = bytes(self.take(1))
            if kind == b"n":
                values.append(None)
            elif kind == b"u":
                values.append(UNCHANGED)
            elif kind == b"t":
                values.append(bytes(self.take(self.unpack("!i"))).decode("utf-8"))
            else:  # b"b": binary values, only sent when asked for (we never ask)
                raise DecodeError(f"pgoutput tuple value of kind {kind!r} (only text is read)")
        return tuple(values)


class Decoder:
    """Decodes one stream's messages; keeps the Relation messages the changes refer to."""

    def __init__(self):
        self.relations: dict[int, Relation] = {}

    def decode(self, payload: bytes):
        r = _Reader(payload)
        kind = bytes(r.take(1))
        if kind == b"B":
            return Begin(r.unpack("!Q"), pg_instant(r.unpack("!q")), r.unpack("!I"))
        if kind == b"C":
            r.take(1)  # flags, unused
            return Commit(r.unpack("!Q"), r.unpack("!Q"), pg_instant(r.unpack("!q")))
        if kind == b"R":
            return self._relation(r)
        if kind in (b"I", b"U", b"D"):
            return self._change(kind, r)
        if kind == b"T":
            count, options = r.unpack("!i"), r.unpack("!B")
            relations = tuple(self._known(r.unpack("!I")) for _ in range(count))
            return Truncate(relations, bool(options & 1), bool(options & 2))
        if kind == b"M":
            transactional = bool(r.unpack("!B"))
            lsn, prefix = r.unpack("!Q"), r.string()
            return LogicalMessage(transactional, lsn, prefix, bytes(r.take(r.unpack("!i"))))
        if kind in (b"O", b"Y"):
            return Ignored({b"O": "origin", b"Y": "type"}[kind])
        raise DecodeError(f"unknown pgoutput message {kind!r}")

    def _relation(self, r: _Reader) -> Relation:
        oid, namespace, name = r.unpack("!I"), r.string(), r.string()
        identity, count = bytes(r.take(1)).decode(), r.unpack("!h")
        columns = []
        for _ in range(count):
            flags, column = r.unpack("!B"), r.string()
            type_oid, _typmod = r.unpack("!I"), r.unpack("!i")
            columns.append(Column(column, type_oid, bool(flags & 1)))
        relation = Relation(oid, namespace, name, identity, tuple(columns))
        self.relations[oid] = relation  # a later Relation (a schema change) replaces it
        return relation

    def _known(self, oid: int) -> Relation:
        if oid not in self.relations:
            raise DecodeError(f"pgoutput change of relation {oid} before its Relation message")
        return self.relations[oid]

    def _change(self, kind: bytes, r: _Reader) -> RowChange:
        relation = self._known(r.unpack("!I"))
        marker = bytes(r.take(1))
        if kind == b"I":
            return RowChange("insert", relation, r.tuple_data(), None)
        old, old_is_key = None, marker == b"K"
        if marker in (b"K", b"O"):
            old = r.tuple_data()
            if kind == b"U":
                marker = bytes(r.take(1))
        if kind == b"D":
            return RowChange("delete", relation, None, old, old_is_key)
        if marker != b"N":
            raise DecodeError(f"pgoutput update without its new row (marker {marker!r})")
        return RowChange("update", relation, r.tuple_data(), old, old_is_key)
