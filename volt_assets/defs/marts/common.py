"""What every mart asset shares: resource keys, partitions, policies, the staging dependencies."""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.catalog import mart_catalog, module_of
from volt_assets.defs.policies import NETWORK_RETRY, SINGLE_RUN, partitions

MARTS_IO_MANAGER = "marts_io_manager"
MARTS_DB = "marts_db"


def mart_asset(name: str, sources: tuple[str, ...], description: str, daily: bool = True):
    """The `@dg.asset` of `marts/{name}`, built from `staging/{source}` for each source table.

    The identity mapping ties mart D to staging D, so in a run with both, staging's blocking
    quality gate stops the mart when day D fails. The catalog (columns from the DDL, code
    version from the decorated function's module and the DDL) is added here."""
    metadata = {"dagster/table_name": f"marts.{name}"}
    if daily:
        metadata["partition_expr"] = "dt"

    def decorate(fn):
        return dg.asset(
            key=["marts", name],
            deps=[
                dg.AssetDep(
                    dg.AssetKey(["staging", s]), partition_mapping=dg.IdentityPartitionMapping()
                )
                for s in sources
            ],
            partitions_def=partitions(),
            backfill_policy=SINGLE_RUN,
            retry_policy=NETWORK_RETRY,
            io_manager_key=MARTS_IO_MANAGER,
            group_name="marts",
            pool=f"volt_mart_{name}",  # one run at a time writes a mart (dagster.yaml's default_limit)
            kinds={"duckdb", "postgres", "parquet"},
            description=description,
            **mart_catalog(name, module_of(fn), metadata),
        )(fn)

    return decorate
