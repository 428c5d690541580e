"""Dagster's own floor: the project's two lake asset keys, partitions, backfill policy and
executor, with bodies and an IO manager that do nothing.

`dagster asset materialize -m bench.floor --select ... --partition-range ...` against the
bench's instance costs what any Dagster code location pays for the same run before touching a
row: the `dagster` process starting, the run with its planned events (one per partition and
asset), the steps, and one materialisation event per partition and asset. The project's run
cannot be faster than this; the peers pay none of it.
"""

import os

import dagster as dg

from volt_assets.defs.executor import volt_executor
from volt_assets.defs.policies import SINGLE_RUN, partitions

# the code location sets this too (volt_assets/definitions.py): the same event batching
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "200")


class NothingIOManager(dg.ConfigurableIOManager):
    """Stores nothing; Dagster still records a materialisation per partition."""

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        return None

    def load_input(self, context: dg.InputContext):
        return None


@dg.asset(
    key=["raw", "electrical_components"], partitions_def=partitions(), backfill_policy=SINGLE_RUN
)
def raw_floor(context) -> None:
    return None


@dg.asset(
    key=["staging", "electrical_components"],
    partitions_def=partitions(),
    backfill_policy=SINGLE_RUN,
    ins={"raw": dg.AssetIn(key=dg.AssetKey(["raw", "electrical_components"]))},
)
def staging_floor(context, raw) -> None:
    return None


defs = dg.Definitions(
    assets=[raw_floor, staging_floor],
    resources={"io_manager": NothingIOManager()},
    executor=volt_executor,
)
