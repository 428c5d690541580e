"""The marts domain's definitions: the mart assets, the marts database and its IO manager.

The marts go to MARTS_DATABASE_URL when it is set, else to the source database (shared
`source`), schema `marts`. The assets read the lake through the shared `lake` resource.
"""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.catalog import linked
from volt_assets.defs.marts.common import MARTS_DB, MARTS_IO_MANAGER
from volt_assets.defs.marts.dim_components import build_dim_components
from volt_assets.defs.marts.io_manager import MartsDatabase, PostgresMartsIOManager
from volt_assets.defs.marts.sales import build_daily_category_sales, build_daily_component_sales
from volt_assets.defs.marts.users import build_users_mart
from volt_assets.defs.resources import env_or_none, shared_resources


def marts_database(shared: dict) -> MartsDatabase:
    return MartsDatabase(source=shared["source"], url=env_or_none("MARTS_DATABASE_URL"))


@dg.definitions
def defs() -> dg.Definitions:
    shared = shared_resources()
    db = marts_database(shared)
    return dg.Definitions(
        assets=linked(
            [
                build_dim_components(),
                build_daily_category_sales(),
                build_daily_component_sales(),
                build_users_mart(),
            ]
        ),
        resources={
            MARTS_DB: db,
            MARTS_IO_MANAGER: PostgresMartsIOManager(db=db, lake=shared["lake"]),
        },
    )
