"""`make bench`'s Dagster floor stays the project's run minus the work: the same asset keys,
partitions, backfill policy and executor, so "Dagster alone" in bench/RESULTS.md means what it
says; its Parquet limit writes as the lake does. (The bench itself runs for minutes: `make
bench`, never in the suite.)"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest


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
    from volt_assets.lib.staging.transform import parquet_options

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
        "PYTHONPATH": str(Path(__file__).parents[2]),
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


def test_the_s3_proxy_delays_counts_and_passes_requests_through_unchanged(s3_endpoint):
    """The bench's latency proxy: signed requests still verify through it (moto answers them),
    bodies of several blocks and multipart uploads arrive whole, every request waits its delay,
    and it counts requests by kind."""
    import time
    import uuid

    from bench.s3_proxy import DelayProxy
    from volt_assets.devstack import stack

    proxy = DelayProxy(s3_endpoint, delay=0.05).start()
    try:
        client = stack.s3_client(proxy.url)
        bucket = f"proxy-{uuid.uuid4().hex[:8]}"
        stack.ensure_bucket(client, bucket)
        proxy.take_counts()
        body = bytes(range(256)) * 4096 * 3  # 3 MiB: many of the proxy's 64 KiB blocks
        started = time.perf_counter()
        for i in range(4):
            client.put_object(Bucket=bucket, Key=f"day/{i}.bin", Body=body)
        elapsed = time.perf_counter() - started
        assert client.get_object(Bucket=bucket, Key="day/2.bin")["Body"].read() == body
        assert client.head_object(Bucket=bucket, Key="day/3.bin")["ContentLength"] == len(body)
        listed = client.list_objects_v2(Bucket=bucket, Prefix="day/")
        assert [o["Key"] for o in listed["Contents"]] == [f"day/{i}.bin" for i in range(4)]
        with pytest.raises(client.exceptions.NoSuchKey):
            client.get_object(Bucket=bucket, Key="day/none.bin")
        assert proxy.take_counts() == {"PUT": 4, "GET": 2, "HEAD": 1, "LIST": 1}
        # four sequential requests each wait 50 ms; moto answers 3 MiB well within a second
        assert 4 * 0.05 <= elapsed < 4 * 0.05 + 4.0
    finally:
        proxy.stop()


def test_the_request_kinds_the_proxy_counts():
    from bench.s3_proxy import request_kind

    assert request_kind("GET", "/lake/raw/t/dt=2026-01-01/part-0.jsonl.gz") == "GET"
    assert request_kind("GET", "/lake?list-type=2&prefix=raw%2F") == "LIST"
    assert request_kind("GET", "/lake/?versions&prefix=raw") == "LIST"
    assert request_kind("GET", "/lake?versioning") == "GET"
    assert request_kind("GET", "/") == "LIST"
    assert request_kind("PUT", "/lake/raw/x") == "PUT"
    assert request_kind("POST", "/lake?delete") == "POST"
    assert request_kind("HEAD", "/lake/raw/x") == "HEAD"


def _results(backfill: float, one_run: float, heavy_peak_mb: float) -> dict:
    """A run's results as bench.run records them: medians per tool, reps with their peaks."""
    mb = 2**20

    def tool(seconds: float, peak_mb: float = 300, **rep) -> dict:
        return {
            "seconds": seconds,
            "peak_rss": peak_mb * mb,
            "peak_rss_median": peak_mb * mb,
            "reps": [{"seconds": seconds, "peak_rss": peak_mb * mb, "ok": True, **rep}],
        }

    return {
        "backfill": {
            "project": tool(backfill, 500),
            "dagster_floor": tool(10.0),
            "psql_copy_json": tool(5.0),
            "pandas": tool(32.0),
        },
        "heavy_day": {
            "project": tool(4.0, heavy_peak_mb),
            "idle": tool(2.5, 350),
            "dagster_floor": tool(1.9),
            "psql_copy_json": tool(1.1),
        },
        "runs": {"one_run": tool(one_run, days=365)},
    }


def test_the_targets_judge_against_the_floors_of_the_same_run():
    """Backfill ≤ 1.6x (Dagster alone 10 s + JSON 5 s = 15 s: 24 s allowed) and ≥ 2x faster
    than pandas (32 s: 16 s allowed); fixed cost ≤ 15 ms per day and asset (one run − 10 s over
    730: 20.9 s is 14.9 ms); heavy day peak ≤ idle 350 MB + 150 MB."""
    from bench.targets import rows

    def verdicts(results: dict) -> dict[str, str]:
        """target's name (before its colon) -> verdict, the first row of each name"""
        out = {}
        for line in rows(results):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out.setdefault(cells[0].split(":")[0], cells[-1])
        return out

    met = verdicts(_results(backfill=16.0, one_run=20.9, heavy_peak_mb=500))
    assert met["365-day backfill (one run)"] == "**met**"
    assert met["backfill"] == "**met**"  # 32 / 16 = 2.0x
    assert met["fixed cost of a partition"] == "**met**"
    assert met["heavy day"] == "**met**"  # 4.0 s against (1.9 + 1.1) x 1.6 = 4.8 s
    assert met["memory"] == "**met**"  # the heavy day's row comes first among memory rows
    assert met["real S3"] == "—"  # not measured in these results

    missed = verdicts(_results(backfill=24.5, one_run=21.1, heavy_peak_mb=501))
    assert missed["365-day backfill (one run)"] == "**missed**"  # 24.5 > 24
    assert missed["backfill"] == "**missed**"  # 32 / 24.5 < 2
    assert missed["fixed cost of a partition"] == "**missed**"  # 15.2 ms
    assert missed["memory"] == "**missed**"  # 501 > 350 + 150
