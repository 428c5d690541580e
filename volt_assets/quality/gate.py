"""The staging quality gate: the share of refused (quarantined) rows per day.

Like dbt's warn_if / error_if: above `thresholds.warn_above` the check WARNs, above
`thresholds.error_above` it is an ERROR, and because the check is blocking an ERROR stops
the marts downstream in the same run.
"""

from __future__ import annotations

import dagster as dg

from volt_assets.table_config import TableConfig

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
    )


def gate_result(config: TableConfig, per_day: dict[str, dict]) -> dg.AssetCheckResult:
    """Judge every day of the run; the worst day decides, every day is in the metadata."""
    days = {}
    for day, counts in sorted(per_day.items()):
        raw = counts["raw_rows"]
        share = counts["quarantined_rows"] / raw if raw else 0.0
        days[day] = {"raw_rows": raw, "quarantined_rows": counts["quarantined_rows"],
                     "share": round(share, 6), "verdict": config.thresholds.severity(share) or "PASS"}
    failing = [d for d, v in days.items() if v["verdict"] == "ERROR"]
    warning = [d for d, v in days.items() if v["verdict"] == "WARN"]
    worst = "ERROR" if failing else "WARN" if warning else None
    worst_share = max((v["share"] for v in days.values()), default=0.0)
    description = (
        f"ERROR on {', '.join(failing)}: more than {config.thresholds.error_above:.0%} refused"
        if failing
        else f"WARN on {', '.join(warning)}: rows refused" if warning else "no day above the thresholds"
    )
    return dg.AssetCheckResult(
        check_name=GATE,
        passed=worst is None,
        severity=dg.AssetCheckSeverity.ERROR if worst == "ERROR" else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "worst_share": dg.MetadataValue.float(round(worst_share, 6)),
            "days": dg.MetadataValue.json(days),
            "error_days": dg.MetadataValue.json(failing),
        },
    )
