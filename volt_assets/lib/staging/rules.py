"""Cleaning, typing and validation rules, vectorised on Arrow: the one implementation behind
staging, quarantine, the asset checks and the landing-file sensor.

Input is a table of strings (each value as the text it arrived as: a raw JSON Lines value or
a CSV cell); output is the table in its declared Arrow types plus, per row, every reason it
is refused (all of them, not the first).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from volt_assets.lib.config.table_config import Rule, TableConfig, arrow_type

# Unicode's White_Space: ASCII whitespace, NEL and the separators (Zs, Zl, Zp). RE2's \s alone
# is ASCII-only and leaves out the vertical tab.
WHITESPACE = r"[\s\v\x{85}\p{Z}]"
WHITESPACE_RUN = WHITESPACE + "+"
# Whitespace other than the plain space: \s and \v, NEL, and every \p{Z} character but U+0020.
ODD_WHITESPACE = (
    r"[\t\n\v\f\r\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)
NEEDS_SQUISH = f"{ODD_WHITESPACE}|{WHITESPACE}{WHITESPACE}|^{WHITESPACE}|{WHITESPACE}$"
# Blank for `not_blank`: nothing but whitespace and format characters (Cf: zero-width space,
# joiners, word joiner, BOM, soft hyphen...), which show nothing. Squish keeps Cf characters
# (a joiner inside an emoji is part of the text); only the blank test looks through them.
BLANK = r"^[\s\v\x{85}\p{Z}\p{Cf}]*$"
# Arrow reads decimal text of more than 38 digits by dropping the extra ones (0.000…0001 -> 0.00):
# such text is refused as not a number of the column's type instead.
MAX_DECIMAL_DIGITS = 38
EMAIL_PATTERN = (
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$"
)
CURRENCY_PATTERN = r"^[A-Z]{3}$"
SAMPLE_CHARS = 40  # how much of an offending value a reason quotes


def squish(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Trim and collapse every run of whitespace (Unicode separators included) to one space."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    # Most text is already clean: find the values squishing would change (a regex match is ~10x
    # cheaper than a replace) and rewrite only those.
    dirty = pc.fill_null(pc.match_substring_regex(values, NEEDS_SQUISH), False)
    if not pc.any(dirty).as_py():
        return values
    collapsed = pc.replace_substring_regex(values.filter(dirty), WHITESPACE_RUN, " ")
    return pc.replace_with_mask(values, dirty, pc.utf8_trim(collapsed, characters=" "))


CLEANERS = {"squish": squish, "lower": pc.utf8_lower, "upper": pc.utf8_upper}


def clean_text(config: TableConfig, table: pa.Table) -> pa.Table:
    """Apply each column's cleaning steps (configured, or `squish` for text)."""
    for column in config.columns:
        steps = config.cleaning_of(column)
        if not steps or column not in table.column_names:
            continue
        values = table[column]
        for step in steps:
            values = CLEANERS[step](values)
        table = table.set_column(table.schema.get_field_index(column), column, values)
    return table


@dataclass
class Verdicts:
    """Per-row reasons, built column by column; rows without reasons are valid."""

    n: int

    def __post_init__(self) -> None:
        self._reasons: dict[int, list[str]] = {}
        # (column -> rows) whose value could not be typed: other rules on that cell stay quiet
        self.uncastable: dict[str, set[int]] = {}

    def add(self, broken: pa.Array | pa.ChunkedArray, describe, column: str | None = None) -> None:
        """Record `describe(i)` for every row where `broken` is true."""
        broken = pc.fill_null(broken, False)
        skip = self.uncastable.get(column, set()) if column else set()
        for i in pc.indices_nonzero(broken).to_pylist():
            if i not in skip:
                self._reasons.setdefault(i, []).append(describe(i))

    @property
    def refused(self) -> pa.Array:
        mask = [False] * self.n
        for i in self._reasons:
            mask[i] = True
        return pa.array(mask, pa.bool_())

    def reasons(self, indices) -> list[list[str]]:
        return [self._reasons.get(i, []) for i in indices]

    def __len__(self) -> int:
        return len(self._reasons)


def _quote(value) -> str:
    text = "null" if value is None else str(value)
    return repr(text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…")


def _not_a(column: str, declared: str, text, target: pa.DataType) -> str:
    """The reason for a value that does not cast; PostgreSQL's infinite and BC timestamps
    (raw spells them `infinity`, `-infinity`, `... BC`) are named as such."""
    if pa.types.is_timestamp(target) and (
        str(text).strip().lower() in ("infinity", "-infinity") or str(text).endswith(" BC")
    ):
        return f"{column}: {_quote(text)} lies outside the years 1 to 9999 the lake holds"
    return f"{column}: not a {declared}: {_quote(text)}"


def coerce(config: TableConfig, strings: pa.Table, verdicts: Verdicts) -> pa.Table:
    """Cast each declared column from text to its Arrow type; a value that does not fit becomes
    null and its row gets a reason (`price: not a numeric(12,2): 'NaN'`)."""
    arrays = []
    for column, declared in config.columns.items():
        target = arrow_type(declared)
        if column not in strings.column_names:
            # dropped at the source: the schema-drift check reports it; the rules judge the nulls
            arrays.append(pa.nulls(strings.num_rows, target))
            continue
        values = strings[column].combine_chunks() if strings.num_rows else pa.array([], pa.string())
        if pa.types.is_string(target):
            arrays.append(values.cast(pa.string()))
            continue
        to_cast = values
        if pa.types.is_decimal(target):
            digits = pc.utf8_length(pc.replace_substring_regex(values, r"[^0-9]", ""))
            too_long = pc.fill_null(pc.greater(digits, MAX_DECIMAL_DIGITS), False)
            if pc.any(too_long).as_py():
                to_cast = pc.if_else(too_long, pa.scalar("too many digits"), values)
        try:
            arrays.append(pc.cast(to_cast, target))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        # Slow path, only for a column holding a bad value: cast one value at a time.
        out, bad = [], []
        for i, v in enumerate(to_cast.to_pylist()):
            try:
                out.append(None if v is None else pc.cast(pa.array([v]), target)[0].as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                out.append(None)
                bad.append(i)
        raw = values.to_pylist()
        bad_rows = set(bad)
        verdicts.add(
            pa.array([i in bad_rows for i in range(len(raw))], pa.bool_()),
            lambda i, c=column, d=declared, r=raw, t=target: _not_a(c, d, r[i], t),
        )
        verdicts.uncastable[column] = bad_rows
        arrays.append(pa.array(out, target))
    return pa.table(arrays, schema=config.source_schema())


def _scalar(number, type_: pa.DataType) -> pa.Scalar:
    """A number as a scalar of a column's type (decimals built exactly, not through a float)."""
    if pa.types.is_decimal(type_):
        return pa.scalar(Decimal(str(number)), type_)
    return pa.scalar(number, type_)


def broken_mask(
    rule: Rule,
    values: pa.ChunkedArray | pa.Array,
    now: dt.datetime | None = None,
    duplicated: pa.Array | None = None,
) -> pa.Array:
    """True where a row-level rule is broken (null counts as broken except where noted).

    `duplicated`: for `unique` judged a slice at a time, the values held more than once by the
    whole day (found beforehand); otherwise `values` are the whole day."""
    kind = rule.rule
    if kind == "not_null":
        return pc.is_null(values)
    if kind == "not_blank":
        return pc.fill_null(pc.match_substring_regex(values, BLANK), True)
    if kind == "positive":
        return pc.fill_null(pc.less_equal(values, _scalar(0, values.type)), True)
    if kind == "at_most":
        # null is the business of `positive`/`not_null`; this rule judges the size only
        return pc.fill_null(pc.greater(values, _scalar(rule.value, values.type)), False)
    if kind == "currency_code":
        return pc.invert(pc.fill_null(pc.match_substring_regex(values, CURRENCY_PATTERN), False))
    if kind == "email":
        return pc.invert(pc.fill_null(pc.match_substring_regex(values, EMAIL_PATTERN), False))
    if kind == "not_in_future":
        now = now or dt.datetime.now(dt.UTC)
        return pc.fill_null(pc.greater(values, pa.scalar(now, values.type)), False)
    if kind == "in_set":
        return pc.fill_null(
            pc.invert(pc.is_in(values, value_set=pa.array(rule.values, values.type))), False
        )
    if kind == "unique":
        if duplicated is None:
            duplicated = duplicated_values(values)
        return pc.fill_null(pc.is_in(values, value_set=duplicated.cast(values.type)), False)
    raise ValueError(f"rule {kind!r} is not a row rule")


def duplicated_values(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The values held more than once; null counts as a value (two nulls are a duplicate), as
    in `transform.file_duplicates`."""
    counts = pc.value_counts(values)
    return pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))


def describe(rule: Rule, value) -> str:
    """The reason text of a broken rule, quoting the offending value."""
    texts = {
        "not_null": "missing",
        "not_blank": "blank",
        "positive": "missing" if value is None else f"not positive: {_quote(value)}",
        "at_most": f"above {rule.value:g}: {_quote(value)}"
        if rule.value is not None
        else "too large",
        "currency_code": f"not a three-letter currency code: {_quote(value)}",
        "email": f"not a valid email address: {_quote(value)}",
        "not_in_future": f"in the future: {_quote(value)}",
        "in_set": f"not a known value: {_quote(value)}",
        "unique": f"duplicated: {_quote(value)}",
    }
    return f"{rule.column}: {texts[rule.rule]}"


def apply_rules(rules, typed: pa.Table, verdicts: Verdicts) -> None:
    for rule in rules:
        values = typed[rule.column]
        mask = broken_mask(rule, values)
        verdicts.add(
            mask, lambda i, r=rule, v=values: describe(r, v[i].as_py()), column=rule.column
        )


@dataclass
class Validated:
    """A batch after cleaning, typing and the refuse rules."""

    typed: pa.Table  # declared types; refused rows included (see `refused`)
    cleaned_strings: pa.Table  # the cleaned text of every value, for quarantine
    refused: pa.Array  # bool per row
    reasons: list[list[str]]  # per refused row, in order of `refused` rows


def validate(config: TableConfig, strings: pa.Table) -> Validated:
    """Clean, type and judge a table of strings: the whole staging rule book in one call."""
    cleaned = clean_text(config, strings)
    verdicts = Verdicts(cleaned.num_rows)
    typed = coerce(config, cleaned, verdicts)
    apply_rules(config.refuse, typed, verdicts)
    refused = verdicts.refused
    indices = pc.indices_nonzero(refused).to_pylist()
    return Validated(
        typed=typed, cleaned_strings=cleaned, refused=refused, reasons=verdicts.reasons(indices)
    )
