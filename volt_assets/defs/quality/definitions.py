"""The quality domain's own definitions: the checks that are not evaluated inside the lake
assets' steps (those are declared by `defs/lake/raw.py` and `defs/lake/staging.py` through
`quality.raw_checks` / `quality.staging_checks`).

- `{table}_references`: foreign keys name known keys (standalone: they read other tables);
- `matches_staging` on `marts/daily_category_sales`;
- `freshness` on every daily asset, plus the hourly `volt_freshness` job and schedule.
"""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.quality.freshness import build_freshness_checks, freshness_schedule
from volt_assets.defs.quality.marts import build_mart_checks
from volt_assets.defs.quality.references import build_reference_checks
from volt_assets.lib.config.table_config import load_tables

# The daily marts, checked for freshness like the lake's layers.
MART_KEYS = [
    dg.AssetKey(["marts", n]) for n in ("dim_components", "daily_category_sales", "users_mart")
]


@dg.definitions
def defs() -> dg.Definitions:
    """Standalone checks, the freshness job and its schedule (the lake resource is shared)."""
    tables = load_tables().values()
    checks = [c for t in tables if (c := build_reference_checks(t)) is not None]
    checks.append(build_mart_checks())
    daily = [
        dg.AssetKey([layer, t.name]) for t in tables for layer in ("raw", "staging")
    ] + MART_KEYS
    fresh = build_freshness_checks(daily)
    job, schedule = freshness_schedule(fresh)
    return dg.Definitions(asset_checks=[*checks, fresh], jobs=[job], schedules=[schedule])
