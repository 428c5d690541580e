"""Reading raw JSON Lines back as text: every value as the exact text it was captured as.

DuckDB's JSON reader parses the gzip parts (fast, multi-threaded, streaming); each declared
column is read as VARCHAR (jsonb as JSON text) so nothing is rounded or guessed before the
rules in `rules.py` type it. Columns the source added later are simply not selected here;
they stay in the raw files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from volt_assets.table_config import TableConfig

BATCH_ROWS = 100_000


def _columns_spec(config: TableConfig, columns: list[str]) -> str:
    json_cols = set(config.json_columns)
    spec = ", ".join(f"'{c}': '{'JSON' if c in json_cols else 'VARCHAR'}'" for c in columns)
    return "{" + spec + "}"


def _connect(memory_limit: str = "256MB") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # bounded memory whatever the day's size; DuckDB spills to its temp directory
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET threads = 2")
    return con


def read_text_batches(
    config: TableConfig, paths: list[Path], columns: list[str] | None = None, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Batches of string columns (declared columns, or `columns`) plus `_file` (part name)."""
    columns = columns or list(config.columns)
    if not paths:
        return
    con = _connect()
    try:
        files = [str(p) for p in paths]
        query = (
            "SELECT {select}, parse_filename(filename) AS _file FROM read_json(?, format='newline_delimited', "
            "columns={spec}, filename=true, maximum_object_size=16777216)"
        ).format(select=", ".join(f'"{c}"::VARCHAR AS "{c}"' for c in columns), spec=_columns_spec(config, columns))
        reader = con.sql(query, params=[files]).to_arrow_reader(batch_rows)
        for batch in reader:
            if batch.num_rows:
                yield batch
    finally:
        con.close()


def read_versions(config: TableConfig, paths: list[Path]) -> pa.Table:
    """(pk, cursor) text of every line in the parts: the identity of each captured version."""
    batches = list(read_text_batches(config, paths, [config.primary_key, config.cursor]))
    schema = pa.schema([("pk", pa.string()), ("cursor", pa.string())])
    if not batches:
        return schema.empty_table()
    table = pa.Table.from_batches(batches)
    return pa.table({"pk": table[config.primary_key], "cursor": table[config.cursor]}, schema=schema)
