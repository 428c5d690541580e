"""The shop's app migrates its schema between two daily runs: a declared column renamed or
dropped at the source stops that table's staging day and the marts, with a message naming
the column and what to do, instead of staging NULLs that rewrite the SCD2 history."""

from __future__ import annotations

import dagster as dg
import pytest

from volt_assets_tests.pipeline import component, create_source_schema, insert, materialize, ts

LAKE = ["raw/electrical_components", "staging/electrical_components"]
D1, D2 = "2026-01-01", "2026-01-02"


def failures(result) -> dict[str, str]:
    return {
        e.step_key: e.step_failure_data.error.to_string()
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    }


def dim_rows(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT component_id, manufacturer, price, is_current FROM marts.dim_components"
            " ORDER BY component_id, valid_from"
        )
        return cur.fetchall()


@pytest.mark.parametrize(
    ("migration", "column"),
    [
        ("ALTER TABLE electrical_components RENAME COLUMN manufacturer TO brand", "manufacturer"),
        ("ALTER TABLE electrical_components DROP COLUMN voltage_rating", "voltage_rating"),
    ],
)
def test_a_renamed_or_dropped_column_stops_staging_and_the_marts(volt_env, migration, column):
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(conn, "electrical_components", [component(1, "2026-01-01 08:00")])
    materialize([*LAKE, "marts/dim_components"], D1)
    before = dim_rows(conn)
    assert [(r[0], r[1], r[3]) for r in before] == [(1, "ABB", True)]

    with conn.cursor() as cur:  # the app's migration, then a price change on D2
        cur.execute(migration)
        cur.execute(
            "UPDATE electrical_components SET price = 12.00, updated_at = %s WHERE id = 1",
            (ts("2026-01-02 09:00"),),
        )
    conn.commit()

    result = materialize([*LAKE, "marts/dim_components"], D2, raise_on_error=False)
    assert not result.success
    message = failures(result)["staging__electrical_components"]
    assert f"no declared column `{column}`" in message
    assert "tables.yaml" in message
    assert not [e for e in result.all_events if e.event_type.value == "STEP_UP_FOR_RETRY"]
    assert volt_env.list_keys(f"staging/electrical_components/dt={D2}/") == []  # no NULLs staged
    assert volt_env.list_keys(f"raw/electrical_components/dt={D2}/")  # raw keeps what came
    assert dim_rows(conn) == before  # no version closed, none opened with a NULL

    # the marts asked for D2 on their own (another instance) refuse it, naming the column
    alone = materialize(["marts/dim_components"], D2, raise_on_error=False)
    assert not alone.success
    message = failures(alone)["marts__dim_components"]
    assert f"staging/electrical_components {D2}" in message
    assert "schema_drift" in message and f"column dropped: {column}" in message
    assert dim_rows(conn) == before


def test_a_numeric_of_another_precision_or_scale_stops_staging_and_the_marts(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(conn, "electrical_components", [component(1, "2026-01-01 08:00")])
    materialize([*LAKE, "marts/dim_components"], D1)
    before = dim_rows(conn)

    with conn.cursor() as cur:  # the app's migration: four decimals, then prices that use them
        cur.execute("ALTER TABLE electrical_components ALTER COLUMN price TYPE numeric(14,4)")
        cur.execute(
            "UPDATE electrical_components SET price = 12.5000, updated_at = %s WHERE id = 1",
            (ts("2026-01-02 09:00"),),
        )
    conn.commit()
    insert(conn, "electrical_components", [component(2, "2026-01-02 09:30", price="12.3456")])

    result = materialize([*LAKE, "marts/dim_components"], D2, raise_on_error=False)
    assert not result.success
    [drift] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "schema_drift" and e.asset_key.to_user_string() == LAKE[0]
    ]
    assert not drift.passed
    assert drift.description == (
        "column retyped: price declared numeric(12,2), source has numeric(14,4)"
    )
    message = failures(result)["staging__electrical_components"]
    assert "`price` is numeric(14,4) at the source, declared numeric(12,2)" in message
    assert "`price: {type: numeric(14,4)}`" in message and "tables.yaml" in message
    assert not [e for e in result.all_events if e.event_type.value == "STEP_UP_FOR_RETRY"]
    assert volt_env.list_keys(f"staging/electrical_components/dt={D2}/") == []
    assert volt_env.list_keys(f"quarantine/electrical_components/dt={D2}/") == []
    assert dim_rows(conn) == before

    alone = materialize(["marts/dim_components"], D2, raise_on_error=False)
    assert not alone.success
    message = failures(alone)["marts__dim_components"]
    assert "schema_drift" in message and "column retyped: price" in message
    assert dim_rows(conn) == before
