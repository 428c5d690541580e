"""Separate runs without process start-up: one `dagster.materialize()` run per partition, in
this one process, on the instance of DAGSTER_HOME (the cheapest way to do "one run per day";
a cron of `dagster asset materialize` processes pays the start-up on top).

    python -m bench.inprocess 2025-11-01 2025-11-02 ...

Prints {"run_seconds": [per run], "failed": n} as its last line.
"""

from __future__ import annotations

import sys
import time
import warnings

from bench.common import emit


def main() -> None:
    import dagster as dg

    warnings.filterwarnings("ignore")
    from volt_assets.defs.lake.raw import build_raw_asset
    from volt_assets.defs.lake.staging import build_staging_asset
    from volt_assets.defs.resources import shared_resources
    from volt_assets.lib.config.table_config import load_tables

    config = load_tables()["electrical_components"]
    assets = [build_raw_asset(config), build_staging_asset(config)]
    resources = shared_resources()
    seconds, failed = [], 0
    with dg.DagsterInstance.get() as instance:
        for day in sys.argv[1:]:
            started = time.perf_counter()
            result = dg.materialize(
                assets,
                resources=resources,
                partition_key=day,
                instance=instance,
                raise_on_error=False,
            )
            seconds.append(round(time.perf_counter() - started, 3))
            failed += 0 if result.success else 1
    emit({"run_seconds": seconds, "failed": failed})


if __name__ == "__main__":
    main()
