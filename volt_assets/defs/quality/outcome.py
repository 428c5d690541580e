"""What a check found on one day, and how the days of a run add up to one check result.

Every check here works per partition day (a run may cover one day or a year of them in a
single-run backfill) and produces a `DayOutcome` per day. A `Tally` adds the days up into the
one `AssetCheckResult` Dagster records per check and run: the worst day decides the verdict,
the metadata keeps the totals, up to 20 sample keys with their reasons, and a line per day
that found something. The full per-day detail goes to the lake's quality report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg

from volt_assets.lib.config.table_config import Thresholds

MAX_SAMPLES = 20  # sample keys a check shows (per run, and per day in the report)
WARN, ERROR = "WARN", "ERROR"
_RANK = {None: 0, WARN: 1, ERROR: 2}


def worst(*verdicts: str | None) -> str | None:
    """The most severe of some verdicts (None = passed)."""
    return max(verdicts, key=_RANK.__getitem__, default=None)


def capped(verdict: str | None, ceiling: str) -> str | None:
    """A verdict no more severe than `ceiling` (a WARN-only check never ERRORs)."""
    return ceiling if _RANK[verdict] > _RANK[ceiling] else verdict


def judge_share(thresholds: Thresholds, failing: int, rows: int) -> str | None:
    """WARN / ERROR / None for `failing` of `rows`, by the table's (or the check's) thresholds."""
    return thresholds.severity(failing / rows if rows else 0.0) if failing else None


@dataclass
class Sample:
    """One offending row (or file): its key and why."""

    key: str
    reason: str

    def as_dict(self, day: str | None = None) -> dict:
        out = {"key": self.key, "reason": self.reason}
        return {"dt": day, **out} if day else out


@dataclass
class DayOutcome:
    """One check on one partition day."""

    failing: int  # rows (or files) that break the check
    rows: int  # rows (or files) judged
    verdict: str | None  # None (passed), WARN or ERROR
    samples: list[Sample] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # check-specific numbers (per rule counts, ...)
    note: str = ""  # a sentence for the reader when the numbers alone do not say it

    @property
    def share(self) -> float:
        return self.failing / self.rows if self.rows else 0.0

    def as_dict(self) -> dict:
        """The report's form of a day (JSON-ready)."""
        out = {
            "verdict": self.verdict or "PASS",
            "failing": self.failing,
            "rows": self.rows,
            "share": round(self.share, 6),
            "samples": [s.as_dict() for s in self.samples[:MAX_SAMPLES]],
        }
        if self.details:
            out["details"] = self.details
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Tally:
    """A check's days, added up while a run streams through them (memory: one line per day
    that found something, and at most MAX_SAMPLES samples)."""

    check_name: str
    asset_key: dg.AssetKey
    unit: str = "rows"
    days_checked: int = 0
    failing: int = 0
    rows: int = 0
    worst_share: float = 0.0
    days: dict[str, dict] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)  # summed integer `details` (per rule, ...)
    notes: list[str] = field(default_factory=list)

    def add(self, day: dt.date, outcome: DayOutcome) -> None:
        key = day.isoformat()
        self.days_checked += 1
        self.failing += outcome.failing
        self.rows += outcome.rows
        self.worst_share = max(self.worst_share, outcome.share)
        if outcome.failing or outcome.verdict or outcome.note:
            line = {
                "verdict": outcome.verdict or "PASS",
                "failing": outcome.failing,
                "rows": outcome.rows,
                "share": round(outcome.share, 6),
            }
            if outcome.note:
                line["note"] = outcome.note
            self.days[key] = line
        for sample in outcome.samples[: MAX_SAMPLES - len(self.samples)]:
            self.samples.append(sample.as_dict(key))
        for name, value in outcome.details.items():
            if isinstance(value, int) and not isinstance(value, bool):
                self.totals[name] = self.totals.get(name, 0) + value
        if outcome.note and len(self.notes) < 5:
            self.notes.append(f"{key}: {outcome.note}")

    def verdict(self) -> str | None:
        return worst(
            *(line["verdict"] if line["verdict"] != "PASS" else None for line in self.days.values())
        )

    def days_with(self, verdict: str) -> list[str]:
        return sorted(d for d, line in self.days.items() if line["verdict"] == verdict)

    def result(
        self, passed_text: str, failed_text: str, extra: dict | None = None
    ) -> dg.AssetCheckResult:
        """The run's one result for this check. `failed_text` may use {failing}, {rows}, {unit},
        {share} (a percentage) and {days} (the worst days)."""
        verdict = self.verdict()
        bad_days = self.days_with(ERROR) or self.days_with(WARN)
        days = ", ".join(bad_days[:10]) + (
            f" (+{len(bad_days) - 10} more)" if len(bad_days) > 10 else ""
        )
        share = f"{self.failing / self.rows:.1%}" if self.rows else "0%"
        if verdict is None:
            description = passed_text
        else:
            description = failed_text.format(
                failing=self.failing, rows=self.rows, unit=self.unit, share=share, days=days
            )
        if verdict is not None and self.notes:
            description += ". " + "; ".join(self.notes[:2])
        metadata = {
            "verdict": dg.MetadataValue.text(verdict or "PASS"),
            f"failing_{self.unit}": dg.MetadataValue.int(self.failing),
            f"{self.unit}_checked": dg.MetadataValue.int(self.rows),
            "share": dg.MetadataValue.float(
                round(self.failing / self.rows, 6) if self.rows else 0.0
            ),
            "worst_day_share": dg.MetadataValue.float(round(self.worst_share, 6)),
            "days_checked": dg.MetadataValue.int(self.days_checked),
            "error_days": dg.MetadataValue.json(self.days_with(ERROR)),
            "warn_days": dg.MetadataValue.json(self.days_with(WARN)),
            "days": dg.MetadataValue.json(self.days),
            "sample_keys": dg.MetadataValue.json([s["key"] for s in self.samples]),
            "samples": dg.MetadataValue.json(self.samples),
        }
        if self.totals:
            metadata["totals"] = dg.MetadataValue.json(self.totals)
        for name, value in (extra or {}).items():
            metadata[name] = (
                value if isinstance(value, dg.MetadataValue) else dg.MetadataValue.json(value)
            )
        return dg.AssetCheckResult(
            asset_key=self.asset_key,
            check_name=self.check_name,
            passed=verdict is None,
            # a passed result's severity means nothing; ERROR is what a blocking spec acts on
            severity=dg.AssetCheckSeverity.ERROR
            if verdict == ERROR
            else dg.AssetCheckSeverity.WARN,
            description=description,
            metadata=metadata,
        )
