"""The staging quality gate and the marts: a day with too many refused rows stops the marts in
its run, is never built later, and its rows stay out of the later days' history."""

import datetime as dt

import dagster as dg

from volt_assets_tests.pipeline import component, create_source_schema, insert, materialize, ts

D3 = dt.date(2026, 1, 3)
LAKE = [
    "raw/electrical_components",
    "raw/users",
    "raw/orders",
    "staging/electrical_components",
    "staging/users",
    "staging/orders",
]


def order(id_: int, user_id: int, at: str, **values) -> dict:
    row = {
        "id": id_,
        "user_id": user_id,
        "component_id": 1,
        "quantity": 1,
        "unit_price": "10.00",
        "currency": "EUR",
        "status": "paid",
        "ordered_at": ts(at),
        "updated_at": ts(at),
    }
    return {**row, **values}


def events(result, kind: dg.DagsterEventType, step: str | None = None) -> list:
    return [
        e
        for e in result.all_events
        if e.event_type == kind and (step is None or e.step_key == step)
    ]


def test_a_day_stopped_by_the_gate_never_reaches_the_marts(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(conn, "electrical_components", [component(1, "2026-01-01 08:00")])
    insert(
        conn,
        "users",
        [
            {
                "id": u,
                "email": f"u{u}@volt.test",
                "country": "PL",
                "created_at": ts("2026-01-01 07:00"),
                "updated_at": ts("2026-01-01 07:00"),
            }
            for u in (1, 2)
        ],
    )
    insert(
        conn,
        "orders",
        [
            order(1, 1, "2026-01-01 10:00"),
            order(2, 1, "2026-01-01 11:00"),
            order(3, 1, "2026-01-02 10:00"),  # valid, on the stopped day
            order(4, 1, "2026-01-02 11:00", quantity=0),  # 2 of 3 refused on D2
            order(5, 1, "2026-01-02 12:00", unit_price=None),
            order(6, 2, "2026-01-03 10:00"),
        ],
    )

    selection = LAKE + ["marts/users_mart", "marts/daily_category_sales"]
    result = materialize(selection, ("2026-01-01", "2026-01-03"), raise_on_error=False)
    assert not result.success
    for step in ("marts__users_mart", "marts__daily_category_sales"):
        assert not events(result, dg.DagsterEventType.STEP_START, step)
    assert volt_env.list_keys("mart/") == []
    assert volt_env.list_keys(
        "staging/orders/dt=2026-01-02/"
    )  # staging lands; only downstream stops

    # D3 alone builds, from the history without D2: user 1 has orders 1 and 2 only.
    result = materialize(["marts/users_mart"], "2026-01-03")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, total_orders FROM marts.users_mart WHERE dt = %s ORDER BY user_id",
            (D3,),
        )
        assert cur.fetchall() == [(1, 2), (2, 1)]
    [materialized] = events(result, dg.DagsterEventType.ASSET_MATERIALIZATION)
    metadata = materialized.event_specific_data.materialization.metadata
    assert metadata["orders_gated_days_left_out"].value == ["2026-01-02"]

    # D2 itself is refused at once (no retries), with the reason.
    result = materialize(["marts/users_mart"], "2026-01-02", raise_on_error=False)
    assert not result.success
    [failure] = events(result, dg.DagsterEventType.STEP_FAILURE)
    assert "failed its quality gate" in failure.step_failure_data.error.to_string()
    assert not events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)


def test_marts_run_alone_refuse_a_day_with_any_failed_blocking_check(volt_env):
    """An order dated 2099 fails `ordered_at_not_in_future` (blocking) in staging's run; the
    marts asked for that day later, in a run of their own on another instance, refuse it."""
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(conn, "electrical_components", [component(1, "2026-01-01 08:00")])
    user = {"email": "u1@volt.test", "country": "PL", "created_at": ts("2026-01-01 07:00")}
    insert(conn, "users", [{"id": 1, **user, "updated_at": ts("2026-01-01 07:00")}])
    insert(
        conn,
        "orders",
        [
            order(1, 1, "2026-01-02 10:00"),
            order(2, 1, "2026-01-02 11:00", ordered_at=ts("2099-01-02 11:00")),
        ],
    )
    materialize(LAKE, "2026-01-02", raise_on_error=False)
    assert volt_env.list_keys("staging/orders/dt=2026-01-02/")  # staging itself landed

    result = materialize(
        ["marts/daily_category_sales", "marts/users_mart"], "2026-01-02", raise_on_error=False
    )
    assert not result.success
    failures = events(result, dg.DagsterEventType.STEP_FAILURE)
    assert {f.step_key for f in failures} == {"marts__daily_category_sales", "marts__users_mart"}
    for failure in failures:
        message = failure.step_failure_data.error.to_string()
        assert "staging/orders 2026-01-02" in message
        assert "ordered_at_not_in_future" in message
        assert "quarantine_share" not in message  # no row was refused: the gate itself passed
    assert not events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert not events(result, dg.DagsterEventType.ASSET_MATERIALIZATION)
    assert volt_env.list_keys("mart/") == []
