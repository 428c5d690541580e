"""Bench data: N electrical components in one server-side INSERT ... SELECT generate_series.

`updated_at` spans 365 days from `start`. One day (`heavy_day`, an index into the window)
holds `heavy_rows` rows; the other N - heavy_rows are spread evenly over the other 364 days.
Ids grow with `updated_at`, as the heap of a table the app updates in place grows with time,
so a day's rows are near each other on disk (the index on the cursor then reads a day in a
few pages, whatever the table's size).

About 0.2 % of the rows break a refuse rule (negative price, blank name, bad currency) so
quarantine is exercised, and 1 % are soft-deleted. Values are a pure function of the id:
the same N gives the same table.
"""

from __future__ import annotations

import datetime as dt
import time

from volt_assets.seeding.source_schema import drop_source_tables, ensure_source_schema

CATEGORIES = [
    "cables",
    "circuit-breakers",
    "fuses",
    "switches",
    "sockets",
    "relays",
    "contactors",
    "transformers",
    "resistors",
    "capacitors",
    "connectors",
    "lighting",
    "sensors",
    "power-supplies",
    "meters",
]
MANUFACTURERS = [
    "ABB",
    "Schneider Electric",
    "Siemens",
    "Legrand",
    "Eaton",
    "Hager",
    "Phoenix Contact",
    "Finder",
    "Omron",
    "Lapp",
    "Nexans",
    "Wago",
    "Weidmüller",
    "Mean Well",
    "Carlo Gavazzi",
]
KINDS = [
    "Miniature Circuit Breaker",
    "Control Cable 100 m",
    "Cartridge Fuse",
    "Rocker Switch",
    "Socket Outlet IP44",
    "Miniature PCB Relay",
    "Contactor 3P",
    "Control Transformer",
    "Metal Film Resistor",
    "Electrolytic Capacitor",
    "Terminal Block",
    "LED Panel 36 W",
    "Inductive Proximity Sensor",
    "DIN Rail Power Supply",
    "Energy Meter",
]

INSERT = """
INSERT INTO electrical_components
    (id, sku, name, category, manufacturer, description, price, currency, stock_quantity,
     voltage_rating, specs, image_filename, created_at, updated_at, deleted_at)
SELECT g,
       'VB-' || lpad(g::text, 9, '0'),
       CASE WHEN %(dirt)s = 1 AND mod(g, 1009) = 0 THEN '   '
            ELSE (%(man)s::text[])[1 + mod(g, 15)] || ' S' || (100 + mod(g, 900)) || ' ' || (%(kinds)s::text[])[1 + mod(g / 15, 15)]
       END,
       (%(cats)s::text[])[1 + mod(g / 15, 15)],
       (%(man)s::text[])[1 + mod(g, 15)],
       'Component ' || g || ' of the ' || (%(cats)s::text[])[1 + mod(g / 15, 15)]
           || ' range: rated for continuous duty, tested to IEC 60947, RoHS compliant, packed singly.',
       CASE WHEN %(dirt)s = 1 AND mod(g, 997) = 0 THEN -1.00 ELSE round((1 + (hashint8(g) & 1048575) / 1048575.0 * 999)::numeric, 2) END,
       CASE WHEN %(dirt)s = 1 AND mod(g, 1013) = 0 THEN 'EU' WHEN mod(g, 5) = 0 THEN 'EUR' ELSE 'PLN' END,
       (hashint8(g + 7) & 4095)::int,
       (ARRAY[12, 24, 230, 400, 690])[1 + mod(g, 5)],
       jsonb_build_object('poles', 1 + mod(g, 4), 'current_a', (ARRAY[6, 10, 16, 20, 25, 32, 63])[1 + mod(g, 7)],
                          'ip_rating', 'IP' || (ARRAY[20, 44, 54, 65, 67])[1 + mod(g, 5)]),
       'component-' || g || '.jpg',
       t - make_interval(days => (mod(g, 700))::int),
       t,
       CASE WHEN mod(g, 100) = 0 THEN t END
FROM (
    SELECT g,
           CASE WHEN g0 < %(before)s THEN %(start)s::timestamptz + (g0::float8 / %(before)s) * %(heavy_day)s * interval '1 day'
                WHEN g0 < %(before)s + %(heavy)s THEN %(start)s::timestamptz + %(heavy_day)s * interval '1 day'
                     + ((g0 - %(before)s)::float8 / %(heavy)s) * interval '1 day'
                ELSE %(start)s::timestamptz + (%(heavy_day)s + 1) * interval '1 day'
                     + ((g0 - %(before)s - %(heavy)s)::float8 / %(after)s) * (364 - %(heavy_day)s) * interval '1 day'
           END AS t
    FROM (SELECT g, g - 1 AS g0 FROM generate_series(1, %(rows)s::bigint) AS g) s
) rows
"""


def layout(rows: int, heavy_rows: int, heavy_day: int) -> dict[str, int]:
    """How many rows lie before the heavy day, on it, and after it."""
    heavy_rows = min(heavy_rows, rows)
    normal = rows - heavy_rows
    before = round(normal * heavy_day / 364)
    return {"before": before, "heavy": heavy_rows, "after": max(normal - before, 1)}


def seed(
    conn, rows: int, start: dt.date, heavy_rows: int, heavy_day: int, dirty: bool = True
) -> dict:
    """Replace the source tables with `rows` components; returns what was seeded and how fast."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        drop_source_tables(conn)
        conn.commit()
        ensure_source_schema(conn)
        # Load first, index after (the way a bulk load is done); the DDL's indexes are rebuilt.
        cur.execute("DROP INDEX IF EXISTS electrical_components_updated_at_idx")
        cur.execute(
            "ALTER TABLE electrical_components DROP CONSTRAINT IF EXISTS electrical_components_pkey"
        )
        cur.execute(
            "ALTER TABLE electrical_components DROP CONSTRAINT IF EXISTS electrical_components_sku_key"
        )
        conn.commit()
        params = {
            **layout(rows, heavy_rows, heavy_day),
            "rows": rows,
            "start": start.isoformat(),
            "heavy_day": heavy_day,
            "cats": CATEGORIES,
            "man": MANUFACTURERS,
            "kinds": KINDS,
            # a tiny table has ~10 rows a day: one refused row would trip the quality gate (> 5 %)
            "dirt": 1 if dirty else 0,
        }
        cur.execute("SET LOCAL synchronous_commit = off")
        cur.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cur.execute(INSERT, params)
        cur.execute("ALTER TABLE electrical_components ADD PRIMARY KEY (id)")
        cur.execute(
            "ALTER TABLE electrical_components ADD CONSTRAINT electrical_components_sku_key UNIQUE (sku)"
        )
        cur.execute(
            "CREATE INDEX electrical_components_updated_at_idx ON electrical_components (updated_at)"
        )
        conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE) electrical_components")
        cur.execute(
            "SELECT pg_total_relation_size('electrical_components'), pg_relation_size('electrical_components')"
        )
        total, heap = cur.fetchone()
    conn.autocommit = False
    return {
        "rows": rows,
        "heavy_rows": min(heavy_rows, rows),
        "heavy_day": (start + dt.timedelta(days=heavy_day)).isoformat(),
        "seconds": round(time.perf_counter() - started, 2),
        "table_bytes": total,
        "heap_bytes": heap,
    }
