"""History stays true in real operation: re-runs of past days and a shop older than the lake.

The days are replayed with VOLT_TODAY (the pipeline's "today"): a day's run happens the day
after it, as the daily schedule runs it, and the later re-runs happen days later. Expected
values are written literally or computed here in plain Python from the rows the test inserted.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from volt_assets_tests.pipeline import component, insert, materialize, read_parquet, ts

LAKE = [
    "raw/electrical_components",
    "raw/users",
    "raw/orders",
    "staging/electrical_components",
    "staging/users",
    "staging/orders",
]
MARTS = ["marts/dim_components", "marts/daily_category_sales", "marts/users_mart"]
D0, D, D1, D2, D3 = "2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"


def run_on(monkeypatch, today: str, partition, selection=LAKE + MARTS) -> None:
    """Materialise as a run started on `today` (UTC) would."""
    monkeypatch.setenv("VOLT_TODAY", today)
    result = materialize(selection, partition)
    assert result.success


def delete(conn, table: str, ids: list[int]) -> None:
    with conn.cursor() as cur:
        cur.execute(f'DELETE FROM "{table}" WHERE id = ANY(%s)', (ids,))
    conn.commit()


def user(id_: int, at: str, email: str | None = None) -> dict:
    return {
        "id": id_,
        "email": email or f"u{id_}@volt.example",
        "full_name": f"User {id_}",
        "country": "DE",
        "created_at": ts(at),
        "updated_at": ts(at),
    }


def order(
    id_: int,
    user_id: int,
    component_id: int,
    at: str,
    quantity=1,
    unit_price="10.00",
    status="paid",
) -> dict:
    return {
        "id": id_,
        "user_id": user_id,
        "component_id": component_id,
        "quantity": quantity,
        "unit_price": unit_price,
        "currency": "EUR",
        "status": status,
        "payment_method": "card",
        "ordered_at": ts(at),
        "updated_at": ts(at),
    }


def folder_bytes(env, layer: str, table: str, day: str) -> dict[str, bytes]:
    """Every object of a partition folder but its manifest (which records when it was written)."""
    prefix = f"{layer}/{table}/dt={day}/"
    return {
        k[len(prefix) :]: env.read_object(k)
        for k in env.list_keys(prefix)
        if not k.endswith("_manifest.json")
    }


def mart_rows(conn, days: list[str]) -> dict:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT * FROM marts.daily_category_sales WHERE dt::text = ANY(%s) ORDER BY dt, category",
            (days,),
        )
        sales = cur.fetchall()
        cur.execute(
            "SELECT * FROM marts.users_mart WHERE dt::text = ANY(%s) ORDER BY dt, user_id", (days,)
        )
        users = cur.fetchall()
        cur.execute("SELECT * FROM marts.dim_components ORDER BY component_id, valid_from")
        dim = cur.fetchall()
    conn.commit()
    return {"daily_category_sales": sales, "users_mart": users, "dim_components": dim}


def tombstones(env, table: str) -> dict[int, list[str]]:
    """key -> the staging days holding a tombstone of it."""
    found = defaultdict(list)
    for key in env.list_keys(f"staging/{table}/"):
        if key.endswith(".parquet"):
            day = key.split("dt=")[1][:10]
            for row in read_parquet(env, key).to_pylist():
                if row["_deleted"] and row.get("updated_at") is None:
                    found[row["id"]].append(day)
    return dict(found)


def test_a_rerun_of_past_days_changes_nothing_and_each_delete_is_tombstoned_once(
    volt_env, source, monkeypatch
):
    conn = source
    # valid filler rows keep each day's refused share under the quality gate (5 %)
    insert(
        conn,
        "electrical_components",
        [
            component(1, f"{D0} 09:00", category="relays"),
            component(2, f"{D0} 09:00", category="relays"),
        ]
        + [component(i, f"{D0} 09:30", category="filler") for i in range(200, 240)],
    )
    insert(conn, "users", [user(100, f"{D0} 08:00"), user(101, f"{D0} 08:00")])
    run_on(monkeypatch, D, D0)

    # day D: components 10-14 are created (13 invalid: refused), and sold
    insert(
        conn,
        "electrical_components",
        [component(i, f"{D} 10:00", category="fuses") for i in (10, 11, 12, 14)]
        + [component(13, f"{D} 10:00", price="-1.00")]
        + [component(i, f"{D} 10:30", category="filler") for i in range(300, 325)],
    )
    insert(
        conn,
        "orders",
        [
            order(500, 100, 10, f"{D} 12:00", quantity=2),
            order(501, 101, 11, f"{D} 13:00", unit_price="7.50"),
            order(502, 101, 1, f"{D} 14:00"),
        ],
    )
    run_on(monkeypatch, D1, D)
    # day D+1: 10 and 11 are hard-deleted; D+1's run (on D+2) notices them
    delete(conn, "electrical_components", [10, 11])
    insert(conn, "orders", [order(503, 100, 12, f"{D1} 09:00")])
    run_on(monkeypatch, D2, D1)
    # day D+2: 12 is deleted
    delete(conn, "electrical_components", [12])
    run_on(monkeypatch, D3, D2)

    before = {
        (layer, day): folder_bytes(volt_env, layer, "electrical_components", day)
        for layer in ("staging", "quarantine")
        for day in (D, D1, D2)
    }
    orders_before = {day: folder_bytes(volt_env, "staging", "orders", day) for day in (D, D1)}
    marts_before = mart_rows(conn, [D, D1])
    dim_copies = {day: folder_bytes(volt_env, "mart", "dim_components", day) for day in (D, D1)}
    assert before[("quarantine", D)], "the refused component 13 is in quarantine D"
    assert tombstones(volt_env, "electrical_components") == {10: [D1], 11: [D1], 12: [D2]}
    # as the daily runs saw it: D's orders of 10 and 11 sell under their category
    assert [r[1:4] for r in marts_before["daily_category_sales"] if str(r[0]) == D] == [
        ("fuses", 2, 3),
        ("relays", 1, 1),
    ]

    # days later the source has moved on: 14 deleted; re-run D and D+1 (lake and marts)
    delete(conn, "electrical_components", [14])
    run_on(monkeypatch, "2026-01-08", D)
    run_on(monkeypatch, "2026-01-08", D1)
    run_on(monkeypatch, "2026-01-08", (D, D1))

    after = {
        (layer, day): folder_bytes(volt_env, layer, "electrical_components", day)
        for layer in ("staging", "quarantine")
        for day in (D, D1, D2)
    }
    assert after == before
    assert {
        day: folder_bytes(volt_env, "staging", "orders", day) for day in (D, D1)
    } == orders_before
    assert mart_rows(conn, [D, D1]) == marts_before
    assert {
        day: folder_bytes(volt_env, "mart", "dim_components", day) for day in (D, D1)
    } == dim_copies
    # each delete a tombstone in exactly one partition; 14's delete is not imported into the past
    assert tombstones(volt_env, "electrical_components") == {10: [D1], 11: [D1], 12: [D2]}

    # the next run reaching the present notices 14, in its own last day only
    run_on(monkeypatch, "2026-01-08", "2026-01-07", LAKE)
    assert tombstones(volt_env, "electrical_components") == {
        10: [D1],
        11: [D1],
        12: [D2],
        14: ["2026-01-07"],
    }
    run_on(monkeypatch, "2026-01-08", ("2026-01-06", "2026-01-07"), LAKE)
    assert tombstones(volt_env, "electrical_components") == {
        10: [D1],
        11: [D1],
        12: [D2],
        14: ["2026-01-07"],
    }


def test_a_rerun_adds_a_late_commit_of_its_day_only(volt_env, source, monkeypatch):
    conn = source
    insert(conn, "electrical_components", [component(1, f"{D} 09:00")])
    run_on(monkeypatch, D1, D, LAKE)
    run_on(monkeypatch, D2, D1, LAKE)
    delete(conn, "electrical_components", [1])
    # a transaction stamped on D that committed days later
    insert(conn, "electrical_components", [component(2, f"{D} 23:00")])
    run_on(monkeypatch, "2026-01-09", D, LAKE)
    staged = {
        r["id"]: r["_deleted"]
        for r in read_parquet(
            volt_env, f"staging/electrical_components/dt={D}/part-00000.parquet"
        ).to_pylist()
    }
    assert staged == {1: False, 2: False}  # the late version, and no delete made after D


# --- (b) a shop older than the lake --------------------------------------------------------------

OLD = "2025-01-01 10:00"  # a year before VOLT_PARTITIONS_START


FILLER = range(
    1000, 1040
)  # valid old rows: the first day's refused share stays under the gate's 5 %


def old_shop(conn) -> None:
    insert(
        conn,
        "electrical_components",
        [
            component(1, OLD, category="relays", price="4.00"),
            component(2, OLD, category="fuses", price="2.50"),
            component(3, OLD, category="cables", price="-3.00"),  # invalid: price
            component(4, "2025-12-31 23:59:59.999999", category="switches"),
        ]
        + [component(i, OLD, category="filler", price="1.00") for i in FILLER],
    )
    insert(
        conn,
        "users",
        [user(100, OLD), user(101, OLD), user(102, OLD, email="not an address")]
        + [user(i, OLD) for i in FILLER],
    )
    insert(
        conn,
        "orders",
        [
            order(500, 100, 1, OLD, quantity=3, unit_price="4.00"),
            order(501, 101, 2, "2025-06-01 10:00", quantity=1, unit_price="2.50"),
            order(502, 101, 1, "2025-06-02 10:00", quantity=0),  # invalid: quantity
            order(503, 100, 2, "2025-06-03 10:00", status="cancelled"),
        ]
        + [order(i, i, i, OLD, status="cancelled") for i in FILLER],
    )  # cancelled: they count nowhere


def new_days(conn) -> None:
    insert(
        conn,
        "electrical_components",
        [component(5, "2026-01-02 08:00", category="relays", price="9.00")],
    )
    insert(conn, "users", [user(103, "2026-01-02 08:00")])
    insert(
        conn,
        "orders",
        [
            order(510, 100, 1, "2026-01-01 11:00", quantity=2, unit_price="4.00"),  # start day
            order(511, 103, 1, "2026-01-02 09:00", quantity=1, unit_price="4.00"),  # old component
            order(512, 101, 2, "2026-01-02 10:00", quantity=4, unit_price="2.50"),
            order(513, 103, 5, "2026-01-02 11:00", quantity=1, unit_price="9.00"),
            order(
                514, 102, 4, "2026-01-02 12:00", quantity=1, unit_price="1.00"
            ),  # invalid user's order
        ],
    )


def test_b_the_first_partition_opens_the_lake(volt_env, source, monkeypatch):
    conn = source
    old_shop(conn)
    new_days(conn)
    run_on(monkeypatch, "2026-01-02", "2026-01-01")
    run_on(monkeypatch, "2026-01-03", "2026-01-02")

    staged = read_parquet(
        volt_env, "staging/electrical_components/dt=2026-01-01/part-00000.parquet"
    )
    assert sorted(staged["id"].to_pylist()) == [1, 2, 4, *FILLER]
    refused = read_parquet(
        volt_env, "quarantine/electrical_components/dt=2026-01-01/part-00000.parquet"
    ).to_pylist()
    assert [str(r["id"]) for r in refused] == ["3"]
    assert refused[0]["_reasons"]
    refused_orders = read_parquet(
        volt_env, "quarantine/orders/dt=2026-01-01/part-00000.parquet"
    ).to_pylist()
    assert [str(r["id"]) for r in refused_orders] == ["502"]
    refused_users = read_parquet(
        volt_env, "quarantine/users/dt=2026-01-01/part-00000.parquet"
    ).to_pylist()
    assert [str(r["id"]) for r in refused_users] == ["102"]

    with conn.cursor() as cur:
        cur.execute(
            "SELECT component_id, sku, category, price, valid_from FROM marts.dim_components "
            "WHERE is_current ORDER BY component_id"
        )
        dim = cur.fetchall()
        cur.execute(
            "SELECT dt::text, category, orders_count, units_sold, revenue, avg_unit_price "
            "FROM marts.daily_category_sales ORDER BY dt, category"
        )
        sales = cur.fetchall()
        cur.execute(
            "SELECT dt::text, user_id, email, total_orders, total_spent, first_order_at, last_order_at, "
            "spend_rank FROM marts.users_mart ORDER BY dt, user_id"
        )
        users = cur.fetchall()
    conn.commit()

    assert dim == [
        (1, "SKU-1", "relays", Decimal("4.00"), ts(OLD)),
        (2, "SKU-2", "fuses", Decimal("2.50"), ts(OLD)),
        (4, "SKU-4", "switches", Decimal("10.00"), ts("2025-12-31 23:59:59.999999")),
        (5, "SKU-5", "relays", Decimal("9.00"), ts("2026-01-02 08:00")),
    ] + [(i, f"SKU-{i}", "filler", Decimal("1.00"), ts(OLD)) for i in FILLER]
    # 514 is a valid order of an invalid user: it counts in sales (switches)
    assert sales == [
        ("2026-01-01", "relays", 1, 2, Decimal("8.00"), Decimal("4.00")),
        ("2026-01-02", "fuses", 1, 4, Decimal("10.00"), Decimal("2.50")),
        ("2026-01-02", "relays", 2, 2, Decimal("13.00"), Decimal("6.50")),
        ("2026-01-02", "switches", 1, 1, Decimal("1.00"), Decimal("1.00")),
    ]
    assert users == expected_users()


def expected_users() -> list[tuple]:
    """users_mart of both days, in plain Python over the rows inserted above."""
    valid_users = {i: f"u{i}@volt.example" for i in [100, 101, 103, *FILLER]}
    joined = {i: "2025-01-01" for i in valid_users} | {103: "2026-01-02"}
    orders = [  # the valid, not cancelled orders: (user, amount, ordered_at)
        (100, Decimal("12.00"), OLD),
        (101, Decimal("2.50"), "2025-06-01 10:00"),
        (100, Decimal("8.00"), "2026-01-01 11:00"),
        (103, Decimal("4.00"), "2026-01-02 09:00"),
        (101, Decimal("10.00"), "2026-01-02 10:00"),
        (103, Decimal("9.00"), "2026-01-02 11:00"),
    ]
    out = []
    for day in ("2026-01-01", "2026-01-02"):
        end = ts(day) + dt.timedelta(days=1)
        rows = []
        for uid, email in valid_users.items():
            if joined[uid] > day:
                continue
            mine = [(a, ts(at)) for u, a, at in orders if u == uid and ts(at) < end]
            spent = sum((a for a, _ in mine), Decimal("0.00"))
            placed = [at for _, at in mine]
            rows.append(
                [
                    day,
                    uid,
                    email,
                    len(mine),
                    spent,
                    min(placed, default=None),
                    max(placed, default=None),
                ]
            )
        for row in rows:
            row.append(1 + sum(other[4] > row[4] for other in rows))
        out += [tuple(r) for r in rows]
    return out


def test_b_moving_the_start_later_opens_the_lake_there(volt_env, source, monkeypatch):
    """A lake whose VOLT_PARTITIONS_START is moved later opens at the new start: its first
    partition holds everything before the end of that day."""
    start = "2026-01-02"
    old_shop(source)
    new_days(source)
    monkeypatch.setenv("VOLT_PARTITIONS_START", start)
    run_on(monkeypatch, "2026-01-03", start, LAKE)
    staged = read_parquet(volt_env, f"staging/orders/dt={start}/part-00000.parquet")
    assert sorted(staged["id"].to_pylist()) == [500, 501, 503, 510, 511, 512, 513, 514, *FILLER]
