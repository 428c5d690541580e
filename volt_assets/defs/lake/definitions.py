"""The lake domain's definitions: `raw/{table}` and `staging/{table}` for every table of
`tables.yaml` (a table is added by configuration alone)."""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.catalog import linked
from volt_assets.defs.lake.raw import build_raw_asset
from volt_assets.defs.lake.staging import build_staging_asset
from volt_assets.lib.config.table_config import load_tables


@dg.definitions
def defs() -> dg.Definitions:
    tables = load_tables().values()
    assets = [build_raw_asset(t) for t in tables] + [build_staging_asset(t) for t in tables]
    return dg.Definitions(assets=linked(assets))
