"""Raw day -> staging day: typed, cleaned, one row per primary key, and the refused rows.

Streams the raw parts in batches: each batch is cleaned, typed and judged (`rules.validate`);
refused rows go to quarantine with all their reasons; valid rows are folded into the latest
version per key, so memory follows the day's distinct keys, not its lines. Every raw line
ends in exactly one of staging, quarantine or "superseded" (an older valid version of a key
that has a newer valid one), and the counts say so.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from volt_assets.lib.rules import validate
from volt_assets.lib.table_config import REASONS_TYPE, TableConfig

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}


# Valid rows gathered before they are folded into one row per key: a bound on memory when a
# day updates a few keys a million times, and few folds (each copies the day's table) otherwise.
FOLD_ROWS = 250_000


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
    staging: pa.Table
    quarantine: pa.Table
    counts: dict = field(default_factory=dict)


class StagingBuilder:
    """Feed it raw text batches; `finish()` returns the staging and quarantine tables."""

    def __init__(self, config: TableConfig, extracted_at: dict[str, dt.datetime]):
        self.config = config
        self.extracted_at = extracted_at  # part file name -> when it was captured
        self.latest: pa.Table | None = None  # one row per key, by key
        self.pending: list[pa.Table] = []  # valid rows not folded into `latest` yet
        self.pending_rows = 0
        self.quarantined: list[pa.Table] = []
        self.raw_rows = 0
        self.valid_rows = 0

    def _extracted_column(self, batch: pa.RecordBatch) -> pa.Array:
        files = batch.column(batch.schema.get_field_index("_file")).to_pylist()
        return pa.array([self.extracted_at.get(f) for f in files], pa.timestamp("us", tz="UTC"))

    def add(self, batch: pa.RecordBatch) -> None:
        config = self.config
        self.raw_rows += batch.num_rows
        strings = pa.Table.from_batches([batch])
        extracted = self._extracted_column(batch)
        result = validate(config, strings.drop_columns(["_file"]))
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
        if self.pending_rows >= FOLD_ROWS:
            self._fold()

    def _fold(self) -> None:
        """Fold the pending rows into `latest` (one row per key)."""
        if not self.pending:
            return
        parts = ([self.latest] if self.latest is not None else []) + self.pending
        self.pending, self.pending_rows = [], 0
        config = self.config
        self.latest = latest_per_key(
            pa.concat_tables(parts), config.primary_key, [config.cursor, "_extracted_at"]
        )

    def finish(self, deletes: pa.Table | None = None) -> StagingDay:
        """Close the day; `deletes` (pk, noticed_at) become tombstones that win over versions."""
        config = self.config
        self._fold()
        schema = config.staging_schema()
        latest = self.latest.cast(schema) if self.latest is not None else schema.empty_table()
        superseded = self.valid_rows - latest.num_rows
        tombstones = 0
        if deletes is not None and deletes.num_rows:
            pk_type = schema.field(config.primary_key).type
            keys = deletes["pk"].cast(pk_type)
            kept = latest.filter(pc.invert(pc.is_in(latest[config.primary_key], value_set=keys)))
            superseded += latest.num_rows - kept.num_rows  # versions a noticed delete ends
            latest = kept
            columns = {f.name: pa.nulls(deletes.num_rows, f.type) for f in schema}
            columns[config.primary_key] = keys
            columns["_deleted"] = pa.array([True] * deletes.num_rows, pa.bool_())
            columns["_extracted_at"] = deletes["noticed_at"].cast(pa.timestamp("us", tz="UTC"))
            latest = pa.concat_tables([latest, pa.table(columns, schema=schema)]).sort_by(
                config.primary_key
            )
            tombstones = deletes.num_rows
        quarantine = (
            pa.concat_tables(self.quarantined)
            if self.quarantined
            else config.quarantine_schema().empty_table()
        )
        counts = {
            "raw_rows": self.raw_rows,
            "staged_rows": latest.num_rows - tombstones,
            "quarantined_rows": quarantine.num_rows,
            "superseded_rows": superseded,
            "tombstones": tombstones,
        }
        return StagingDay(staging=latest, quarantine=quarantine, counts=counts)


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
    pq.write_table(table, sink, **parquet_options(table.schema))
    return sink.getvalue()
