"""From the table configuration to checks: one check per configured rule, its severity, and
which quarantine reasons a refuse rule wrote.

Rules are implemented once, in `volt_assets.lib.staging.rules` (`broken_mask`, `describe`); nothing
here re-implements one. A refuse rule is judged by the quarantine: the rows it refused are the
rows whose `_reasons` hold a text `describe` writes for it. A `checks` rule runs `broken_mask`
on the staging rows. `references` is the one rule that needs the lake (known keys) and lives in
`quality/references.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from volt_assets.defs.quality.outcome import ERROR, MAX_SAMPLES, Sample, capped, judge_share
from volt_assets.lib.config.table_config import Rule, TableConfig, Thresholds
from volt_assets.lib.staging.rules import describe

LAKE_RULES = {"references"}  # rules judged outside the staging step (they read other tables)
_PROBE = "VOLT-PROBE-VALUE"


def thresholds_of(config: TableConfig, rule: Rule) -> Thresholds | None:
    """The thresholds a rule is judged by: its own (`thresholds:` on the rule, when the table
    configuration carries it), else the table's, for refuse and `checks` rules alike: like dbt's
    warn_if / error_if, a share of the day's failing rows decides (by default any row WARNs,
    more than 5 % is an ERROR), so one odd row never blocks a day on its own."""
    own = getattr(rule, "thresholds", None)
    if own is not None:
        return own
    return config.thresholds


def judge(config: TableConfig, rule: Rule, failing: int, rows: int) -> str | None:
    """A rule's verdict for a day: by thresholds, never above the rule's configured severity."""
    thresholds = thresholds_of(config, rule)
    verdict = (
        judge_share(thresholds, failing, rows)
        if thresholds
        else (rule.severity if failing else None)
    )
    return capped(verdict, rule.severity)


def can_error(config: TableConfig, rule: Rule) -> bool:
    """Whether the rule's check can ever end in ERROR (then it is blocking: WARN never blocks)."""
    if rule.severity != ERROR:
        return False
    thresholds = thresholds_of(config, rule)
    return thresholds is None or thresholds.error_above < 1.0


def verdict_rule(config: TableConfig, rule: Rule) -> str:
    """The verdict a check can reach, as its description says it: the thresholds, capped by the
    rule's own severity (a WARN rule never says ERROR)."""
    thresholds = thresholds_of(config, rule)
    if thresholds is None:
        return f"{rule.severity} on any broken row"
    warn = f"WARN above {thresholds.warn_above:.0%} of the day's rows"
    if rule.severity != ERROR:
        return f"{warn}, never more (the rule's severity is {rule.severity})"
    return f"{warn}, ERROR above {thresholds.error_above:.0%}"


def rule_spec(
    config: TableConfig, key: dg.AssetKey, rule: Rule, refuse: bool, **kwargs
) -> dg.AssetCheckSpec:
    """The check of one configured rule, named like the rule (`price_positive`)."""
    how = verdict_rule(config, rule)
    what = "rows refused into quarantine by" if refuse else "staging rows breaking"
    blocking = can_error(config, rule)
    return dg.AssetCheckSpec(
        rule.name,
        asset=key,
        blocking=blocking,
        description=(
            f"{what} `{rule.rule}` on `{rule.column}`"
            + (f" ({rule.table})" if rule.table else "")
            + f": {how}"
            + ("; an ERROR blocks downstream." if blocking else ".")
        ),
        metadata={
            "rule": rule.rule,
            "column": rule.column,
            "severity": rule.severity,
            "kind": "refuse" if refuse else "check",
        },
        **kwargs,
    )


def unique_names(config: TableConfig, names: list[str]) -> None:
    """Two rules with one name would be two checks with one name: say which, at load time."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(
                f"tables.yaml: table {config.name!r}: two checks named {name!r} "
                "(a rule is configured twice, in refuse and in checks?)"
            )
        seen.add(name)


@dataclass(frozen=True)
class ReasonPattern:
    """The reason texts `rules.describe` writes for a rule: exact texts, and prefixes before a
    quoted value. Derived from `describe` itself, so the texts are spelled in one place."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, rule: Rule) -> ReasonPattern:
        exact, prefixes = set(), []
        for value in (None, _PROBE):
            text = describe(rule, value)
            if _PROBE in text:
                prefixes.append(text.split(_PROBE)[0].rstrip("'\""))
            else:
                exact.add(text)
        return cls(frozenset(exact), tuple(prefixes))

    def mask(self, reasons: pa.Array) -> pa.Array:
        hit = pc.is_in(reasons, value_set=pa.array(sorted(self.exact), pa.string()))
        for prefix in self.prefixes:
            hit = pc.or_(hit, pc.starts_with(reasons, prefix))
        return pc.fill_null(hit, False)


@dataclass
class RuleHits:
    """Quarantined rows of one day a refuse rule (or an unattributed reason) accounts for."""

    rows: int
    samples: list[Sample]


def refused_by_rule(config: TableConfig, quarantine: pa.Table) -> dict[str, RuleHits]:
    """Per refuse rule, the day's quarantined rows it refused, from the `_reasons` column.

    Reasons no rule wrote (a value that did not fit its declared type, `price: not a
    numeric(12,2): 'abc'`) are counted under `{column}_type`."""
    pk = config.primary_key
    out: dict[str, RuleHits] = {r.name: RuleHits(0, []) for r in config.refuse}
    if quarantine.num_rows == 0:
        return out
    lists = quarantine["_reasons"].combine_chunks()
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    keys = quarantine[pk].combine_chunks()
    claimed = pa.array([False] * len(flat), pa.bool_())

    def hits(mask: pa.Array) -> RuleHits:
        # samples from the first few matching reasons only: a day may quarantine millions
        first = pc.indices_nonzero(mask).slice(0, MAX_SAMPLES * 4)
        first_of_row: dict[int, str] = {}
        for row, reason in zip(parents.take(first).to_pylist(), flat.take(first).to_pylist()):
            if len(first_of_row) < MAX_SAMPLES:
                first_of_row.setdefault(row, reason)
        samples = [Sample(_key(keys[row].as_py()), reason) for row, reason in first_of_row.items()]
        return RuleHits(pc.count_distinct(pc.filter(parents, mask)).as_py(), samples)

    for rule in config.refuse:
        mask = ReasonPattern.of(rule).mask(flat)
        claimed = pc.or_(claimed, mask)
        out[rule.name] = hits(mask)
    unclaimed = pc.invert(claimed)
    if pc.any(unclaimed).as_py():
        # a reason starts with its column: `price: not a numeric(12,2): 'abc'`
        column_of = pc.list_element(pc.split_pattern(flat, ":", max_splits=1), 0)
        for column in pc.unique(pc.filter(column_of, unclaimed)).to_pylist():
            out[f"{column}_type"] = hits(pc.and_(unclaimed, pc.equal(column_of, column)))
    return out


def _key(value) -> str:
    return "null" if value is None else str(value)


def sample_rows(config: TableConfig, table: pa.Table, broken: pa.Array, rule: Rule) -> list[Sample]:
    """Up to MAX_SAMPLES broken rows of a table, as (primary key, `describe` of the value)."""
    indices = pc.indices_nonzero(broken).slice(0, MAX_SAMPLES)
    keys = table[config.primary_key].take(indices).to_pylist()
    values = table[rule.column].take(indices).to_pylist()
    return [Sample(_key(k), describe(rule, v)) for k, v in zip(keys, values)]
