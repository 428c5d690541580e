"""The checks of `staging/{table}`, evaluated inside the staging step, day by day.

`StagingQuality` observes each `StagingDay` while the staging writes stream (so memory stays
one day's worth, whatever the range), writes the day's quality report to the lake, and after
the writes yields one `AssetCheckResult` per check for the whole run:

- `quarantine_share` (the gate): share of the day's raw rows refused;
- `row_accounting`: raw rows = staged + quarantined + superseded (tombstone-ended versions
  count as superseded), and the raw manifest's `row_count` = the rows staging read;
- one check per refuse rule (`price_positive`, ...): the rows it refused, from `_reasons`;
- one check per `checks` rule but `references` (`id_unique`, `category_in_set`, ...): the
  staging rows breaking it (tombstones, which carry only a key, are not judged).

Checks that can end in ERROR are blocking: an ERROR day stops the marts in the same run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from volt_assets.defs.quality.gate import GATE, gate_check_spec, gate_day
from volt_assets.defs.quality.outcome import ERROR, MAX_SAMPLES, DayOutcome, Sample, Tally
from volt_assets.defs.quality.report import LAYER, ReportWriter
from volt_assets.defs.quality.rulebook import (
    LAKE_RULES,
    judge,
    refused_by_rule,
    rule_spec,
    sample_rows,
    unique_names,
)
from volt_assets.lib.config.table_config import Rule, TableConfig
from volt_assets.lib.staging.rules import broken_mask
from volt_assets.lib.staging.transform import StagingDay, file_duplicates, staging_slices
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import layer_prefix

ACCOUNTING = "row_accounting"


def staging_rules(config: TableConfig):
    """(rule, refuse?) of every rule the staging step judges itself."""
    return [(r, True) for r in config.refuse] + [
        (r, False) for r in config.checks if r.rule not in LAKE_RULES
    ]


def staging_check_specs(config: TableConfig, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """Every check the staging asset reports, built from the table configuration."""
    specs = [
        gate_check_spec(config, key),
        dg.AssetCheckSpec(
            ACCOUNTING,
            asset=key,
            blocking=True,
            description=(
                "Every raw row of the day is in exactly one of staging, quarantine or superseded "
                "(an older version, or one a noticed delete ended), and the raw manifest's row_count "
                "is what staging read. ERROR (blocks the marts) on any difference."
            ),
        ),
    ] + [rule_spec(config, key, rule, refuse) for rule, refuse in staging_rules(config)]
    unique_names(config, [s.name for s in specs])
    return specs


class StagingQuality:
    """Judges each staging day as it is built; `results()` gives the run's check results."""

    def __init__(
        self,
        config: TableConfig,
        store: LakeStore,
        days: list[dt.date],
        now: dt.datetime | None = None,
    ):
        self.config, self.store = config, store
        self.now = now or dt.datetime.now(dt.UTC)  # one `now` for the whole run
        self.key = dg.AssetKey(["staging", config.name])
        specs = staging_check_specs(config, self.key)
        self.tallies = {s.name: Tally(s.name, self.key) for s in specs}
        self.blocking = frozenset(s.name for s in specs if s.blocking)
        self.reports = ReportWriter(store, config.name, days)

    def observe(
        self, day: dt.date, built: StagingDay, raw_manifest: dict | None
    ) -> dict[str, DayOutcome]:
        """Judge one day (staging, quarantine, counts), write its report; returns the outcomes."""
        config, counts = self.config, built.counts
        hits = refused_by_rule(config, built.quarantine)
        outcomes = {
            GATE: gate_day(config, counts, hits),
            ACCOUNTING: self._accounting(counts, raw_manifest),
        }
        for rule, refuse in staging_rules(config):
            if refuse:
                found = hits[rule.name]
                failing, rows, samples = found.rows, counts["raw_rows"], found.samples
            else:
                failing, rows, samples = self._judge(built.staging, rule)
            outcomes[rule.name] = DayOutcome(
                failing, rows, judge(config, rule, failing, rows), samples
            )
        self.reports.submit(
            config.name, day, "staging", outcomes, extra={"counts": counts}, blocking=self.blocking
        )
        for name, outcome in outcomes.items():
            self.tallies[name].add(day, outcome)
        return outcomes

    def _judge(self, staging: pa.Table | Path, rule: Rule) -> tuple[int, int, list[Sample]]:
        """(failing, rows, samples) of a `checks` rule on a day's staging rows: the rule's
        columns alone, a day in a file a row group at a time. Tombstones (a noticed hard
        delete) carry only the key: nothing to judge."""
        config = self.config
        names = list(dict.fromkeys([config.primary_key, config.cursor, rule.column]))
        duplicated = None
        if rule.rule == "unique" and isinstance(staging, Path):
            duplicated = file_duplicates(staging, rule.column, config.cursor)
        failing, rows, samples = 0, 0, []
        for table in staging_slices(staging, names):
            live = table.filter(pc.is_valid(table[config.cursor]))
            broken = broken_mask(rule, live[rule.column], now=self.now, duplicated=duplicated)
            found = pc.sum(broken).as_py() or 0
            failing, rows = failing + found, rows + live.num_rows
            if found and len(samples) < MAX_SAMPLES:
                samples += sample_rows(config, live, broken, rule)[: MAX_SAMPLES - len(samples)]
        return failing, rows, samples

    def _accounting(self, counts: dict, manifest: dict | None) -> DayOutcome:
        raw = counts["raw_rows"]
        ended = counts["staged_rows"] + counts["quarantined_rows"] + counts["superseded_rows"]
        listed = (manifest or {}).get("row_count")
        problems = []
        if ended != raw:
            problems.append(f"{raw} raw rows but {ended} staged + quarantined + superseded")
        if listed != raw:
            problems.append(f"raw manifest row_count {listed} but staging read {raw} rows")
        failing = abs(raw - ended) + (abs(raw - listed) if isinstance(listed, int) else raw)
        return DayOutcome(
            failing=failing if problems else 0,
            rows=raw,
            verdict=ERROR if problems else None,
            samples=[Sample("counts", p) for p in problems],
            details={**counts, "manifest_row_count": listed},
            note="; ".join(problems),
        )

    def results(self):
        """One AssetCheckResult per check, for every day observed (call after the writes)."""
        t = self.config.thresholds
        reports = self.reports.uris()
        where = (
            reports[0]
            if len(reports) == 1
            else self.store.uri(layer_prefix(LAYER, self.config.name)) + "dt=*/report.json"
        )
        extra = {"quality_report": dg.MetadataValue.path(where)}
        texts = {
            GATE: (
                "no day above the thresholds",
                f"{{failing}} of {{rows}} raw rows ({{share}}) refused into quarantine, worst on {{days}} "
                f"(WARN above {t.warn_above:.0%}, ERROR above {t.error_above:.0%})",
            ),
            ACCOUNTING: ("every raw row accounted for", "raw rows unaccounted for on {days}"),
        }
        for name, tally in self.tallies.items():
            passed, failed = texts.get(
                name, ("no broken row", "{failing} of {rows} rows ({share}) broken, on {days}")
            )
            yield tally.result(passed, failed, extra)
