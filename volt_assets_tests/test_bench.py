"""`make bench`'s Dagster floor stays the project's run minus the work: the same asset keys,
partitions, backfill policy and executor, so "Dagster alone" in bench/RESULTS.md means what it
says; its Parquet limit writes as the lake does. (The bench itself runs for minutes: `make
bench`, never in the suite.)"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg


def test_the_floor_has_the_projects_lake_assets_doing_nothing(volt_env):
    from bench.floor import defs as floor
    from bench.project import LAKE_ASSETS
    from volt_assets.definitions import build_definitions

    project = build_definitions()
    project_graph = project.resolve_asset_graph()
    floor_graph = floor.resolve_asset_graph()
    for key in (dg.AssetKey.from_user_string(k) for k in LAKE_ASSETS.split(",")):
        mine, theirs = floor_graph.get(key), project_graph.get(key)
        assert mine.partitions_def == theirs.partitions_def, key
        assert mine.backfill_policy == theirs.backfill_policy == dg.BackfillPolicy.single_run(), key
        assert set(mine.parent_keys) == set(theirs.parent_keys) & set(
            floor_graph.get_all_asset_keys()
        ), key
    assert floor.executor.name == project.executor.name


def test_the_parquet_limit_writes_with_the_lakes_options():
    """The peer mirrors `lake.staging.parquet_options` (importing it would load Dagster into the
    measured process): the two must not drift apart."""
    import pyarrow as pa

    from bench.peers.pyarrow_parquet import parquet_options as limit_options
    from volt_assets.lib.transform import parquet_options

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("name", pa.string()),
            ("notes", pa.large_string()),
            ("price", pa.decimal128(12, 2)),
            ("at", pa.timestamp("us", tz="UTC")),
        ]
    )
    assert limit_options(schema) == parquet_options(schema)
    assert parquet_options(schema)["use_dictionary"] == ["name", "notes"]


def test_the_floor_materialises_a_range_in_one_run_with_an_event_per_partition(volt_env):
    """What the bench times: the CLI's single-run backfill, one materialisation per day and asset."""
    home = volt_env.dagster_home
    env = {
        **os.environ,
        **volt_env.env,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(Path(__file__).parents[1]),
    }
    dagster = str(Path(sys.executable).with_name("dagster"))
    done = subprocess.run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "bench.floor",
            "--select",
            "raw/electrical_components,staging/electrical_components",
            "--partition-range",
            "2026-01-01...2026-01-05",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        for name in ("raw", "staging"):
            key = dg.AssetKey([name, "electrical_components"])
            assert instance.get_materialized_partitions(key) == {
                f"2026-01-0{d}" for d in range(1, 6)
            }
