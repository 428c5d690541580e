"""The analysts' queries in `sql/analytics/`, run as an analyst would (the file's text, its
parameters) on marts loaded with known rows, each answer computed here in plain Python.

The rows go straight into the mart tables created from `sql/marts/*.sql`: these tests are
about the queries, the pipeline that fills the marts has its own tests (test_marts.py).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest

from volt_assets.defs.marts.io_manager import ensure_tables
from volt_assets_tests.pipeline import root

UTC = dt.UTC
CENT = Decimal("0.01")


def query(conn, name: str, **params) -> list[tuple]:
    text = (root() / "sql" / "analytics" / f"{name}.sql").read_text(encoding="utf-8")
    with conn.cursor() as cur:
        cur.execute(text, params)
        return cur.fetchall()


def load(conn, table: str, rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        marks = ", ".join(["%s"] * len(rows[0]))
        cur.executemany(f"INSERT INTO marts.{table} VALUES ({marks})", rows)
    conn.commit()


@pytest.fixture
def marts(volt_env):
    conn = volt_env.connect()
    ensure_tables(conn)
    conn.commit()
    yield conn
    conn.close()


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- daily sales: rolling 7 days and month over month -------------------------------------------


def category_days() -> list[tuple]:
    """Sales on some days of Jan-Mar 2026 (gaps included), two or three categories a day."""
    rng = random.Random(7)
    rows = []
    day = dt.date(2026, 1, 20)
    while day <= dt.date(2026, 3, 10):
        if rng.random() < 0.7:  # some days sell nothing
            for category in rng.sample(["cables", "fuses", "relays", "unknown"], rng.randint(1, 3)):
                units = rng.randint(1, 40)
                revenue = (Decimal(rng.randint(100, 900_00)) / 100).quantize(CENT)
                rows.append(
                    (
                        day,
                        category,
                        rng.randint(1, units),
                        units,
                        revenue,
                        (revenue / units).quantize(CENT, ROUND_HALF_UP),
                    )
                )
        day += dt.timedelta(days=1)
    return rows


def test_rolling_7_day_revenue_fills_empty_days_and_counts_the_week_before(marts):
    rows = category_days()
    load(marts, "daily_category_sales", rows)
    per_day: dict[dt.date, Decimal] = defaultdict(Decimal)
    for day, _, _, _, revenue, _ in rows:
        per_day[day] += revenue

    first, last = dt.date(2026, 2, 1), dt.date(2026, 2, 20)
    expected = []
    day = first
    while day <= last:
        week = sum(
            (per_day.get(day - dt.timedelta(days=k), Decimal(0)) for k in range(7)), Decimal(0)
        )
        expected.append((day, per_day.get(day, Decimal(0)), week))
        day += dt.timedelta(days=1)

    got = query(marts, "rolling_7_day_revenue", first_day=first, last_day=last)
    assert [(d, Decimal(r), Decimal(w)) for d, r, w in got] == expected
    assert len(got) == 20  # one row per calendar day, sales or not


def test_month_over_month_growth(marts):
    rows = category_days()
    load(marts, "daily_category_sales", rows)
    months: dict[dt.date, list] = defaultdict(lambda: [Decimal(0), 0, 0])
    for day, _, orders, units, revenue, _ in rows:
        m = months[day.replace(day=1)]
        m[0] += revenue
        m[1] += orders
        m[2] += units
    expected, previous = [], None
    for month in sorted(months):
        revenue, orders, units = months[month]
        growth = (
            None
            if previous is None
            else (100 * (revenue - previous) / previous).quantize(CENT, ROUND_HALF_UP)
        )
        expected.append((month, revenue, orders, units, previous, growth))
        previous = revenue

    assert query(marts, "month_over_month_growth") == expected
    assert [r[0] for r in expected] == [
        dt.date(2026, 1, 1),
        dt.date(2026, 2, 1),
        dt.date(2026, 3, 1),
    ]


# --- top components per category ---------------------------------------------------------------


def test_top_10_components_by_revenue_per_category(marts):
    # 12 cables (two tie on revenue), 2 fuses; component 5 was a cable, became a relay on day 2.
    sales = []
    for cid in range(1, 13):
        revenue = Decimal(1000 - cid * 50) if cid != 4 else Decimal(1000 - 3 * 50)  # 3 and 4 tie
        sales.append((dt.date(2026, 2, 1), cid, "cables", 1, 2, revenue))
    sales.append((dt.date(2026, 2, 2), 5, "relays", 1, 1, Decimal("999.00")))
    sales.append((dt.date(2026, 2, 2), 20, "fuses", 2, 3, Decimal("30.00")))
    sales.append((dt.date(2026, 2, 3), 21, "fuses", 1, 1, Decimal("45.50")))
    sales.append((dt.date(2026, 2, 9), 21, "fuses", 1, 1, Decimal("1000.00")))  # outside the window
    load(
        marts, "daily_component_sales", list(reversed(sales))
    )  # ids descending: a tie needs the tie-break
    # Component 7 has two versions (renamed): the latest name is shown. 12 is not in the dimension.
    dims = [
        (
            cid,
            f"SKU-{cid}",
            f"Component {cid}",
            "cables",
            "ACME",
            Decimal("1.00"),
            "EUR",
            ts("2026-01-01 00:00"),
            None,
            True,
        )
        for cid in list(range(1, 12)) + [20, 21]
    ]
    dims[6] = (
        7,
        "SKU-7",
        "Old name",
        "cables",
        "ACME",
        Decimal("1.00"),
        "EUR",
        ts("2026-01-01 00:00"),
        ts("2026-01-15 00:00"),
        False,
    )
    dims.append(
        (
            7,
            "SKU-7",
            "New name",
            "cables",
            "ACME",
            Decimal("1.00"),
            "EUR",
            ts("2026-01-15 00:00"),
            None,
            True,
        )
    )
    load(marts, "dim_components", dims)

    got = query(
        marts,
        "top_components_by_revenue",
        first_day=dt.date(2026, 2, 1),
        last_day=dt.date(2026, 2, 7),
    )

    totals: dict[tuple[str, int], list] = defaultdict(lambda: [0, Decimal(0)])
    for day, cid, category, _, units, revenue in sales:
        if dt.date(2026, 2, 1) <= day <= dt.date(2026, 2, 7):
            totals[(category, cid)][0] += units
            totals[(category, cid)][1] += revenue
    names = {7: "New name", 12: None}
    expected = []
    for category in sorted({c for c, _ in totals}):
        ranked = sorted(
            ((cid, *v) for (c, cid), v in totals.items() if c == category),
            key=lambda r: (-r[2], r[0]),
        )
        for rank, (cid, units, revenue) in enumerate(ranked[:10], start=1):
            name = names.get(cid, f"Component {cid}")
            expected.append(
                (category, rank, cid, None if name is None else f"SKU-{cid}", name, units, revenue)
            )

    assert got == expected
    cables = [r for r in got if r[0] == "cables"]
    assert len(cables) == 10 and [r[2] for r in cables[:4]] == [1, 2, 3, 4]  # the tie broken by id


# --- average order value by country ------------------------------------------------------------


def test_average_order_value_by_country(marts):
    day, other = dt.date(2026, 2, 10), dt.date(2026, 2, 9)
    users = [  # (user, country, orders, spent)
        (1, "PL", 3, Decimal("300.00")),
        (2, "PL", 1, Decimal("50.55")),
        (3, "DE", 2, Decimal("10.01")),
        (4, None, 1, Decimal("99.99")),
        (5, "FR", 0, Decimal("0.00")),
        (6, "DE", 0, Decimal("0.00")),
    ]
    rows = [
        (
            day,
            uid,
            f"u{uid}@volt.example",
            country,
            n,
            spent,
            ts("2026-02-01 10:00") if n else None,
            ts("2026-02-10 10:00") if n else None,
            1,
        )
        for uid, country, n, spent in users
    ]
    rows.append(
        (other, 1, "u1@volt.example", "PL", 100, Decimal("100000.00"), None, None, 1)
    )  # another day
    load(marts, "users_mart", rows)

    by_country: dict[str, list] = defaultdict(lambda: [0, 0, Decimal(0)])
    for _, country, n, spent in users:
        c = by_country[country or "unknown"]
        c[0] += 1 if n else 0
        c[1] += n
        c[2] += spent
    expected = [
        (country, customers, orders, spent, (spent / orders).quantize(CENT, ROUND_HALF_UP))
        for country, (customers, orders, spent) in by_country.items()
        if orders
    ]
    expected.sort(key=lambda r: (-r[4], r[0]))

    assert query(marts, "average_order_value_by_country", dt=day) == expected
    assert "FR" not in [r[0] for r in expected]  # no orders: not a market yet


# --- price history from the SCD2 table -----------------------------------------------------------


def test_component_price_history(marts):
    versions = [  # a price change, a rename at the same price, another price change, then deleted
        (
            42,
            "SKU-42",
            "Breaker 16A",
            "circuit-breakers",
            "ABB",
            Decimal("10.00"),
            "EUR",
            ts("2026-01-01 08:00"),
            ts("2026-01-05 09:00"),
            False,
        ),
        (
            42,
            "SKU-42",
            "Breaker 16A",
            "circuit-breakers",
            "ABB",
            Decimal("12.50"),
            "EUR",
            ts("2026-01-05 09:00"),
            ts("2026-01-07 10:00"),
            False,
        ),
        (
            42,
            "SKU-42",
            "Breaker 16 A",
            "circuit-breakers",
            "ABB",
            Decimal("12.50"),
            "EUR",
            ts("2026-01-07 10:00"),
            ts("2026-01-09 00:00"),
            False,
        ),
        (
            42,
            "SKU-42",
            "Breaker 16 A",
            "circuit-breakers",
            "ABB",
            Decimal("11.00"),
            "EUR",
            ts("2026-01-09 00:00"),
            ts("2026-01-12 00:00"),
            False,
        ),
        (
            43,
            "SKU-43",
            "Fuse",
            "fuses",
            "Eaton",
            Decimal("1.00"),
            "EUR",
            ts("2026-01-01 08:00"),
            None,
            True,
        ),
    ]
    load(marts, "dim_components", list(reversed(versions)))  # insertion order must not matter

    got = query(marts, "component_price_history", component_id=42)

    mine = [v for v in versions if v[0] == 42]
    expected, previous = [], None
    for cid, sku, name, _, _, price, currency, start, end, current in mine:
        expected.append(
            (
                cid,
                sku,
                name,
                start,
                end,
                current,
                price,
                currency,
                previous,
                None if previous is None else price - previous,
            )
        )
        previous = price
    assert got == expected
    assert [r[9] for r in got] == [None, Decimal("2.50"), Decimal("0.00"), Decimal("-1.50")]
    assert not any(r[5] for r in got)  # deleted: no current version
