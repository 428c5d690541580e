"""The quality checks' bookkeeping, without services: reasons attributed to the rule that wrote
them, and severities from thresholds. The end-to-end behaviour is in test_quality.py."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from volt_assets.defs.quality.outcome import ERROR, WARN, capped, judge_share
from volt_assets.defs.quality.rulebook import can_error, judge, refused_by_rule
from volt_assets.lib.config.table_config import Rule, Thresholds, parse_config, table
from volt_assets.lib.staging.rules import broken_mask, validate

NUMBERS = st.sampled_from(
    ["10.00", "-1", "0", "0.01", "abc", "NaN", "", None, "100001", "7", "1e3"]
)
TEXTS = st.sampled_from(["Fuse", "  ", "", None, "\u00a0", "EUR", "eu", "ZŁ", "x@y.io", "a@b"])


def refused_counts(name: str, columns: dict[str, list]) -> tuple[dict, dict]:
    """(counts `refused_by_rule` reads from `_reasons`, counts `broken_mask` gives) for a batch."""
    config = table(name)
    n = len(next(iter(columns.values())))
    strings = pa.table(
        {c: pa.array(columns.get(c, [None] * n), pa.string()) for c in config.columns}
    )
    result = validate(config, strings)
    refused = result.cleaned_strings.filter(result.refused)
    quarantine = pa.table(
        {
            config.primary_key: refused[config.primary_key],
            "_reasons": pa.array(result.reasons, pa.list_(pa.string())),
        }
    )
    found = {k: v.rows for k, v in refused_by_rule(config, quarantine).items()}
    expected = {}
    for rule in config.refuse:
        typed, text = result.typed[rule.column], result.cleaned_strings[rule.column]
        # a value that did not fit its type is refused for that, not by the rule (rules.coerce)
        uncastable = (
            pc.and_(pc.is_null(typed), pc.is_valid(text))
            if not pa.types.is_string(typed.type)
            else None
        )
        mask = broken_mask(rule, typed)
        if uncastable is not None:
            mask = pc.and_(mask, pc.invert(uncastable))
        expected[rule.name] = pc.sum(pc.fill_null(mask, False)).as_py() or 0
    return found, expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(NUMBERS, TEXTS, TEXTS), min_size=1, max_size=30))
def test_each_refuse_rule_counts_the_rows_it_refused(rows):
    columns = {
        "id": [str(i) for i in range(len(rows))],
        "price": [r[0] for r in rows],
        "name": [r[1] for r in rows],
        "currency": [r[2] for r in rows],
    }
    found, expected = refused_counts("electrical_components", columns)
    assert {k: found[k] for k in expected} == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(NUMBERS, NUMBERS), min_size=1, max_size=30))
def test_two_rules_on_one_column_are_told_apart(rows):
    columns = {
        "id": [str(i) for i in range(len(rows))],
        "quantity": [r[0] for r in rows],
        "unit_price": [r[1] for r in rows],
        "ordered_at": ["2026-01-02T00:00:00Z"] * len(rows),
        "updated_at": ["2026-01-02T00:00:00Z"] * len(rows),
    }
    found, expected = refused_counts("orders", columns)
    assert {k: found[k] for k in expected} == expected


def test_unattributed_reasons_are_counted_by_column():
    found, _ = refused_counts(
        "electrical_components",
        {"id": ["1", "2"], "price": ["abc", "5"], "name": ["A", "B"], "currency": ["EUR", "EUR"]},
    )
    assert found["price_type"] == 1 and found["price_positive"] == 0


def test_severity_from_thresholds_never_above_the_rule():
    t = Thresholds(warn_above=0.0, error_above=0.05)
    assert judge_share(t, 0, 100) is None
    assert (
        judge_share(t, 1, 100) == WARN
        and judge_share(t, 5, 100) == WARN
        and judge_share(t, 6, 100) == ERROR
    )
    assert capped(ERROR, WARN) == WARN
    config = parse_config(
        {
            "tables": {
                "t": {
                    "primary_key": "id",
                    "cursor": "u",
                    "columns": {"id": "bigint", "u": "timestamptz", "c": "text"},
                    "thresholds": {
                        "warn_above": 0.02,
                        "error_above": 0.5,
                    },  # a table's own thresholds
                    "refuse": [{"column": "c", "rule": "not_blank"}],
                    "checks": [
                        {"column": "c", "rule": "in_set", "values": ["a"], "severity": "WARN"},
                        {"column": "id", "rule": "unique"},
                    ],
                }
            }
        }
    )["t"]
    refuse, in_set, unique = config.refuse[0], config.checks[0], config.checks[1]
    assert judge(config, refuse, 2, 100) is None  # 2 % is not above 2 %
    assert judge(config, refuse, 3, 100) == WARN
    assert judge(config, refuse, 51, 100) == ERROR and can_error(config, refuse)
    assert judge(config, in_set, 100, 100) == WARN and not can_error(config, in_set)
    # A `checks` rule is judged by the same shares (dbt's warn_if / error_if), capped by its severity:
    assert judge(config, unique, 1, 10_000) is None and can_error(
        config, unique
    )  # one odd row: under 2 %
    assert judge(config, unique, 300, 10_000) == WARN
    assert judge(config, unique, 5_001, 10_000) == ERROR
    assert Rule("c", "not_blank").name == "c_not_blank"


INVISIBLE = st.sampled_from(
    [
        "\u200b",
        "\u200c",
        "\u200d",
        "\u2060",
        "\ufeff",
        "\u00ad",
        " ",
        "\t",
        "\n",
        "\u00a0",
        "\u3000",
    ]
)


@given(st.lists(INVISIBLE, max_size=12).map("".join))
def test_not_blank_sees_through_zero_width_and_format_characters(text):
    """A name made only of zero-width / format characters and whitespace shows nothing: blank."""
    [broken] = broken_mask(Rule("name", "not_blank"), pa.array([text], pa.string())).to_pylist()
    assert broken is True


@given(st.lists(INVISIBLE, max_size=6).map("".join), st.sampled_from(["A", "Ż", "7", "👍", "-"]))
def test_not_blank_keeps_a_visible_character_among_invisible_ones(padding, visible):
    text = padding + visible + padding
    [broken] = broken_mask(Rule("name", "not_blank"), pa.array([text], pa.string())).to_pylist()
    assert broken is False
