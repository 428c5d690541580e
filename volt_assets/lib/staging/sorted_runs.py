"""A staging day too big for memory: its valid rows spilled to a local Parquet file in sorted
runs, then merged into one row per key, written a row group at a time.

The lake's opening snapshot holds every row of the source in one day, and a heavy day
hundreds of thousands: held in memory they cost about 1.2 GB per million rows. Here each
run is folded to one row per key and sorted (`latest_per_key`) before it is written, and the
merge holds one small row group of every run at once. The rows chosen, their order and the file written
are the in-memory builder's: latest cursor, then latest capture, ties to the row read first
(runs are merged in the order they were read); tombstones replace the versions of the keys
they end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from volt_assets.lib.process_memory import release_memory

# A run is written in row groups this small: the merge reads a row group of every run at a
# time (Parquet decompresses a whole row group), so this times the runs is what it holds
RUN_GROUP_ROWS = 2048

Fold = Callable[[pa.Table], pa.Table]  # rows -> one row per key, sorted by key


class DaySpill:
    """Valid rows of one day as sorted runs, in the order they were read."""

    def __init__(self, path: Path, schema: pa.Schema, key: str, fold: Fold):
        self.path, self.schema, self.key, self.fold = path, schema, key, fold
        self.writer: pq.ParquetWriter | None = pq.ParquetWriter(path, schema, compression="lz4")
        self.runs: list[range] = []  # the row groups of each run

    def add(self, table: pa.Table) -> None:
        """One run: `table` (rows in the order read) folded and sorted by key."""
        run = self.fold(table.cast(self.schema))
        first = self.runs[-1].stop if self.runs else 0
        groups = max(1, -(-run.num_rows // RUN_GROUP_ROWS))
        self.writer.write_table(run, row_group_size=RUN_GROUP_ROWS)
        self.runs.append(range(first, first + groups))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _Run:
    """The unread rows of one run, a row group at a time, each read only once the merge
    reaches it. `first` and `last` are the smallest and greatest keys of the group in hand
    (None: null keys, which sort last), from the file's statistics until it is read: runs of
    keys that grow with the cursor hardly overlap, so the merge holds a few runs' rows, not
    one group of every run."""

    def __init__(self, file: pq.ParquetFile, groups: range, key: str):
        self.file, self.groups, self.key = file, iter(groups), key
        self.column = file.schema_arrow.get_field_index(key)
        # statistics are exact for integer and text keys; others are read to be compared
        key_type = file.schema_arrow.field(key).type
        self.use_stats = pa.types.is_integer(key_type) or pa.types.is_string(key_type)
        self.group: int | None = None
        self.head: pa.Table | None = None  # the group's rows, once read
        self._next()

    @property
    def done(self) -> bool:
        return self.group is None

    def _next(self) -> None:
        self.group, self.head = next(self.groups, None), None
        if self.group is None:
            return
        stats = self.file.metadata.row_group(self.group).column(self.column).statistics
        if self.use_stats and stats is not None and stats.has_min_max and not stats.null_count:
            self.first, self.last = stats.min, stats.max
        else:
            self._read()

    def _read(self) -> None:
        self.head = self.file.read_row_group(self.group)
        if self.head.num_rows:
            self._bounds()
        else:
            self._next()

    def _bounds(self) -> None:
        keys = self.head[self.key]
        self.first, self.last = keys[0].as_py(), keys[len(keys) - 1].as_py()

    def drain(self) -> list[pa.Table]:
        """Every row left, in order."""
        left = []
        while not self.done:
            left.append(self.take_through(None))
        return left

    def take_through(self, bound) -> pa.Table | None:
        """The rows with key <= `bound` (all of the group for None) of the group in hand,
        moving to the next group once it is emptied; None when there are none."""
        if bound is not None and (self.first is None or self.first > bound):
            return None
        if self.head is None:
            self._read()
            if self.done:
                return None
        keys = self.head[self.key]
        n = (
            self.head.num_rows
            if bound is None or (self.last is not None and self.last <= bound)
            else pc.sum(pc.fill_null(pc.less_equal(keys, bound), False)).as_py() or 0
        )
        taken, self.head = self.head.slice(0, n), self.head.slice(n)
        if self.head.num_rows:
            self._bounds()
        else:
            self._next()
        return taken


def merged(spill: DaySpill, tombstones: pa.Table | None) -> Iterator[pa.Table]:
    """One row per key, by key: the spill's runs merged, keys with a tombstone replaced by it."""
    spill.close()
    file = pq.ParquetFile(spill.path)
    runs = [_Run(file, groups, spill.key) for groups in spill.runs]
    ends = Tombstones(tombstones, spill.key)
    while any(not r.done for r in runs):
        live = [r for r in runs if not r.done]
        known = [r.last for r in live if r.last is not None]
        if not known:  # only rows with a null key are left: each stands alone, as in memory
            rest = [table for run in live for table in run.drain() if table is not None]
            yield ends.placed(spill.fold(pa.concat_tables(rest)), None)
            break
        # every run's later rows have greater keys than its held ones: the rows up to the
        # smallest held maximum are complete
        bound = min(known)
        taken = [t for t in (r.take_through(bound) for r in live) if t is not None]
        latest = spill.fold(pa.concat_tables(taken))
        yield ends.placed(latest, bound)
        release_memory()
    rest = ends.placed(None, None)
    if rest is not None:
        yield rest


class Tombstones:
    """Tombstones (sorted by key) put in their place among the merged rows."""

    def __init__(self, table: pa.Table | None, key: str):
        self.key = key
        self.table = None if table is None else table.sort_by(key)
        self.gone = None if table is None else table[key]
        self.placed_rows = 0

    def placed(self, latest: pa.Table | None, bound) -> pa.Table | None:
        """`latest` without the ended keys, with the tombstones up to `bound` (None: all the
        rest) in key order."""
        if self.table is None:
            return latest
        if latest is not None:
            latest = latest.filter(pc.invert(pc.is_in(latest[self.key], value_set=self.gone)))
        upto = (
            self.table.num_rows
            if bound is None
            else pc.sum(pc.less_equal(self.table[self.key], bound)).as_py() or 0
        )
        mine = self.table.slice(self.placed_rows, max(0, upto - self.placed_rows))
        self.placed_rows = max(self.placed_rows, upto)
        if latest is None:
            return mine if mine.num_rows else None
        return pa.concat_tables([latest, mine]).sort_by(self.key) if mine.num_rows else latest


def write_latest(
    spill: DaySpill,
    out: Path,
    schema: pa.Schema,
    tombstones: pa.Table | None,
    options: dict,
    row_group_rows: int,
) -> int:
    """Write the day's staging file at `out` (`schema`, `options`, row groups of
    `row_group_rows`) from the spill; returns its rows (tombstones included)."""
    try:
        return _write_row_groups(merged(spill, tombstones), out, schema, options, row_group_rows)
    finally:
        spill.path.unlink(missing_ok=True)


def _write_row_groups(tables, out: Path, schema: pa.Schema, options: dict, group: int) -> int:
    """Tables to a Parquet file in row groups of exactly `group` rows (the last one less),
    as `pq.write_table(..., row_group_size=group)` lays out the same rows."""
    rows, held, held_rows = 0, [], 0
    with pq.ParquetWriter(out, schema, **options) as writer:
        for table in tables:
            held.append(table.select(schema.names).cast(schema))
            held_rows += table.num_rows
            while held_rows >= group:
                whole = pa.concat_tables(held)
                writer.write_table(whole.slice(0, group), row_group_size=group)
                rest = whole.slice(group)
                held, held_rows = [rest], rest.num_rows
                rows += group
        if held_rows or not rows:
            writer.write_table(pa.concat_tables(held or [schema.empty_table()]), group)
            rows += held_rows
    return rows
