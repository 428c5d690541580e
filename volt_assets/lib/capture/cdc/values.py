"""pgoutput's text values as raw's JSON, exactly as `row_to_json` renders a captured row today:
numbers bare with every digit, booleans, jsonb embedded, timestamptz as ISO-8601 UTC with
microseconds (`2026-01-02T23:59:59.999999Z`) whatever the walsender's TimeZone."""

from __future__ import annotations

import datetime as dt
import json
import re

# Type OIDs (pg_type) rendered other than as a JSON string
BOOL, INT8, INT2, INT4, OID = 16, 20, 21, 23, 26
FLOAT4, FLOAT8, NUMERIC = 700, 701, 1700
JSON, JSONB = 114, 3802
TIMESTAMP, TIMESTAMPTZ = 1114, 1184
NUMBERS = frozenset({INT8, INT2, INT4, OID, FLOAT4, FLOAT8, NUMERIC})
JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
# The walsender renders dates with DateStyle ISO (asked for at connection): a numeric offset
ISO_INSTANT = re.compile(r"\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?[+-]\d\d(?::\d\d){0,2}")


class UnreadableValue(ValueError):
    """A value whose text is not what its type renders under DateStyle ISO."""


def utc_text(text: str) -> str:
    """A timestamptz's ISO text in any offset as raw's UTC text; `infinity` and BC years stay
    as PostgreSQL wrote them (row_to_json writes those as text too)."""
    if not ISO_INSTANT.fullmatch(text):
        if text in ("infinity", "-infinity") or text.endswith(" BC"):
            return text
        raise UnreadableValue(f"timestamptz value {text!r} is not ISO text with an offset")
    instant = dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    return instant.isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"


def json_value(type_oid: int, text: str | None) -> str:
    """The JSON text of one value (`null` for SQL NULL)."""
    if text is None:
        return "null"
    if type_oid in NUMBERS:
        # NaN and the infinities are no JSON numbers: row_to_json quotes them
        return text if JSON_NUMBER.fullmatch(text) else json.dumps(text)
    if type_oid == BOOL:
        return "true" if text == "t" else "false"
    if type_oid in (JSON, JSONB):
        # a json value keeps its own whitespace; a line break there is outside any string
        # (JSON escapes those), so a space keeps the value and raw one line per change
        return text.replace("\r", " ").replace("\n", " ")
    if type_oid == TIMESTAMPTZ:
        return json.dumps(utc_text(text))
    if type_oid == TIMESTAMP:
        return json.dumps(text.replace(" ", "T", 1))
    return json.dumps(text, ensure_ascii=False)


def json_row(columns, values) -> str:
    """One row as a JSON object, its columns in the table's order."""
    return (
        "{"
        + ",".join(
            f"{json.dumps(c.name, ensure_ascii=False)}:{json_value(c.type_oid, v)}"
            for c, v in zip(columns, values, strict=True)
        )
        + "}"
    )
