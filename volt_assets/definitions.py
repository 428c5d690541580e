"""The code location: every asset, check, job, schedule, sensor and resource of volt_assets.

Small per-domain builders are merged here; resources read the environment through EnvVar.
"""

from __future__ import annotations

import dagster as dg

from volt_assets.assets.raw import build_raw_asset
from volt_assets.assets.staging import build_staging_asset
from volt_assets.io_managers import S3LakeIOManager
from volt_assets.resources import lake_resource, s3_resource, source_database
from volt_assets.table_config import load_tables


def build_definitions() -> dg.Definitions:
    tables = load_tables()
    lake_assets = [build_raw_asset(t) for t in tables.values()] + [build_staging_asset(t) for t in tables.values()]
    s3 = s3_resource()
    lake = lake_resource(s3)
    return dg.Definitions(
        assets=lake_assets,
        resources={
            "source": source_database(),
            "s3": s3,
            "lake": lake,
            "lake_io_manager": S3LakeIOManager(lake=lake),
        },
    )
