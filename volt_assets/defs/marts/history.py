"""The marts' view of the lake: a table's staging history up to a day, and the as-of rule.

A mart partition D describes the world as the lake knew it at the end of day D: for every key,
its latest valid version with `updated_at` before D+1. Staging day d holds, per key, the latest
valid version with `updated_at` in d (or a tombstone for a hard delete noticed on d), so that
version is the key's row in the latest staging day <= D that has the key. A run reads every
complete staging day up to its last day once (only the columns it needs), tags each row with
its `_day`, and the mart SQL picks, per day of the run, the row with the greatest `_day <= D`
(`QUALIFY row_number() OVER (PARTITION BY key ORDER BY _day DESC) = 1`).

Staging days that fail a blocking check never reach the marts, whether the marts run with
staging or alone (`quality.gate.blocking_failures`: the quarantine share recomputed from the
day's manifest counts with the thresholds of tables.yaml, and every other blocking check in
ERROR in the day's quality report). A failed day inside the run's window fails the run, naming
the checks; one before it is left out of the history (named in the output metadata) until it
passes.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from volt_assets.defs.policies import missing_partition
from volt_assets.defs.quality.gate import blocking_failures
from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import layer_prefix, partition_prefix

DAY_COLUMN = "_day"
READERS = 16  # parallel S3 reads: a year of history is ~365 small GETs per table


@dataclass
class History:
    """Staging rows of the days read, each tagged with its `_day`."""

    config: TableConfig
    table: pa.Table
    days: list[dt.date]
    gated: list[dt.date]

    def metadata(self) -> dict:
        name = self.config.name
        return {
            f"{name}_history_days": dg.MetadataValue.int(len(self.days)),
            f"{name}_gated_days_left_out": dg.MetadataValue.json(
                [d.isoformat() for d in self.gated]
            ),
        }


def read_day(
    store: LakeStore, config: TableConfig, columns: list[str], day: dt.date
) -> tuple[dt.date, pa.Table | None, list[str]]:
    """One staging day's `columns` with its day, or None and the blocking checks it failed
    (None and no failures: the day never completed, so it is not part of what the lake knows)."""
    prefix = partition_prefix("staging", config.name, day)
    manifest = store.read_manifest(prefix)
    if manifest is None:
        return day, None, []
    failed = blocking_failures(store, config, day, manifest)
    if failed:
        return day, None, failed
    parts = [
        pq.read_table(pa.BufferReader(store.read_listed(prefix, manifest, file)), columns=columns)
        for file in sorted(manifest.get("files", {}))
        if file.endswith(".parquet")
    ]
    schema = config.staging_schema()
    table = (
        pa.concat_tables(parts)
        if parts
        else pa.schema([schema.field(c) for c in columns]).empty_table()
    )
    return day, table.append_column(DAY_COLUMN, pa.array([day] * table.num_rows, pa.date32())), []


def refuse_required(
    store: LakeStore,
    config: TableConfig,
    required: list[dt.date],
    days: list[dt.date],
    failures: dict[dt.date, list[str]],
) -> None:
    """A run's own day that a blocking check stopped, or that never completed: dg.Failure, not
    retried (a mart is never built for it)."""
    name = config.name
    for day in required:
        # a day never written says why when a blocking check stopped it (e.g. a dropped column)
        failed = failures.get(day) or (
            blocking_failures(store, config, day, None) if day not in days else []
        )
        if failed:
            raise dg.Failure(
                description=f"staging/{name} {day} failed its quality gate: blocking check(s) "
                f"{', '.join(failed)} in ERROR (see quality/{name}/dt={day}/report.json), so "
                f"the marts are not built for it. Fix the source (or tables.yaml) and "
                f"re-materialise raw + staging for {day}.",
                allow_retries=False,
            )
        if day not in days:
            raise missing_partition(f"staging/{name}", day)


def read_history(
    store: LakeStore,
    config: TableConfig,
    columns: list[str],
    through: dt.date,
    required: list[dt.date],
) -> History:
    """Every complete staging day <= `through` of a table that passes its blocking checks, as
    one table.

    Each day in `required` (the run's own days) must be complete and pass them: a mart is
    never built for a day a blocking check stopped (dg.Failure, not retried)."""
    candidates = [d for d in store.list_days(layer_prefix("staging", config.name)) if d <= through]
    with ThreadPoolExecutor(READERS) as pool:
        results = list(pool.map(lambda day: read_day(store, config, columns, day), candidates))
    tables = [t for _, t, _ in results if t is not None]
    days = [d for d, t, _ in results if t is not None]
    failures = {d: failed for d, _, failed in results if failed}
    refuse_required(store, config, required, days, failures)
    schema = config.staging_schema()
    empty = pa.schema(
        [schema.field(c) for c in columns] + [pa.field(DAY_COLUMN, pa.date32())]
    ).empty_table()
    return History(config, pa.concat_tables(tables) if tables else empty, days, sorted(failures))


def duckdb_over(**histories: History) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with each history registered as a view, in UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for view, history in histories.items():
        con.register(view, history.table)
    return con
