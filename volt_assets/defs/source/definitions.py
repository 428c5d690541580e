"""The source domain's definitions: external assets for each table of `tables.yaml` and for
the pictures folder. Dagster never materialises them; they are upstream of `raw/{table}` and
`images/component_images`, so the lineage in the UI starts at Volt itself."""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.catalog import source_specs
from volt_assets.lib.config.table_config import load_tables


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=source_specs(list(load_tables().values())))
