"""Freshness: each daily asset's latest partition is no older than a configured lag.

An asset is fresh when the latest partition Dagster has materialised ended (D+1 00:00 UTC) no
more than VOLT_FRESHNESS_LAG_HOURS ago (default 26: yesterday's partition, with two hours for
the daily run to land after midnight). Backfilling an old day does not make an asset fresh:
what counts is the newest day, not the newest run. An unpartitioned asset counts its latest
materialisation instead.

The check runs after every materialisation of the asset (it targets it) and hourly from the
`volt_freshness` schedule, which is RUNNING by default so `make dev` watches it. ERROR when
stale; never blocking (a late day must not stop the next one).

(Dagster's own `FreshnessPolicy` judges an asset's newest materialisation of any partition and
needs `freshness: enabled` in the instance; `build_time_partition_freshness_checks` expresses the
lag as a cron deadline. A lag in hours on the newest day is what the team asked for.)
"""

import datetime as dt
import os
from collections.abc import Iterator, Sequence

import dagster as dg

from volt_assets.lib.config.partitions import UTC, day_window

LAG_VARIABLE = "VOLT_FRESHNESS_LAG_HOURS"
DEFAULT_LAG_HOURS = 26.0
CHECK = "freshness"
JOB = "volt_freshness"


def lag() -> dt.timedelta:
    """The configured lag, read when the check runs (a changed variable needs no reload)."""
    text = os.environ.get(LAG_VARIABLE, "").strip()
    try:
        hours = float(text) if text else DEFAULT_LAG_HOURS
    except ValueError:
        raise dg.Failure(
            f"{LAG_VARIABLE}={text!r} is not a number of hours", allow_retries=False
        ) from None
    return dt.timedelta(hours=hours)


def newest_data(
    instance: dg.DagsterInstance, key: dg.AssetKey
) -> tuple[str | None, dt.datetime | None]:
    """(latest partition key, the instant its data reaches) of an asset, or (None, None)."""
    partitions = instance.get_materialized_partitions(key)
    if partitions:
        latest = max(partitions)  # YYYY-MM-DD keys sort as days
        try:
            return latest, day_window(dt.date.fromisoformat(latest))[1]
        except ValueError:
            pass  # not a daily key: fall back to the materialisation time
    event = instance.get_latest_materialization_event(key)
    if event is None:
        return None, None
    return None, dt.datetime.fromtimestamp(event.timestamp, UTC)


def judge(
    key: dg.AssetKey, instance: dg.DagsterInstance, now: dt.datetime, allowed: dt.timedelta
) -> dg.AssetCheckResult:
    partition, reaches = newest_data(instance, key)
    hours = allowed.total_seconds() / 3600
    metadata = {
        "lag_hours": dg.MetadataValue.float(hours),
        "checked_at": dg.MetadataValue.text(now.isoformat()),
    }
    if reaches is None:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK,
            passed=False,
            metadata=metadata,
            description=f"never materialised (expected data no older than {hours:g} h)",
        )
    age = now - reaches
    metadata.update(
        {
            "latest_partition": dg.MetadataValue.text(partition or ""),
            "data_until": dg.MetadataValue.text(reaches.isoformat()),
            "age_hours": dg.MetadataValue.float(round(age.total_seconds() / 3600, 2)),
        }
    )
    fresh = age <= allowed
    if not fresh:
        metadata["overdue_hours"] = dg.MetadataValue.float(
            round((age - allowed).total_seconds() / 3600, 2)
        )
    what = f"latest partition {partition}" if partition else "latest materialisation"
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=CHECK,
        passed=fresh,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=f"{what} reaches {reaches:%Y-%m-%d %H:%M} UTC, {age.total_seconds() / 3600:.1f} h ago "
        f"({'within' if fresh else 'beyond'} the {hours:g} h lag)",
    )


def build_freshness_checks(keys: Sequence[dg.AssetKey]) -> dg.AssetChecksDefinition:
    """One `freshness` check per asset key, in one subsettable multi-check (one step a run)."""

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                CHECK,
                asset=k,
                description=(
                    f"The latest materialised partition ended no more than {LAG_VARIABLE} "
                    f"(default {DEFAULT_LAG_HOURS:g}) hours ago."
                ),
            )
            for k in keys
        ],
        name="volt_freshness_checks",
        can_subset=True,
    )
    def freshness_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        now, allowed = dt.datetime.now(UTC), lag()
        for check_key in sorted(
            context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string()
        ):
            yield judge(check_key.asset_key, context.instance, now, allowed)

    return freshness_checks


def freshness_schedule(checks: dg.AssetChecksDefinition) -> tuple:
    """An hourly job running only the freshness checks (RUNNING by default)."""
    job = dg.define_asset_job(
        JOB,
        selection=dg.AssetSelection.checks(checks),
        description="Evaluates the freshness checks of every daily asset.",
    )
    schedule = dg.ScheduleDefinition(
        name=f"{JOB}_hourly",
        job=job,
        cron_schedule="7 * * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Hourly: is every daily asset's latest partition within {LAG_VARIABLE}?",
    )
    return job, schedule
