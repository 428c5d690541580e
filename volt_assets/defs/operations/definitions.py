"""Operations domain: the daily job and its schedule (the bucket-policy job and the run-failure
alert are module-level definitions of `bucket_job.py` and `alerts.py`)."""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.operations.schedule import build_daily_schedule, daily_job


@dg.definitions
def defs() -> dg.Definitions:
    job = daily_job()
    return dg.Definitions(jobs=[job], schedules=[build_daily_schedule(job)])
