"""The cdc wiring in Dagster: with a `sync: cdc` table in tables.yaml, `cdc_capture_job` drains
the slot into raw and reports raw D materialised for every day the capture has read past; the
sensor starts it, never twice at once; the window capture refuses the table."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from volt_assets.definitions import build_definitions
from volt_assets.defs.lake.cdc import last_closed_day
from volt_assets.lib.config import table_config
from volt_assets_tests.pipeline import create_source_schema, insert, materialize
from volt_assets_tests.unit.capture.cdc.cdc_lake import make_ready, raw_lines, user

USERS = "  users:\n    primary_key: id\n    cursor: updated_at\n    sync: incremental\n"


@pytest.fixture
def cdc_users(volt_env, tmp_path, monkeypatch):
    """The project's tables.yaml with `users` as a cdc table, and a source ready for it."""
    text = table_config.CONFIG_PATH.read_text(encoding="utf-8")
    assert text.count(USERS) == 1
    config = tmp_path / "tables.yaml"
    config.write_text(text.replace(USERS, USERS.replace("incremental", "cdc")), encoding="utf-8")
    monkeypatch.setattr(table_config, "CONFIG_PATH", config)
    conn = volt_env.connect()
    create_source_schema(conn)
    make_ready(conn, ["users"])
    yield conn
    conn.close()


def test_the_job_drains_the_slot_and_closes_the_days_it_read_past(cdc_users, volt_env):
    insert(cdc_users, "users", [user(1)])
    defs = build_definitions()
    job = defs.resolve_job_def("cdc_capture_job")
    instance = dg.DagsterInstance.ephemeral()
    assert job.execute_in_process(instance=instance).success  # opens: the snapshot
    insert(cdc_users, "users", [user(2)])
    assert job.execute_in_process(instance=instance).success  # drains: the insert

    assert [(x["op"], x["key"]) for x in raw_lines(volt_env, "users")] == [
        ("snapshot", 1),
        ("insert", 2),
    ]
    # every day from the first partition to yesterday is closed; today is not yet
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = dt.date(2026, 1, 1)
    expected = {
        (first + dt.timedelta(days=i)).isoformat() for i in range((yesterday - first).days + 1)
    }
    key = dg.AssetKey(["raw", "users"])
    assert instance.get_materialized_partitions(key) == expected
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=["2026-01-01"]), limit=5
    ).records
    assert len(records) == 1  # reported once, not again by the second run
    metadata = records[0].asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 1


def test_the_sensor_starts_one_drain_at_a_time_and_the_daily_job_leaves_cdc_raw_out(cdc_users):
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("cdc_capture_sensor")
    instance = dg.DagsterInstance.ephemeral()
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert sensor.job_name == "cdc_capture_job" and len(first.run_requests) == 1
    job = defs.resolve_job_def("cdc_capture_job")
    instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
    busy = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert busy.run_requests == [] and "still draining" in busy.skip_message
    daily = {
        k.to_user_string()
        for k in defs.resolve_job_def("volt_daily").asset_layer.selected_asset_keys
    }
    assert "raw/users" not in daily and "raw/orders" in daily


def test_materialising_a_cdc_table_by_its_window_is_refused(cdc_users):
    result = materialize(["raw/users"], "2026-01-02", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "users is `sync: cdc`" in failure.step_failure_data.error.message


def test_a_day_closes_only_once_a_heartbeat_after_its_midnight_is_read() -> None:
    opening = dt.date(2026, 1, 1)
    assert last_closed_day(opening, "2026-01-03T00:00:00.500000Z") == dt.date(2026, 1, 1)
    assert last_closed_day(opening, "2026-01-03T00:00:01.000001Z") == dt.date(2026, 1, 2)
    assert last_closed_day(opening, "2026-01-01T12:00:00.000000Z") is None
    assert last_closed_day(opening, None) is None
