"""`marts/dim_components`: the type 2 history of the catalogue, as the lake knew it.

A component gets a new version when its name, category, manufacturer, price or currency
change (a stock or description change is not a version). `valid_from` is the `updated_at` of
the version that brought the values; `valid_to` is the next version's `valid_from`, or the
moment it was deleted: the `updated_at` that set `deleted_at` (soft delete), or the end of the
UTC day a hard delete was noticed on (its tombstone's staging day). A deleted component has no
current row; one that comes back opens a new version. `sku` is type 1 (every version shows the
latest known sku). The history is a pure function of the staging days, so replaying the days
gives the same rows.

Partition D writes `mart/dim_components/dt=D/`: the whole history as of the end of D. The
PostgreSQL table holds one history, as of the latest day loaded so far: materialising D rebuilds
it from staging up to max(D, latest day already in `mart/dim_components/`), so re-materialising
an old day never rewinds the table (and picks up a changed staging day). The Parquet copies of
days after D are not rewritten: re-materialise D..latest to refresh them too.
"""

import datetime as dt

import dagster as dg
import pyarrow as pa

from volt_assets.defs.marts.common import mart_asset
from volt_assets.defs.marts.history import History, duckdb_over, read_history
from volt_assets.defs.marts.io_manager import MartDay, MartOutput
from volt_assets.defs.resources import LakeResource
from volt_assets.lib.config.partitions import context_days
from volt_assets.lib.config.table_config import table
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import layer_prefix, partition_prefix

NAME = "dim_components"
COLUMNS = [
    "id",
    "sku",
    "name",
    "category",
    "manufacturer",
    "price",
    "currency",
    "updated_at",
    "_deleted",
]
SCHEMA = pa.schema(
    [
        pa.field("component_id", pa.int64(), nullable=False),
        pa.field("sku", pa.string()),
        pa.field("name", pa.string()),
        pa.field("category", pa.string()),
        pa.field("manufacturer", pa.string()),
        pa.field("price", pa.decimal128(12, 2)),
        pa.field("currency", pa.string()),
        pa.field("valid_from", pa.timestamp("us", tz="UTC")),
        pa.field("valid_to", pa.timestamp("us", tz="UTC")),
        pa.field("is_current", pa.bool_()),
    ]
)

HISTORY_AS_OF = """
WITH versions AS (      -- one row per component and staging day: its latest valid version that day
    SELECT id AS component_id, _day, sku, name, category, manufacturer, price, currency, _deleted,
           -- a tombstone has no updated_at: the lake knows the component was gone by the end of its day
           coalesce(updated_at, CAST(_day + 1 AS TIMESTAMPTZ)) AS changed_at
    FROM components WHERE _day <= $day
), marked AS (
    SELECT *,
           lag(_deleted) OVER w AS was_deleted,   -- NULL on a component's first row
           name IS DISTINCT FROM lag(name) OVER w
             OR category IS DISTINCT FROM lag(category) OVER w
             OR manufacturer IS DISTINCT FROM lag(manufacturer) OVER w
             OR price IS DISTINCT FROM lag(price) OVER w
             OR currency IS DISTINCT FROM lag(currency) OVER w AS changed
    FROM versions
    WINDOW w AS (PARTITION BY component_id ORDER BY _day)
), events AS (          -- a version opens, or the open version is deleted
    SELECT * FROM marked
    WHERE (NOT _deleted AND (was_deleted IS NULL OR was_deleted OR changed))
       OR (_deleted AND NOT coalesce(was_deleted, TRUE))
), spans AS (
    SELECT *, lead(changed_at) OVER (PARTITION BY component_id ORDER BY _day) AS valid_to FROM events
), latest_sku AS (
    SELECT component_id, sku FROM versions WHERE sku IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY component_id ORDER BY _day DESC) = 1
)
SELECT s.component_id, k.sku, s.name, s.category, s.manufacturer, s.price, s.currency,
       s.changed_at AS valid_from, s.valid_to, s.valid_to IS NULL AS is_current
FROM spans s LEFT JOIN latest_sku k USING (component_id)
WHERE NOT s._deleted
ORDER BY s.component_id, valid_from
"""


def latest_copy(store: LakeStore) -> dt.date | None:
    """The latest day whose Parquet copy is complete: the day the PostgreSQL history is as of."""
    for day in reversed(store.list_days(layer_prefix("mart", NAME))):
        if store.read_manifest(partition_prefix("mart", NAME, day)) is not None:
            return day
    return None


def history_days(history: History, days: list[dt.date], through: dt.date):
    """The run's days as Parquet copies, and the history as of `through` for PostgreSQL (the
    last of the run's days, or a later day already loaded: a re-run never rewinds the table)."""
    with duckdb_over(components=history) as con:
        for day in days:
            snapshot = _as_of(con, day)
            yield MartDay(day, rows=snapshot if day == through else None, copy=snapshot)
        if through > days[-1]:
            yield MartDay(through, rows=_as_of(con, through))


def _as_of(con, day: dt.date) -> pa.Table:
    return con.sql(HISTORY_AS_OF, params={"day": day}).to_arrow_table().cast(SCHEMA)


def build_dim_components() -> dg.AssetsDefinition:
    @mart_asset(NAME, ("electrical_components",), __doc__, daily=False)
    def dim_components(context: dg.AssetExecutionContext, lake: LakeResource) -> MartOutput:
        metadata: dict = {}
        # Lazy: the IO manager consumes the days under the mart's writer lock, so `through`
        # (the latest copy) is read after any other run of this mart has finished.
        return MartOutput(
            days=mart_days(lake.store(), context_days(context), metadata),
            replace="table",
            metadata=metadata,
        )

    return dim_components


def mart_days(store: LakeStore, days: list[dt.date], metadata: dict):
    """The run's days as of each, then the history as of the latest day loaded when that is later."""
    loaded = latest_copy(store)
    through = max(days[-1], loaded) if loaded else days[-1]
    history = read_history(store, table("electrical_components"), COLUMNS, through, required=days)
    metadata.update(
        {"history_through": dg.MetadataValue.text(through.isoformat()), **history.metadata()}
    )
    yield from history_days(history, days, through)
