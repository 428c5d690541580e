"""The quality domain's own definitions: the checks that are not evaluated inside the lake
assets' steps (those are declared by `assets/raw.py` and `assets/staging.py` through
`quality.raw_checks` / `quality.staging_checks`).

- `{table}_references`: foreign keys name known keys (standalone: they read other tables);
- `matches_staging` on `marts/daily_category_sales`, once the marts package exists;
- `freshness` on every daily asset, plus the hourly `volt_freshness` job and schedule.
"""

from __future__ import annotations

import importlib.util

import dagster as dg

from volt_assets.quality.freshness import build_freshness_checks, freshness_schedule
from volt_assets.quality.marts import build_mart_checks
from volt_assets.quality.references import build_reference_checks
from volt_assets.table_config import load_tables

MARTS_MODULE = "volt_assets.marts.defs"
# Daily marts of the contract; checked only when the marts package is there to define them
# (a check on an undefined asset would show a phantom asset in the UI).
MART_KEYS = [dg.AssetKey(["marts", n]) for n in ("dim_components", "daily_category_sales", "users_mart")]


def marts_available() -> bool:
    return importlib.util.find_spec("volt_assets.marts") is not None and importlib.util.find_spec(MARTS_MODULE) is not None


def definitions(shared: dict) -> dg.Definitions:
    """Standalone checks, the freshness job and its schedule; resources come from `shared`
    (the lake), already in the merged definitions."""
    tables = load_tables().values()
    checks = [c for t in tables if (c := build_reference_checks(t)) is not None]
    daily = [dg.AssetKey([layer, t.name]) for t in tables for layer in ("raw", "staging")]
    if marts_available():
        checks.append(build_mart_checks())
        daily += MART_KEYS
    fresh = build_freshness_checks(daily)
    job, schedule = freshness_schedule(fresh)
    return dg.Definitions(asset_checks=[*checks, fresh], jobs=[job], schedules=[schedule])
