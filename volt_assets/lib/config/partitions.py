"""Daily UTC partitions and their half-open windows `[D 00:00, D+1 00:00)`.

Every datetime here is timezone-aware UTC: naive and aware values are never mixed.
"""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

UTC = dt.UTC


def partitions_start() -> str:
    """VOLT_PARTITIONS_START (settings fill it from the seeded stack or a fallback)."""
    return os.environ["VOLT_PARTITIONS_START"]


def first_day() -> dt.date:
    """The first partition day: the one that opens the lake."""
    return dt.date.fromisoformat(partitions_start())


def today() -> dt.date:
    """The current UTC day. VOLT_TODAY (YYYY-MM-DD) overrides the clock: the test suite sets it
    to replay a timeline of days; operators leave it unset."""
    override = os.environ.get("VOLT_TODAY")
    return dt.date.fromisoformat(override) if override else dt.datetime.now(UTC).date()


def reaches_present(last_day: dt.date) -> bool:
    """True for a run whose last day is yesterday or later (UTC): the daily schedule's run, a
    backfill up to yesterday or today. Only such a run tombstones hard deletes, so a re-run of
    an older day never gains deletes made after it."""
    return last_day >= today() - dt.timedelta(days=1)


def capture_window(day: dt.date) -> tuple[dt.datetime | None, dt.datetime]:
    """The cursor window raw D captures: D's day, except the first partition, which opens the
    lake with everything before its end (start None: no lower bound)."""
    start, end = day_window(day)
    return (None if day == first_day() else start), end


def daily_partitions() -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=partitions_start(), timezone="UTC")


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The half-open UTC window of a partition day."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + dt.timedelta(days=1)


def day_of(instant: dt.datetime) -> dt.date:
    """The partition day an aware instant falls in."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: partition days are defined on UTC instants only")
    return instant.astimezone(UTC).date()


def days_between(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """The days of a half-open window `[start, end)` made of whole UTC days."""
    days, day = [], day_of(start)
    while day_window(day)[0] < end:
        days.append(day)
        day += dt.timedelta(days=1)
    return days


def context_days(context) -> list[dt.date]:
    """Every partition day of a run, whether it targets one partition or a range (single-run
    backfill: `context.partition_key` would raise there, the time window does not)."""
    window = context.partition_time_window
    return days_between(window.start.astimezone(UTC), window.end.astimezone(UTC))
