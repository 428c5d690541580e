"""The age phase: the same day's work on a lake 60 days old and on one 730 days old.

Source `bench_age`: a shop with the same traffic every day for 730 days up to the bench's last
day. Every day 100 components change (ids grow with their last change, as the source keeps only
a row's current version), 50 users sign up and 500 orders are placed, each order naming a user
and a component that exist by then. The two lakes open on different days
(`VOLT_PARTITIONS_START` 60 and 730 days before the end), so the young lake's opening snapshot
holds everything before its first day: both lakes know the same live rows, only the length of
their history differs.

Each lake: raw + staging of the three tables in one run up to D-2, then the marts up to D-2 (on
the old lake in three runs, 180 days, 365 days and the rest: the first two timed, so the marts'
backfill is seen to be linear in days), then `volt_daily` for [D-1, D] as the schedule's tick
asks for it, through the counting S3 proxy: wall time, peak RSS and S3 requests by kind.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from bench.common import OUT
from bench.project import DAILY_JOB, materialize, run_job
from bench.s3_proxy import DelayProxy
from volt_assets.seeding.source_schema import drop_source_tables, ensure_source_schema

if TYPE_CHECKING:
    from bench.run import Bench

DB = "bench_age"
AGES = (60, 730)
PER_DAY = {"components": 100, "users": 50, "orders": 500}
MARTS = ",".join(
    f"marts/{m}"
    for m in ("dim_components", "daily_category_sales", "daily_component_sales", "users_mart")
)
LAKE_TABLES = ("electrical_components", "users", "orders")
MARTS_SPANS = (180, 365)  # the old lake's first two marts runs, timed against each other

SHOP = """
INSERT INTO electrical_components
    (id, sku, name, category, manufacturer, description, price, currency, stock_quantity,
     voltage_rating, specs, image_filename, created_at, updated_at, deleted_at)
SELECT g, 'VA-' || lpad(g::text, 9, '0'), 'Component ' || g,
       (%(cats)s::text[])[1 + mod(g / 7, 15)], (%(man)s::text[])[1 + mod(g, 15)],
       'Component ' || g || ', rated for continuous duty.',
       round((1 + (hashint8(g) & 1048575) / 1048575.0 * 999)::numeric, 2),
       CASE WHEN mod(g, 5) = 0 THEN 'EUR' ELSE 'PLN' END, (hashint8(g + 7) & 4095)::int,
       (ARRAY[12, 24, 230, 400, 690])[1 + mod(g, 5)], jsonb_build_object('poles', 1 + mod(g, 4)),
       NULL, t - interval '30 days', t, CASE WHEN mod(g, 100) = 0 THEN t END
FROM (SELECT g, %(first)s::timestamptz + ((g - 1)::float8 / %(components)s) * interval '1 day' AS t
      FROM generate_series(1, %(components)s::bigint * %(days)s) g) s;

INSERT INTO users (id, email, full_name, country, created_at, updated_at)
SELECT g, 'user' || g || '@example.com', 'User ' || g,
       (ARRAY['PL','DE','CZ','SK','LT'])[1 + mod(g, 5)], t, t
FROM (SELECT g, %(first)s::timestamptz + ((g - 1)::float8 / %(users)s) * interval '1 day' AS t
      FROM generate_series(1, %(users)s::bigint * %(days)s) g) s;

INSERT INTO orders (id, user_id, component_id, quantity, unit_price, currency, status,
                    payment_method, ordered_at, updated_at)
SELECT g, 1 + mod(g * 7919, %(users)s * (day + 1)), 1 + mod(g * 104729, %(components)s * (day + 1)),
       1 + mod(g, 9), round((5 + mod(g * 31, 995))::numeric, 2), 'PLN',
       (ARRAY['paid','shipped','delivered','cancelled'])[1 + mod(g, 4)],
       (ARRAY['card','blik','transfer'])[1 + mod(g, 3)], t, t
FROM (SELECT g, (g - 1) / %(orders)s AS day,
             %(first)s::timestamptz + ((g - 1)::float8 / %(orders)s) * interval '1 day' AS t
      FROM generate_series(1, %(orders)s::bigint * %(days)s) g) s;
"""


def seed_shop(bench: Bench, first: dt.date, days: int) -> dict:
    """The constant-traffic shop over `days` days from `first`, into database `bench_age`."""
    from bench.seed import CATEGORIES, MANUFACTURERS
    from volt_assets.devstack import stack

    stack.ensure_database(bench.pg, DB)
    conn = bench.pg.connect(DB)
    try:
        drop_source_tables(conn)
        conn.commit()
        ensure_source_schema(conn)
        with conn.cursor() as cur:
            params = {**PER_DAY, "first": first.isoformat(), "days": days}
            cur.execute(SHOP, {**params, "cats": CATEGORIES, "man": MANUFACTURERS})
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) electrical_components, users, orders")
    finally:
        conn.close()
    return {table: PER_DAY[table] * days for table in PER_DAY} | {"days": days}


def lake_selection() -> str:
    return ",".join(f"{layer}/{t}" for t in LAKE_TABLES for layer in ("raw", "staging"))


def build_lake(bench: Bench, age: int, last: dt.date) -> dict | None:
    """A lake of `age` days ending on `last` - 2: raw + staging in one run, then its marts.
    Returns the run environment, or None when a setup run failed."""
    first = last - dt.timedelta(days=age - 1)
    env = bench.env(DB, bench.bucket(f"age-{age}"))
    env["VOLT_PARTITIONS_START"] = first.isoformat()
    setup_end = last - dt.timedelta(days=2)
    bench.log(f"lake age {age}: raw + staging of {first}..{setup_end} in one run")
    log = OUT / "logs" / f"age-{age}-lake.log"
    m = materialize(f"lake_{age}", env, log, lake_selection(), first, setup_end)
    bench.record("age", f"setup_lake_{age}", m)
    if not m.ok:
        return None
    return env if build_marts(bench, age, env, first, setup_end) else None


def build_marts(bench: Bench, age: int, env: dict, first: dt.date, end: dt.date) -> bool:
    """The marts over [first, end]; on the old lake the first MARTS_SPANS are timed runs."""
    spans = MARTS_SPANS if age > sum(MARTS_SPANS) + 2 else ()
    start = first
    for days in (*spans, None):
        stop = end if days is None else start + dt.timedelta(days=days - 1)
        name = f"marts_{age}_{days or 'rest'}"
        bench.log(f"lake age {age}: the marts over {start}..{stop} in one run")
        m = materialize(name, env, OUT / "logs" / f"age-{name}.log", MARTS, start, stop)
        steps = round(sum(m.report.get("steps", {}).values()), 3)
        tool = f"marts_{days}_days" if days else f"setup_marts_{age}"
        bench.record("age", tool, m, days=(stop - start).days + 1, step_seconds=steps)
        if not m.ok:
            return False
        start = stop + dt.timedelta(days=1)
    return True


def daily_run(bench: Bench, age: int, env: dict, last: dt.date) -> None:
    """`volt_daily` for [last - 1, last] through the counting proxy, recorded as daily_<age>."""
    proxy = DelayProxy(bench.s3.url).start()
    try:
        run_env = {**env, "AWS_ENDPOINT_URL": proxy.url}
        first = last - dt.timedelta(days=1)
        bench.log(f"lake age {age}: {DAILY_JOB} for [{first}, {last}] through the proxy")
        proxy.take_counts()
        m = run_job(DAILY_JOB, run_env, OUT / "logs" / f"age-{age}-daily.log", first, last)
        requests = proxy.take_counts()
    finally:
        proxy.stop()
    bench.record(
        "age",
        f"daily_{age}",
        m,
        requests=requests,
        step_seconds=round(sum(m.report.get("steps", {}).values()), 3),
    )


def phase_age(bench: Bench, last: dt.date) -> None:
    """Both lakes built, then their daily runs back to back (so both see the same machine)."""
    days = max(AGES)
    bench.log(f"lake age: seeding {days} days of the same traffic into {DB}")
    bench.results["age_setup"] = seed_shop(bench, last - dt.timedelta(days=days - 1), days)
    envs = {age: build_lake(bench, age, last) for age in AGES}
    for _ in range(min(bench.args.reps, 2)):  # interleaved: 60, 730, 60, 730
        for age, env in envs.items():
            if env is not None:
                daily_run(bench, age, env, last)
    for age in AGES:
        bench.drop_bucket(f"age-{age}")
