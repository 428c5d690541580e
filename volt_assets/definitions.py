"""The code location: every asset, check, job, schedule, sensor and resource of volt_assets.

The lake (raw, staging) is built here; each other domain lives in a package with a `defs.py`
exposing `definitions(shared) -> dg.Definitions`, merged below. Shared resources (source
database, S3, lake, lake IO manager) are made once here and passed to the domains, which add
only resources of their own. Resources read the environment through EnvVar.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings

import dagster as dg

from volt_assets.assets.raw import build_raw_asset
from volt_assets.assets.staging import build_staging_asset
from volt_assets.executor import volt_executor
from volt_assets.io_managers import S3LakeIOManager
from volt_assets.resources import lake_resource, s3_resource, source_database
from volt_assets.table_config import load_tables

# Single-run backfill policies are marked beta; the project relies on them on purpose.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

# A range run stores one "planned" and one materialisation event per partition and asset: 1,460
# for a 365-day raw + staging run, one commit each unless Dagster's opt-in event batching is on
# (~13 s of a 45 s run on PostgreSQL storage, bench/RESULTS.md). Processes that load this code
# location (the CLI, run workers) batch them; the Dockerfile sets it for the webserver and daemon.
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "200")

DOMAINS = (
    "volt_assets.marts.defs",
    "volt_assets.images.defs",
    "volt_assets.quality.defs",
    "volt_assets.operations.defs",
)


def shared_resources() -> dict:
    s3 = s3_resource()
    lake = lake_resource(s3)
    return {"source": source_database(), "s3": s3, "lake": lake, "lake_io_manager": S3LakeIOManager(lake=lake)}


def lake_definitions(shared: dict) -> dg.Definitions:
    tables = load_tables().values()
    assets = [build_raw_asset(t) for t in tables] + [build_staging_asset(t) for t in tables]
    return dg.Definitions(assets=assets, resources=shared, executor=volt_executor)


def build_definitions() -> dg.Definitions:
    shared = shared_resources()
    parts = [lake_definitions(shared)]
    for name in DOMAINS:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) and importlib.util.find_spec(name):
            parts.append(importlib.import_module(name).definitions(shared))
    return dg.Definitions.merge(*parts)
