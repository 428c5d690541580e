"""The staging quality gate: the share of a day's raw rows refused into quarantine.

Like dbt's warn_if / error_if: above `thresholds.warn_above` the check WARNs, above
`thresholds.error_above` it is an ERROR, and because the check is blocking an ERROR stops
everything downstream of staging (the marts) in the same run. The per-rule checks say which
rule refused how many rows; the gate judges the day as a whole.
"""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.quality.outcome import DayOutcome, Sample, judge_share
from volt_assets.defs.quality.rulebook import RuleHits
from volt_assets.lib.config.table_config import TableConfig

GATE = "quarantine_share"


def gate_check_spec(config: TableConfig, key: dg.AssetKey) -> dg.AssetCheckSpec:
    t = config.thresholds
    return dg.AssetCheckSpec(
        GATE,
        asset=key,
        blocking=True,
        description=(
            f"Share of a day's raw rows refused into quarantine: WARN above {t.warn_above:.0%}, "
            f"ERROR (blocks the marts) above {t.error_above:.0%}."
        ),
        metadata={"warn_above": t.warn_above, "error_above": t.error_above},
    )


def gate_day(config: TableConfig, counts: dict, hits: dict[str, RuleHits]) -> DayOutcome:
    """The gate's verdict on one day, with how many rows each rule refused."""
    raw, refused = counts["raw_rows"], counts["quarantined_rows"]
    samples: list[Sample] = []
    for rule_hits in hits.values():  # a few rows of every rule that refused any
        samples.extend(rule_hits.samples[:3])
    return DayOutcome(
        failing=refused,
        rows=raw,
        verdict=judge_share(config.thresholds, refused, raw),
        samples=samples,
        details={f"refused_by_{name}": h.rows for name, h in hits.items() if h.rows},
    )
