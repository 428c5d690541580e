"""The marts built from the state equal a plain computation over the whole staging history.

Random sequences of staging days of `orders` and `electrical_components` (new versions, late
updates of older orders, soft deletes, hard deletes, cancelled orders, orders of unknown
components, days a blocking check stops) are written to a real S3 endpoint; the marts run a
day at a time through the code location's Definitions into PostgreSQL. Then a past day is
re-run with other rows, its gate maybe flipped, and every day's marts are run again. After
each round `marts.daily_category_sales` and `marts.dim_components` must equal the reference
below, written from the marts' documented rules over every staging day, not from the code.
"""

import datetime as dt
import json
import uuid
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volt_assets.devstack import stack
from volt_assets.lib.config.partitions import UTC
from volt_assets.lib.config.table_config import table
from volt_assets.lib.staging.transform import parquet_bytes
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import QUALITY_REPORT, partition_prefix
from volt_assets_tests.pipeline import materialize
from volt_assets_tests.unit.state.test_state_properties import (
    reference_history,
    reference_latest,
    staging_table,
    version,
)

DAY0 = dt.date(2026, 3, 1)  # the unit test's first day: its reference's days
ORDERS = table("orders")
MARTS = ["marts/daily_category_sales", "marts/dim_components"]

order_version = st.fixed_dictionaries(
    {
        "tomb": st.sampled_from([False, False, False, True]),
        "component_id": st.sampled_from([1, 2, 3, 9]),  # 9: never a component
        "quantity": st.integers(1, 5),
        "unit_price": st.sampled_from([Decimal("1.00"), Decimal("2.35"), Decimal("0.05")]),
        "status": st.sampled_from(["paid", "cancelled", None]),
        "placed_days_before": st.sampled_from([0, 0, 1]),  # updated a day after it was placed
        "minute": st.integers(0, 1439),
    }
)
day = st.fixed_dictionaries(
    {
        "components": st.dictionaries(st.integers(1, 3), version, max_size=3),
        "orders": st.dictionaries(st.integers(1, 6), order_version, max_size=4),
        "gated": st.sampled_from([None, None, None, "orders", "electrical_components"]),
    }
)
timeline = st.lists(day, min_size=1, max_size=4)


def orders_table(day_: dt.date, rows: dict) -> pa.Table:
    schema = ORDERS.staging_schema()
    out = []
    for key, v in sorted(rows.items()):
        at = dt.datetime.combine(day_, dt.time(), UTC) + dt.timedelta(minutes=v["minute"])
        row = {f.name: None for f in schema}
        row.update(id=key, _deleted=v["tomb"], _extracted_at=at)
        if not v["tomb"]:
            placed = at - dt.timedelta(days=v["placed_days_before"])
            row.update(component_id=v["component_id"], quantity=v["quantity"], user_id=1)
            row.update(unit_price=v["unit_price"], status=v["status"], currency="EUR")
            row.update(ordered_at=placed, updated_at=at)
        out.append(row)
    return pa.Table.from_pylist(out, schema=schema)


def write_days(store: LakeStore, days: list[dict], only: int | None = None) -> None:
    for i, d in enumerate(days):
        if only is not None and i != only:
            continue
        day_ = DAY0 + dt.timedelta(days=i)
        for name, rows in (("electrical_components", d["components"]), ("orders", d["orders"])):
            build = staging_table if name == "electrical_components" else orders_table
            store.write_folder(
                partition_prefix("staging", name, day_),
                {"part-00000.parquet": parquet_bytes(build(day_, rows))},
                {"table": name, "dt": day_.isoformat(), "rows": len(rows)},
            )
            report = {"checks": {}}
            if d["gated"] == name:
                report["checks"]["id_unique"] = {"blocking": True, "verdict": "ERROR"}
            key = f"{partition_prefix('quality', name, day_)}{QUALITY_REPORT}"
            store.client.put_object(Bucket=store.bucket, Key=key, Body=json.dumps(report))


def reference_orders(days: list[dict], upto: int) -> dict:
    """order id -> (day index, version) of its latest version on the non-gated days <= upto."""
    state: dict = {}
    for i, d in enumerate(days[: upto + 1]):
        if d["gated"] != "orders":
            state.update({key: (i, v) for key, v in d["orders"].items()})
    return state


def reference_categories(days: list[dict], upto: int) -> list[tuple]:
    """(category, orders, units, revenue, avg unit price) of day `upto`, by the marts' rules:
    live orders not cancelled placed on that day, under their component's latest category."""
    components = reference_latest(
        [(d["components"], d["gated"] == "electrical_components") for d in days], upto
    )
    by_category: dict = defaultdict(lambda: [0, 0, Decimal("0.00")])
    for i, v in reference_orders(days, upto).values():
        if v["tomb"] or v["status"] == "cancelled" or i - v["placed_days_before"] != upto:
            continue
        values = (components.get(v["component_id"]) or (None, None))[0] or {}
        totals = by_category[values.get("category") or "unknown"]
        totals[0] += 1
        totals[1] += v["quantity"]
        totals[2] += v["quantity"] * v["unit_price"]
    return sorted(
        (c, n, units, revenue, (revenue / units).quantize(Decimal("0.01"), ROUND_HALF_UP))
        for c, (n, units, revenue) in by_category.items()
    )


def mart_categories(conn, day_: dt.date) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT category, orders_count, units_sold, revenue, avg_unit_price "
            "FROM marts.daily_category_sales WHERE dt = %s ORDER BY category",
            (day_,),
        )
        return cur.fetchall()


def mart_history(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('marts.dim_components')")
        if cur.fetchone()[0] is None:  # no day of the history was ever loaded
            return []
        cur.execute(
            "SELECT component_id, name, category, price, valid_from, valid_to "
            "FROM marts.dim_components"
        )
        return sorted(cur.fetchall(), key=repr)


def run_and_compare(conn, days: list[dict], loaded: set[int]) -> None:
    """Each day's marts in a run of its own: a day gated in either table refused for the sales,
    one gated in the components for the history too; the rest equal the reference.
    `loaded`: the days whose history was loaded so far (the table is as of the latest)."""
    for i, d in enumerate(days):
        day_ = DAY0 + dt.timedelta(days=i)
        result = materialize(MARTS, day_.isoformat(), raise_on_error=False)
        assert result.success == (d["gated"] is None), (day_, d["gated"])
        if d["gated"] != "electrical_components":
            loaded.add(i)
    conn.rollback()  # read what the runs committed, in a new transaction
    for i, d in enumerate(days):
        if d["gated"] is None:
            day_ = DAY0 + dt.timedelta(days=i)
            assert mart_categories(conn, day_) == reference_categories(days, i), day_
    components = [(d["components"], d["gated"] == "electrical_components") for d in days]
    expected = reference_history(components, max(loaded)) if loaded else []
    assert mart_history(conn) == expected


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(days=timeline, rerun=st.tuples(st.integers(0, 3), day))
def test_the_marts_equal_the_whole_history_after_days_re_runs_and_gate_changes(
    volt_env, monkeypatch, days, rerun
):
    s3 = volt_env.s3
    bucket = f"volt-mp-{uuid.uuid4().hex[:8]}"
    stack.ensure_bucket(s3, bucket)
    monkeypatch.setenv("S3_BUCKET_NAME", bucket)
    monkeypatch.setenv("VOLT_PARTITIONS_START", DAY0.isoformat())
    conn = volt_env.connect()
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS marts CASCADE")
    conn.commit()
    store = LakeStore(s3, bucket)
    write_days(store, days)
    loaded: set[int] = set()
    run_and_compare(conn, days, loaded)

    index, other = rerun
    index %= len(days)
    days = [*days[:index], other, *days[index + 1 :]]
    write_days(store, days, only=index)
    run_and_compare(conn, days, loaded)
    conn.close()
