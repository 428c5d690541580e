"""The code location as users meet it: it loads, validates and exposes exactly what it promises.

The lists below are written out in full: a module renamed, moved or dropped from
`volt_assets/defs/` removes a name and fails here, instead of disappearing from the UI.
"""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("electrical_components", "users", "orders")

ASSETS = {
    *(f"source/{t}" for t in TABLES),
    "source/pictures",  # external: where the lineage starts
    *(f"raw/{t}" for t in TABLES),
    *(f"staging/{t}" for t in TABLES),
    "marts/dim_components",
    "marts/daily_category_sales",
    "marts/daily_component_sales",
    "marts/users_mart",
    "images/component_images",
}
CHECKS = {
    *(
        f"raw/{t}:{c}"
        for t in TABLES
        for c in ("files_present", "freshness", "schema_drift", "source_reconciliation")
    ),
    *(
        f"staging/{t}:{c}"
        for t in TABLES
        for c in (
            "freshness",
            "id_not_null",
            "id_unique",
            "quarantine_share",
            "row_accounting",
            "updated_at_not_in_future",
        )
    ),
    "staging/electrical_components:category_in_set",
    "staging/electrical_components:currency_currency_code",
    "staging/electrical_components:name_not_blank",
    "staging/electrical_components:price_positive",
    "staging/electrical_components:sku_unique",
    "staging/orders:component_id_references",
    "staging/orders:user_id_references",
    "staging/orders:ordered_at_not_in_future",
    "staging/orders:quantity_at_most",
    "staging/orders:quantity_positive",
    "staging/orders:unit_price_positive",
    "staging/users:email_email",
    "staging/users:email_unique",
    "marts/daily_category_sales:matches_staging",
    *(
        f"marts/{m}:freshness"
        for m in ("dim_components", "daily_category_sales", "daily_component_sales", "users_mart")
    ),
    "images/component_images:freshness",
    "images/component_images:pictures_valid",
}
JOBS = {"__ASSET_JOB", "bucket_policies_job", "landing_file_job", "volt_daily", "volt_freshness"}
SCHEDULES = {"volt_daily_schedule", "volt_freshness_hourly"}
SENSORS = {"landing_files_sensor", "run_failure_alert"}
RESOURCES = {
    "images_dir",
    "lake",
    "lake_io_manager",
    "marts_db",
    "marts_io_manager",
    "s3",
    "source",
}


def test_dagster_definitions_validate_passes(volt_env):
    dagster = str(Path(sys.executable).with_name("dagster"))
    done = subprocess.run(
        [dagster, "definitions", "validate", "-m", "volt_assets"],
        env={**os.environ, **volt_env.env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "passed validation" in done.stderr + done.stdout


def test_the_code_location_exposes_exactly_its_definitions(volt_env):
    from volt_assets.definitions import build_definitions

    defs = build_definitions()
    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in defs.resolve_all_asset_keys()} == ASSETS
    assert {k.to_user_string() for k in defs.resolve_asset_graph().asset_check_keys} == CHECKS
    assert {j.name for j in repo.get_all_jobs()} == JOBS
    assert {s.name for s in repo.schedule_defs} == SCHEDULES
    assert {s.name for s in repo.sensor_defs} == SENSORS
    assert set(defs.resources) == RESOURCES
    assert defs.resolve_job_def("volt_daily").executor_def.name == "volt_in_process_or_multiprocess"


def test_contract_asset_keys_and_single_run_backfills(volt_env):
    from volt_assets.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.partitions_def is not None:
            # --partition-range and UI backfills need every selected asset to run as one run
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
            assert node.partitions_def.start.date().isoformat() == "2026-01-01"


def test_the_packaged_dagster_project_config_matches_pyproject():
    """`volt_assets/dg.toml` travels with the installed package (Docker, a wheel);
    pyproject's [tool.dg] serves `dg` in a checkout: they say the same."""
    packaged = tomllib.loads((ROOT / "volt_assets" / "dg.toml").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]
    assert packaged == pyproject


def test_dg_check_defs_passes(volt_env):
    dg_cli = str(Path(sys.executable).with_name("dg"))
    done = subprocess.run(
        [dg_cli, "check", "defs"],
        cwd=ROOT,
        env={**os.environ, **volt_env.env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr
