"""What every lake asset shares: partitions, backfill and retry policies."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from volt_assets.lib.config.partitions import daily_partitions

# A year of days runs as one run (one dt= folder per day all the same): --partition-range
# on the CLI and UI backfills both need every selected asset to have this policy.
SINGLE_RUN = dg.BackfillPolicy.single_run()

# Assets that touch the network retry with exponential backoff and jitter; errors that a
# retry cannot fix (bad credentials, missing bucket or table) are raised as dg.Failure with
# allow_retries=False so they fail at once.
NETWORK_RETRY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

LAKE_IO_MANAGER = "lake_io_manager"


def lake_pool(table: str) -> str:
    """The Dagster concurrency pool of a table's raw and staging steps: with the instance's
    `concurrency: pools: default_limit: 1` (dagster.yaml), two runs never write one table's
    lake folders at once; the writer locks (lib/store/writer_locks.py) hold even without it."""
    return f"volt_lake_{table}"


def partitions() -> dg.DailyPartitionsDefinition:
    return daily_partitions()


def missing_partition(asset: str, day: dt.date) -> dg.Failure:
    """A step's input day is not complete (no `_manifest.json`): no retry can fix that."""
    return dg.Failure(
        description=f"{asset} has no complete partition {day} (no _manifest.json): "
        f"materialise {asset} for {day} first",
        allow_retries=False,
    )
