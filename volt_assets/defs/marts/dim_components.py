"""`marts/dim_components`: the type 2 history of the catalogue, as the lake knew it.

A component gets a new version when its name, category, manufacturer, price or currency
change (a stock or description change is not a version). `valid_from` is the `updated_at` of
the version that brought the values; `valid_to` is the next version's `valid_from`, or the
moment it was deleted: the `updated_at` that set `deleted_at` (soft delete), or the end of the
UTC day a hard delete was noticed on (its tombstone's staging day). A deleted component has no
current row; one that comes back opens a new version. `sku` is type 1 (every version shows the
latest known sku). The history is a pure function of the staging days, so replaying the days
gives the same rows; it is kept in the state of `electrical_components`
(`state/electrical_components/dt=D/type2-*.parquet`), each day's grown from the day before.

Partition D writes `mart/dim_components/dt=D/`: the whole history as of the end of D. The
PostgreSQL table holds one history, as of the latest day loaded so far: materialising D loads
the history as of max(D, latest day already in `mart/dim_components/`), so re-materialising
an old day never rewinds the table (and picks up a changed staging day). The Parquet copies of
days after D are not rewritten: re-materialise D..latest to refresh them too.
"""

import datetime as dt

import dagster as dg
import pyarrow as pa

from volt_assets.defs.marts.common import mart_asset
from volt_assets.defs.marts.history import DayStates, day_states
from volt_assets.defs.marts.io_manager import MartDay, MartOutput
from volt_assets.defs.resources import LakeResource, PostgresResource
from volt_assets.lib.config.partitions import context_days
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import layer_prefix, partition_prefix

NAME = "dim_components"
TABLE = "electrical_components"
# the type 2 history kept in the table's state (defs/lake/state.py: TYPE2)
HISTORY_COLUMNS = [
    "component_id",
    "sku",
    "name",
    "category",
    "manufacturer",
    "price",
    "currency",
    "valid_from",
    "valid_to",
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

AS_OF = """
SELECT component_id, sku, name, category, manufacturer, price, currency, valid_from, valid_to,
       valid_to IS NULL AS is_current
FROM history ORDER BY component_id, valid_from, valid_to NULLS LAST
"""


def latest_copy(store: LakeStore) -> dt.date | None:
    """The latest day whose Parquet copy is complete: the day the PostgreSQL history is as of."""
    for day in reversed(store.list_days(layer_prefix("mart", NAME))):
        if store.read_manifest(partition_prefix("mart", NAME, day)) is not None:
            return day
    return None


def history_days(states: DayStates, days: list[dt.date], through: dt.date):
    """The run's days as Parquet copies, and the history as of `through` for PostgreSQL (the
    last of the run's days, or a later day already loaded: a re-run never rewinds the table)."""
    for day in days:
        snapshot = _as_of(states, day)
        yield MartDay(day, rows=snapshot if day == through else None, copy=snapshot)
    if through > days[-1]:
        yield MartDay(through, rows=_as_of(states, through))


def _as_of(states: DayStates, day: dt.date) -> pa.Table:
    states.view("history", TABLE, day, HISTORY_COLUMNS, kind="type2")
    return states.con.sql(AS_OF).to_arrow_table().cast(SCHEMA)


def build_dim_components() -> dg.AssetsDefinition:
    @mart_asset(NAME, ("electrical_components",), __doc__, daily=False)
    def dim_components(
        context: dg.AssetExecutionContext, lake: LakeResource, source: PostgresResource
    ) -> MartOutput:
        metadata: dict = {}
        # Lazy: the IO manager consumes the days under the mart's writer lock, so `through`
        # (the latest copy) is read after any other run of this mart has finished.
        return MartOutput(
            days=mart_days(context, lake, source, metadata),
            replace="table",
            metadata=metadata,
        )

    return dim_components


def mart_days(
    context: dg.AssetExecutionContext, lake: LakeResource, source: PostgresResource, metadata: dict
):
    """The run's days as of each, then the history as of the latest day loaded when that is later."""
    store, days = lake.store(), context_days(context)
    loaded = latest_copy(store)
    through = max(days[-1], loaded) if loaded else days[-1]
    asked = sorted({*days, through})
    with day_states(store, source, context, [TABLE], days, asked) as states:
        metadata.update(
            {"history_through": dg.MetadataValue.text(through.isoformat()), **states.metadata()}
        )
        yield from history_days(states, days, through)
