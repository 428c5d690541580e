"""Reading raw JSON Lines back as text: every value as the exact text it was captured as.

DuckDB's JSON reader parses the gzip parts (fast, streaming); each declared column is read as
VARCHAR (jsonb as JSON text) so nothing is guessed before the rules in `rules.py` type it.
DuckDB reads JSON numbers through doubles: on the rare lines with a number of more than 15
significant digits, the json columns' text is taken from the line as written instead
(exact_json.py); declared numeric columns are at most numeric(15,s) (table_config.py). Columns the
source added later are simply not selected here;
they stay in the raw files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from volt_assets.lib.capture.exact_json import exact_values
from volt_assets.lib.config.table_config import TableConfig, rescaled


def missing_declared(config: TableConfig, manifest: dict) -> tuple[list[str], list[str]]:
    """(declared columns that a capture of raw D's listed parts did not have, the columns those
    captures had that are not declared): non-empty when the source dropped or renamed a column.
    A manifest written before captures recorded their columns is judged by its latest capture."""
    listed = set(manifest.get("files", {}))
    extractions = manifest.get("extractions", [])
    seen: list[list[str]] = [
        e["columns"] for e in extractions if "columns" in e and listed & set(e.get("files", []))
    ]
    if not any("columns" in e for e in extractions) and listed and manifest.get("columns"):
        seen = [manifest["columns"]]
    missing = {c for cols in seen for c in config.columns if c not in cols}
    extra = {c for cols in seen for c in cols if c not in config.columns}
    return [c for c in config.columns if c in missing], sorted(extra)


def rescaled_declared(config: TableConfig, manifest: dict) -> dict[str, tuple[str, str]]:
    """Declared numeric columns a capture of raw D's listed parts read with another precision
    or scale: column -> (declared, the source's type then)."""
    listed = set(manifest.get("files", {}))
    found = {}
    for extraction in manifest.get("extractions", []):
        if not listed & set(extraction.get("files", [])):
            continue
        for column, actual in extraction.get("column_types", {}).items():
            declared = config.columns.get(column)
            if declared is not None and rescaled(declared, actual):
                found[column] = (declared, actual)
    return found


# Rows per batch: validating a batch holds a few copies of it; 14,000 kept the heavy day ~20 MB
# lower than 20,000 at the same speed
BATCH_ROWS = 14_000
T = TypeVar("T")
# gzip bytes of parts read by one query: DuckDB holds memory in proportion to what a query
# reads (~100 MB for a 108 MB day in one query, ~60 MB a part at a time), while a query costs a
# few milliseconds, so a group of small days is still one query
QUERY_BYTES = 1 << 20


def _columns_spec(config: TableConfig, columns: list[str]) -> str:
    json_cols = set(config.json_columns)
    spec = ", ".join(f"'{c}': '{'JSON' if c in json_cols else 'VARCHAR'}'" for c in columns)
    return "{" + spec + "}"


_local = threading.local()


def duckdb_connect(
    memory_limit: str = "64MB", temp_directory: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with bounded memory whatever the day's size (it spills to
    `temp_directory` past the limit), on one thread: the IO manager's upload threads run
    beside it, and a second parse thread bought little and cost ~35 MB."""
    config = {"memory_limit": memory_limit, "threads": 1}
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    return duckdb.connect(config=config)


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB, made once: opening one costs ~13 ms, which a 365-day run would pay
    twice a day (versions, then staging)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb_connect()
    return con


def release_duckdb() -> None:
    """Close this thread's DuckDB: its allocator keeps ~40 MB after reading JSON, given back
    only when the database closes. Called after a big day's reading, before its merge."""
    con = getattr(_local, "con", None)
    if con is not None:
        _local.con = None
        con.close()


def read_text_batches(
    config: TableConfig,
    paths: list[Path],
    columns: list[str] | None = None,
    batch_rows: int = BATCH_ROWS,
    exact: bool | list[Path] = False,
) -> Iterator[pa.RecordBatch]:
    """Batches of string columns (declared columns, or `columns`) plus `_file` (part name).

    `exact`: the parts (True: all of them, or the ones listed) may hold numbers DuckDB would
    round (the capture said so): their lines' json values are then taken from the line as
    written (exact_json.py)."""
    columns = columns or list(config.columns)
    if not paths:
        return
    json_columns = [c for c in columns if c in config.json_columns]
    exact_paths = paths if exact is True else exact or []
    exact_texts = exact_values(exact_paths, json_columns) if json_columns else {}
    query = (
        "SELECT {select}, parse_filename(filename) AS _file FROM read_json(?, format='newline_delimited', "
        "columns={spec}, filename=true, maximum_object_size=16777216)"
    ).format(
        select=", ".join(f'"{c}"::VARCHAR AS "{c}"' for c in columns),
        spec=_columns_spec(config, columns),
    )
    lines: dict[str, int] = {}  # part -> lines read so far (DuckDB keeps the files' line order)
    for group in grouped_by_size(paths, lambda p: p.stat().st_size, QUERY_BYTES):
        # A cursor of the shared connection: its own result, closed when the batches are done.
        cur = duckdb_connection().cursor()
        try:
            files = [str(p) for p in group]
            for batch in cur.sql(query, params=[files]).to_arrow_reader(batch_rows):
                if batch.num_rows:
                    yield (
                        _with_exact_texts(batch, exact_texts, json_columns, lines)
                        if exact_texts
                        else batch
                    )
        finally:
            cur.close()


def grouped_by_size(
    items: Iterable[T], size_of: Callable[[T], int], max_bytes: int, max_items: int | None = None
) -> Iterator[list[T]]:
    """Consecutive items in groups of about `max_bytes` (by `size_of`) and at most `max_items`;
    an item bigger than `max_bytes` is a group of its own."""
    group: list[T] = []
    size = 0
    for item in items:
        item_bytes = size_of(item)
        full = max_items is not None and len(group) >= max_items
        if group and (size + item_bytes > max_bytes or full):
            yield group
            group, size = [], 0
        group.append(item)
        size += item_bytes
    if group:
        yield group


def _with_exact_texts(
    batch: pa.RecordBatch, texts: dict, columns: list[str], lines: dict[str, int]
) -> pa.RecordBatch:
    """Put the exact json texts of the lines that have them in place of DuckDB's."""
    rows = []
    for i, part in enumerate(batch.column(batch.schema.get_field_index("_file")).to_pylist()):
        number = lines.get(part, 0)
        lines[part] = number + 1
        if (part, number) in texts:
            rows.append((i, texts[(part, number)]))
    if not rows:
        return batch
    for column in columns:
        index = batch.schema.get_field_index(column)
        values = batch.column(index).to_pylist()
        for i, exact in rows:
            if column in exact:
                values[i] = exact[column]
        batch = batch.set_column(index, column, pa.array(values, pa.string()))
    return batch
