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
valid rows are folded to one per primary key (the latest by the table's cursor), in the
staging schema.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from volt_assets.lib.config.table_config import REASONS_TYPE, TableConfig, is_text
from volt_assets.lib.staging.rules import validate
from volt_assets.lib.staging.transform import latest_per_key

MAX_BYTES = 64 * 1024 * 1024  # hand-made files; bigger extracts belong in the database pipeline
OTHER_DELIMITERS = (";", "\t", "|")
EXTRACTED_AT = pa.timestamp("us", tz="UTC")


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


def decode(body: bytes) -> str:
    """The file as text, or `FileRefused` when it is not UTF-8 CSV text at all."""
    if len(body) > MAX_BYTES:
        raise FileRefused([f"file: larger than {MAX_BYTES // (1024 * 1024)} MiB"])
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileRefused(["file: UTF-16 text (byte order mark), not UTF-8: save it as CSV UTF-8"])
    if b"\x00" in body:
        raise FileRefused(["file: binary content (NUL bytes), not CSV text"])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(
            [f"file: not UTF-8 text (invalid byte at offset {exc.start}): save it as CSV UTF-8"]
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise FileRefused(["file: empty"])
    return text


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


def read_rows(config: TableConfig, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The checked header and every non-blank record with the line it starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next(reader)
        columns = check_header(config, header, text.split("\n", 1)[0])
        line = reader.line_num + 1
        for record in reader:
            if record:  # a blank line
                rows.append((line, record))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise FileRefused([f"file: malformed CSV at line {reader.line_num}: {exc}"]) from None
    return columns, rows


def judge(config: TableConfig, body: bytes, source_key: str, received_at: dt.datetime) -> Judged:
    """Judge a landing file of `config`'s table received at `received_at` (its S3 LastModified)."""
    try:
        columns, rows = read_rows(config, decode(body))
    except FileRefused as refused:
        quarantine = _quarantine(config, {}, [refused.reasons], [None], source_key, received_at)
        return Judged(
            staging=None,
            quarantine=quarantine,
            file_reasons=refused.reasons,
            counts={"rows": 0, "staged_rows": 0, "quarantined_rows": 0, "superseded_rows": 0},
        )

    width = len(columns)
    ragged = [(line, r) for line, r in rows if len(r) != width]
    rows = [(line, r) for line, r in rows if len(r) == width]
    # Text keeps its spaces for the cleaning rules; a number or date may be padded (`1, 2`).
    cells = {
        c: [(r[i] if is_text(config.columns[c]) else r[i].strip()) or None for _, r in rows]
        for i, c in enumerate(columns)
    }
    result = validate(config, pa.table({c: pa.array(v, pa.string()) for c, v in cells.items()}))

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
    staging = latest_per_key(valid, config.primary_key, [config.cursor]).cast(
        config.staging_schema()
    )
    staging = staging.sort_by(config.primary_key)
    counts = {
        "rows": len(rows) + len(ragged),
        "staged_rows": staging.num_rows,
        "quarantined_rows": quarantine.num_rows,
        "superseded_rows": n - staging.num_rows,
    }
    return Judged(staging=staging, quarantine=quarantine, counts=counts)
