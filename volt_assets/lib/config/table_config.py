"""The table configuration (`tables.yaml`) as typed objects: the one place that says what each
source table is, how it is extracted, typed, cleaned and validated.

Everything that needs a table's shape reads it from here: the extractor (columns, cursor),
staging (Arrow schema, cleaning, refuse rules), the asset checks (checks, thresholds), the
landing-file sensor and the Athena DDL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pyarrow as pa
import yaml

CONFIG_PATH = Path(__file__).parents[2] / "tables.yaml"  # the package root: where a table is added

TEXT_TYPES = ("text", "varchar", "char", "character varying", "character")
# How a table is read: a daily window on its cursor, a snapshot per partition, or every committed
# change from PostgreSQL's logical replication (docs/cdc.md).
SYNC_MODES = ("incremental", "full", "cdc")
# Columns every staging table adds after the source's own (contract: names start with `_`).
# `_reasons` of a quarantined row. The list's child is named `element` as Parquet's LIST spec
# names it, so a file read back has exactly the schema it was written with.
REASONS_TYPE = pa.list_(pa.field("element", pa.string()))
STAGING_EXTRA_FIELDS = (
    pa.field("_deleted", pa.bool_(), nullable=False),
    pa.field("_extracted_at", pa.timestamp("us", tz="UTC")),
)
REFUSE_RULES = {"not_null", "not_blank", "positive", "at_most", "currency_code", "email"}
CHECK_RULES = REFUSE_RULES | {"not_in_future", "unique", "in_set", "references"}


# DuckDB reads a JSON number as a double: 15 significant digits always come back exactly
# (99999999999999.99, 16 digits, comes back as ...98). A wider declared numeric would be rounded
# silently between raw and staging, so it is refused when the configuration loads.
MAX_NUMERIC_PRECISION = 15


def arrow_type(declared: str) -> pa.DataType:
    """The Arrow type of a declared PostgreSQL type: exact decimals, UTC microseconds."""
    t = declared.strip().lower()
    if m := re.fullmatch(r"numeric\((\d+),\s*(\d+)\)", t):
        if int(m.group(1)) > MAX_NUMERIC_PRECISION:
            raise ValueError(
                f"declared type {declared!r}: raw JSON Lines are read back with JSON numbers as doubles, exact "
                f"to {MAX_NUMERIC_PRECISION} digits only; declare at most numeric({MAX_NUMERIC_PRECISION},s)"
            )
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    simple = {
        "bigint": pa.int64(),
        "integer": pa.int32(),
        "int": pa.int32(),
        "smallint": pa.int16(),
        "boolean": pa.bool_(),
        "double precision": pa.float64(),
        "date": pa.date32(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "jsonb": pa.string(),  # JSON text, exactly as the source wrote it
        "json": pa.string(),
    }
    if t in simple:
        return simple[t]
    if t.startswith(TEXT_TYPES):
        return pa.string()
    raise ValueError(f"unsupported declared type {declared!r}")


def is_text(declared: str) -> bool:
    return declared.strip().lower().startswith(TEXT_TYPES)


def postgres_type_family(declared: str) -> str:
    """How the source names the type (for schema-drift comparison): information_schema's
    `data_type`, and a numeric's precision and scale as `numeric(12,2)` (`source_columns`)."""
    t = declared.strip().lower()
    if t.startswith("numeric"):
        return t.replace(" ", "")
    if t.startswith("char(") or t == "char":
        return "character"
    return {
        "text": "text",
        "varchar": "character varying",
        "bigint": "bigint",
        "integer": "integer",
        "int": "integer",
        "smallint": "smallint",
        "boolean": "boolean",
        "double precision": "double precision",
        "date": "date",
        "timestamptz": "timestamp with time zone",
        "jsonb": "jsonb",
        "json": "json",
    }.get(t, t)


def is_numeric(source_type: str) -> bool:
    return source_type == "numeric" or source_type.startswith("numeric(")


def rescaled(declared: str, actual: str) -> bool:
    """A numeric column whose precision or scale changed (`numeric(12,2)` -> `numeric(14,4)`):
    staging would round or refuse values it used to take, so the day stops (not just warns)."""
    return (
        is_numeric(postgres_type_family(declared))
        and is_numeric(actual)
        and (postgres_type_family(declared) != actual)
    )


# Types a primary key or cursor may have: their text is the same however it is read (raw's
# versions index compares captures by it), which floating and numeric values' is not.
KEY_TYPES = frozenset(
    {
        "bigint",
        "integer",
        "smallint",
        "text",
        "character varying",
        "character",
        "date",
        "timestamp with time zone",
    }
)


@dataclass(frozen=True)
class Rule:
    """One validation rule on one column; `refuse` rules quarantine, `checks` only report."""

    column: str
    rule: str
    severity: str = "ERROR"
    value: float | None = None
    values: tuple[str, ...] = ()
    table: str | None = None

    @property
    def name(self) -> str:
        return f"{self.column}_{self.rule}"


@dataclass(frozen=True)
class Thresholds:
    """Share of refused rows above which the quality gate WARNs / ERRORs (dbt's warn_if/error_if)."""

    warn_above: float = 0.0
    error_above: float = 0.05

    def severity(self, share: float) -> str | None:
        if share > self.error_above:
            return "ERROR"
        if share > self.warn_above:
            return "WARN"
        return None


@dataclass(frozen=True)
class TableConfig:
    name: str
    primary_key: str
    cursor: str
    sync: str
    columns: dict[str, str]
    clean: dict[str, tuple[str, ...]] = field(default_factory=dict)
    refuse: tuple[Rule, ...] = ()
    checks: tuple[Rule, ...] = ()
    soft_delete: str | None = None
    thresholds: Thresholds = Thresholds()
    max_delete_share: float = 0.10
    lookback_days: int = 1
    # What the catalog shows, not what the pipeline does (left out of code versions).
    descriptions: dict[str, str] = field(default_factory=dict)
    pii: tuple[str, ...] = ()  # columns holding personal data

    @property
    def incremental(self) -> bool:
        return self.sync == "incremental"

    @property
    def cdc(self) -> bool:
        """Read from logical replication: every committed change, deletes included."""
        return self.sync == "cdc"

    def cleaning_of(self, column: str) -> tuple[str, ...]:
        """Cleaning steps of a column: as configured, else `squish` for text."""
        if column in self.clean:
            return self.clean[column]
        return ("squish",) if is_text(self.columns[column]) else ()

    @property
    def timestamp_columns(self) -> list[str]:
        return [c for c, t in self.columns.items() if pa.types.is_timestamp(arrow_type(t))]

    @property
    def json_columns(self) -> list[str]:
        return [c for c, t in self.columns.items() if t.strip().lower() in ("json", "jsonb")]

    def source_schema(self) -> pa.Schema:
        """The declared columns, typed."""
        return pa.schema([pa.field(c, arrow_type(t)) for c, t in self.columns.items()])

    def staging_schema(self) -> pa.Schema:
        """Staging's one declared schema: source columns plus `_deleted`, `_extracted_at`."""
        return pa.schema(list(self.source_schema()) + list(STAGING_EXTRA_FIELDS))

    def quarantine_schema(self) -> pa.Schema:
        """Quarantine keeps every value as the text it arrived as, plus why it was refused."""
        return pa.schema(
            [pa.field(c, pa.string()) for c in self.columns]
            + [
                pa.field("_reasons", REASONS_TYPE),
                pa.field("_extracted_at", pa.timestamp("us", tz="UTC")),
            ]
        )


def _rule(raw: dict, default_severity: str) -> Rule:
    rule = Rule(
        column=raw["column"],
        rule=raw["rule"],
        severity=raw.get("severity", default_severity).upper(),
        value=raw.get("value"),
        values=tuple(raw.get("values", ())),
        table=raw.get("table"),
    )
    if rule.severity not in ("WARN", "ERROR"):
        raise ValueError(f"{rule.name}: severity must be WARN or ERROR")
    return rule


def _columns(where: str, raw: dict) -> tuple[dict[str, str], dict[str, str], tuple[str, ...]]:
    """(type, description, pii columns) of a table's `columns`: each is a type (`id: bigint`) or
    a mapping (`email: {type: text, description: ..., pii: true}`)."""
    types, descriptions, pii = {}, {}, []
    for column, spec in raw["columns"].items():
        column = str(column)
        if isinstance(spec, dict):
            unknown = set(spec) - {"type", "description", "pii"}
            if "type" not in spec or unknown:
                raise ValueError(
                    f"{where}: column {column!r}: give `type` (and optionally `description`, "
                    f"`pii`){f'; unknown {sorted(unknown)}' if unknown else ''}"
                )
            if spec.get("description"):
                descriptions[column] = " ".join(str(spec["description"]).split())
            if spec.get("pii"):
                pii.append(column)
            spec = spec["type"]
        types[column] = str(spec)
    return types, descriptions, tuple(pii)


def parse_config(document: dict) -> dict[str, TableConfig]:
    """Validate and build the table configs; errors name the table and the setting."""
    defaults = document.get("defaults", {})
    tables: dict[str, TableConfig] = {}
    for name, raw in document["tables"].items():
        where = f"tables.yaml: table {name!r}"
        columns, descriptions, pii = _columns(where, raw)
        for c, t in columns.items():
            try:
                arrow_type(t)
            except ValueError as exc:
                raise ValueError(f"{where}: column {c!r}: {exc}") from None
        for key in ("primary_key", "cursor"):
            if raw[key] not in columns:
                raise ValueError(f"{where}: {key} {raw[key]!r} is not a declared column")
            if postgres_type_family(columns[raw[key]]) not in KEY_TYPES:
                raise ValueError(
                    f"{where}: {key} {raw[key]!r} is {columns[raw[key]]}; a key or cursor must be "
                    f"one of {', '.join(sorted(KEY_TYPES))} (its text must be exact)"
                )
        if raw.get("sync", "incremental") not in SYNC_MODES:
            raise ValueError(f"{where}: sync must be one of {', '.join(SYNC_MODES)}")
        refuse = tuple(_rule(r, "ERROR") for r in raw.get("refuse", ()))
        checks = tuple(_rule(r, "ERROR") for r in raw.get("checks", ()))
        for r in refuse:
            if r.rule not in REFUSE_RULES:
                raise ValueError(
                    f"{where}: {r.rule!r} cannot refuse rows (one of {sorted(REFUSE_RULES)})"
                )
        for r in refuse + checks:
            if r.column not in columns:
                raise ValueError(f"{where}: rule {r.rule!r} names unknown column {r.column!r}")
            if r.rule not in CHECK_RULES:
                raise ValueError(f"{where}: unknown rule {r.rule!r}")
        thresholds = Thresholds(**{**defaults.get("thresholds", {}), **raw.get("thresholds", {})})
        tables[name] = TableConfig(
            name=name,
            primary_key=raw["primary_key"],
            cursor=raw["cursor"],
            sync=raw.get("sync", "incremental"),
            columns=columns,
            clean={c: tuple(steps) for c, steps in (raw.get("clean") or {}).items()},
            refuse=refuse,
            checks=checks,
            soft_delete=raw.get("soft_delete"),
            thresholds=thresholds,
            max_delete_share=float(
                raw.get("max_delete_share", defaults.get("max_delete_share", 0.10))
            ),
            lookback_days=int(raw.get("lookback_days", defaults.get("lookback_days", 1))),
            descriptions=descriptions,
            pii=pii,
        )
    return tables


def load_tables(path: Path | None = None) -> dict[str, TableConfig]:
    """The tables of `path` (default: CONFIG_PATH, read when called so a test can point it at
    another file)."""
    return _load_tables(path or CONFIG_PATH)


@cache
def _load_tables(path: Path) -> dict[str, TableConfig]:
    with open(path, encoding="utf-8") as fh:
        return parse_config(yaml.safe_load(fh))


def table(name: str) -> TableConfig:
    return load_tables()[name]
