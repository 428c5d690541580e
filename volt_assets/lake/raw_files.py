"""Reading raw JSON Lines back as text: every value as the exact text it was captured as.

DuckDB's JSON reader parses the gzip parts (fast, multi-threaded, streaming); each declared
column is read as VARCHAR (jsonb as JSON text) so nothing is rounded or guessed before the
rules in `rules.py` type it. Columns the source added later are simply not selected here;
they stay in the raw files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import threading

import duckdb
import pyarrow as pa

from volt_assets.table_config import TableConfig

BATCH_ROWS = 20_000


def _columns_spec(config: TableConfig, columns: list[str]) -> str:
    json_cols = set(config.json_columns)
    spec = ", ".join(f"'{c}': '{'JSON' if c in json_cols else 'VARCHAR'}'" for c in columns)
    return "{" + spec + "}"


_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB, made once: opening one costs ~13 ms, which a 365-day run
    would pay twice a day (versions, then staging)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect()
        # bounded memory whatever the day's size; DuckDB spills to its temp directory
        con.execute("SET memory_limit = '256MB'")
        con.execute("SET threads = 1")  # the IO manager's upload threads run beside it; a second parse thread bought little and cost ~35 MB
        _local.con = con
    return con


def read_text_batches(
    config: TableConfig, paths: list[Path], columns: list[str] | None = None, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Batches of string columns (declared columns, or `columns`) plus `_file` (part name)."""
    columns = columns or list(config.columns)
    if not paths:
        return
    files = [str(p) for p in paths]
    query = (
        "SELECT {select}, parse_filename(filename) AS _file FROM read_json(?, format='newline_delimited', "
        "columns={spec}, filename=true, maximum_object_size=16777216)"
    ).format(select=", ".join(f'"{c}"::VARCHAR AS "{c}"' for c in columns), spec=_columns_spec(config, columns))
    # A cursor of the shared connection: its own result, closed when the batches are done.
    cur = _connection().cursor()
    try:
        for batch in cur.sql(query, params=[files]).to_arrow_reader(batch_rows):
            if batch.num_rows:
                yield batch
    finally:
        cur.close()


def read_versions(config: TableConfig, paths: list[Path]) -> pa.Table:
    """(pk, cursor) text of every line in the parts: the identity of each captured version."""
    batches = list(read_text_batches(config, paths, [config.primary_key, config.cursor]))
    schema = pa.schema([("pk", pa.string()), ("cursor", pa.string())])
    if not batches:
        return schema.empty_table()
    table = pa.Table.from_batches(batches)
    return pa.table({"pk": table[config.primary_key], "cursor": table[config.cursor]}, schema=schema)
