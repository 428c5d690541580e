"""The daily schedule: every layer, in one run, for yesterday and the day before.

Each day's run covers [D-1, D] (D = yesterday, UTC) as one single-run backfill: raw D-1 is
re-read so rows that committed late (after D-1 was captured) are added, and staging and the
marts of D-1 are recomputed with them. Blocking checks on staging stop the marts of the run
when a day is refused, so a bad partition never reaches them.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from volt_assets.lib.config.partitions import UTC, daily_partitions
from volt_assets.lib.config.table_config import load_tables

DAILY_JOB = "volt_daily"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
CRON = "30 1 * * *"  # 01:30 UTC: yesterday is closed and late commits had 90 minutes


def daily_job() -> dg.UnresolvedAssetJobDefinition:
    selection = dg.AssetSelection.all()
    cdc_raw = [["raw", t.name] for t in load_tables().values() if t.cdc]
    if cdc_raw:  # a cdc table's raw days are the change capture's (defs/lake/cdc.py)
        selection = selection - dg.AssetSelection.assets(*cdc_raw)
    return dg.define_asset_job(
        DAILY_JOB,
        selection=selection,
        partitions_def=daily_partitions(),
        description="Every layer (raw, staging, marts, pictures) for a day or a range, in one run.",
    )


def days_for_tick(scheduled: dt.datetime, first_day: dt.date) -> tuple[dt.date, dt.date] | None:
    """The [start, end] days a tick at `scheduled` runs: yesterday and the day before, clipped
    to the first partition; None before the first partition exists."""
    yesterday = scheduled.astimezone(UTC).date() - dt.timedelta(days=1)
    if yesterday < first_day:
        return None
    return max(first_day, yesterday - dt.timedelta(days=1)), yesterday


def build_daily_schedule(job) -> dg.ScheduleDefinition:
    first_day = dt.date.fromisoformat(daily_partitions().start.date().isoformat())

    @dg.schedule(
        name="volt_daily_schedule",
        cron_schedule=CRON,
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="01:30 UTC: every layer for yesterday (and the day before, for late commits).",
    )
    def volt_daily_schedule(context: dg.ScheduleEvaluationContext):
        days = days_for_tick(context.scheduled_execution_time, first_day)
        if days is None:
            return dg.SkipReason(f"no complete partition yet (first day {first_day})")
        start, end = days
        return dg.RunRequest(
            run_key=f"daily-{end.isoformat()}",
            tags={RANGE_START: start.isoformat(), RANGE_END: end.isoformat()},
        )

    return volt_daily_schedule
