"""The marts on real runs: a dirty shop that changes over three days, materialised day by day
(raw + staging + marts), compared after every day with answers computed here in plain Python
from what the test did to the source (not with the marts' SQL), then re-materialised as one
3-day range run that must change nothing."""

import datetime as dt
import re
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from psycopg2 import sql

from volt_assets_tests.pipeline import create_source_schema, insert, materialize, read_parquet, ts

UTC = dt.UTC
D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
LAKE = [
    "raw/electrical_components",
    "raw/users",
    "raw/orders",
    "staging/electrical_components",
    "staging/users",
    "staging/orders",
]
MARTS = [
    "marts/dim_components",
    "marts/daily_category_sales",
    "marts/daily_component_sales",
    "marts/users_mart",
]
TRACKED = ("name", "category", "manufacturer", "price", "currency")
CENT = Decimal("0.01")


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def is_valid(table: str, row: dict) -> bool:
    """The refuse rules of tables.yaml, for the kinds of dirt this test writes."""
    if table == "electrical_components":
        return (
            bool((row["name"] or "").strip())
            and row["price"] is not None
            and row["price"] > 0
            and re.fullmatch(r"[A-Za-z]{3}", row["currency"] or "") is not None
        )
    if table == "users":
        return re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", row["email"] or "") is not None
    return (
        row["quantity"] is not None
        and 0 < row["quantity"] <= 100000
        and row["unit_price"] is not None
        and row["unit_price"] > 0
    )


class Shop:
    """The Volt source as the test changes it, and every version the lake captured: the test
    runs the pipeline after each day's changes and changes a row at most once a day."""

    def __init__(self, conn):
        self.conn = conn
        self.current: dict[str, dict[int, dict]] = defaultdict(dict)
        self.versions: dict[str, list[dict]] = defaultdict(list)
        self.deleted_on: dict[str, dict[int, dt.date]] = defaultdict(
            dict
        )  # hard deletes, by day noticed

    def insert(self, table: str, rows: list[dict]) -> None:
        insert(self.conn, table, rows)
        for row in rows:
            self.current[table][row["id"]] = dict(row)
            self.versions[table].append(dict(row))

    def update(self, table: str, id_: int, **values) -> None:
        with self.conn.cursor() as cur:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values
            )
            cur.execute(
                sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
                    sql.Identifier(table), assignments
                ),
                [*values.values(), id_],
            )
        self.conn.commit()
        row = {**self.current[table][id_], **values}
        self.current[table][id_] = row
        self.versions[table].append(dict(row))

    def delete(self, table: str, id_: int, day: dt.date) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table)), [id_]
            )
        self.conn.commit()
        self.deleted_on[table][id_] = day

    # --- the README's as-of rule, spelled out -------------------------------------------
    def latest_valid(self, table: str, id_, day: dt.date) -> dict | None:
        """The key's latest valid version with updated_at before day+1 (deleted or not)."""
        end = day_start(day + dt.timedelta(days=1))
        found = [
            v
            for v in self.versions[table]
            if v["id"] == id_ and v["updated_at"] < end and is_valid(table, v)
        ]
        return max(found, key=lambda v: v["updated_at"]) if found else None

    def known(self, table: str, day: dt.date) -> list[dict]:
        """Every key's latest valid version at the end of day, leaving out deleted keys."""
        rows = []
        for id_ in sorted({v["id"] for v in self.versions[table]}):
            row = self.latest_valid(table, id_, day)
            gone = id_ in self.deleted_on[table] and self.deleted_on[table][id_] <= day
            if row and not gone and not row.get("deleted_at"):
                rows.append(row)
        return rows

    # --- expected marts ----------------------------------------------------------------------
    def sales(self, day: dt.date) -> list[dict]:
        rows = []
        for order in self.known("orders", day):
            if order["status"] == "cancelled" or order["ordered_at"].date() != day:
                continue
            comp = self.latest_valid("electrical_components", order["component_id"], day)
            rows.append({**order, "category": (comp or {}).get("category") or "unknown"})
        return rows

    def category_sales(self, day: dt.date) -> list[tuple]:
        groups = defaultdict(list)
        for order in self.sales(day):
            groups[order["category"]].append(order)
        out = []
        for category, orders in sorted(groups.items()):
            units = sum(o["quantity"] for o in orders)
            revenue = sum(o["quantity"] * o["unit_price"] for o in orders)
            out.append(
                (
                    day,
                    category,
                    len(orders),
                    units,
                    revenue,
                    (revenue / units).quantize(CENT, ROUND_HALF_UP),
                )
            )
        return out

    def component_sales(self, day: dt.date) -> list[tuple]:
        groups = defaultdict(list)
        for order in self.sales(day):
            if order["component_id"] is not None:
                groups[order["component_id"]].append(order)
        return [
            (
                day,
                cid,
                orders[0]["category"],
                len(orders),
                sum(o["quantity"] for o in orders),
                sum(o["quantity"] * o["unit_price"] for o in orders),
            )
            for cid, orders in sorted(groups.items())
        ]

    def users_mart(self, day: dt.date) -> list[tuple]:
        orders = [o for o in self.known("orders", day) if o["status"] != "cancelled"]
        rows = []
        for user in self.known("users", day):
            mine = [o for o in orders if o["user_id"] == user["id"]]
            spent = sum((o["quantity"] * o["unit_price"] for o in mine), Decimal("0.00"))
            placed = [o["ordered_at"] for o in mine]
            rows.append(
                [
                    day,
                    user["id"],
                    user["email"],
                    user["country"],
                    len(mine),
                    spent,
                    min(placed, default=None),
                    max(placed, default=None),
                ]
            )
        for row in rows:  # rank 1 + the number of users who spent strictly more
            row.append(1 + sum(other[5] > row[5] for other in rows))
        return [tuple(r) for r in rows]

    def dim_components(self, day: dt.date) -> list[tuple]:
        """Type 2 history as of the end of day, from the versions of each day in order."""
        table = "electrical_components"
        out = []
        for cid in sorted({v["id"] for v in self.versions[table]}):
            by_day = {}  # the lake keeps one version a day: the latest valid one
            for v in sorted(self.versions[table], key=lambda v: v["updated_at"]):
                if (
                    v["id"] == cid
                    and v["updated_at"] < day_start(day + dt.timedelta(days=1))
                    and is_valid(table, v)
                ):
                    by_day[v["updated_at"].date()] = v
            deleted = self.deleted_on[table].get(cid)
            if deleted and deleted <= day:
                by_day[deleted] = None  # the tombstone replaces that day's version
            if not by_day:
                continue
            sku = [v for v in by_day.values() if v][-1]["sku"]
            spans, open_ = [], None
            for d in sorted(by_day):
                v = by_day[d]
                if v is None or v.get("deleted_at"):
                    if open_:
                        open_[1] = v["updated_at"] if v else day_start(d + dt.timedelta(days=1))
                        spans.append(open_)
                        open_ = None
                elif open_ is None or tuple(open_[0][c] for c in TRACKED) != tuple(
                    v[c] for c in TRACKED
                ):
                    if open_:
                        open_[1] = v["updated_at"]
                        spans.append(open_)
                    open_ = [v, None]
            if open_:
                spans.append(open_)
            for v, valid_to in spans:
                out.append(
                    (
                        cid,
                        sku,
                        *(v[c] for c in TRACKED),
                        v["updated_at"],
                        valid_to,
                        valid_to is None,
                    )
                )
        return out


# --- the data set --------------------------------------------------------------------------
CATEGORIES = ["fuses", "cables", "relays", "switches"]


def component(id_: int, at: str, **values) -> dict:
    row = {
        "id": id_,
        "sku": f"SKU-{id_}",
        "name": f"Component {id_}",
        "category": CATEGORIES[id_ % 4],
        "manufacturer": "ABB",
        "price": Decimal(id_) + Decimal("0.99"),
        "currency": "EUR",
        "stock_quantity": 10,
        "created_at": ts(at),
        "updated_at": ts(at),
        "deleted_at": None,
    }
    return {**row, **values}


def user(id_: int, at: str, **values) -> dict:
    row = {
        "id": id_,
        "email": f"user{id_}@volt.test",
        "full_name": f"User {id_}",
        "country": ["PL", "DE", "US"][id_ % 3],
        "created_at": ts(at),
        "updated_at": ts(at),
    }
    return {**row, **values}


def order(id_: int, at: str, **values) -> dict:
    row = {
        "id": id_,
        "user_id": id_ % 6 + 1,
        "component_id": id_ % 8 + 1,
        "quantity": id_ % 3 + 1,
        "unit_price": Decimal("3.33") + id_,
        "currency": "EUR",
        "status": "paid",
        "payment_method": "card",
        "ordered_at": ts(at),
        "updated_at": ts(at),
    }
    return {**row, **values}


def day_1(shop: Shop) -> None:
    """20 valid rows and 1 refused per table (under the 5 % gate)."""
    shop.insert(
        "electrical_components",
        [component(i, f"2026-01-01 08:{i:02d}") for i in range(1, 21)]
        + [component(21, "2026-01-01 09:00", price=None)],
    )
    shop.insert(
        "users",
        [user(i, f"2026-01-01 07:{i:02d}") for i in range(1, 21)]
        + [user(21, "2026-01-01 07:30", email="not-an-email")],
    )
    shop.insert(
        "orders",
        [order(i, f"2026-01-01 10:{i:02d}") for i in range(1, 21) if i not in (7, 8, 9, 10)]
        + [
            order(7, "2026-01-01 10:07", status="cancelled"),
            order(8, "2026-01-01 10:08", component_id=999),  # a component the lake never saw
            order(9, "2026-01-01 10:09", status=None),  # not cancelled: counts
            order(10, "2026-01-01 23:59:59.999999"),  # the day's last instant
            order(21, "2026-01-01 11:00", quantity=0),
        ],
    )  # refused


def day_2(shop: Shop) -> None:
    up = "electrical_components"
    shop.update(up, 1, price=Decimal("12.00"), updated_at=ts("2026-01-02 09:00"))  # new version
    shop.update(
        up, 3, deleted_at=ts("2026-01-02 10:00"), updated_at=ts("2026-01-02 10:00")
    )  # soft delete
    shop.delete(up, 4, D2)  # hard delete
    shop.update(
        up, 5, price=Decimal("-1.00"), updated_at=ts("2026-01-02 12:00")
    )  # refused: v1 stays
    for i in [2, *range(6, 21)]:  # not new versions; also keep the refused share at 1 in 20
        shop.update(up, i, stock_quantity=3, updated_at=ts(f"2026-01-02 13:{i:02d}"))
    shop.insert(up, [component(22, "2026-01-02 11:00", category="meters")])
    shop.update("users", 1, country="CZ", updated_at=ts("2026-01-02 08:00"))
    shop.delete("users", 2, D2)
    shop.update("orders", 2, status="cancelled", updated_at=ts("2026-01-02 08:00"))  # placed on D1
    shop.update("orders", 6, quantity=-1, updated_at=ts("2026-01-02 09:00"))  # refused: v1 stays
    shop.update("orders", 21, quantity=2, updated_at=ts("2026-01-02 09:30"))  # fixed: placed on D1
    shop.delete("orders", 5, D2)
    components = [1, 3, 4, 22, 23, 2, None]  # 23 is created only on D3: 'unknown' on D2, for good
    shop.insert(
        "orders",
        [order(i, f"2026-01-02 10:{i:02d}", component_id=components[i % 7]) for i in range(22, 41)]
        + [order(41, "2026-01-02 15:00", status="cancelled")],
    )


def day_3(shop: Shop) -> None:
    up = "electrical_components"
    shop.update(
        up, 1, name="Component 1 (Rev. B)", updated_at=ts("2026-01-03 09:00")
    )  # third version
    shop.update(up, 2, sku="SKU-2B", updated_at=ts("2026-01-03 09:10"))  # type 1: no version
    shop.update(up, 3, deleted_at=None, updated_at=ts("2026-01-03 09:20"))  # comes back
    shop.update(up, 21, price=Decimal("5.00"), updated_at=ts("2026-01-03 09:30"))  # fixed
    shop.insert(up, [component(23, "2026-01-03 10:00", category="sensors")])
    shop.update("users", 21, email="user21@volt.test", updated_at=ts("2026-01-03 08:00"))
    shop.update("orders", 22, status="cancelled", updated_at=ts("2026-01-03 08:00"))  # placed on D2
    shop.insert(
        "orders",
        [
            order(i, f"2026-01-03 11:{i:02d}", component_id=[23, 1, 3][i % 3], user_id=21)
            for i in range(42, 46)
        ],
    )


# --- reading the marts -----------------------------------------------------------------------
def rows(conn, query: str, *params) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return [tuple(r) for r in cur.fetchall()]


def mart_tables(conn) -> dict[str, list[tuple]]:
    return {
        "dim_components": rows(
            conn, "SELECT * FROM marts.dim_components ORDER BY component_id, valid_from"
        ),
        "daily_category_sales": rows(
            conn, "SELECT * FROM marts.daily_category_sales ORDER BY dt, category"
        ),
        "daily_component_sales": rows(
            conn, "SELECT * FROM marts.daily_component_sales ORDER BY dt, component_id"
        ),
        "users_mart": rows(conn, "SELECT * FROM marts.users_mart ORDER BY dt, user_id"),
    }


def assert_marts_match(volt_env, conn, shop: Shop, loaded: list[dt.date]) -> None:
    """Every loaded day of every mart, in PostgreSQL and in its lake copy, equals the model."""
    tables = mart_tables(conn)
    for day in loaded:
        assert [r for r in tables["daily_category_sales"] if r[0] == day] == shop.category_sales(
            day
        ), day
        assert [r for r in tables["daily_component_sales"] if r[0] == day] == shop.component_sales(
            day
        ), day
        assert [r for r in tables["users_mart"] if r[0] == day] == shop.users_mart(day), day
        copy = read_parquet(volt_env, f"mart/users_mart/dt={day}/part-00000.parquet")
        assert [(day, *r.values()) for r in copy.to_pylist()] == shop.users_mart(day), day
        copy = read_parquet(volt_env, f"mart/daily_category_sales/dt={day}/part-00000.parquet")
        assert [(day, *r.values()) for r in copy.to_pylist()] == shop.category_sales(day), day
        copy = read_parquet(volt_env, f"mart/dim_components/dt={day}/part-00000.parquet")
        assert [tuple(r.values()) for r in copy.to_pylist()] == shop.dim_components(day), day
    # The table holds one history: as of the latest day loaded.
    assert tables["dim_components"] == shop.dim_components(max(loaded))


def test_marts_follow_the_lake_day_by_day(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    shop = Shop(conn)

    day_1(shop)
    materialize(LAKE + MARTS, "2026-01-01")
    assert_marts_match(volt_env, conn, shop, [D1])

    day_2(shop)
    materialize(LAKE + MARTS, "2026-01-02")
    assert_marts_match(volt_env, conn, shop, [D1, D2])

    day_3(shop)
    materialize(LAKE + MARTS, "2026-01-03")
    assert_marts_match(volt_env, conn, shop, [D1, D2, D3])

    # The stories the model encodes, spelled out.
    # User 3 has orders 2, 8, 14, 20 on D1; on D2 order 2 is cancelled and 26, 32, 38 come.
    user3 = rows(
        conn, "SELECT dt, total_orders FROM marts.users_mart WHERE user_id = 3 ORDER BY dt"
    )
    assert user3 == [(D1, 4), (D2, 6), (D3, 6)]
    # D1 keeps orders 2 (cancelled on D2), 5 (deleted on D2) and 6 (refused update on D2): 1..20 but 7.
    d1_sales = rows(
        conn, "SELECT sum(orders_count) FROM marts.daily_category_sales WHERE dt = %s", D1
    )
    assert d1_sales == [(19,)]
    assert rows(
        conn,
        "SELECT price, valid_from, valid_to, is_current FROM marts.dim_components "
        "WHERE component_id = 1 ORDER BY valid_from",
    ) == [
        (Decimal("1.99"), ts("2026-01-01 08:01"), ts("2026-01-02 09:00"), False),
        (Decimal("12.00"), ts("2026-01-02 09:00"), ts("2026-01-03 09:00"), False),
        (Decimal("12.00"), ts("2026-01-03 09:00"), None, True),
    ]
    assert rows(conn, "SELECT valid_to FROM marts.dim_components WHERE component_id = 4") == [
        (ts("2026-01-03 00:00"),)
    ]
    assert rows(
        conn, "SELECT count(*) FROM marts.dim_components WHERE component_id = 4 AND is_current"
    ) == [(0,)]
    assert rows(
        conn,
        "SELECT valid_from, valid_to FROM marts.dim_components WHERE component_id = 3 ORDER BY 1",
    ) == [(ts("2026-01-01 08:03"), ts("2026-01-02 10:00")), (ts("2026-01-03 09:20"), None)]
    d2_unknown = rows(
        conn,
        "SELECT orders_count FROM marts.daily_category_sales WHERE dt = %s AND category = 'unknown'",
        D2,
    )
    assert d2_unknown == [
        (5,)
    ]  # 3 orders of component 23 (seen on D3 only) and 2 without a component

    # One run over the 3 days re-computes every partition from the lake: nothing changes.
    before = mart_tables(conn)
    copies = {
        k: volt_env.read_object(k) for k in volt_env.list_keys("mart/") if k.endswith(".parquet")
    }
    materialize(MARTS, ("2026-01-01", "2026-01-03"))
    assert mart_tables(conn) == before
    assert {
        k: volt_env.read_object(k) for k in volt_env.list_keys("mart/") if k.endswith(".parquet")
    } == copies

    # Re-materialising an old day keeps the history as of the latest day loaded.
    materialize(["marts/dim_components"], "2026-01-01")
    assert mart_tables(conn)["dim_components"] == before["dim_components"]
    # ... and leaves the later days' Parquet copies (every mart's) as they were
    assert {
        k: volt_env.read_object(k) for k in volt_env.list_keys("mart/") if k.endswith(".parquet")
    } == copies


def test_avg_unit_price_rounds_half_up_exactly(volt_env):
    """Averages that sit on (or next to) half a cent: half up gives 1.03, 1.03 and 1.01; half
    even would give 1.02 for fuses and 1.00 for relays, truncation 1.02, 1.02 and 1.00, and
    floating point 1.00 for relays (1.005 is 1.00499... as a double)."""
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(
        conn,
        "electrical_components",
        [
            component(4, "2026-01-01 08:00", category="fuses"),
            component(5, "2026-01-01 08:00", category="cables"),
            component(6, "2026-01-01 08:00", category="relays"),
        ],
    )
    prices = {4: ["1.00", "1.05"], 5: ["1.00", "1.03", "1.05"], 6: ["1.00", "1.01"]}
    orders = [
        order(
            10 * cid + n,
            f"2026-01-01 10:{n:02d}",
            component_id=cid,
            quantity=1,
            unit_price=Decimal(p),
        )
        for cid, ps in prices.items()
        for n, p in enumerate(ps)
    ]
    insert(conn, "orders", orders)
    selection = [
        "raw/electrical_components",
        "staging/electrical_components",
        "raw/orders",
        "staging/orders",
        "marts/daily_category_sales",
    ]
    assert materialize(selection, "2026-01-01").success
    got = rows(
        conn,
        "SELECT category, units_sold, revenue, avg_unit_price FROM marts.daily_category_sales "
        "ORDER BY category",
    )
    assert got == [
        ("cables", 3, Decimal("3.08"), Decimal("1.03")),
        ("fuses", 2, Decimal("2.05"), Decimal("1.03")),
        ("relays", 2, Decimal("2.01"), Decimal("1.01")),
    ]
    copy = read_parquet(volt_env, "mart/daily_category_sales/dt=2026-01-01/part-00000.parquet")
    assert [str(v) for v in copy["avg_unit_price"].to_pylist()] == ["1.03", "1.03", "1.01"]


def test_dim_components_replays_days_in_any_order_and_picks_up_a_corrected_day(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    shop = Shop(conn)
    lake = ["raw/electrical_components", "staging/electrical_components"]
    shop.insert(
        "electrical_components",
        [component(1, "2026-01-01 08:00"), component(2, "2026-01-01 08:30")],
    )
    assert materialize(lake, "2026-01-01").success
    shop.update(
        "electrical_components", 1, price=Decimal("12.00"), updated_at=ts("2026-01-02 09:00")
    )
    shop.insert("electrical_components", [component(3, "2026-01-02 10:00")])
    assert materialize(lake, "2026-01-02").success
    shop.update(
        "electrical_components", 2, name="Component 2 (Rev. B)", updated_at=ts("2026-01-03 09:00")
    )
    assert materialize(lake, "2026-01-03").success
    history = [
        (
            1,
            "SKU-1",
            "Component 1",
            "cables",
            "ABB",
            Decimal("1.99"),
            "EUR",
            ts("2026-01-01 08:00"),
            ts("2026-01-02 09:00"),
            False,
        ),
        (
            1,
            "SKU-1",
            "Component 1",
            "cables",
            "ABB",
            Decimal("12.00"),
            "EUR",
            ts("2026-01-02 09:00"),
            None,
            True,
        ),
        (
            2,
            "SKU-2",
            "Component 2",
            "relays",
            "ABB",
            Decimal("2.99"),
            "EUR",
            ts("2026-01-01 08:30"),
            ts("2026-01-03 09:00"),
            False,
        ),
        (
            2,
            "SKU-2",
            "Component 2 (Rev. B)",
            "relays",
            "ABB",
            Decimal("2.99"),
            "EUR",
            ts("2026-01-03 09:00"),
            None,
            True,
        ),
        (
            3,
            "SKU-3",
            "Component 3",
            "switches",
            "ABB",
            Decimal("3.99"),
            "EUR",
            ts("2026-01-02 10:00"),
            None,
            True,
        ),
    ]
    for day in ("2026-01-03", "2026-01-01", "2026-01-02"):  # the latest day first, then the others
        assert materialize(["marts/dim_components"], day).success
        assert mart_tables(conn)["dim_components"] == history, day

    # Day 2 corrected at the source (an in-place fix stamped on day 2), staging day 2 re-run,
    # then the mart's day 2: the table's history has the fix; day 3's copy is a snapshot of its
    # own and is not rewritten, day 1's neither.
    later = {
        k: volt_env.read_object(k) for k in volt_env.list_keys("mart/dim_components/dt=2026-01-03/")
    }
    assert later
    first_copy = volt_env.read_object("mart/dim_components/dt=2026-01-01/part-00000.parquet")
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE electrical_components SET manufacturer = 'Siemens', updated_at = %s WHERE id = 3",
            (ts("2026-01-02 23:00"),),
        )
    conn.commit()
    assert materialize(lake, "2026-01-02").success
    assert materialize(["marts/dim_components"], "2026-01-02").success
    fixed = history[:4] + [
        (
            3,
            "SKU-3",
            "Component 3",
            "switches",
            "Siemens",
            Decimal("3.99"),
            "EUR",
            ts("2026-01-02 23:00"),
            None,
            True,
        )
    ]
    assert mart_tables(conn)["dim_components"] == fixed
    assert {k: volt_env.read_object(k) for k in later} == later
    assert (
        volt_env.read_object("mart/dim_components/dt=2026-01-01/part-00000.parquet") == first_copy
    )
    copy = read_parquet(
        volt_env, "mart/dim_components/dt=2026-01-02/part-00000.parquet"
    ).to_pylist()
    assert [(r["component_id"], r["manufacturer"]) for r in copy] == [
        (1, "ABB"),
        (1, "ABB"),
        (2, "ABB"),
        (3, "Siemens"),
    ]
