"""Change-data extraction from PostgreSQL: a day's rows as exact JSON Lines, streamed.

PostgreSQL writes the lines itself (`row_to_json`) and `COPY ... TO STDOUT` streams them to
gzip part files on local disk, so memory stays bounded whatever the day's size; parts roll
over at a byte limit. Timestamps are rendered as ISO-8601 UTC with microseconds (`infinity`,
`-infinity` and ` BC` after a date before the year 1 spelled out: `exact_timestamp`),
numerics as JSON strings of their exact text (`"0.0010"`), jsonb stays JSON, and columns the
source added since the table was configured are kept (schema drift is reported, not dropped).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg2 import sql

from volt_assets.lib.capture.exact_json import may_hold_long_numbers
from volt_assets.lib.config.table_config import (
    TableConfig,
    arrow_type,
    is_numeric,
    postgres_type_family,
    rescaled,
)

# Uncompressed bytes per raw part file. Staging's DuckDB holds memory in proportion to the JSON
# one query reads (bench/ANALYSIS.md), and it reads a big day a few parts at a time.
PART_BYTES = 8 * 1024 * 1024
FLUSH_BYTES = 1 << 20  # rows gathered before they are compressed
ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
# CSV with a quote and delimiter byte that JSON text never holds (row_to_json escapes
# control characters), so COPY passes each JSON line through untouched.
COPY_OPTIONS = "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


@dataclass
class Drift:
    """How the source table differs from its declared columns."""

    added: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    retyped: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # column -> (declared, actual)

    @property
    def any(self) -> bool:
        return bool(self.added or self.dropped or self.retyped)

    @property
    def rescaled(self) -> dict[str, tuple[str, str]]:
        """The retyped numeric columns whose precision or scale changed."""
        return {c: (d, a) for c, (d, a) in self.retyped.items() if rescaled(d, a)}

    @property
    def blocking(self) -> bool:
        """A dropped (or renamed) column or a rescaled numeric stops the day's staging."""
        return bool(self.dropped or self.rescaled)

    def describe(self) -> str:
        parts = [f"column added: {c} ({t})" for c, t in self.added.items()]
        parts += [f"column dropped: {c}" for c in self.dropped]
        parts += [
            f"column retyped: {c} declared {d}, source has {a}"
            for c, (d, a) in self.retyped.items()
        ]
        return "; ".join(parts) or "no drift"


def source_columns(conn, table: str) -> dict[str, str]:
    """Column -> information_schema data_type of a source table (empty if it is missing), a
    numeric with its precision and scale (`numeric(12,2)`): a change of either is drift."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, CASE WHEN data_type = 'numeric' AND numeric_precision IS NOT NULL"
            " THEN format('numeric(%%s,%%s)', numeric_precision, numeric_scale) ELSE data_type END"
            " FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        return dict(cur.fetchall())


def detect_drift(config: TableConfig, actual: dict[str, str]) -> Drift:
    drift = Drift()
    for column, declared in config.columns.items():
        if column not in actual:
            drift.dropped.append(column)
        elif actual[column] != postgres_type_family(declared):
            drift.retyped[column] = (declared, actual[column])
    drift.added = {c: t for c, t in actual.items() if c not in config.columns}
    return drift


class MissingSourceTable(RuntimeError):
    pass


def exact_timestamp(column: sql.Composable) -> sql.Composed:
    """A timestamptz as text that says what it is: ISO-8601 UTC with microseconds
    (`2026-01-02T10:00:00.000000Z`), ` BC` after a date before the year 1
    (`0044-03-15T12:00:00.000000Z BC`, as PostgreSQL writes it), and `infinity` / `-infinity`
    (to_char alone gives NULL for those, and drops the era)."""
    return sql.SQL(
        "CASE WHEN NOT isfinite({c}) THEN {c}::text"
        " ELSE to_char({c} AT TIME ZONE 'UTC', {fmt})"
        " || CASE WHEN {c} < {year_1} THEN ' BC' ELSE '' END END"
    ).format(c=column, fmt=sql.Literal(ISO_UTC), year_1=sql.Literal("0001-01-01 00:00:00+00"))


def _select_list(
    config: TableConfig, actual: dict[str, str], columns: list[str] | None = None
) -> sql.Composed:
    """Declared columns first (timestamps rendered exactly), then columns the source added
    (or only `columns`, rendered alike)."""
    items = []
    for column in columns or list(config.columns) + [c for c in actual if c not in config.columns]:
        if column not in actual:
            continue  # dropped at the source: nothing to read, drift says so
        ident = sql.Identifier(column)
        if actual[column] == "timestamp with time zone":
            items.append(sql.SQL("{t} AS {c}").format(t=exact_timestamp(ident), c=ident))
        elif is_numeric(actual[column]):
            # a JSON string: as a JSON number DuckDB would read it through a double (0.0010
            # became 0.001), and quarantine quotes the source's exact text
            items.append(sql.SQL("{c}::text AS {c}").format(c=ident))
        else:
            items.append(ident)
    return sql.SQL(", ").join(items)


def _window_rows(
    config: TableConfig, actual: dict[str, str], window, columns: list[str] | None = None
) -> sql.Composed:
    """SELECT of the window's rows (declared columns, or `columns`), rendered as raw writes them."""
    where = sql.SQL("")
    if window is not None and window[0] is None:  # the first partition: everything before its end
        where = sql.SQL(" WHERE {c} < {e}").format(
            c=sql.Identifier(config.cursor), e=sql.Literal(window[1])
        )
    elif window is not None:
        where = sql.SQL(" WHERE {c} >= {s} AND {c} < {e}").format(
            c=sql.Identifier(config.cursor), s=sql.Literal(window[0]), e=sql.Literal(window[1])
        )
    # ORDER BY the table's own columns (qualified): the bare names would mean the rendered
    # text of the select list, which no index provides, so PostgreSQL would sort the whole day.
    return sql.SQL("SELECT {cols} FROM {t}{where} ORDER BY {t}.{c}, {t}.{pk}").format(
        cols=_select_list(config, actual, columns),
        t=sql.Identifier(config.name),
        where=where,
        c=sql.Identifier(config.cursor),
        pk=sql.Identifier(config.primary_key),
    )


def extract_query(
    config: TableConfig, actual: dict[str, str], window, day_prefix: bool = False
) -> sql.Composed:
    """The COPY of the window's JSON lines; `day_prefix`: each line led by its cursor's day
    (YYYY-MM-DD, the first ten characters of the cursor's text) for `DayParts`."""
    line = (
        "left(to_json(t.{c}) #>> '{{}}', 10) || row_to_json(t)::text"
        if day_prefix
        else "row_to_json(t)"
    )
    return sql.SQL(
        "COPY (SELECT " + line + " FROM ({inner}) t) TO STDOUT WITH " + COPY_OPTIONS
    ).format(inner=_window_rows(config, actual, window), c=sql.Identifier(config.cursor))


def versions_query(config: TableConfig, actual: dict[str, str], window) -> sql.Composed:
    """(pk, cursor) of the same rows as CSV, each as the text its JSON line holds: to_json
    renders a value as row_to_json does, `#>> '{}'` takes it out as text (strings unquoted)."""
    pk, cursor = sql.Identifier(config.primary_key), sql.Identifier(config.cursor)
    return sql.SQL(
        "COPY (SELECT to_json(t.{pk}) #>> '{{}}', to_json(t.{c}) #>> '{{}}' FROM ({inner}) t) TO STDOUT WITH (FORMAT csv)"  # noqa: E501
    ).format(
        pk=pk,
        c=cursor,
        inner=_window_rows(config, actual, window, [config.primary_key, config.cursor]),
    )


VERSIONS_CSV_SCHEMA = pa.schema([("pk", pa.string()), ("cursor", pa.string())])


# COPY writes NULL unquoted and empty text as "": kept apart (not pyarrow's "NULL", "NA", ...);
# text keys may hold line breaks
VERSIONS_CSV_PARSE = pacsv.ParseOptions(newlines_in_values=True)
VERSIONS_CSV_CONVERT = pacsv.ConvertOptions(
    column_types=dict(zip(VERSIONS_CSV_SCHEMA.names, VERSIONS_CSV_SCHEMA.types, strict=True)),
    strings_can_be_null=True,
    quoted_strings_can_be_null=False,
    null_values=[""],
)


def _read_versions_csv(path: Path) -> pa.Table:
    if not path.stat().st_size:
        return VERSIONS_CSV_SCHEMA.empty_table()
    return pacsv.read_csv(
        path,
        # one thread: parallel blocks bought little on two columns and held several at once
        read_options=pacsv.ReadOptions(column_names=VERSIONS_CSV_SCHEMA.names, use_threads=False),
        parse_options=VERSIONS_CSV_PARSE,
        convert_options=VERSIONS_CSV_CONVERT,
    )


def copied_pairs(
    conn, query: sql.Composable, block_bytes: int = 4 << 20
) -> Iterator[pa.RecordBatch]:
    """The two text columns of `query` as (pk, cursor) batches: one COPY to a temporary file,
    read back a block at a time (memory bounded whatever the rows; no Python object per row)."""
    with tempfile.TemporaryFile() as f:
        with conn.cursor() as cur:
            copy = sql.SQL("COPY ({q}) TO STDOUT WITH (FORMAT csv)").format(q=query)
            cur.copy_expert(copy, f, size=1 << 20)
        conn.rollback()
        if not f.tell():
            return
        f.seek(0)
        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(
                column_names=VERSIONS_CSV_SCHEMA.names, block_size=block_bytes, use_threads=False
            ),
            parse_options=VERSIONS_CSV_PARSE,
            convert_options=VERSIONS_CSV_CONVERT,
        )
        yield from reader


class PartWriter:
    """A file-like sink for COPY: gzip parts that roll over at a byte limit, on line ends."""

    def __init__(self, directory: Path, stem: str, part_bytes: int | None = None):
        # PART_BYTES is read here, not bound at import, so a test can lower it
        self.directory, self.stem, self.part_bytes = directory, stem, part_bytes or PART_BYTES
        self.paths: list[Path] = []
        self.rows = 0
        self.bytes = 0
        self._current = None
        self._current_bytes = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.long_numbers = False  # may a line hold a number DuckDB would round (exact_json.py)
        self._tail = b""  # the end of the previous chunk: a run of digits may straddle two

    def _open(self) -> None:
        path = self.directory / f"{self.stem}-{len(self.paths):05d}.jsonl.gz"
        self.paths.append(path)
        # level 1: raw is written once and read once; speed matters more than a few bytes
        self._current = gzip.GzipFile(path, "wb", compresslevel=1, mtime=0)
        self._current_bytes = 0

    def write(self, data) -> int:
        # psycopg2 hands COPY TO one row per call: gather rows, handle them a megabyte at a time
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= min(FLUSH_BYTES, self.part_bytes):
            self._flush()
        return len(data)

    def _flush(self) -> None:
        data = b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        if not data:
            return
        self.rows += data.count(b"\n")
        self.bytes += len(data)
        if not self.long_numbers:
            self.long_numbers = may_hold_long_numbers(self._tail + data)
            self._tail = data[-16:]
        if self._current is None:
            self._open()
        if self._current_bytes + len(data) > self.part_bytes and self._current_bytes > 0:
            cut = data.rfind(b"\n") + 1  # finish the current line in this part
            if cut:
                self._current.write(data[:cut])
                self._current.close()
                self._open()
                data = data[cut:]
        self._current.write(data)
        self._current_bytes += len(data)

    def close(self) -> None:
        self._flush()
        if self._current is not None:
            self._current.close()
            self._current = None


class DayParts:
    """A sink for a COPY whose lines each start with their cursor's day (`extract_query`'s
    `day_prefix`): each day's lines go, without the prefix, to that day's own `PartWriter`.
    Days before `first` belong to `first` (the first partition opens the lake). Lines come
    in cursor order, so a day's writer is looked up only when the day changes."""

    def __init__(self, directory: Path, stem: str, first: dt.date, part_bytes: int | None = None):
        self.directory, self.stem, self.part_bytes = directory, stem, part_bytes
        self.first = first.isoformat().encode()
        self.writers: dict[dt.date, PartWriter] = {}
        self._key: bytes | None = None
        self._writer: PartWriter | None = None

    def _route(self, key: bytes) -> None:
        day = dt.date.fromisoformat(max(key, self.first).decode())
        if day not in self.writers:
            folder = self.directory / day.isoformat()
            folder.mkdir()
            self.writers[day] = PartWriter(folder, self.stem, self.part_bytes)
        self._key, self._writer = key, self.writers[day]

    def write(self, data) -> int:
        key = bytes(data[:10])
        if key != self._key:
            self._route(key)
        self._writer.write(data[10:])
        return len(data)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


@dataclass
class Extract:
    paths: list[Path]
    rows: int
    bytes: int
    seconds: float
    columns: list[str]
    long_numbers: bool = False  # a line may hold a number DuckDB would round (exact_json.py)
    # (pk, cursor) text of every line, read in the same snapshot: the captured versions' identity
    versions: pa.Table = field(default_factory=VERSIONS_CSV_SCHEMA.empty_table)
    types: dict[str, str] = field(default_factory=dict)  # column -> the source's type (read)


def extract(
    conn,
    config: TableConfig,
    window,
    directory: Path,
    stem: str,
    part_bytes: int | None = None,
    actual: dict[str, str] | None = None,
) -> Extract:
    """Stream the rows of `window` (None: the whole table) into gzip JSON Lines parts.
    `actual`: the source's columns (`source_columns`) when the caller read them for the run."""
    actual = actual or source_columns(conn, config.name)
    if not actual:
        raise MissingSourceTable(
            f"source table {config.name!r} does not exist in the configured database: "
            "create the Volt schema (volt-assets seed does) or check POSTGRES_DB"
        )
    started = time.perf_counter()
    writer = PartWriter(directory, stem, part_bytes)
    versions_csv = directory / f"{stem}-versions.csv"
    conn.rollback()  # a transaction of its own, so its isolation can still be chosen
    with conn.cursor() as cur:
        # Both COPYs read one snapshot: the versions are exactly the lines, without parsing
        # the JSON back (a second, narrow index scan is cheaper than reading the part).
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SET LOCAL TIME ZONE 'UTC'")
        cur.copy_expert(extract_query(config, actual, window), writer, size=1 << 20)
        writer.close()
        with open(versions_csv, "wb") as sink:
            cur.copy_expert(versions_query(config, actual, window), sink, size=1 << 20)
    conn.rollback()  # end the read-only transaction
    versions = _read_versions_csv(versions_csv)
    versions_csv.unlink()
    if versions.num_rows != writer.rows:  # one snapshot: only a bug could make these differ
        raise RuntimeError(
            f"{config.name}: {writer.rows} lines but {versions.num_rows} versions in one snapshot"
        )
    columns = [c for c in list(config.columns) + list(actual) if c in actual]
    return Extract(
        writer.paths,
        writer.rows,
        writer.bytes,
        time.perf_counter() - started,
        list(dict.fromkeys(columns)),
        writer.long_numbers,
        versions,
        {c: actual[c] for c in columns},
    )


def extract_days(
    conn,
    config: TableConfig,
    days: list[dt.date],
    window,
    directory: Path,
    stem: str,
    actual: dict[str, str],
) -> dict[dt.date, Extract]:
    """Consecutive days in one read: the rows of `window` (the days' windows joined) in one
    snapshot, split by their cursor's day into each day's own parts and versions as they
    stream. Only for a cursor whose text starts with its UTC day (`splits_by_day`)."""
    started = time.perf_counter()
    sink = DayParts(directory, stem, days[0])
    versions_csv = directory / f"{stem}-versions.csv"
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SET LOCAL TIME ZONE 'UTC'")
        cur.copy_expert(extract_query(config, actual, window, day_prefix=True), sink, 1 << 20)
        sink.close()
        with open(versions_csv, "wb") as out:
            cur.copy_expert(versions_query(config, actual, window), out, size=1 << 20)
    conn.rollback()
    versions = _read_versions_csv(versions_csv)
    versions_csv.unlink()
    seconds = time.perf_counter() - started
    total = versions.num_rows
    day_text = pc.utf8_slice_codeunits(versions["cursor"], 0, 10)
    columns = list(dict.fromkeys(c for c in list(config.columns) + list(actual) if c in actual))
    found: dict[dt.date, Extract] = {}
    for day in days:
        text = pa.scalar(day.isoformat())
        own = pc.equal(day_text, text) if day != days[0] else pc.less_equal(day_text, text)
        writer = sink.writers.get(day) or PartWriter(directory, stem)
        day_versions = versions.filter(own)
        if day_versions.num_rows != writer.rows:  # one snapshot: only a bug could differ
            raise RuntimeError(
                f"{config.name} {day}: {writer.rows} lines but {day_versions.num_rows} versions"
            )
        # the read is shared: each day is given its share of its time, by rows
        share = seconds * writer.rows / total if total else seconds / len(days)
        found[day] = Extract(
            writer.paths,
            writer.rows,
            writer.bytes,
            share,
            columns,
            writer.long_numbers,
            day_versions,
            {c: actual[c] for c in columns},
        )
    return found


def splits_by_day(config: TableConfig) -> bool:
    """Whether the cursor's text starts with its UTC day, so one read can serve several days
    (`extract_days`): a timestamptz (read in UTC) or a date cursor."""
    return postgres_type_family(config.columns[config.cursor]) in (
        "timestamp with time zone",
        "date",
    )


# Hard-delete detection probes the known keys one by one (an index lookup each) when they are
# fewer than this share of the table's rows; otherwise it scans every live key once.
PROBE_SHARE = 0.25


def table_rows_estimate(conn, config: TableConfig) -> float:
    """The planner's row count of a source table (pg_class.reltuples; -1 when never analysed)."""
    with conn.cursor() as cur:
        cur.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (config.name,))
        row = cur.fetchone()
    conn.rollback()
    return float(row[0]) if row and row[0] is not None else -1.0


def absent_keys(conn, config: TableConfig, keys: pa.Array) -> pa.Array:
    """Which of `keys` (text, as raw captured them) the source no longer has.

    One primary-key index probe per key, so the cost follows the number of keys asked about
    (a day's), not the table's size. Hash and merge joins are switched off for the query: with
    a seq scan of the whole table they would bring back the cost this avoids."""
    pk = config.primary_key
    query = sql.SQL(
        "SELECT k FROM unnest(%s::text[]) AS k WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {t}.{pk} = k::{typ})"
    ).format(t=sql.Identifier(config.name), pk=sql.Identifier(pk), typ=sql.SQL(config.columns[pk]))
    with conn.cursor() as cur:
        cur.execute("SET LOCAL enable_hashjoin = off")
        cur.execute("SET LOCAL enable_mergejoin = off")
        cur.execute(query, (keys.to_pylist(),))
        missing = [row[0] for row in cur.fetchall()]
    conn.rollback()
    return pa.array(missing, pa.string())


def live_keys(conn, config: TableConfig) -> pa.Array:
    """Every primary key now in the source (an index-only scan; one column, streamed)."""
    buffer = io.BytesIO()
    with conn.cursor() as cur:
        cur.copy_expert(
            sql.SQL("COPY (SELECT {pk} FROM {t}) TO STDOUT").format(
                pk=sql.Identifier(config.primary_key), t=sql.Identifier(config.name)
            ),
            buffer,
        )
    conn.rollback()
    buffer.seek(0)
    pk_type = arrow_type(config.columns[config.primary_key])
    if not buffer.getbuffer().nbytes:
        return pa.array([], pk_type)
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=["pk"]),
        convert_options=pacsv.ConvertOptions(column_types={"pk": pk_type}),
    )
    return table["pk"].combine_chunks()


TRANSIENT_PG_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


class SourceSession:
    """One source connection kept for a run's many short reads, replaced after a drop.

    A 365-day run reads the source once a day; connecting each time (TCP, authentication,
    a backend process) cost more than the read on a normal day. `run(action)` calls
    `action(conn)` and, after a dropped connection, reconnects and calls it again from the
    start (actions must be restartable: extraction writes to fresh part files), so a drop
    mid-stream never leaves a partial extract behind."""

    def __init__(self, database, log=None, attempts: int = 3):
        self.database, self.log, self.attempts = database, log, attempts
        self._conn = None

    def run(self, action):
        for attempt in range(1, self.attempts + 1):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.database.new_connection()
                conn = self._conn
                try:
                    return action(conn)
                except psycopg2.DatabaseError as exc:
                    # A drop mid-COPY surfaces as a bare DatabaseError ("error with status
                    # PGRES_COPY_OUT and no message"); a broken connection is what makes it transient.
                    if (
                        conn.closed
                        or conn.get_transaction_status()
                        == psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN
                    ):
                        raise psycopg2.OperationalError(
                            f"connection lost: {type(exc).__name__}"
                        ) from exc
                    raise
                except BaseException:
                    self.close()  # never keep a connection in an unknown state
                    raise
            except TRANSIENT_PG_ERRORS as exc:
                self.close()
                if attempt == self.attempts:
                    raise
                if self.log:
                    self.log.warning(
                        f"PostgreSQL connection lost ({type(exc).__name__}); retrying {attempt}/{self.attempts - 1}"
                    )
                time.sleep(min(8.0, 0.5 * 2**attempt))

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
            self._conn = None

    def __enter__(self) -> SourceSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
