"""The quality domain's own definitions: the checks that are not evaluated inside the lake
assets' steps (those are declared by `defs/lake/raw.py` and `defs/lake/staging.py` through
`quality.raw_checks` / `quality.staging_checks`).

- `{table}_references`: foreign keys name known keys (standalone: they read other tables);
- `matches_staging` on `marts/daily_category_sales`;

The `freshness` checks cover every daily asset of the code location, so they are added where
every asset is known: `volt_assets/definitions.py` (`freshness_definitions` below).
"""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.quality.freshness import build_freshness_checks, freshness_schedule
from volt_assets.defs.quality.marts import build_mart_checks
from volt_assets.defs.quality.references import build_reference_checks
from volt_assets.lib.config.table_config import load_tables


@dg.definitions
def defs() -> dg.Definitions:
    """Standalone checks, the freshness job and its schedule (the lake resource is shared)."""
    tables = load_tables().values()
    checks = [c for t in tables if (c := build_reference_checks(t)) is not None]
    checks.append(build_mart_checks())
    return dg.Definitions(asset_checks=checks)


def daily_asset_keys(domains: dg.Definitions) -> list[dg.AssetKey]:
    """Every daily-partitioned asset: what the daily schedule refreshes, so what must be fresh."""
    keys = {
        key
        for asset in domains.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        and isinstance(asset.partitions_def, dg.TimeWindowPartitionsDefinition)
        for key in asset.keys
    }
    return sorted(keys, key=lambda k: k.to_user_string())


def freshness_definitions(domains: dg.Definitions) -> dg.Definitions:
    """A `freshness` check on every daily asset of `domains`, its hourly job and schedule."""
    fresh = build_freshness_checks(daily_asset_keys(domains))
    job, schedule = freshness_schedule(fresh)
    return dg.Definitions(asset_checks=[fresh], jobs=[job], schedules=[schedule])
