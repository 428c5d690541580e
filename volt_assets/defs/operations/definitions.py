"""Operations domain: the daily job and its schedule, and the bucket-policy job."""

from __future__ import annotations

import dagster as dg

from volt_assets.bucket import bucket_policies_job
from volt_assets.defs.operations.schedule import build_daily_schedule, daily_job


@dg.definitions
def defs() -> dg.Definitions:
    job = daily_job()
    return dg.Definitions(jobs=[job, bucket_policies_job], schedules=[build_daily_schedule(job)])
