"""Raw day -> staging day: typed, cleaned, one row per primary key, and the refused rows.

Streams the raw parts in batches: each batch is cleaned, typed and judged (`rules.validate`);
refused rows go to quarantine with all their reasons; valid rows are folded into the latest
version per key, so memory follows the day's distinct keys, not its lines; a day whose keys
outgrow SPILL_BYTES goes on in a local file (staging/sorted_runs.py), so memory stays bounded. Every raw line
ends in exactly one of staging, quarantine or "superseded" (an older valid version of a key
that has a newer valid one), and the counts say so.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from volt_assets.lib.config.table_config import REASONS_TYPE, TableConfig
from volt_assets.lib.process_memory import release_memory
from volt_assets.lib.staging.raw_reader import duckdb_connect, release_duckdb
from volt_assets.lib.staging.rules import Validated, validate
from volt_assets.lib.staging.sorted_runs import DaySpill, write_latest

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}
# Rows per row group: the writer buffers a whole row group's pages, so a million-row file is
# written in bounded memory, and readers can skip by the groups' statistics.
ROW_GROUP_ROWS = 32 * 1024


EXTRACTED_AT = pa.timestamp("us", tz="UTC")

# A day's files up to this size travel to the uploader as bytes, so S3's latency overlaps the
# next days' work; bigger ones go from local files, uploaded before the run moves on (memory
# stays bounded on a heavy day or the lake's opening snapshot).
HELD_BYTES = 8 << 20

# Valid rows gathered before they are folded into one row per key: a bound on memory when a
# day updates a few keys a million times, and few folds (each copies the day's table) otherwise.
FOLD_ROWS = 250_000
# Valid rows of one day held in memory (as Arrow) before the day goes on in a local file
SPILL_BYTES = 8 << 20


def latest_per_key(table: pa.Table, key: str, order: list[str]) -> pa.Table:
    """One row per key, ordered by key: the greatest by `order` (descending, nulls last), ties
    broken stably. Sorts indices, not rows: the table is copied once, by the final `take`."""
    if table.num_rows <= 1:
        return table
    sort_keys = [(key, "ascending", "at_end")] + [(c, "descending", "at_end") for c in order]
    order_ = pc.sort_indices(table, sort_keys=sort_keys)
    keys = table[key].take(order_).combine_chunks()
    first = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    mask = pa.concat_arrays([pa.array([True]), pc.fill_null(first, True)])
    return table.take(order_.filter(mask))


@dataclass
class StagingDay:
    staging: pa.Table | Path  # a Parquet file for a day built through its spill
    quarantine: pa.Table
    counts: dict = field(default_factory=dict)


def staging_slices(staging: pa.Table | Path, columns: list[str]) -> Iterator[pa.Table]:
    """Some columns of a day's staging: the table, or its file a row group at a time."""
    if not isinstance(staging, Path):
        yield staging.select(columns)
        return
    file = pq.ParquetFile(staging)
    for group in range(file.num_row_groups):
        yield file.read_row_group(group, columns=columns)


def file_duplicates(path: Path, column: str, live: str) -> pa.Array:
    """The values of `column` held by more than one row of a staging file whose `live` column
    is set (null counts as a value, as in `rules.duplicated_values`). DuckDB's aggregate stays
    within 16 MB, spilling beside the file past it (a million texts: ~50 MB in all, 0.3 s);
    Arrow's value_counts of them held ~200 MB."""
    query = 'SELECT "{c}" FROM read_parquet($path) WHERE "{l}" IS NOT NULL GROUP BY 1 HAVING count(*) > 1'
    spill = path.parent / f"{path.stem}-duckdb"
    try:
        # a database of its own, closed after: the aggregate's memory goes with it
        with duckdb_connect("16MB", spill) as con:
            found = con.sql(query.format(c=column, l=live), params={"path": str(path)})
            values = found.to_arrow_table().column(0).combine_chunks()
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return values


class StagingBuilder:
    """Feed it raw text batches; `finish()` returns the staging and quarantine tables.

    With a `spill_dir`, a day whose valid rows outgrow SPILL_BYTES goes on in a local file
    (staging/sorted_runs.py), and its staging is returned as a Parquet file there."""

    def __init__(
        self,
        config: TableConfig,
        extracted_at: dict[str, dt.datetime],
        spill_dir: Path | None = None,
        name: str = "day",
    ):
        self.config = config
        self.extracted_at = extracted_at  # part file name -> when it was captured
        self.latest: pa.Table | None = None  # one row per key, by key
        self.pending: list[pa.Table] = []  # valid rows not folded into `latest` yet
        self.pending_rows = 0
        self.pending_bytes = 0
        self.spill_dir, self.name = spill_dir, name
        self.spill: DaySpill | None = None
        self.quarantined: list[pa.Table] = []
        self.raw_rows = 0
        self.valid_rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        """Validate one batch of text (declared columns and `_file`) and take its rows."""
        result = validate(self.config, pa.Table.from_batches([batch]).drop_columns(["_file"]))
        self.add_validated(result, per_file(batch, self.extracted_at, EXTRACTED_AT))
        del result
        self.settle()

    def add_validated(self, result: Validated, extracted: pa.Array) -> None:
        """Take rows already validated (`extracted`: when each was captured); `settle()` once
        the batch's own tables are let go."""
        config = self.config
        self.raw_rows += result.typed.num_rows
        if len(result.reasons):
            refused = result.cleaned_strings.filter(result.refused)
            quarantine = {
                c: refused[c]
                if c in refused.column_names
                else pa.nulls(refused.num_rows, pa.string())
                for c in config.columns
            }
            quarantine["_reasons"] = pa.array(result.reasons, REASONS_TYPE)
            quarantine["_extracted_at"] = extracted.filter(result.refused)
            self.quarantined.append(pa.table(quarantine, schema=config.quarantine_schema()))
        accepted = pc.invert(result.refused)
        valid = result.typed.filter(accepted)
        self.valid_rows += valid.num_rows
        deleted = (
            pc.is_valid(valid[config.soft_delete])
            if config.soft_delete
            else pa.array([False] * valid.num_rows)
        )
        valid = valid.append_column(pa.field("_deleted", pa.bool_(), nullable=False), deleted)
        valid = valid.append_column("_extracted_at", extracted.filter(accepted))
        self.pending.append(valid)
        self.pending_rows += valid.num_rows
        self.pending_bytes += valid.nbytes

    def settle(self) -> None:
        """Fold or spill the rows taken, when they have grown past their bound."""
        held = self.pending_bytes + (self.latest.nbytes if self.latest is not None else 0)
        if self.spill_dir is not None and (self.spill is not None or held > SPILL_BYTES):
            if self.spill is None or self.pending_bytes > SPILL_BYTES:
                self._spill()
        elif self.pending_rows >= FOLD_ROWS:
            self._fold()

    def _spill(self) -> None:
        """Move the rows held in memory to the day's spill file, in the order they came."""
        parts = ([self.latest] if self.latest is not None else []) + self.pending
        self.latest, self.pending, self.pending_rows, self.pending_bytes = None, [], 0, 0
        if self.spill is None:
            path = self.spill_dir / f"{self.name}-valid.parquet"
            self.spill = DaySpill(path, parts[0].schema, self.config.primary_key, self._latest)
        while parts:
            self.spill.add(parts.pop(0))  # each part let go once it is in the file

    def _fold(self) -> None:
        """Fold the pending rows into `latest` (one row per key)."""
        if not self.pending:
            return
        parts = ([self.latest] if self.latest is not None else []) + self.pending
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        self.latest = self._latest(pa.concat_tables(parts))

    def _latest(self, table: pa.Table) -> pa.Table:
        """One row per key of `table`, by key: its latest valid version."""
        config = self.config
        return latest_per_key(table, config.primary_key, [config.cursor, "_extracted_at"])

    def finish(self, deletes: pa.Table | None = None) -> StagingDay:
        """Close the day; `deletes` (pk, noticed_at) become tombstones that win over versions."""
        config = self.config
        schema = config.staging_schema()
        ended = tombstone_rows(config, deletes)
        tombstones = 0 if ended is None else ended.num_rows
        if self.spill is not None:
            self._spill()
            release_duckdb()  # the day is read: what DuckDB and validating it held, before the merge
            release_memory()
            out = self.spill_dir / f"{self.name}-staging.parquet"
            options = parquet_options(schema)
            rows = write_latest(self.spill, out, schema, ended, options, ROW_GROUP_ROWS)
            return self._day(out, rows - tombstones, tombstones)
        self._fold()
        latest = self.latest.cast(schema) if self.latest is not None else schema.empty_table()
        if ended is not None:
            gone = ended[config.primary_key]
            latest = latest.filter(pc.invert(pc.is_in(latest[config.primary_key], value_set=gone)))
            latest = pa.concat_tables([latest, ended]).sort_by(config.primary_key)
        return self._day(latest, latest.num_rows - tombstones, tombstones)

    def _day(self, staging: pa.Table | Path, kept: int, tombstones: int) -> StagingDay:
        """The day built: `kept` valid versions staged, beside `tombstones`."""
        quarantine = (
            pa.concat_tables(self.quarantined)
            if self.quarantined
            else self.config.quarantine_schema().empty_table()
        )
        counts = {
            "raw_rows": self.raw_rows,
            "staged_rows": kept,
            "quarantined_rows": quarantine.num_rows,
            # older versions, and the versions a noticed delete ends
            "superseded_rows": self.valid_rows - kept,
            "tombstones": tombstones,
        }
        return StagingDay(staging=staging, quarantine=quarantine, counts=counts)


def tombstone_rows(config: TableConfig, deletes: pa.Table | None) -> pa.Table | None:
    """Noticed hard deletes (pk, noticed_at) as staging rows: the key, `_deleted`, the time
    noticed; None when there are none."""
    if deletes is None or not deletes.num_rows:
        return None
    schema = config.staging_schema()
    columns = {f.name: pa.nulls(deletes.num_rows, f.type) for f in schema}
    columns[config.primary_key] = deletes["pk"].cast(schema.field(config.primary_key).type)
    columns["_deleted"] = pa.array([True] * deletes.num_rows, pa.bool_())
    columns["_extracted_at"] = deletes["noticed_at"].cast(EXTRACTED_AT)
    return pa.table(columns, schema=schema)


def per_file(batch: pa.RecordBatch, values: dict, type_: pa.DataType) -> pa.Array:
    """`values[_file]` for each row of a batch: looked up once per file, not once per row."""
    files = pc.dictionary_encode(batch.column(batch.schema.get_field_index("_file")))
    mapped = pa.array([values.get(f) for f in files.dictionary.to_pylist()], type_)
    return mapped.take(files.indices)


def day_runs(days: pa.Array) -> list[tuple[str, int, int]]:
    """(value, offset, length) of each run of equal values, in order."""
    n = len(days)
    if not n:
        return []
    change = pc.not_equal(days.slice(1), days.slice(0, n - 1))
    starts = [0] + [i + 1 for i in pc.indices_nonzero(change).to_pylist()]
    values = days.take(pa.array(starts)).to_pylist()
    return [(v, s, e - s) for v, s, e in zip(values, starts, starts[1:] + [n], strict=True)]


def slice_validated(result: Validated, offset: int, length: int, before: np.ndarray) -> Validated:
    """Rows [offset, offset + length) of a validated batch (`before[i]`: refused rows before i)."""
    return Validated(
        typed=result.typed.slice(offset, length),
        cleaned_strings=result.cleaned_strings.slice(offset, length),
        refused=result.refused.slice(offset, length),
        reasons=result.reasons[before[offset] : before[offset + length]],
    )


class ChunkBuilder:
    """Staging for several days at once. Each batch is validated once, whatever days it spans
    (the rules judge one row at a time), and its rows go to their day's `StagingBuilder`: a
    365-day run pays the parse and the rule book per batch, not per day."""

    def __init__(
        self,
        config: TableConfig,
        days: list[str],
        day_of_file: dict[str, str],
        extracted_at: dict,
        spill_dir: Path | None = None,
    ):
        self.config, self.extracted_at, self.day_of_file = config, extracted_at, day_of_file
        self.builders = {d: StagingBuilder(config, extracted_at, spill_dir, d) for d in days}

    def add(self, batch: pa.RecordBatch) -> None:
        result = validate(self.config, pa.Table.from_batches([batch]).drop_columns(["_file"]))
        extracted = per_file(batch, self.extracted_at, EXTRACTED_AT)
        days = per_file(batch, self.day_of_file, pa.string())
        refused = result.refused.to_numpy(zero_copy_only=False)
        before = np.concatenate([[0], np.cumsum(refused, dtype=np.int64)])
        runs = day_runs(days)
        for day, offset, length in runs:
            self.builders[day].add_validated(
                slice_validated(result, offset, length, before), extracted.slice(offset, length)
            )
        del result  # the batch's validated tables, before a fold or spill copies its rows
        for day, _, _ in runs:
            self.builders[day].settle()

    def finish(self, deletes: dict[str, pa.Table | None]) -> dict[str, StagingDay]:
        """Each day's staging and quarantine (`deletes`: each day's noticed hard deletes)."""
        return {day: b.finish(deletes.get(day)) for day, b in self.builders.items()}


def parquet_options(schema: pa.Schema) -> dict:
    """The lake's Parquet settings for a table: zstd, and dictionary encoding for text columns
    only. Ids, amounts and timestamps are nearly all distinct: trying a dictionary on them
    first (pyarrow's default) doubled the write time of a staging day and made it 17 % bigger."""
    text = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    return {**PARQUET_OPTIONS, "use_dictionary": text}


def parquet_bytes(table: pa.Table) -> bytes:
    """zstd Parquet, byte-identical for identical tables (no timestamps in the file)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS, **parquet_options(table.schema))
    return sink.getvalue()


def parquet_body(table: pa.Table, path: Path) -> bytes | Path:
    """`parquet_bytes(table)`, or for a big table the same file written at `path` (uploaded
    from disk: a million rows' file is not held in memory until S3 has it)."""
    if table.nbytes < HELD_BYTES:
        return parquet_bytes(table)
    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS, **parquet_options(table.schema))
    return path
