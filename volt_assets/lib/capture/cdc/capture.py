"""The cdc capture of a code location's `sync: cdc` tables: one pgoutput slot, opened with an
exported snapshot (the opening copy, in the first partition), then drained into raw.

`CdcCapture.run()` opens the capture when the lake has no position for its slot, then drains:
it takes the slot, emits a heartbeat (`pg_logical_emit_message`), spools every change up to
that heartbeat by table and commit day, adds the parts to raw, writes the slot's position to
the lake, and only then confirms the slot. A crash anywhere replays from the last confirmed
position, and the replay is dropped by (commit LSN, position), so raw holds each change once.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extras
from psycopg2 import sql

from volt_assets.lib.capture import extract as ex
from volt_assets.lib.capture.cdc import lake_days
from volt_assets.lib.capture.cdc.pgoutput import lsn_of, lsn_text
from volt_assets.lib.capture.cdc.source_check import PUBLICATION, check_source
from volt_assets.lib.capture.cdc.spool import ChangeSpool
from volt_assets.lib.capture.cdc.stream import (
    HEARTBEAT_PREFIX,
    CaptureError,
    StreamReader,
    change_line,
)
from volt_assets.lib.capture.raw_days import capture_stamp
from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import cdc_position_key, partition_prefix

SLOT = "volt_assets_cdc"
# The walsender renders dates as ISO with a numeric offset (values.py reads any TimeZone)
# and floats with every digit.
SESSION_OPTIONS = "-c DateStyle=ISO,YMD -c extra_float_digits=3"
# a drain still reading by then stops at the next transaction boundary and writes what it read
DRAIN_SECONDS = 300.0
CONFIRM_SECONDS = 10.0
HEARTBEAT_SQL = (
    "SELECT pg_logical_emit_message(false, %s, json_build_object('drain', %s::text, 'at', "
    "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text)"
)


class SlotLost(CaptureError):
    """The slot cannot continue the lake (gone, or invalidated): changes are missing."""


@dataclass
class DrainResult:
    changes: int = 0  # lines this run added to raw
    replayed: int = 0  # lines dropped as raw held them already
    days: dict[str, list[dt.date]] = field(default_factory=dict)  # table -> days written
    confirmed_lsn: str | None = None
    heartbeat_at: str | None = None  # the last heartbeat read (this drain's, or an earlier one)
    opened: dict | None = None  # the opening snapshot, when this run took it
    # how far behind the slot was when the drain began: WAL bytes, and seconds since the
    # heartbeat of the drain before (None after the opening)
    lag_bytes: int | None = None
    lag_seconds: float | None = None


class CdcCapture:
    """Captures `tables` (their `sync: cdc` configs) through slot `slot` of the source `dsn`
    into `store`; the opening snapshot goes to raw of `opening_day`."""

    def __init__(
        self,
        tables: list[TableConfig],
        dsn: str,
        store: LakeStore,
        opening_day: dt.date,
        slot: str = SLOT,
        publication: str = PUBLICATION,
        log=None,
    ):
        self.tables = {t.name: t for t in tables}
        self.dsn, self.store, self.opening_day = dsn, store, opening_day
        self.slot, self.publication, self.log = slot, publication, log
        self._manifests: dict[tuple[str, dt.date], dict | None] = {}

    def connect(self):
        return psycopg2.connect(self.dsn, options=SESSION_OPTIONS)

    def _replication(self):
        return psycopg2.connect(
            self.dsn,
            options=SESSION_OPTIONS,
            connection_factory=psycopg2.extras.LogicalReplicationConnection,
        )

    def run(self, workdir: Path, seconds: float = DRAIN_SECONDS) -> DrainResult:
        """Open the capture if the lake has no position for the slot, then drain it."""
        opened = None
        if lake_days.read_position(self.store, self.slot) is None:
            opened = self.open(workdir / "open")
        result = self.drain(workdir / "drain", seconds)
        result.opened = opened
        return result

    def _through(self, table: str, day: dt.date):
        """What raw D of `table` holds through (its manifest kept for the write)."""
        if (table, day) not in self._manifests:
            self._manifests[(table, day)] = self.store.read_manifest(
                partition_prefix("raw", table, day)
            )
        return lake_days.through_of(self._manifests[(table, day)])

    def _position(self, lsn: str, heartbeat_at: str | None, opened: dict | None) -> dict:
        return {
            "slot": self.slot,
            "publication": self.publication,
            "tables": sorted(self.tables),
            "confirmed_lsn": lsn,  # raw holds every change committed before this LSN
            "heartbeat_at": heartbeat_at,
            "written_at": ex.utc_now().isoformat(),
            "opened": opened,
        }

    # --- opening ---------------------------------------------------------------------
    def open(self, workdir: Path) -> dict:
        """Create the slot with an exported snapshot, copy the tables as of that snapshot into
        raw of the opening day, and write the slot's position (the snapshot's consistent
        point: the stream continues exactly where the copy ends)."""
        with closing(self.connect()) as conn:
            conn.autocommit = True
            check_source(conn, sorted(self.tables), self.publication)
            self._drop_unopened_slot(conn)
        extracted_at = ex.utc_now()
        spool = ChangeSpool(workdir, f"part-{capture_stamp(extracted_at)}", lambda t, d: None)
        with closing(self._replication()) as replication:
            cur = replication.cursor()
            cur.execute(
                sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')").format(
                    sql.Identifier(self.slot)
                )
            )
            _, point, snapshot, _ = cur.fetchone()
            # the exported snapshot lives while this connection runs no other command
            rows = self._copy_snapshot(snapshot, lsn_of(point), spool)
        spool.close()
        self._manifests.clear()
        for table in self.tables:
            self._through(table, self.opening_day)  # an earlier opening's files are replaced
        lake_days.write_days(
            self.store, spool.written(), self._manifests, extracted_at, snapshot=True
        )
        opened = {
            "lsn": point,
            "at": extracted_at.isoformat(),
            "day": self.opening_day.isoformat(),
            "rows": rows,
        }
        lake_days.write_position(self.store, self.slot, self._position(point, None, opened))
        self._manifests.clear()
        return opened

    def _drop_unopened_slot(self, conn) -> None:
        """A slot the lake has no position for is what an opening killed before its position
        left: nothing of it was confirmed, so a new one replaces it."""
        with conn.cursor() as cur:
            cur.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
            )
            row = cur.fetchone()
            if row is None:
                return
            if row[0] is not None:
                raise CaptureError(
                    f"the replication slot {self.slot!r} is in use by process {row[0]}: "
                    "another capture is running"
                )
            cur.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))

    def _copy_snapshot(self, snapshot: str, lsn: int, spool: ChangeSpool) -> dict[str, int]:
        """Each table as of the exported snapshot, one `snapshot` line a row (value rendering
        as the window capture's: exact_json, UTC timestamps)."""
        rows = {}
        with closing(self.connect()) as conn:
            conn.set_session(
                isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
            )
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
                for name, config in sorted(self.tables.items()):
                    actual = ex.source_columns(conn, name)
                    columns = [c for c in config.columns if c in actual]
                    columns += [c for c in actual if c not in config.columns]
                    sink = SnapshotSink(spool, config, lsn, self.opening_day, columns)
                    cur.copy_expert(ex.extract_query(config, actual, None), sink)
                    rows[name] = sink.rows
            conn.rollback()
        return rows

    # --- draining --------------------------------------------------------------------
    def drain(self, workdir: Path, seconds: float = DRAIN_SECONDS) -> DrainResult:
        """Read the slot up to a heartbeat emitted now, add the changes to raw, write the
        position, then confirm the slot."""
        workdir.mkdir(parents=True, exist_ok=True)
        extracted_at = ex.utc_now()
        # every drain reads raw's manifests afresh: one that failed must not leave them stale
        self._manifests.clear()
        spool = ChangeSpool(workdir, f"part-{capture_stamp(extracted_at)}", self._through)
        with closing(self.connect()) as conn, closing(self._replication()) as replication:
            conn.autocommit = True
            # every drain: a table's replica identity or the publication may change meanwhile
            check_source(conn, sorted(self.tables), self.publication)
            self._check_slot(conn, None)  # before START_REPLICATION fails on a lost slot
            cur = replication.cursor()
            cur.start_replication(
                slot_name=self.slot,
                decode=False,
                options={
                    "proto_version": "1",
                    "publication_names": self.publication,
                    "messages": "true",
                },
            )
            # read once the slot is ours: no other drain moves it or the position meanwhile
            position = lake_days.read_position(self.store, self.slot)
            if position is None:
                raise CaptureError(
                    f"the lake has no position for slot {self.slot!r}: run() opens the capture"
                )
            self._check_slot(conn, position)
            lag = self._lag(conn, position)
            token = uuid.uuid4().hex
            with conn.cursor() as c:
                c.execute(HEARTBEAT_SQL, (HEARTBEAT_PREFIX, token))
            tables = {name: t.primary_key for name, t in self.tables.items()}
            reader = StreamReader(tables, spool, token)
            reader.read(cur, time.monotonic() + seconds)
            spool.close()
            written = spool.written()
            lake_days.write_days(self.store, written, self._manifests, extracted_at)
            lsn = reader.done_through
            # a drain stopped before its heartbeat closes no day: the last heartbeat stays
            at = reader.heartbeat[1] if reader.heartbeat else position.get("heartbeat_at")
            new_position = self._position(lsn_text(lsn), at, position.get("opened"))
            lake_days.write_position(self.store, self.slot, new_position)
            self._confirm(cur, conn, lsn)  # only now: raw and the position are written
        self._manifests.clear()
        days: dict[str, list[dt.date]] = {}
        for table, day in sorted(written):
            days.setdefault(table, []).append(day)
        return DrainResult(
            changes=reader.changes,
            replayed=spool.replayed,
            days=days,
            confirmed_lsn=lsn_text(lsn),
            heartbeat_at=at,
            lag_bytes=lag[0],
            lag_seconds=lag[1],
        )

    def _lag(self, conn, position: dict) -> tuple[int, float | None]:
        """(WAL bytes the slot is behind the server, seconds since the last drain's heartbeat)."""
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            )
            behind = int(cur.fetchone()[0])
        last = position.get("heartbeat_at")
        since = None
        if last:
            since = (ex.utc_now() - dt.datetime.fromisoformat(last)).total_seconds()
        return behind, since

    def _recovery(self, lake_lsn: str | None) -> str:
        return (
            f" Raw holds every change committed before {lake_lsn}; the changes since are "
            f"missing. Recovery (docs/cdc.md): SELECT pg_drop_replication_slot('{self.slot}'); "
            f"(if it is still there), delete s3://{self.store.bucket}/"
            f"{cdc_position_key(self.slot)}, and run the capture again: it takes a new "
            "opening snapshot."
        )

    def _check_slot(self, conn, position: dict | None) -> None:
        """Fail loudly when the slot cannot continue the lake (gone or invalidated)."""
        with conn.cursor() as cur:
            cur.execute(
                "SELECT confirmed_flush_lsn::text, wal_status, "
                "to_jsonb(s) ->> 'invalidation_reason' FROM pg_replication_slots s "
                "WHERE slot_name = %s",
                (self.slot,),
            )
            row = cur.fetchone()
        if position is None:
            position = lake_days.read_position(self.store, self.slot)
        lake_lsn = position and position["confirmed_lsn"]
        if row is None:
            raise SlotLost(
                f"the replication slot {self.slot!r} is gone." + self._recovery(lake_lsn)
            )
        confirmed, status, reason = row
        if status == "lost" or reason:
            raise SlotLost(
                f"the replication slot {self.slot!r} was invalidated ({reason or 'wal_status lost'}"
                "): PostgreSQL removed WAL it had not delivered." + self._recovery(lake_lsn)
            )
        if not (lake_lsn and self.log):
            return
        if lsn_of(confirmed) < lsn_of(lake_lsn):
            self.log.info(
                f"slot {self.slot} is at {confirmed}, the lake at {lake_lsn}: the changes in "
                "between are replayed and dropped"
            )
        elif lsn_of(confirmed) > lsn_of(lake_lsn):
            # psycopg2 confirms WAL that held no published change by itself (keepalives), so
            # ahead is no proof of loss; another reader of the slot would be
            self.log.warning(
                f"slot {self.slot} is at {confirmed}, ahead of the lake at {lake_lsn}: fine "
                "if only this capture reads the slot; anything else reading it loses changes"
            )

    def _confirm(self, cursor, conn, lsn: int) -> None:
        """Confirm the slot up to `lsn` and wait until the server has taken it (the next drain
        then starts after it; if not, it replays, and the replay is dropped)."""
        cursor.send_feedback(write_lsn=lsn, flush_lsn=lsn, force=True)
        deadline = time.monotonic() + CONFIRM_SECONDS
        with conn.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute(
                    "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                    "WHERE slot_name = %s",
                    (lsn_text(lsn), self.slot),
                )
                if cur.fetchone()[0]:
                    return
                time.sleep(0.05)
        if self.log:
            self.log.warning(f"slot {self.slot} did not confirm {lsn_text(lsn)} in time")


class SnapshotSink:
    """A COPY sink turning each row of the opening copy into a `snapshot` line."""

    def __init__(self, spool, config: TableConfig, lsn: int, day: dt.date, columns: list[str]):
        self.spool, self.config, self.lsn, self.day = spool, config, lsn, day
        self.columns, self.rows = columns, 0

    def write(self, data) -> int:
        text = data.decode("utf-8") if isinstance(data, bytes | memoryview) else data
        row_json = text.rstrip("\n")
        key = json.dumps(json.loads(row_json)[self.config.primary_key], ensure_ascii=False)
        line = change_line("snapshot", key, None, (self.lsn, self.rows), "null", row_json)
        self.spool.add(self.config.name, self.day, (self.lsn, self.rows), line, self.columns)
        self.rows += 1
        return len(data)
