"""The lake's state (`state/{table}/dt=D/`): what the marts read instead of the whole history.

A late commit on a past day, re-run for that day, makes the later states stale; the next run
of the marts rebuilds them and shows the change. A run allowed to rebuild less refuses, naming
the day. An old raw day archived to GLACIER never stops a daily run (hard deletes come from
the state); reading it names the storage class and how to restore it.
"""

import datetime as dt
import re

import dagster as dg
import pytest

from volt_assets.lib.store.lake_store import LakeError, LakeStore
from volt_assets_tests.integration.marts.test_marts import LAKE
from volt_assets_tests.integration.marts.test_marts_gate import order
from volt_assets_tests.pipeline import component, create_source_schema, insert, materialize, ts

MARTS = ["marts/daily_category_sales", "marts/users_mart", "marts/dim_components"]


def shop(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(conn, "electrical_components", [component(1, "2026-01-01 08:00")])
    user = {"email": "u1@volt.test", "country": "PL", "created_at": ts("2026-01-01 07:00")}
    insert(conn, "users", [{"id": 1, **user, "updated_at": ts("2026-01-01 07:00")}])
    insert(conn, "orders", [order(1, 1, "2026-01-01 10:00"), order(2, 1, "2026-01-03 10:00")])
    # orders of day 2: one hard delete among a dozen known orders stays under max_delete_share
    insert(conn, "orders", [order(i, 1, "2026-01-02 10:00") for i in range(10, 20)])
    materialize(LAKE + MARTS, ("2026-01-01", "2026-01-03"))
    return conn


def state_files(volt_env, table: str, day: str) -> list[str]:
    prefix = f"state/{table}/dt={day}/"
    return sorted(k[len(prefix) :] for k in volt_env.list_keys(prefix))


def categories(conn, day: dt.date) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT category, orders_count FROM marts.daily_category_sales WHERE dt = %s", (day,)
        )
        return cur.fetchall()


def late_category_change(conn) -> None:
    """The app commits a change of component 1 dated on day 1, after day 1 was captured."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE electrical_components SET category = 'cables', updated_at = %s WHERE id = 1",
            (ts("2026-01-01 20:00"),),
        )
    conn.commit()


def test_a_past_day_re_run_makes_later_states_stale_and_the_next_run_rebuilds_them(volt_env):
    conn = shop(volt_env)
    assert categories(conn, dt.date(2026, 1, 3)) == [("fuses", 1)]
    before = state_files(volt_env, "electrical_components", "2026-01-03")
    assert [f.split("-")[0] for f in before] == ["_manifest.json", "latest", "type2"]

    late_category_change(conn)
    materialize(["raw/electrical_components", "staging/electrical_components"], "2026-01-01")
    materialize(["marts/daily_category_sales", "marts/dim_components"], "2026-01-03")

    assert categories(conn, dt.date(2026, 1, 3)) == [("cables", 1)]
    after = state_files(volt_env, "electrical_components", "2026-01-03")
    assert len(after) == 3 and after != before  # rebuilt under a new digest, the old one gone
    with conn.cursor() as cur:
        cur.execute("SELECT category, is_current FROM marts.dim_components ORDER BY valid_from")
        assert cur.fetchall() == [("cables", True)]  # one version: day 1's latest is cables


def test_a_state_stale_beyond_what_the_run_may_rebuild_refuses_naming_the_day(
    volt_env, monkeypatch
):
    conn = shop(volt_env)
    late_category_change(conn)
    materialize(["raw/electrical_components", "staging/electrical_components"], "2026-01-01")
    monkeypatch.setenv("VOLT_STATE_REBUILD_DAYS", "1")  # the run of day 3 may go back to day 2

    result = materialize(["marts/daily_category_sales"], "2026-01-03", raise_on_error=False)

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.to_string()
    # components' day 1 changed; orders' too (its references check wrote day 1's report after
    # the first run's marts had built the state): either is named, with the day
    assert re.search(r"state/(electrical_components|orders) is stale from 2026-01-01", message)
    assert "only back to 2026-01-02" in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert categories(conn, dt.date(2026, 1, 3)) == [("fuses", 1)]  # the mart was left as it was


def archive(volt_env, key: str) -> None:
    """What `bucket apply`'s lifecycle rule does to an old raw object."""
    volt_env.s3.copy_object(
        Bucket=volt_env.bucket,
        Key=key,
        CopySource={"Bucket": volt_env.bucket, "Key": key},
        StorageClass="GLACIER",
    )


def test_a_daily_run_succeeds_with_an_old_raw_day_archived_to_glacier(volt_env):
    conn = shop(volt_env)
    [index] = [k for k in volt_env.list_keys("raw/orders/dt=2026-01-01/") if "_versions-" in k]
    archive(volt_env, index)
    store = LakeStore(volt_env.s3, volt_env.bucket)
    with pytest.raises(LakeError, match="archived in storage class GLACIER") as refused:
        store.get_bytes(index)  # the fault is in place: old raw cannot be read
    assert "aws s3api restore-object" in str(refused.value)

    with conn.cursor() as cur:  # a hard delete the daily run must notice from the state
        cur.execute("DELETE FROM orders WHERE id = 1")
    conn.commit()
    insert(conn, "orders", [order(3, 1, "2026-01-04 09:00")])
    materialize(LAKE + MARTS, ("2026-01-03", "2026-01-04"))

    deletes = [k for k in volt_env.list_keys("raw/orders/dt=2026-01-04/") if "_deletes-" in k]
    assert len(deletes) == 1
    with conn.cursor() as cur:
        cur.execute("SELECT total_orders FROM marts.users_mart WHERE dt = '2026-01-04'")
        assert cur.fetchall() == [(12,)]  # orders 2, 3 and 10-19; order 1 is gone
