"""What the catalog says about a table, from the files that define it (no Dagster here).

- The mart tables' columns, types, nullability, keys and checks are read from their DDL in
  `sql/marts/` (a column's description is the `-- comment` at the end of its line), so the
  catalog cannot drift from the tables the IO manager creates.
- A code version is a digest of what decides an asset's contents: its table's settings and
  the source files of the code that builds it. Change either and Dagster marks it stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from volt_assets.lib.config.table_config import TableConfig

# Settings that only describe a table (the Columns tab, the pii tag): editing them changes no data.
DESCRIPTIVE_SETTINGS = frozenset({"descriptions", "pii"})
# Raw's extraction reads these settings; rules, cleaning and thresholds are staging's.
RAW_SETTINGS = (
    "name",
    "primary_key",
    "cursor",
    "sync",
    "columns",
    "soft_delete",
    "max_delete_share",
    "lookback_days",
)


@dataclass(frozen=True)
class DdlColumn:
    name: str
    type: str  # as the DDL spells it, e.g. numeric(14,2)
    not_null: bool
    description: str | None = None


@dataclass
class DdlTable:
    """One `CREATE TABLE` of the marts' DDL, with its indexes and comment."""

    name: str  # schema-qualified, e.g. marts.users_mart
    columns: list[DdlColumn] = field(default_factory=list)
    primary_key: tuple[str, ...] = ()
    checks: list[str] = field(default_factory=list)  # CHECK (...) text
    unique: list[str] = field(
        default_factory=list
    )  # unique indexes, e.g. "(component_id) WHERE is_current"
    comment: str | None = None
    path: Path | None = None  # the file that creates it
    line: int = 1  # the line of its CREATE TABLE


_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS\s+([\w.]+)\s*\((.*?)\n\);", re.S | re.I)
_COLUMN = re.compile(r"^(\w+)\s+(.+?)\s*(NOT NULL)?\s*,?\s*(?:--\s*(.*))?$", re.I)
_PRIMARY = re.compile(r"^PRIMARY KEY\s*\(([^)]*)\)", re.I)
_CHECK = re.compile(r"^CONSTRAINT\s+\w+\s+(CHECK\s*\(.*\))\s*,?\s*(?:--.*)?$", re.I)
_UNIQUE = re.compile(
    r"CREATE UNIQUE INDEX IF NOT EXISTS\s+\w+\s+ON\s+([\w.]+)\s*(\([^)]*\)[^;]*);", re.S | re.I
)
_COMMENT = re.compile(r"COMMENT ON TABLE\s+([\w.]+)\s+IS\s+'((?:[^']|'')*)';", re.S | re.I)


def _table_body(table: DdlTable, body: str) -> None:
    for line in (raw.strip() for raw in body.splitlines()):
        if not line or line.startswith("--"):
            continue
        if m := _PRIMARY.match(line):
            table.primary_key = tuple(c.strip() for c in m.group(1).split(","))
        elif m := _CHECK.match(line):
            table.checks.append(m.group(1))
        elif m := _COLUMN.match(line):
            table.columns.append(
                DdlColumn(
                    m.group(1),
                    m.group(2).strip(),
                    bool(m.group(3)),
                    (m.group(4) or "").strip() or None,
                )
            )
        else:
            raise ValueError(f"{table.name}: cannot read DDL line {line!r}")


def parse_ddl(text: str, path: Path | None = None) -> dict[str, DdlTable]:
    """The tables of DDL text, by schema-qualified name (the subset of SQL sql/marts/ uses)."""
    tables: dict[str, DdlTable] = {}
    for m in _CREATE.finditer(text):
        table = tables[m.group(1)] = DdlTable(
            m.group(1), path=path, line=text.count("\n", 0, m.start()) + 1
        )
        _table_body(table, m.group(2))
    return tables


def _add_indexes_and_comments(tables: dict[str, DdlTable], text: str) -> None:
    for m in _UNIQUE.finditer(text):
        tables[m.group(1)].unique.append(" ".join(m.group(2).split()))
    for m in _COMMENT.finditer(text):
        tables[m.group(1)].comment = " ".join(m.group(2).replace("''", "'").split())


def read_ddl(paths: Iterable[Path]) -> dict[str, DdlTable]:
    """Every table of the DDL files (an index may follow its table in a later file)."""
    tables: dict[str, DdlTable] = {}
    texts = [(p, p.read_text(encoding="utf-8")) for p in sorted(paths)]
    for path, text in texts:
        tables.update(parse_ddl(text, path))
    _add_indexes_and_comments(tables, "\n".join(text for _, text in texts))
    return tables


def arrow_type_name(arrow: pa.DataType) -> str:
    """The type as pyarrow prints it (what a Parquet reader shows), e.g. decimal128(12, 2)."""
    return str(arrow)


def settings_digest_input(config: TableConfig, settings: Iterable[str] | None = None) -> str:
    """A table's settings as canonical JSON: `settings` only, or every non-descriptive one."""
    values = dataclasses.asdict(config)
    names = (
        settings if settings is not None else [k for k in values if k not in DESCRIPTIVE_SETTINGS]
    )
    return json.dumps({k: values[k] for k in names}, sort_keys=True, default=str)


def code_version(parts: Iterable[str], files: Iterable[Path]) -> str:
    """A short digest of text parts and files' bytes (each file named by its folder and name,
    so the digest is the same in any checkout or image)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8") + b"\0")
    for path in sorted(set(files)):
        name = f"{path.parent.name}/{path.name}"
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
