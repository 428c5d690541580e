"""One drain's reading of the slot: pgoutput messages decoded and each change of a cdc table
spooled as one raw line, until the drain's own heartbeat message arrives."""

from __future__ import annotations

import datetime as dt
import json
import select
import time

from volt_assets.lib.capture.cdc import pgoutput as po
from volt_assets.lib.capture.cdc.spool import ChangeSpool
from volt_assets.lib.capture.cdc.values import json_row, json_value

HEARTBEAT_PREFIX = "volt_assets_cdc"  # pg_logical_emit_message's prefix for the drains' marks


class CaptureError(RuntimeError):
    """The stream cannot be written to raw as it is; the message says why and what to do."""


def instant_text(instant: dt.datetime) -> str:
    """`2026-01-02T23:59:59.999999Z`, as raw writes every instant."""
    return (
        instant.astimezone(dt.UTC).isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"
    )


def change_line(
    op: str, key: str, commit_at: str | None, place: tuple[int, int], before: str, after: str
) -> str:
    """One raw line of a cdc table: the change, its key, when and where it committed, the row
    before and after (`null` where there is none)."""
    when = "null" if commit_at is None else f'"{commit_at}"'
    return (
        f'{{"op":"{op}","key":{key},"commit_at":{when},"commit_lsn":"{po.lsn_text(place[0])}",'
        f'"position":{place[1]},"before":{before},"after":{after}}}'
    )


def _filled(change: po.RowChange) -> tuple | None:
    """The new row with each unchanged TOASTed value taken from the old row (REPLICA IDENTITY
    FULL logs it whole); pgoutput leaves those values out of an update."""
    new = change.new
    if new is None or po.UNCHANGED not in new:
        return new
    if change.old is None or change.old_is_key:
        raise CaptureError(
            f"an update of {change.relation.name} left a TOASTed value out and the old row is "
            f"not logged: ALTER TABLE {change.relation.name} REPLICA IDENTITY FULL;"
        )
    return tuple(o if n is po.UNCHANGED else n for n, o in zip(new, change.old, strict=True))


class StreamReader:
    """Spools the changes of `tables` (source table name -> primary key) from a replication
    cursor until the heartbeat carrying `token` arrives outside any transaction."""

    def __init__(self, tables: dict[str, str], spool: ChangeSpool, token: str):
        self.tables, self.spool, self.token = tables, spool, token
        self.decoder = po.Decoder()
        self.tx: po.Begin | None = None
        self.position = 0  # the next change's position in its transaction
        self.changes = 0  # lines spooled (replays not counted)
        self.heartbeat: tuple[int, str] | None = None  # (LSN, instant) of the token's message
        self.last_end: int | None = None  # end LSN of the last whole transaction read

    @property
    def done_through(self) -> int | None:
        """The LSN raw is complete before once the spool is written: the heartbeat's, else
        the end of the last whole transaction."""
        return self.heartbeat[0] if self.heartbeat else self.last_end

    def read(self, cursor, deadline: float) -> None:
        """Read until the heartbeat, or past `deadline` until the next transaction boundary
        (a slot far behind is drained in several runs, each writing what it read). A stream
        silent for as long again after the deadline fails."""
        give_up = deadline + max(60.0, deadline - time.monotonic())
        while self.heartbeat is None:
            now = time.monotonic()
            if now >= deadline and self.tx is None and self.last_end is not None:
                return
            message = cursor.read_message()
            if message is not None:
                self.handle(message.payload)
                continue
            if now >= give_up:
                raise CaptureError(
                    "the replication stream went silent before the drain's heartbeat arrived; "
                    "nothing was confirmed: run the capture again"
                )
            select.select([cursor], [], [], 1.0)

    def handle(self, payload: bytes) -> None:
        message = self.decoder.decode(payload)
        if isinstance(message, po.Begin):
            self.tx, self.position = message, 0
        elif isinstance(message, po.Commit):
            self.tx, self.last_end = None, message.end_lsn
        elif isinstance(message, po.RowChange):
            self._row(message)
        elif isinstance(message, po.Truncate):
            for relation in message.relations:
                if relation.name in self.tables:
                    self._spool(relation, "truncate", "null", "null", "null")
        elif isinstance(message, po.LogicalMessage):
            self._mark(message)

    def _mark(self, message: po.LogicalMessage) -> None:
        if message.prefix != HEARTBEAT_PREFIX or message.transactional or self.tx is not None:
            return
        mark = json.loads(message.content)
        if mark.get("drain") == self.token:
            self.heartbeat = (message.lsn, mark["at"])

    def _row(self, change: po.RowChange) -> None:
        relation = change.relation
        if relation.name not in self.tables:
            return  # a table the publication holds that is not a cdc table here
        columns = relation.columns
        new = _filled(change)
        old = change.old
        if old is not None and change.old_is_key:  # only the key columns are logged
            columns_old = [(c, v) for c, v in zip(columns, old, strict=True) if c.key]
            before = json_row([c for c, _ in columns_old], [v for _, v in columns_old])
        else:
            before = "null" if old is None else json_row(columns, old)
        after = "null" if new is None else json_row(columns, new)
        self._spool(relation, change.op, self._key(relation, new or old), before, after)

    def _key(self, relation: po.Relation, row: tuple) -> str:
        pk = self.tables[relation.name]
        for column, value in zip(relation.columns, row, strict=True):
            if column.name == pk:
                return json_value(column.type_oid, value)
        raise CaptureError(f"{relation.name}: the stream's rows have no column {pk!r}")

    def _spool(self, relation: po.Relation, op: str, key: str, before: str, after: str) -> None:
        if self.tx is None:
            raise CaptureError(f"a change of {relation.name} outside a transaction")
        place = (self.tx.commit_lsn, self.position)
        self.position += 1
        line = change_line(op, key, instant_text(self.tx.commit_time), place, before, after)
        names = [c.name for c in relation.columns]
        if self.spool.add(relation.name, self.tx.commit_time.date(), place, line, names):
            self.changes += 1
