"""`marts/daily_category_sales` reconciles with staging: the day's mart totals are the staging
totals of the same orders.

Staging side, for day D: the orders of `staging/orders/dt=D/` (each key's latest valid version
of the day) with `ordered_at` in D and status not 'cancelled' (a null status is not
cancelled); revenue = sum(quantity * unit_price), units = sum(quantity), exact decimals. An
order placed on D changes on D or later (`updated_at >= ordered_at`), so its version as of the
end of D (what the mart describes, README "The marts") is in staging D. Mart side: the rows of
the Parquet copy `mart/daily_category_sales/dt=D/` (the files its manifest lists, when it has
one), summed over categories.

ERROR when revenue differs by more than a cent or units differ at all; not blocking (nothing
is downstream of the mart).
"""

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from volt_assets.defs.lake.io_manager import LakePartitions
from volt_assets.defs.quality.outcome import ERROR, DayOutcome, Sample, Tally
from volt_assets.defs.quality.report import write_report
from volt_assets.defs.resources import LakeResource
from volt_assets.lib.config.partitions import UTC, day_window, days_between
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import MANIFEST, layer_prefix, partition_prefix

MART = "daily_category_sales"
MART_KEY = dg.AssetKey(["marts", MART])
CHECK = "matches_staging"
ORDERS = "orders"
CENT = Decimal("0.01")


def staging_totals(orders: pa.Table | None, day: dt.date) -> dict:
    """Orders, units and revenue of the day's valid, non-cancelled orders placed on the day."""
    if orders is None or orders.num_rows == 0:
        return {"orders": 0, "units": 0, "revenue": Decimal("0.00")}
    start, end = day_window(day)
    placed = pc.and_(
        pc.greater_equal(orders["ordered_at"], pa.scalar(start, orders["ordered_at"].type)),
        pc.less(orders["ordered_at"], pa.scalar(end, orders["ordered_at"].type)),
    )
    kept = pc.and_(
        pc.fill_null(placed, False), pc.fill_null(pc.not_equal(orders["status"], "cancelled"), True)
    )
    sold = orders.filter(pc.and_(kept, pc.invert(orders["_deleted"])))
    quantity = sold["quantity"]
    revenue = pc.sum(
        pc.multiply(sold["unit_price"], pc.cast(quantity, pa.decimal128(12, 0)))
    ).as_py()
    return {
        "orders": sold.num_rows,
        "units": pc.sum(quantity).as_py() or 0,
        "revenue": Decimal(revenue or 0).quantize(CENT),
    }


def read_mart_copy(store: LakeStore, day: dt.date) -> pa.Table | None:
    """The mart's Parquet copy of a day: the files its manifest lists, else every *.parquet."""
    prefix = partition_prefix("mart", MART, day)
    manifest = store.read_manifest(prefix)
    if manifest is not None:
        names = [n for n in manifest.get("files", {}) if n.endswith(".parquet")]
    else:
        names = [
            o["Key"][len(prefix) :]
            for o in store.list_objects(prefix)
            if o["Key"].endswith(".parquet")
        ]
        if not names and not store.exists(prefix + MANIFEST):
            return None
    tables = [
        pq.read_table(pa.BufferReader(store.read_listed(prefix, manifest, n)))
        for n in sorted(names)
    ]
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def mart_totals(mart: pa.Table | None) -> dict:
    if mart is None or mart.num_rows == 0:
        return {"orders": 0, "units": 0, "revenue": Decimal("0.00")}
    revenue = pc.sum(mart["revenue"]).as_py()
    return {
        "orders": int(pc.sum(mart["orders_count"]).as_py() or 0),
        "units": int(pc.sum(mart["units_sold"]).as_py() or 0),
        "revenue": Decimal(str(revenue or 0)).quantize(CENT),
    }


def reconcile_day(store: LakeStore, day: dt.date) -> DayOutcome:
    orders = LakePartitions(store, "staging", ORDERS, [day]).read_parquet(
        day, columns=["id", "quantity", "unit_price", "status", "ordered_at", "_deleted"]
    )
    mart = read_mart_copy(store, day)
    want, got = staging_totals(orders, day), mart_totals(mart)
    samples = []
    if mart is None and want["orders"]:
        samples.append(Sample(f"dt={day}", "the mart has no Parquet copy for the day"))
    if abs(want["revenue"] - got["revenue"]) > CENT:
        samples.append(Sample("revenue", f"mart {got['revenue']} but staging {want['revenue']}"))
    if want["units"] != got["units"]:
        samples.append(Sample("units_sold", f"mart {got['units']} but staging {want['units']}"))
    details = {
        "staging_revenue": str(want["revenue"]),
        "mart_revenue": str(got["revenue"]),
        "staging_units": want["units"],
        "mart_units": got["units"],
        "staging_orders": want["orders"],
        "mart_orders_count": got["orders"],
    }
    return DayOutcome(
        failing=len(samples),
        rows=2,  # the two totals compared
        verdict=ERROR if samples else None,
        samples=samples,
        details=details,
        note="; ".join(s.reason for s in samples),
    )


def build_mart_checks() -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=MART_KEY,
        name=CHECK,
        description=(
            "The day's mart totals (revenue, units over all categories, from the Parquet copy) equal the "
            "staging totals of valid orders placed that day with status not 'cancelled'. ERROR on a difference."
        ),
    )
    def matches_staging(
        context: dg.AssetCheckExecutionContext, lake: LakeResource
    ) -> Iterator[dg.AssetCheckResult]:
        store = lake.store()
        op = context.op_execution_context
        if op.has_partition_key or op.has_partition_key_range:
            window = op.partition_time_window
            days = days_between(window.start.astimezone(UTC), window.end.astimezone(UTC))
        else:  # launched on its own: the latest day the mart wrote
            days = store.list_days(layer_prefix("mart", MART))[-1:]
        tally = Tally(CHECK, MART_KEY, unit="totals")
        totals: dict[str, dict] = {}  # both sides of every day, matching or not
        for day in days:
            outcome = reconcile_day(store, day)
            write_report(store, MART, day, "mart", {CHECK: outcome})
            tally.add(day, outcome)
            totals[day.isoformat()] = outcome.details
        yield tally.result(
            "mart totals equal staging totals",
            "mart and staging totals differ on {days}",
            {"per_day_totals": totals},
        )

    return matches_staging
