"""`marts/users_mart`: one snapshot per day of every user and what they have bought so far.

Partition D lists every user as the lake knew them at the end of D (latest valid version with
`updated_at` before D+1, not hard-deleted) with the orders known then that are valid, not
hard-deleted and not 'cancelled' (a NULL status counts), whatever day they were placed:
total_orders, total_spent = sum(quantity * unit_price) (0 without orders, amounts in the
orders' own currencies), first/last `ordered_at`. spend_rank is RANK() by total_spent: 1 = the
biggest spender, ties share a rank, users without orders share the last one. An order
cancelled on a later day still counts in the snapshots before that day.
"""

import dagster as dg
import pyarrow as pa

from volt_assets.defs.marts.common import mart_asset
from volt_assets.defs.marts.history import day_states
from volt_assets.defs.marts.io_manager import MartDay, MartOutput
from volt_assets.defs.resources import LakeResource, PostgresResource
from volt_assets.lib.config.partitions import context_days

NAME = "users_mart"
USER_COLUMNS = ["id", "email", "country", "_deleted"]
ORDER_COLUMNS = ["id", "user_id", "quantity", "unit_price", "status", "ordered_at", "_deleted"]
SCHEMA = pa.schema(
    [
        pa.field("dt", pa.date32(), nullable=False),
        pa.field("user_id", pa.int64()),
        pa.field("email", pa.string()),
        pa.field("country", pa.string()),
        pa.field("total_orders", pa.int64()),
        pa.field("total_spent", pa.decimal128(14, 2)),
        pa.field("first_order_at", pa.timestamp("us", tz="UTC")),
        pa.field("last_order_at", pa.timestamp("us", tz="UTC")),
        pa.field("spend_rank", pa.int32()),
    ]
)

SNAPSHOT = """
WITH spend AS (            -- over the day's states: each key's latest version
    SELECT user_id, count(*) AS total_orders, sum(quantity * unit_price) AS total_spent,
           min(ordered_at) AS first_order_at, max(ordered_at) AS last_order_at
    FROM orders
    WHERE NOT _deleted AND status IS DISTINCT FROM 'cancelled'
    GROUP BY user_id
)
SELECT $day AS dt, u.id AS user_id, u.email, u.country,
       coalesce(s.total_orders, 0) AS total_orders,
       coalesce(s.total_spent, 0) AS total_spent,
       s.first_order_at, s.last_order_at,
       RANK() OVER (ORDER BY coalesce(s.total_spent, 0) DESC) AS spend_rank
FROM users u LEFT JOIN spend s ON s.user_id = u.id
WHERE NOT u._deleted
ORDER BY u.id
"""


def snapshots(
    context: dg.AssetExecutionContext, lake: LakeResource, source: PostgresResource, metadata: dict
):
    """The run's days; the states are read when the IO manager starts consuming them, under
    the mart's writer lock, so two runs of the mart end as if one ran after the other."""
    days = context_days(context)
    with day_states(lake.store(), source, context, ["users", "orders"], days) as states:
        metadata.update(states.metadata())
        for day in days:
            states.view("users", "users", day, USER_COLUMNS)
            states.view("orders", "orders", day, ORDER_COLUMNS)
            rows = states.con.sql(SNAPSHOT, params={"day": day}).to_arrow_table().cast(SCHEMA)
            yield MartDay(day, rows=rows, copy=rows.drop_columns(["dt"]))  # dt is the copy's folder


def build_users_mart() -> dg.AssetsDefinition:
    @mart_asset(NAME, ("users", "orders"), __doc__)
    def users_mart(
        context: dg.AssetExecutionContext, lake: LakeResource, source: PostgresResource
    ) -> MartOutput:
        metadata: dict = {}  # filled as the days are read
        return MartOutput(days=snapshots(context, lake, source, metadata), metadata=metadata)

    return users_mart
