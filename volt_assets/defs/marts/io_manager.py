"""The marts' storage: tables in PostgreSQL schema `marts`, and a Parquet copy of each day in the lake.

A mart asset returns a `MartOutput`: `MartDay`s produced lazily, one day at a time. The IO
manager stages each day to local files (CSV for PostgreSQL, Parquet for the lake), then in ONE
short transaction removes the slice the run replaces (the run's `dt` window, or the whole table
for the SCD2 history) and loads the new rows with COPY, so a failure anywhere leaves the previous
rows. Only after the commit does it write the Parquet copies (`LakeStore.write_folder`: files,
manifest, stale files removed). Tables, keys and indexes come from `sql/marts/*.sql`.
"""

# No `from __future__ import annotations`: Dagster reads ResourceDependency annotations at runtime.

import datetime as dt
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import dagster as dg
import psycopg2
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg2 import sql

from volt_assets.defs.lake.io_manager import add_partition_metadata
from volt_assets.defs.resources import (
    LakeResource,
    PostgresResource,
    SourceUnavailable,
    permanent_pg_error,
)
from volt_assets.lib.config.partitions import UTC, days_between
from volt_assets.lib.staging.transform import parquet_options
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import layer_prefix, partition_prefix
from volt_assets.lib.store.writer_locks import WriterLocks, application_name
from volt_assets.settings import mask_dsn, project_root

SCHEMA = "marts"
PART = "part-00000.parquet"
# CSV that COPY reads back exactly: every value quoted, so "" is an empty string and an
# unquoted empty field is NULL.
CSV_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")


def ddl_files() -> list[Path]:
    return sorted((project_root() / "sql" / "marts").glob("*.sql"))


@dataclass
class MartDay:
    """One day of a mart: rows to load into PostgreSQL and/or the lake's Parquet copy of the day."""

    day: dt.date
    rows: pa.Table | None = None
    copy: pa.Table | None = None


@dataclass
class MartOutput:
    """What a mart asset returns. `replace` says which rows the load replaces: the run's `dt`
    window ("window") or everything ("table", the SCD2 history rebuilt as a whole)."""

    days: Iterable[MartDay]
    replace: Literal["window", "table"] = "window"
    metadata: dict = field(default_factory=dict)


class MartsDatabase(dg.ConfigurableResource):
    """Where the marts live: MARTS_DATABASE_URL when set, else the source database (schema `marts`)."""

    source: dg.ResourceDependency[PostgresResource]
    url: str | None = None

    @property
    def where(self) -> str:
        return mask_dsn(self.url) if self.url else self.source.where

    def connect(self, application_name: str = "volt_assets"):
        """A new connection (autocommit off); errors name the database, never its password."""
        if not self.url:
            return self.source.new_connection(application_name)
        try:
            return psycopg2.connect(self.url, connect_timeout=10, application_name=application_name)
        except psycopg2.Error as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            permanent = permanent_pg_error(first_line) is not None
            raise SourceUnavailable(
                f"cannot connect to {self.where}: {mask_dsn(first_line)}"
                + (": check MARTS_DATABASE_URL" if permanent else ""),
                permanent=permanent,
            ) from None


def ensure_tables(conn) -> None:
    """Apply the DDL files, serialised by an advisory lock (concurrent IF NOT EXISTS can collide)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('volt_assets.defs.marts.ddl'))")
        for path in ddl_files():
            cur.execute(path.read_text(encoding="utf-8"))
    conn.commit()


def copy_to_lake(store: LakeStore, name: str, copies: list[tuple[dt.date, Path, int]]) -> None:
    """Write each day's Parquet copy of the mart to `mart/{name}/dt=D/`."""
    for day, path, count in copies:
        store.write_folder(
            partition_prefix("mart", name, day),
            {PART: path},
            {
                "layer": "mart",
                "mart": name,
                "dt": day.isoformat(),
                "rows": count,
                "postgres_table": f"{SCHEMA}.{name}",
            },
        )


class PostgresMartsIOManager(dg.ConfigurableIOManager):
    """Loads `MartOutput`s into `marts.{asset name}` with COPY and copies each day to `mart/{name}/`."""

    db: dg.ResourceDependency[MartsDatabase]
    lake: dg.ResourceDependency[LakeResource]

    def handle_output(self, context: dg.OutputContext, obj: MartOutput) -> None:
        name = context.asset_key.path[-1]
        target = sql.Identifier(SCHEMA, name)
        window = context.asset_partitions_time_window
        days = days_between(window.start.astimezone(UTC), window.end.astimezone(UTC))
        span = (days[0], days[-1] + dt.timedelta(days=1))  # [first day, day after the last)
        started = time.perf_counter()
        # The mart's rows are computed (MartOutput.days is lazy), loaded and copied under one
        # lock, so two runs of one mart end as if they had run one after the other.
        locks = WriterLocks(
            lambda: self.db.connect(application_name(context.run_id)),
            [f"volt_assets/marts/{name}"],
            context.log,
            f"marts/{name}",
        )
        with locks, tempfile.TemporaryDirectory(prefix=f"volt-mart-{name}-") as tmp:
            csv_path = Path(tmp) / "rows.csv"
            columns, rows, copies = self._stage(obj, Path(tmp), csv_path, span)
            conn = self.db.connect()
            try:
                ensure_tables(conn)
                replaced = self._load(conn, name, target, obj.replace, span, columns, csv_path)
            finally:
                conn.close()
            store = self.lake.store()
            copy_to_lake(store, name, copies)
        seconds = time.perf_counter() - started
        context.log.info(
            f"loaded {rows} rows into {SCHEMA}.{name} ({self.db.where}), replacing {replaced}"
        )
        context.add_output_metadata(
            {
                "rows": dg.MetadataValue.int(rows),
                "rows_replaced": dg.MetadataValue.int(replaced),
                "table": dg.MetadataValue.text(f"{SCHEMA}.{name}"),
                "database": dg.MetadataValue.text(self.db.where),
                "partitions_copied": dg.MetadataValue.int(len(copies)),
                "lake_copy": dg.MetadataValue.path(store.uri(layer_prefix("mart", name))),
                "duration_seconds": dg.MetadataValue.float(round(seconds, 3)),
                "rows_per_second": dg.MetadataValue.float(
                    round(rows / seconds, 1) if seconds > 0 else 0.0
                ),
                **obj.metadata,
            }
        )
        add_partition_metadata(
            context,
            {
                day.isoformat(): {
                    "rows": count,
                    "s3_uri": store.uri(partition_prefix("mart", name, day)),
                }
                for day, _, count in copies
            },
        )

    def _stage(self, obj: MartOutput, tmp: Path, csv_path: Path, window: tuple[dt.date, dt.date]):
        """Write each day's rows to one CSV file and its copy to a Parquet file, one day in memory."""
        columns: list[str] = []
        rows = 0
        copies: list[tuple[dt.date, Path, int]] = []
        writer = None
        with open(csv_path, "wb") as sink:
            for mart_day in obj.days:
                if mart_day.rows is not None:
                    if obj.replace == "window" and not window[0] <= mart_day.day < window[1]:
                        raise ValueError(
                            f"{mart_day.day} is outside the run's window {window}: it would not be replaced"
                        )
                    if writer is None:
                        columns = mart_day.rows.column_names
                        writer = pacsv.CSVWriter(
                            sink, mart_day.rows.schema, write_options=CSV_OPTIONS
                        )
                    writer.write_table(mart_day.rows)
                    rows += mart_day.rows.num_rows
                if mart_day.copy is not None:
                    path = tmp / f"{mart_day.day.isoformat()}.parquet"
                    pq.write_table(mart_day.copy, path, **parquet_options(mart_day.copy.schema))
                    copies.append((mart_day.day, path, mart_day.copy.num_rows))
            if writer is not None:
                writer.close()
        return columns, rows, copies

    def _load(
        self,
        conn,
        name: str,
        target: sql.Identifier,
        replace: str,
        window,
        columns: list[str],
        csv_path: Path,
    ) -> int:
        """Delete the replaced slice and COPY the new rows in one transaction; returns rows deleted."""
        try:
            with conn.cursor() as cur:
                # Two runs loading the same mart take turns instead of interleaving.
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"volt_assets.defs.marts.{name}",),
                )
                if replace == "table":
                    cur.execute(sql.SQL("DELETE FROM {}").format(target))
                else:
                    cur.execute(
                        sql.SQL("DELETE FROM {} WHERE dt >= %s AND dt < %s").format(target), window
                    )
                replaced = cur.rowcount
                if columns:
                    copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
                        target, sql.SQL(", ").join(map(sql.Identifier, columns))
                    )
                    with open(csv_path, "rb") as source:
                        cur.copy_expert(copy, source)
            conn.commit()
            return replaced
        except psycopg2.Error as exc:
            conn.rollback()
            if isinstance(exc, psycopg2.OperationalError):
                raise  # connection trouble: the retry policy tries again
            detail = mask_dsn((exc.pgerror or str(exc)).strip())
            raise dg.Failure(
                description=f"loading {SCHEMA}.{name} in {self.db.where} failed, previous rows kept: {detail}",
                allow_retries=False,  # the data or the table is wrong: the same load would fail again
            ) from None

    def load_input(self, context: dg.InputContext):
        raise NotImplementedError(
            "marts are read with SQL: use the `marts_db` resource (MartsDatabase.connect)"
        )
