"""Faults on the wire: each kind of failure is absorbed by the layer meant for it, or ends the
run at once with a message that says what to fix.

| fault                                   | absorbed by                                  |
| --------------------------------------- | -------------------------------------------- |
| S3 500 / 503 / SlowDown, reset          | botocore standard retries (max_attempts 8)   |
| PostgreSQL connection dropped mid-COPY  | `extract.SourceSession` (restarts the read)  |
| PostgreSQL down for a moment at connect | `PostgresResource.new_connection` retries    |
| anything else transient in a step       | Dagster `RetryPolicy` on the network assets  |
| bad credentials, missing bucket / table | nothing: fails at once, says what to fix     |
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from volt_assets_tests.faults import dataset, lake
from volt_assets_tests.faults.env import drop_twin, make_twin, using_env
from volt_assets_tests.faults.s3 import S3FaultProxy
from volt_assets_tests.faults.tcp import TcpProxy
from volt_assets_tests.pipeline import materialize

DAYS = [dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
RANGE = (DAYS[0].isoformat(), DAYS[-1].isoformat())
FAIL_FAST_SECONDS = 20


def pipeline_keys() -> list[str]:
    """raw + staging of every table, and the marts when the code location has them."""
    from volt_assets.definitions import build_definitions

    keys = [k.to_user_string() for k in build_definitions().resolve_all_asset_keys()]
    return sorted(k for k in keys if k.split("/")[0] in ("raw", "staging", "marts"))


def events_of(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


@pytest.fixture
def twin(pg_server, s3_endpoint, volt_env, tmp_path):
    """A second database + bucket for the undisturbed run to compare with."""
    t = make_twin(pg_server, s3_endpoint, volt_env.env, tmp_path / "twin")
    yield t
    drop_twin(pg_server, t)


# --- the pipeline under fire ---------------------------------------------------------------------


def test_ten_percent_s3_errors_and_a_dropped_pg_connection_change_nothing(
    volt_env, twin, pg_server, s3_endpoint, monkeypatch
):
    """10 % of S3 requests fail (some after S3 did the work), 2 % have their connection reset,
    and one PostgreSQL connection drops mid-COPY; the lake and marts equal an undisturbed
    run's, and no step needed a Dagster retry: the faults were absorbed where they belong."""
    keys = pipeline_keys()
    for target in (twin, volt_env):
        conn = target.connect()
        dataset.seed(conn, DAYS)
        conn.close()

    with using_env(twin.env):
        assert materialize(keys, RANGE).success
    expected = lake.snapshot(twin)

    with (
        S3FaultProxy(
            s3_endpoint, seed=20260102, error_rate=0.10, after_share=0.3, reset_rate=0.02
        ) as s3,
        TcpProxy((pg_server.host, pg_server.port)) as pg,
    ):
        pg.drop_after(
            b"row_to_json", after_bytes=8 * 1024, times=1
        )  # one drop, inside a COPY stream
        # writes S3 did whose answer was lost, for sure beside the random ones: a day's raw
        # manifest, and a quality report's conditional PUT (its retry finds its own write)
        s3.fail_after("PUT", r"/raw/electrical_components/dt=[^/]+/_manifest\.json")
        s3.fail_after("PUT", r"/quality/electrical_components/dt=[^/]+/report\.json")
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
        monkeypatch.setenv("POSTGRES_PORT", str(pg.port))
        result = materialize(keys, RANGE)

    assert result.success
    assert pg.drops == 1
    faults = s3.fault_counts()
    assert sum(faults.values()) >= 0.05 * s3.requests, (s3.requests, faults)
    assert any("SlowDown" in f for f in faults) and any(f.startswith("500") for f in faults), faults
    assert sum(n for f, n in faults.items() if f.endswith("(after forwarding)")) >= 1, (
        faults
    )  # S3 did the work
    lost_puts = [
        e.path.split("?")[0].rsplit("/", 1)[-1]
        for e in s3.exchanges
        if e.fault and e.fault.endswith("(after forwarding)") and e.method == "PUT"
    ]
    assert {"_manifest.json", "report.json"} <= set(lost_puts), lost_puts
    assert faults["reset"] >= 1, faults
    assert events_of(result, "STEP_UP_FOR_RETRY") == []  # absorbed below Dagster
    assert lake.compare(expected, lake.snapshot(volt_env)) == []
    assert lake.problems(volt_env) == []


def small_day(target) -> int:
    """Components of DAYS[0] only; returns how many rows the source has for that day."""
    conn = target.connect()
    dataset.seed(conn, DAYS[:1], components=60, users=10, orders=20)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM electrical_components")
        count = cur.fetchone()[0]
    conn.close()
    return count


COMPONENTS = ["raw/electrical_components", "staging/electrical_components"]


def assert_day_captured(volt_env, rows: int) -> None:
    manifest = json.loads(
        volt_env.read_object(f"raw/electrical_components/dt={DAYS[0]}/_manifest.json")
    )
    counts = json.loads(
        volt_env.read_object(f"staging/electrical_components/dt={DAYS[0]}/_manifest.json")
    )["counts"]
    assert manifest["row_count"] == rows
    assert counts["staged_rows"] + counts["quarantined_rows"] == rows
    assert lake.problems(volt_env) == []


def test_postgres_down_for_a_moment_at_connect_is_absorbed_by_the_resource(
    volt_env, pg_server, monkeypatch
):
    rows = small_day(volt_env)
    with TcpProxy((pg_server.host, pg_server.port)) as pg:
        pg.refuse_for(
            0.3
        )  # the first connect and anything in the next 0.3 s; the resource retries after 1 s
        monkeypatch.setenv("POSTGRES_PORT", str(pg.port))
        result = materialize(COMPONENTS, DAYS[0].isoformat())
    assert pg.refused >= 1 and pg.connections > pg.refused  # the fault happened, then it passed
    assert result.success
    assert events_of(result, "STEP_UP_FOR_RETRY") == []  # no Dagster retry needed
    assert_day_captured(volt_env, rows)


def test_postgres_down_longer_than_the_resource_waits_is_retried_by_dagster(
    volt_env, pg_server, monkeypatch
):
    """Down for 4 s: the resource's three attempts (0, 1, 3 s) fail, the step fails with a
    retryable error, Dagster's RetryPolicy runs it again (after ~5 s) and it succeeds."""
    rows = small_day(volt_env)
    with TcpProxy((pg_server.host, pg_server.port)) as pg:
        pg.refuse_for(4.0)
        monkeypatch.setenv("POSTGRES_PORT", str(pg.port))
        result = materialize(COMPONENTS, DAYS[0].isoformat())
    assert pg.refused >= 3
    retries = events_of(result, "STEP_UP_FOR_RETRY")
    assert [e.step_key for e in retries] == ["raw__electrical_components"]
    assert result.success
    assert_day_captured(volt_env, rows)


def test_the_lake_checker_compares_a_mart_copy_with_its_manifest(volt_env):
    """faults.lake.problems, which judges every faulted run, does see a wrong mart copy."""
    import pyarrow as pa

    from volt_assets.lib.staging.transform import parquet_bytes
    from volt_assets.lib.store.lake_store import LakeStore

    store = LakeStore(volt_env.s3, volt_env.bucket)
    body = parquet_bytes(pa.table({"x": [1, 2, 3]}))
    store.write_folder(
        "mart/m/dt=2026-01-02/", {"part-00000.parquet": body}, {"layer": "mart", "rows": 3}
    )
    assert lake.problems(volt_env) == []
    store.write_folder(
        "mart/m/dt=2026-01-03/", {"part-00000.parquet": body}, {"layer": "mart", "rows": 4}
    )
    assert lake.problems(volt_env) == [
        "mart/m/dt=2026-01-03/: files hold 3 rows, manifest counts say 4"
    ]
