"""The staging quality gate: the share of a day's raw rows refused into quarantine.

Like dbt's warn_if / error_if: above `thresholds.warn_above` the check WARNs, above
`thresholds.error_above` it is an ERROR, and because the check is blocking an ERROR stops
everything downstream of staging (the marts) in the same run. The per-rule checks say which
rule refused how many rows; the gate judges the day as a whole.

`blocking_failures` is the one rule every reader of a staging day applies, inside the run or
alone, on any Dagster instance: a day is refused when its gate fails (recomputed from the
manifest's counts with today's thresholds) or when any other blocking check of the table's day
ended in ERROR in the lake's quality report (the report, not a Dagster instance's event log, is
what a run on another instance can read too).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from volt_assets.defs.quality.outcome import ERROR, DayOutcome, Sample, judge_share
from volt_assets.defs.quality.report import read_report
from volt_assets.defs.quality.rulebook import RuleHits
from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.store.lake_store import LakeStore

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


def gate_failed(config: TableConfig, manifest: dict) -> bool:
    """The quarantine-share gate's verdict for a day, from the counts in its manifest."""
    counts = manifest.get("counts", {})
    raw = counts.get("raw_rows", 0)
    share = counts.get("quarantined_rows", 0) / raw if raw else 0.0
    return config.thresholds.severity(share) == ERROR


def blocking_failures(
    store: LakeStore, config: TableConfig, day: dt.date, manifest: dict | None
) -> list[str]:
    """The blocking checks that stop readers of `staging/{name}` day `day` ([]: the day may be
    read), each as `name` or `name (its note)`: the gate by the manifest (None: staging D was
    never written), and every other blocking check the day's report has in ERROR (raw's and
    staging's; a mart's own checks judge the mart, not this day)."""
    failed = [GATE] if manifest is not None and gate_failed(config, manifest) else []
    report = read_report(store, config.name, day) or {}
    for name, check in sorted(report.get("checks", {}).items()):
        if (
            name != GATE  # recomputed above with the thresholds tables.yaml has now
            and check.get("blocking")
            and check.get("verdict") == ERROR
            and check.get("layer") != "mart"
        ):
            failed.append(f"{name} ({check['note']})" if check.get("note") else name)
    return failed
