"""Landing CSV files judged against the table configuration: whole-file checks first, then each
row through the one rule book (`lake.rules.validate`).

A file is refused *whole* (one quarantine record naming the file and every reason) when it is
not a CSV of the table: empty, binary (NUL bytes), not UTF-8 (a UTF-16 byte order mark says
so), malformed quoting, bigger than `MAX_BYTES`, or a header that is not exactly the declared
columns (order free; missing, unexpected, duplicated or empty names, or another delimiter).
A UTF-8 byte order mark is stripped and the file accepted: Excel's "CSV UTF-8" writes one.

Rows of an accepted file: every cell is read as text (an empty cell is null; numbers and
dates are trimmed), a row with the wrong number of fields is refused with its line number,
the others are cleaned, typed and judged exactly as staging judges the database's rows;
valid rows are folded to one per primary key (the latest by the table's cursor, then in key
order; a file without a repeated key keeps its order), in the staging schema.

Memory: the file streams in 1 MiB slices, checked and decoded as they come, and its records
are judged `BATCH_ROWS` at a time, so a file at the cap is checked holding little more than
its typed rows (~230 MB peak for 64 MiB, process included; the whole file as Python strings
took ~1.1 GB).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from volt_assets.lib.config.table_config import REASONS_TYPE, TableConfig, is_text
from volt_assets.lib.process_memory import release_memory
from volt_assets.lib.staging.rules import validate
from volt_assets.lib.staging.transform import latest_per_key

MAX_BYTES = 64 * 1024 * 1024  # hand-made files; bigger extracts belong in the database pipeline
OTHER_DELIMITERS = (";", "\t", "|")
EXTRACTED_AT = pa.timestamp("us", tz="UTC")
BATCH_ROWS = 5_000  # records judged at once: their Python strings cost ~10x their bytes
CHECK_SLICE = 1 << 20  # bytes decoded at once to check the file is UTF-8
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")  # a line and its break, as io's universal newlines
VISIBLE = re.compile(r"\S")


class FileRefused(ValueError):
    """The whole file is refused; `reasons` say why, in words a person can act on."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def quarantine_schema(config: TableConfig) -> pa.Schema:
    """Staging's quarantine schema plus where each refused row came from."""
    return pa.schema(
        list(config.quarantine_schema())
        + [
            pa.field("_source_key", pa.string()),
            pa.field(
                "_line", pa.int64()
            ),  # first line of the row in the file; null for a whole-file refusal
        ]
    )


class _Checked:
    """The file read a slice at a time and checked as it comes: `FileRefused` as soon as it
    is too big, UTF-16, binary (NUL bytes) or not UTF-8 (naming the byte's offset)."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.read_bytes, self.started = stream, 0, False
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def next_text(self) -> str | None:
        """The next slice as text (None at the end)."""
        chunk = self.stream.read(CHECK_SLICE if self.read_bytes else max(CHECK_SLICE, 4))
        if not self.read_bytes and chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise FileRefused(
                ["file: UTF-16 text (byte order mark), not UTF-8: save it as CSV UTF-8"]
            )
        if self.read_bytes + len(chunk) > MAX_BYTES:
            raise FileRefused([f"file: larger than {MAX_BYTES // (1024 * 1024)} MiB"])
        if b"\x00" in chunk:
            raise FileRefused(["file: binary content (NUL bytes), not CSV text"])
        held = len(self.decoder.getstate()[0])  # an unfinished character of the last slice
        try:
            text = self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            at = self.read_bytes - held + exc.start
            raise FileRefused(
                [f"file: not UTF-8 text (invalid byte at offset {at}): save it as CSV UTF-8"]
            ) from None
        self.read_bytes += len(chunk)
        if text and not self.started:
            self.started = True
            text = text.removeprefix("\ufeff")  # Excel's "CSV UTF-8" writes one
        return text if chunk else None


def text_lines(stream: BinaryIO) -> Iterator[str]:
    """The file's lines as text, each with its line break (`\\r\\n`, `\\r` or `\\n`, as io's
    universal newlines split them), checked and decoded a slice at a time: the file is never
    held whole. `FileRefused` for a file of blanks only, before any line."""
    checked, pending, held = _Checked(stream), "", []
    visible = False
    while (text := checked.next_text()) is not None:
        text = pending + text
        cut = len(text) - 1 if text.endswith("\r") else len(text)  # `\r\n` may straddle
        lines = LINE.findall(text, 0, cut)
        pending = text[sum(map(len, lines)) :]
        visible = visible or any(VISIBLE.search(line) for line in lines)
        if not visible:
            held += lines  # blanks: yielded only once the file shows it is not empty
            continue
        yield from held
        held = []
        yield from lines
    if not visible and not VISIBLE.search(pending):
        raise FileRefused(["file: empty"])
    yield from held
    if pending:
        yield pending


def check_header(config: TableConfig, header: list[str], first_line: str) -> list[str]:
    """The columns of the file in order; `FileRefused` unless they are exactly the declared ones."""
    names = [h.strip() for h in header]
    declared = set(config.columns)
    if len(names) == 1 and len(declared) > 1:
        found = [d for d in OTHER_DELIMITERS if d in first_line]
        if found:
            shown = "tab" if found[0] == "\t" else repr(found[0])
            raise FileRefused(
                [f"file: the delimiter is not a comma (the header is {shown}-separated)"]
            )
    reasons = []
    if "" in names:
        reasons.append("file: empty column name in the header")
    duplicated = sorted(n for n, c in Counter(names).items() if c > 1 and n)
    if duplicated:
        reasons.append(f"file: duplicated columns: {', '.join(duplicated)}")
    missing = [c for c in config.columns if c not in names]
    if missing:
        reasons.append(f"file: missing columns: {', '.join(missing)}")
    unexpected = [n for n in dict.fromkeys(names) if n and n not in declared]
    if unexpected:
        reasons.append(f"file: unexpected columns: {', '.join(unexpected)}")
    if reasons:
        raise FileRefused(reasons)
    return names


@dataclass
class Judged:
    """A landing file after the checks: staging rows, quarantined rows and counts."""

    staging: pa.Table | None  # None when the file was refused whole
    quarantine: pa.Table
    file_reasons: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)


def _quarantine(
    config: TableConfig,
    columns: dict[str, list],
    reasons: list[list[str]],
    lines: list[int | None],
    source_key: str,
    received_at: dt.datetime,
) -> pa.Table:
    n = len(reasons)
    data = {c: pa.array(columns.get(c, [None] * n), pa.string()) for c in config.columns}
    data["_reasons"] = pa.array(reasons, REASONS_TYPE)
    data["_extracted_at"] = pa.array([received_at] * n, EXTRACTED_AT)
    data["_source_key"] = pa.array([source_key] * n, pa.string())
    data["_line"] = pa.array(lines, pa.int64())
    return pa.table(data, schema=quarantine_schema(config))


def read_rows(config: TableConfig, stream: BinaryIO):
    """The checked header and an iterator of every non-blank record with the line it starts
    on (`FileRefused` from either, for a malformed file)."""
    lines = text_lines(stream)
    first = next(lines, "")
    reader = csv.reader(itertools.chain([first], lines), strict=True)
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise FileRefused([f"file: malformed CSV at line {reader.line_num}: {exc}"]) from None
    columns = check_header(config, header, first)

    def records() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num + 1
        try:
            for record in reader:
                if record:  # a blank line
                    yield line, record
                line = reader.line_num + 1
        except csv.Error as exc:
            raise FileRefused([f"file: malformed CSV at line {reader.line_num}: {exc}"]) from None

    return columns, records()


def judge(
    config: TableConfig, body: bytes | BinaryIO, source_key: str, received_at: dt.datetime
) -> Judged:
    """Judge a landing file of `config`'s table received at `received_at` (its S3 LastModified)
    from its bytes or a stream of them (S3's body), `BATCH_ROWS` records at a time: memory
    holds a slice of the file, one batch and the typed rows."""
    stream = io.BytesIO(body) if isinstance(body, bytes) else body
    try:
        columns, records = read_rows(config, stream)
        valid, quarantined, rows = [], [], 0
        while batch := list(itertools.islice(records, BATCH_ROWS)):
            good, refused = judge_batch(config, columns, batch, source_key, received_at)
            valid.append(good)
            quarantined.append(refused)
            rows += len(batch)
            del batch
            release_memory()  # a batch's freed memory back before the next is read
    except FileRefused as refused:
        quarantine = _quarantine(config, {}, [refused.reasons], [None], source_key, received_at)
        return Judged(
            staging=None,
            quarantine=quarantine,
            file_reasons=refused.reasons,
            counts={"rows": 0, "staged_rows": 0, "quarantined_rows": 0, "superseded_rows": 0},
        )
    if not valid:  # a header alone
        good, refused = judge_batch(config, columns, [], source_key, received_at)
        valid, quarantined = [good], [refused]
    quarantine = pa.concat_tables(quarantined)
    typed = pa.concat_tables(valid)
    del valid
    n_valid = typed.num_rows
    if repeats(typed[config.primary_key]):
        typed = latest_per_key(typed, config.primary_key, [config.cursor])  # ordered by key
    # else the rows stay in the file's order, not copied: a copy doubled the peak memory
    staging = typed
    counts = {
        "rows": rows,
        "staged_rows": staging.num_rows,
        "quarantined_rows": quarantine.num_rows,
        "superseded_rows": n_valid - staging.num_rows,
    }
    return Judged(staging=staging, quarantine=quarantine, counts=counts)


def repeats(keys: pa.ChunkedArray) -> bool:
    """Whether a key is held twice, by sorting (Arrow's hash count held ~60 MB for 430,000
    integers; a sort holds the indices and the sorted keys)."""
    if len(keys) < 2:
        return False
    ordered = keys.take(pc.sort_indices(keys))
    return pc.any(pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))).as_py() or False


def judge_batch(
    config: TableConfig,
    columns: list[str],
    rows: list[tuple[int, list[str]]],
    source_key: str,
    received_at: dt.datetime,
) -> tuple[pa.Table, pa.Table]:
    """(valid rows in the staging schema, with `_deleted` and `_extracted_at`; refused rows) of
    some records."""
    width = len(columns)
    ragged = [(line, r) for line, r in rows if len(r) != width]
    rows = [(line, r) for line, r in rows if len(r) == width]
    # Text keeps its spaces for the cleaning rules; a number or date may be padded (`1, 2`).
    cells = {
        c: [(r[i] if is_text(config.columns[c]) else r[i].strip()) or None for _, r in rows]
        for i, c in enumerate(columns)
    }
    result = validate(config, pa.table({c: pa.array(v, pa.string()) for c, v in cells.items()}))
    del cells

    refused_at = pc.indices_nonzero(result.refused).to_pylist()
    refused = result.cleaned_strings.filter(result.refused)
    q_columns = {c: refused[c].to_pylist() for c in config.columns}
    q_lines = [rows[i][0] for i in refused_at]
    q_reasons = list(result.reasons)
    for line, record in ragged:  # no cell can be trusted to belong to its column
        for c in config.columns:
            q_columns[c].append(None)
        q_lines.append(line)
        q_reasons.append([f"line {line}: {len(record)} fields, the header has {width}"])
    quarantine = _quarantine(config, q_columns, q_reasons, q_lines, source_key, received_at)

    valid = result.typed.filter(pc.invert(result.refused))
    n = valid.num_rows
    deleted = (
        pc.is_valid(valid[config.soft_delete])
        if config.soft_delete
        else pa.array([False] * n, pa.bool_())
    )
    valid = valid.append_column(pa.field("_deleted", pa.bool_(), nullable=False), deleted)
    valid = valid.append_column("_extracted_at", pa.array([received_at] * n, EXTRACTED_AT))
    return valid.cast(config.staging_schema()), quarantine
