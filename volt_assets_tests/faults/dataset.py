"""A deterministic Volt shop for fault tests: same call, same rows, in any database.

Built with `generate_series` in SQL (no random()), so two databases seeded alike hold
identical rows and an undisturbed run in one can be compared with a disturbed run in the
other. About 1 % of the rows break a validation rule (quarantine stays under the 5 % gate,
so the gate warns but never blocks).
"""

from __future__ import annotations

import datetime as dt

from volt_assets_tests.pipeline import create_source_schema

CATEGORIES = ("fuses", "cables", "relays", "switches", "sockets", "sensors", "meters")


def _day_expr(days: list[dt.date], id_col: str) -> str:
    """SQL for the start of the day a row belongs to: days[id % len(days)], as timestamptz."""
    arms = " ".join(
        f"WHEN {i} THEN timestamptz '{d.isoformat()} 00:00:00+00'" for i, d in enumerate(days)
    )
    return f"(CASE {id_col} % {len(days)} {arms} END)"


def seed(
    conn, days: list[dt.date], *, components: int = 300, users: int = 120, orders: int = 600
) -> None:
    """Create the Volt schema and fill it; every row's `updated_at` lies in one of `days`."""
    create_source_schema(conn)
    day_of = _day_expr(days, "g")
    # offset within the day: spread over [00:00:01, 23:53:21], microseconds make cursors distinct
    offset = "(interval '1 second' * ((g * 7919) % 86000 + 1) + interval '1 microsecond' * g)"
    with conn.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO electrical_components (id, sku, name, category, manufacturer, description, price,
                currency, stock_quantity, voltage_rating, specs, image_filename, created_at, updated_at)
            SELECT g, 'SKU-' || lpad(g::text, 6, '0'),
                   CASE WHEN g % 100 = 42 THEN '   ' ELSE 'Component ' || g END,
                   (ARRAY{list(CATEGORIES)})[g % {len(CATEGORIES)} + 1],
                   (ARRAY['ABB', 'Siemens', 'Schneider', 'Eaton'])[g % 4 + 1],
                   'Part number ' || g || repeat(' spec', g % 5),
                   CASE WHEN g % 100 = 17 THEN -1.00 ELSE round(((g * 37) % 50000) / 100.0 + 1, 2) END,
                   (ARRAY['EUR', 'PLN', 'USD'])[g % 3 + 1],
                   g % 250, round((g % 40) * 12.5, 2),
                   jsonb_build_object('poles', g % 4, 'ip', 'IP' || (20 + g % 50)),
                   'component-' || g || '.jpg',
                   {day_of} - interval '30 days', {day_of} + {offset}
            FROM generate_series(1, {components}) g
            """
        )
        cur.execute(
            f"""
            INSERT INTO users (id, email, full_name, country, created_at, updated_at)
            SELECT g, CASE WHEN g % 100 = 23 THEN 'not-an-email-' || g ELSE 'User.' || g || '@Example.com ' END,
                   'User ' || g, (ARRAY['PL', 'DE', 'FR', 'CZ'])[g % 4 + 1],
                   {day_of} - interval '60 days', {day_of} + {offset}
            FROM generate_series(1, {users}) g
            """
        )
        cur.execute(
            f"""
            INSERT INTO orders (id, user_id, component_id, quantity, unit_price, currency, status,
                payment_method, ordered_at, updated_at)
            SELECT g, g % {users} + 1, g % {components} + 1,
                   CASE WHEN g % 100 = 61 THEN 0 ELSE g % 5 + 1 END,
                   round(((g * 53) % 20000) / 100.0 + 0.5, 2), 'EUR',
                   (ARRAY['paid', 'shipped', 'cancelled', 'paid'])[g % 4 + 1],
                   (ARRAY['card', 'blik', 'transfer'])[g % 3 + 1],
                   {day_of} + {offset}, {day_of} + {offset} + interval '2 minutes'
            FROM generate_series(1, {orders}) g
            """
        )
    conn.commit()


def change(conn, day: dt.date, *, components: int = 300) -> None:
    """A later state of the same day: updates, inserts, one hard delete, one row gone bad.

    Every changed row keeps `updated_at` inside `day`, so re-materialising `day` sees it."""
    late = f"timestamptz '{day.isoformat()} 23:00:00+00'"
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE electrical_components SET name = name || ' v2', price = price + 1,"
            f" updated_at = {late} + interval '1 microsecond' * id WHERE id % 10 = 0 AND updated_at >= {late} - interval '23 hours'"  # noqa: E501
        )
        cur.execute(
            f"""
            INSERT INTO electrical_components (id, sku, name, category, price, currency, created_at, updated_at)
            SELECT g, 'SKU-' || lpad(g::text, 6, '0'), 'New component ' || g, 'relays', 9.99, 'EUR',
                   {late}, {late} + interval '1 minute' + interval '1 microsecond' * g
            FROM generate_series({components + 1}, {components + 20}) g
            """
        )
        cur.execute("DELETE FROM electrical_components WHERE id = 3")
        cur.execute(
            f"UPDATE electrical_components SET price = -5, updated_at = {late} + interval '2 minutes' WHERE id = 5"
        )
    conn.commit()
