"""The daily schedule asks for the right days, and its job covers every layer."""

import datetime as dt

import dagster as dg

from volt_assets.defs.operations.schedule import RANGE_END, RANGE_START, days_for_tick


def test_tick_requests_yesterday_and_the_day_before(volt_env):
    from volt_assets.definitions import build_definitions

    defs = build_definitions()
    schedule = defs.resolve_schedule_def("volt_daily_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = dt.datetime(2026, 3, 10, 1, 30, tzinfo=dt.UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    request = schedule.evaluate_tick(context).run_requests[0]
    assert request.tags[RANGE_START] == "2026-03-08" and request.tags[RANGE_END] == "2026-03-09"
    assert request.run_key == "daily-2026-03-09"

    job = defs.resolve_job_def(schedule.job_name)
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    every_layer = {
        f"{layer}/{t}"
        for layer in ("raw", "staging")
        for t in ("electrical_components", "users", "orders")
    }
    every_layer |= {"marts/dim_components", "marts/daily_category_sales", "marts/users_mart"}
    assert every_layer <= selected, every_layer - selected


def test_tick_before_the_first_partition_skips():
    first = dt.date(2026, 1, 1)
    assert days_for_tick(dt.datetime(2026, 1, 1, 1, 30, tzinfo=dt.UTC), first) is None
    assert days_for_tick(dt.datetime(2026, 1, 2, 1, 30, tzinfo=dt.UTC), first) == (
        first,
        first,
    )
