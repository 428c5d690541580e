"""One day's step of a table's state: yesterday's state and today's staging make today's state.

The latest state (`latest-<chain>.parquet`): one row per key the lake has staged, its latest
version (the row of the latest staging day that has the key) with that day in `_day`, sorted
by key. A tombstone (a hard delete noticed: `_deleted` and no cursor) keeps the key's previous
values with the cursor cleared, so a reader still knows the category of a component deleted
since. `sticky` columns keep their latest non-null value (type 1 attributes, e.g. a sku).

The type 2 history (`type2-<chain>.parquet`, for tables that declare one): the versions of
each key, a new one when a tracked column changes, closed by the next version or a delete.

Both steps run in DuckDB over local Parquet files, with bounded memory (it spills past its
limit), and write sorted Parquet a batch at a time: the state of a million keys never sits
in Python memory, and the same inputs give the same bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from volt_assets.lib.config.partitions import UTC
from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.staging.raw_reader import duckdb_connect
from volt_assets.lib.staging.transform import ROW_GROUP_ROWS, parquet_options

DAY_COLUMN = "_day"
MEMORY_LIMIT = "128MB"


@dataclass(frozen=True)
class Type2Spec:
    """A type 2 history kept beside the latest state: versions open when a `tracked` column
    changes; `type1` columns show the latest known value on every version."""

    key_as: str
    tracked: tuple[str, ...]
    type1: tuple[str, ...]

    def schema(self, config: TableConfig) -> pa.Schema:
        source = config.staging_schema()
        fields = [pa.field(self.key_as, source.field(config.primary_key).type, nullable=False)]
        fields += [source.field(c) for c in (*self.type1, *self.tracked)]
        stamp = pa.timestamp("us", tz="UTC")
        return pa.schema(fields + [pa.field("valid_from", stamp), pa.field("valid_to", stamp)])


def state_schema(config: TableConfig) -> pa.Schema:
    return config.staging_schema().append(pa.field(DAY_COLUMN, pa.date32()))


def connect(workdir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb_connect(MEMORY_LIMIT, workdir)
    con.execute("SET TimeZone = 'UTC'")
    return con


def relation(con, path: Path | None, schema: pa.Schema):
    """A Parquet file as a DuckDB relation, or an empty one of `schema` (no file: no rows yet)."""
    if path is None:
        return con.from_arrow(schema.empty_table())
    return con.read_parquet(str(path))


def write_sorted(con, query: str, schema: pa.Schema, out: Path) -> int:
    """The rows of `query` (ORDER BY'd) written to `out` a batch at a time; the row count."""
    reader = con.sql(query).to_arrow_reader(ROW_GROUP_ROWS)
    rows = 0
    with pq.ParquetWriter(out, schema, **parquet_options(schema)) as writer:
        for batch in reader:
            table = pa.Table.from_batches([batch]).cast(schema)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            rows += table.num_rows
    return rows


def latest_query(config: TableConfig, day: dt.date, sticky: tuple[str, ...]) -> str:
    """The latest state after `day`: the day's rows (tombstones keep the previous values),
    then the keys the day does not have, sorted by key."""
    pk, cursor = config.primary_key, config.cursor
    tomb = f"(d._deleted AND d.{_q(cursor)} IS NULL)"
    columns = []
    for name in config.staging_schema().names:
        c = _q(name)
        if name in (pk, cursor, "_deleted", "_extracted_at"):
            columns.append(f"d.{c}")
        elif name in sticky:
            columns.append(f"coalesce(d.{c}, p.{c}) AS {c}")
        else:
            columns.append(f"CASE WHEN {tomb} THEN p.{c} ELSE d.{c} END AS {c}")
    return f"""
    SELECT {", ".join(columns)}, DATE '{day.isoformat()}' AS {DAY_COLUMN}
    FROM today d LEFT JOIN prev p ON p.{_q(pk)} = d.{_q(pk)}
    UNION ALL
    SELECT p.* FROM prev p WHERE NOT EXISTS (SELECT 1 FROM today d WHERE d.{_q(pk)} = p.{_q(pk)})
    ORDER BY {_q(pk)}
    """


def merge_latest(
    config: TableConfig,
    day: dt.date,
    prev: Path | None,
    today: Path | None,
    out: Path,
    workdir: Path,
    sticky: tuple[str, ...] = (),
) -> int:
    """Write the latest state after `day` to `out` (`today` None: the day adds nothing)."""
    with connect(workdir) as con:
        con.register("prev", relation(con, prev, state_schema(config)))
        con.register("today", relation(con, today, config.staging_schema()))
        return write_sorted(con, latest_query(config, day, sticky), state_schema(config), out)


def type2_query(config: TableConfig, spec: Type2Spec, day: dt.date) -> str:
    """The type 2 history after `day`, from the history before it (`hist`), the latest state
    before it (`prev`) and the day's staging rows (`today`) with the new latest state (`now`)."""
    pk, cursor, key = _q(config.primary_key), _q(config.cursor), _q(spec.key_as)
    end_of_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), UTC)
    changed = " OR ".join(f"d.{_q(c)} IS DISTINCT FROM p.{_q(c)}" for c in spec.tracked)
    type1 = ", ".join(f"n.{_q(c)}" for c in spec.type1)
    ties = ", ".join(str(i + 2) for i in range(len(spec.type1) + len(spec.tracked)))
    kept1 = ", ".join(f"coalesce(n.{_q(c)}, h.{_q(c)}) AS {_q(c)}" for c in spec.type1)
    return f"""
    WITH events AS (
        SELECT d.*, coalesce(d.{cursor}, TIMESTAMPTZ '{end_of_day.isoformat()}') AS changed_at,
               p._deleted AS was_deleted, ({changed}) AS changed
        FROM today d LEFT JOIN prev p ON p.{pk} = d.{pk}
    ), marked AS (
        SELECT *, (NOT _deleted AND (was_deleted IS NULL OR was_deleted OR changed)) AS opens,
                  (_deleted AND NOT coalesce(was_deleted, TRUE)) AS closes
        FROM events
    ), kept AS (
        SELECT h.{key}, {kept1}, {", ".join(f"h.{_q(c)}" for c in spec.tracked)}, h.valid_from,
               CASE WHEN h.valid_to IS NULL AND (m.opens OR m.closes) THEN m.changed_at
                    ELSE h.valid_to END AS valid_to
        FROM hist h LEFT JOIN marked m ON m.{pk} = h.{key}
                    LEFT JOIN now n ON n.{pk} = h.{key} AND m.{pk} IS NOT NULL
    )
    SELECT * FROM kept
    UNION ALL
    SELECT m.{pk} AS {key}, {type1}, {", ".join(f"m.{_q(c)}" for c in spec.tracked)},
           m.changed_at AS valid_from, CAST(NULL AS TIMESTAMPTZ) AS valid_to
    FROM marked m JOIN now n ON n.{pk} = m.{pk}
    WHERE m.opens
    ORDER BY 1, valid_from, valid_to NULLS LAST, {ties}
    """


def merge_type2(
    config: TableConfig,
    spec: Type2Spec,
    day: dt.date,
    hist: Path | None,
    prev: Path | None,
    today: Path | None,
    now: Path,
    out: Path,
    workdir: Path,
) -> int:
    """Write the type 2 history after `day` to `out`; `now` is the latest state after it."""
    with connect(workdir) as con:
        con.register("hist", relation(con, hist, spec.schema(config)))
        con.register("prev", relation(con, prev, state_schema(config)))
        con.register("today", relation(con, today, config.staging_schema()))
        con.register("now", relation(con, now, state_schema(config)))
        return write_sorted(con, type2_query(config, spec, day), spec.schema(config), out)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
