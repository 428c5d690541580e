"""`marts/daily_category_sales` and `marts/daily_component_sales`: what was sold on day D.

Partition D counts the orders as the lake knew them at the end of D (each order's latest valid
version with `updated_at` before D+1) that are not hard-deleted, whose status is not
'cancelled' (a NULL status counts) and whose `ordered_at` falls on D (UTC). An order cancelled
later stays in D: re-materialising D gives the same rows. The category is the component's as
known at the end of D (a hard-deleted component keeps the category of its last version); an
order whose component was unknown then, or has no category, counts under 'unknown'.

revenue = sum(quantity * unit_price); avg_unit_price = revenue / units_sold rounded half up to
cents: the average price paid per unit sold (weighted by quantity, not a mean of order prices).
Amounts are added in the orders' own currencies (the mart has no currency column, no FX).
"""

import dagster as dg
import pyarrow as pa

from volt_assets.defs.marts.common import mart_asset
from volt_assets.defs.marts.history import day_states
from volt_assets.defs.marts.io_manager import MartDay, MartOutput
from volt_assets.defs.resources import LakeResource, PostgresResource
from volt_assets.lib.config.partitions import context_days, day_window

ORDER_COLUMNS = ["id", "component_id", "quantity", "unit_price", "status", "ordered_at", "_deleted"]
COMPONENT_COLUMNS = ["id", "category"]

CATEGORY_SCHEMA = pa.schema(
    [
        pa.field("dt", pa.date32(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("orders_count", pa.int64()),
        pa.field("units_sold", pa.int64()),
        pa.field("revenue", pa.decimal128(14, 2)),
        pa.field("avg_unit_price", pa.decimal128(12, 2)),
    ]
)
COMPONENT_SCHEMA = pa.schema(
    [
        pa.field("dt", pa.date32(), nullable=False),
        pa.field("component_id", pa.int64()),
        pa.field("category", pa.string()),
        pa.field("orders_count", pa.int64()),
        pa.field("units_sold", pa.int64()),
        pa.field("revenue", pa.decimal128(14, 2)),
    ]
)

# amount / n rounded half up to cents, exactly (DuckDB divides decimals in floating point).
CENTS_DIV = "CREATE MACRO cents_div(amount, n) AS CAST((CAST(amount * 100 AS HUGEINT) * 2 + n) // (2 * n) AS DECIMAL(18, 0)) * 0.01"  # noqa: E501

SALES_OF_DAY = """
CREATE OR REPLACE TEMP TABLE sales AS
-- the states of the day: each order's and component's latest version (a hard-deleted
-- component keeps the category of its last version)
SELECT o.id, o.component_id, coalesce(nullif(c.category, ''), 'unknown') AS category,
       o.quantity, o.quantity * o.unit_price AS amount
FROM orders o LEFT JOIN components c ON c.id = o.component_id
WHERE NOT o._deleted
  AND o.status IS DISTINCT FROM 'cancelled'
  AND o.ordered_at >= $start AND o.ordered_at < $end
"""

BY_CATEGORY = """
SELECT $day AS dt, category, count(*) AS orders_count, CAST(sum(quantity) AS BIGINT) AS units_sold,
       sum(amount) AS revenue, cents_div(sum(amount), sum(quantity)) AS avg_unit_price
FROM sales GROUP BY category ORDER BY category
"""

BY_COMPONENT = """
SELECT $day AS dt, component_id, any_value(category) AS category, count(*) AS orders_count,
       CAST(sum(quantity) AS BIGINT) AS units_sold, sum(amount) AS revenue
FROM sales WHERE component_id IS NOT NULL GROUP BY component_id ORDER BY component_id
"""


def sales_days(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    source: PostgresResource,
    query: str,
    schema: pa.Schema,
    metadata: dict,
):
    """One MartDay per day of the run: `query` over that day's sales. The states are read when
    the IO manager starts consuming the days, under the mart's writer lock."""
    days = context_days(context)
    names = ["orders", "electrical_components"]
    with day_states(lake.store(), source, context, names, days) as states:
        metadata.update(states.metadata())
        states.con.execute(CENTS_DIV)
        for day in days:
            states.view("orders", "orders", day, ORDER_COLUMNS)
            states.view("components", "electrical_components", day, COMPONENT_COLUMNS)
            start, end = day_window(day)
            states.con.execute(SALES_OF_DAY, {"start": start, "end": end})
            rows = states.con.sql(query, params={"day": day}).to_arrow_table().cast(schema)
            yield MartDay(day, rows=rows, copy=rows.drop_columns(["dt"]))  # dt is the copy's folder


def build_sales_asset(name: str, query: str, schema: pa.Schema) -> dg.AssetsDefinition:
    @mart_asset(name, ("orders", "electrical_components"), __doc__)
    def sales_mart(
        context: dg.AssetExecutionContext, lake: LakeResource, source: PostgresResource
    ) -> MartOutput:
        metadata: dict = {}  # filled as the days are read
        return MartOutput(
            days=sales_days(context, lake, source, query, schema, metadata), metadata=metadata
        )

    return sales_mart


def build_daily_category_sales() -> dg.AssetsDefinition:
    return build_sales_asset("daily_category_sales", BY_CATEGORY, CATEGORY_SCHEMA)


def build_daily_component_sales() -> dg.AssetsDefinition:
    return build_sales_asset("daily_component_sales", BY_COMPONENT, COMPONENT_SCHEMA)
