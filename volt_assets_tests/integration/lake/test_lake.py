"""The lake end to end: raw capture, staging, quarantine, on real PostgreSQL + S3."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from volt_assets_tests.pipeline import (
    component,
    create_source_schema,
    insert,
    materialize,
    read_parquet,
    ts,
)

RAW = "raw/electrical_components"
STAGING = "staging/electrical_components"
BOTH = [RAW, STAGING]


def raw_lines(volt_env, table: str, day: str) -> list[dict]:
    prefix = f"raw/{table}/dt={day}/"
    lines = []
    for key in volt_env.list_keys(prefix):
        if key.endswith(".jsonl.gz"):
            lines += [
                json.loads(line, parse_float=Decimal)  # numbers exactly as written
                for line in gzip.decompress(volt_env.read_object(key)).splitlines()
            ]
    return lines


def staging_rows(volt_env, table: str, day: str) -> list[dict]:
    return read_parquet(volt_env, f"staging/{table}/dt={day}/part-00000.parquet").to_pylist()


def quarantine_rows(volt_env, table: str, day: str) -> list[dict]:
    key = f"quarantine/{table}/dt={day}/part-00000.parquet"
    return read_parquet(volt_env, key).to_pylist() if key in volt_env.list_keys(key) else []


@pytest.fixture
def shop(volt_env):
    """Three days of components, mostly clean: 40 a day plus a few dirty ones on day 2."""
    conn = volt_env.connect()
    create_source_schema(conn)
    rows = []
    for day in (1, 2, 3):
        for i in range(40):
            rows.append(component(day * 1000 + i, f"2026-01-0{day} {10 + i % 12:02d}:{i:02d}:00"))
    rows += [
        component(1, "2026-01-02 00:00:00"),  # first instant of day 2
        component(
            2, "2026-01-02 23:59:59.999999", name="  Robert');  DROP TABLE users;--  "
        ),  # last instant
        component(
            3,
            "2026-01-02 12:00",
            name="🔌 Wtyczka\u200f  ",
            category="  Circuit-Breakers ",
            currency="eur",
            specs=json.dumps({"poles": 3, "nested": {"a": [1, 2, {"b": None}]}}),
        ),
        component(4, "2026-01-02 12:00", price="-1.00"),  # refused: price
        component(5, "2026-01-03 00:00:00"),  # first instant of day 3, not day 2
    ]
    insert(conn, "electrical_components", rows)
    conn.close()
    return volt_env


def test_raw_counts_boundaries_cleaning_and_accounting(shop):
    result = materialize(BOTH, "2026-01-02")
    assert result.success

    lines = raw_lines(shop, "electrical_components", "2026-01-02")
    ids = sorted(line["id"] for line in lines)
    assert ids == sorted([2000 + i for i in range(40)] + [1, 2, 3, 4])  # exact; id 5 is day 3
    by_id = {line["id"]: line for line in lines}
    assert by_id[1]["updated_at"] == "2026-01-02T00:00:00.000000Z"
    assert by_id[2]["updated_at"] == "2026-01-02T23:59:59.999999Z"
    assert str(by_id[4]["price"]) == "-1.00" and isinstance(
        by_id[3]["specs"], dict
    )  # numbers and jsonb stay JSON
    manifest = json.loads(shop.read_object(f"{RAW}/dt=2026-01-02/_manifest.json"))
    assert manifest["row_count"] == 44
    assert manifest["cursor_min"] == "2026-01-02T00:00:00.000000Z"
    assert manifest["cursor_max"] == "2026-01-02T23:59:59.999999Z"
    assert "extracted_at" in manifest and "price" in manifest["columns"]

    staged = {r["id"]: r for r in staging_rows(shop, "electrical_components", "2026-01-02")}
    refused = quarantine_rows(shop, "electrical_components", "2026-01-02")
    assert sorted(staged) == sorted(set(ids) - {4})
    assert [r["id"] for r in refused] == ["4"] and refused[0]["_reasons"] == [
        "price: not positive: '-1.00'"
    ]
    assert len(staged) + len(refused) == len(lines)  # every raw row in exactly one place
    assert staged[2]["name"] == "Robert'); DROP TABLE users;--"  # kept exactly, trimmed
    assert staged[3]["name"] == "🔌 Wtyczka\u200f"  # emoji and RTL mark kept; whitespace trimmed
    assert staged[3]["category"] == "circuit-breakers" and staged[3]["currency"] == "EUR"
    assert json.loads(staged[3]["specs"]) == {"poles": 3, "nested": {"a": [1, 2, {"b": None}]}}
    assert str(staged[1]["price"]) == "10.00" and staged[1]["_deleted"] is False

    # the declared staging schema, written out (README: money decimal128(12,2), timestamps
    # timestamp[us, UTC], jsonb as JSON text, `_deleted`, `_extracted_at`), zstd compressed
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = f"{STAGING}/dt=2026-01-02/part-00000.parquet"
    schema = read_parquet(shop, key).schema
    utc = pa.timestamp("us", tz="UTC")
    assert [(f.name, f.type) for f in schema] == [
        ("id", pa.int64()),
        ("sku", pa.string()),
        ("name", pa.string()),
        ("category", pa.string()),
        ("manufacturer", pa.string()),
        ("description", pa.string()),
        ("price", pa.decimal128(12, 2)),
        ("currency", pa.string()),
        ("stock_quantity", pa.int32()),
        ("voltage_rating", pa.decimal128(10, 2)),
        ("specs", pa.string()),
        ("image_filename", pa.string()),
        ("created_at", utc),
        ("updated_at", utc),
        ("deleted_at", utc),
        ("_deleted", pa.bool_()),
        ("_extracted_at", utc),
    ]
    metadata = pq.ParquetFile(io.BytesIO(shop.read_object(key))).metadata
    assert {metadata.row_group(0).column(i).compression for i in range(metadata.num_columns)} == {
        "ZSTD"
    }


def test_empty_day_gives_an_empty_partition(shop):
    conn = shop.connect()
    insert(conn, "electrical_components", [component(9, "2026-01-05 08:00")])
    assert materialize(BOTH, "2026-01-04").success
    assert staging_rows(shop, "electrical_components", "2026-01-04") == []
    manifest = json.loads(shop.read_object(f"{RAW}/dt=2026-01-04/_manifest.json"))
    assert manifest["row_count"] == 0


def test_rerun_is_identical_and_raw_keeps_history(shop):
    assert materialize(BOTH, "2026-01-01").success
    before = shop.read_object(f"{STAGING}/dt=2026-01-01/part-00000.parquet")
    again = materialize(BOTH, "2026-01-01")
    assert again.success
    assert shop.read_object(f"{STAGING}/dt=2026-01-01/part-00000.parquet") == before  # same bytes
    assert len(raw_lines(shop, "electrical_components", "2026-01-01")) == 40  # no duplicates
    # nothing new to capture: raw D is kept as it is, and its event still says what it holds
    [raw_event] = [
        e for e in again.get_asset_materialization_events() if e.asset_key.to_user_string() == RAW
    ]
    assert raw_event.materialization.metadata["rows"].value == 40
    assert raw_event.materialization.metadata["rows_added"].value == 0

    # The source moves on: a row of day 1 is updated in place on day 1 (a later instant).
    conn = shop.connect()
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE electrical_components SET price = 12.34, updated_at = %s WHERE id = 1000",
            (ts("2026-01-01 23:00"),),
        )
        cur.execute(
            "UPDATE electrical_components SET name = 'Moved', updated_at = %s WHERE id = 1001",
            (ts("2026-01-05 09:00"),),
        )
    conn.commit()
    assert materialize(BOTH, "2026-01-01").success
    lines = raw_lines(shop, "electrical_components", "2026-01-01")
    versions_1000 = sorted(line["updated_at"] for line in lines if line["id"] == 1000)
    assert len(versions_1000) == 2  # the old version is kept, the new one added
    assert any(
        line["id"] == 1001 for line in lines
    )  # moved out of day 1 at the source, kept in raw
    staged = {r["id"]: r for r in staging_rows(shop, "electrical_components", "2026-01-01")}
    assert str(staged[1000]["price"]) == "12.34"  # latest version wins in staging
    assert len(staged) == 40


def test_partition_range_is_one_run_with_a_folder_per_day(shop):
    result = materialize(BOTH, ("2026-01-01", "2026-01-03"))
    assert result.success
    # one run (this one) materialised the three partitions of each asset
    materialised = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
    }
    assert {p for k, p in materialised if k == STAGING} == {
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    }
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        assert f"{STAGING}/dt={day}/part-00000.parquet" in shop.list_keys(f"{STAGING}/dt={day}/")
    assert len(staging_rows(shop, "electrical_components", "2026-01-03")) == 41  # 40 + id 5
    # Each partition's page in the UI shows that day's figures; the run's totals ride along.
    events = {
        e.partition: e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == STAGING
    }
    assert {d: m["rows"].value for d, m in events.items()} == {
        "2026-01-01": 40,
        "2026-01-02": 43,
        "2026-01-03": 41,
    }
    assert {m["run_rows"].value for m in events.values()} == {40 + 43 + 41}
    assert events["2026-01-02"]["s3_uri"].value.endswith(f"/{STAGING}/dt=2026-01-02/")
    assert events["2026-01-02"]["cursor_min"].value.startswith("2026-01-02T")
    assert events["2026-01-02"]["cursor_max"].value.startswith("2026-01-02T")
    # ... and staging's accounting of that day (id 4 refused: price), never the whole range's table
    day2 = events["2026-01-02"]
    assert (day2["raw_rows"].value, day2["staged_rows"].value, day2["quarantined_rows"].value) == (
        44,
        43,
        1,
    )
    assert "per_day" not in day2 and "counts_per_day" not in day2

    # DuckDB reads the layer whole with hive partitioning (through pyarrow's S3 filesystem,
    # as DuckDB's httpfs extension cannot be downloaded here).
    s3 = pafs.S3FileSystem(
        endpoint_override=shop.env["AWS_ENDPOINT_URL"],
        access_key="testing",
        secret_key="testing",
        region="eu-central-1",
        scheme="http",
    )
    dataset = ds.dataset(
        f"{shop.bucket}/{STAGING}",
        filesystem=s3,
        format="parquet",
        partitioning="hive",
        exclude_invalid_files=True,
    )
    lake = dataset  # noqa: F841  (DuckDB finds it by name)
    counts = duckdb.sql("SELECT dt, count(*) AS n FROM lake GROUP BY dt ORDER BY dt").fetchall()
    assert [(str(d), n) for d, n in counts] == [
        ("2026-01-01", 40),
        ("2026-01-02", 43),
        ("2026-01-03", 41),
    ]


def test_hard_deletes_become_tombstones_and_a_mass_delete_is_refused(shop):
    assert materialize(BOTH, ("2026-01-01", "2026-01-02")).success
    conn = shop.connect()
    with conn.cursor() as cur:
        cur.execute("DELETE FROM electrical_components WHERE id IN (1000, 1001)")
    conn.commit()
    assert materialize(BOTH, "2026-01-03").success
    rows = {r["id"]: r for r in staging_rows(shop, "electrical_components", "2026-01-03")}
    assert rows[1000]["_deleted"] is True and rows[1000]["name"] is None
    assert rows[1001]["_deleted"] is True
    assert sum(r["_deleted"] for r in rows.values()) == 2

    with conn.cursor() as cur:
        cur.execute("DELETE FROM electrical_components WHERE id < 2020")  # a broken source
    conn.commit()
    result = materialize(BOTH, "2026-01-03", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "refusing to tombstone" in str(failure.event_specific_data.error.message)
    conn.close()


def test_late_commit_is_merged_into_the_previous_day(shop):
    assert materialize(BOTH, "2026-01-01").success
    # A transaction that began on day 1 commits after day 1 was captured.
    conn = shop.connect()
    insert(conn, "electrical_components", [component(77, "2026-01-01 23:59:30")])
    late = materialize(BOTH, "2026-01-02")
    assert late.success
    ids = [line["id"] for line in raw_lines(shop, "electrical_components", "2026-01-01")]
    assert ids.count(77) == 1
    [raw_event] = [
        e for e in late.get_asset_materialization_events() if e.asset_key.to_user_string() == RAW
    ]
    assert raw_event.materialization.metadata["late_rows_merged"].value == 1
    assert materialize([STAGING], "2026-01-01").success
    assert 77 in {r["id"] for r in staging_rows(shop, "electrical_components", "2026-01-01")}


def test_dagster_cli_materialises_like_a_user(shop, tmp_path):
    conn = shop.connect()
    insert(
        conn,
        "users",
        [
            {
                "id": 1,
                "email": "  Ala@Example.COM ",
                "full_name": "Ala",
                "country": "pl",
                "created_at": ts("2026-01-02 01:00"),
                "updated_at": ts("2026-01-02 01:00"),
            },
            {
                "id": 2,
                "email": "not-an-email",
                "full_name": "Bob",
                "country": "de",
                "created_at": ts("2026-01-02 02:00"),
                "updated_at": ts("2026-01-02 02:00"),
            },
        ],
    )
    env = {**os.environ, **shop.env}
    dagster = str(Path(sys.executable).with_name("dagster"))
    done = subprocess.run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "volt_assets",
            "--select",
            "raw/users,staging/users",
            "--partition-range",
            "2026-01-01...2026-01-02",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # one row of two refused: the gate ERRORs (50 % > 5 %), so the run fails, files are written
    assert done.returncode != 0
    assert "quarantine_share" in done.stdout + done.stderr
    staged = staging_rows(shop, "users", "2026-01-02")
    assert [(r["id"], r["email"]) for r in staged] == [(1, "ala@example.com")]
    assert quarantine_rows(shop, "users", "2026-01-02")[0]["_reasons"] == [
        "email: not a valid email address: 'not-an-email'"
    ]
    assert staging_rows(shop, "users", "2026-01-01") == []
    # the steps ran in the CLI's own process (volt_executor's default), not one process each
    assert "Executing steps in process" in done.stdout + done.stderr


def test_a_run_can_still_ask_for_a_process_per_step(shop):
    env = {**os.environ, **shop.env}
    dagster = str(Path(sys.executable).with_name("dagster"))
    done = subprocess.run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "volt_assets",
            "--select",
            "raw/electrical_components",
            "--partition",
            "2026-01-02",
            "--config-json",
            '{"execution": {"config": {"multiprocess": {}}}}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Executing steps using multiprocess executor" in done.stdout + done.stderr
    assert len(raw_lines(shop, "electrical_components", "2026-01-02")) == 44


def test_a_run_lists_the_folders_of_its_days_in_one_pass(volt_env):
    """`list_days_objects` returns exactly the keys of days [first, last] (the IO manager's one
    listing per layer for a range run), across listing pages, whatever sorts next to them."""
    from volt_assets.lib.store.lake_store import LakeStore

    store = LakeStore(volt_env.s3, volt_env.bucket)
    keys = [
        f"staging/t/dt=2026-01-0{d}/{name}"
        for d in range(1, 6)
        for name in ("_manifest.json", "part-00000.parquet")
    ]
    keys += [
        "staging/t/dt=2026-01-03.tmp",
        "staging/t/dt=2026-01-030/x",
        "staging/t_other/dt=2026-01-03/x",
        "staging/t/_index.json",
    ]
    keys += [f"staging/t/dt=2026-01-03/extra-{i:04d}" for i in range(1100)]  # more than one page
    for key in keys:
        volt_env.s3.put_object(Bucket=volt_env.bucket, Key=key, Body=b"x")
    listed = store.list_days_objects("staging/t/", dt.date(2026, 1, 2), dt.date(2026, 1, 4))
    days = ("dt=2026-01-02", "dt=2026-01-03", "dt=2026-01-04")
    assert set(listed) == {
        k for k in keys if k.startswith("staging/t/") and k.split("/")[2] in days
    }
    assert set(listed.values()) == {1}


def test_manifests_record_version_ids_and_readers_get_the_listed_version(volt_env):
    """On the versioned lake bucket a manifest records each file's S3 version id, and a reader
    that follows it gets that version even after the key was overwritten (a run killed between
    a part's PUT and its manifest's PUT) or deleted; without an id it reads the current object."""
    import pyarrow as pa

    from volt_assets.defs.lake.io_manager import LakePartitions
    from volt_assets.lib.staging.transform import parquet_bytes
    from volt_assets.lib.store.lake_store import LakeStore, folder_manifest

    s3, bucket = volt_env.s3, volt_env.bucket
    assert (
        s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    )  # as the project deploys it
    store = LakeStore(s3, bucket)
    day = dt.date(2026, 1, 2)
    prefix = f"staging/t/dt={day}/"
    old, new = pa.table({"id": [1, 2, 3]}), pa.table({"id": [4]})
    store.write_folder(
        prefix, {"part-00000.parquet": parquet_bytes(old)}, {"counts": {"staged_rows": 3}}
    )
    manifest = store.read_manifest(prefix)
    listed = manifest["files"]["part-00000.parquet"]
    head = s3.head_object(Bucket=bucket, Key=prefix + "part-00000.parquet")
    assert listed == {"bytes": head["ContentLength"], "version_id": head["VersionId"]}

    # the next run's part lands, its manifest never does
    s3.put_object(Bucket=bucket, Key=prefix + "part-00000.parquet", Body=parquet_bytes(new))
    reader = LakePartitions(store, "staging", "t", [day])
    assert reader.read_parquet(day).equals(old)
    [path] = reader.download(day, ["part-00000.parquet"], volt_env.images_dir)
    assert path.read_bytes() == parquet_bytes(old)
    assert store.read_listed(prefix, manifest, "part-00000.parquet") == parquet_bytes(old)
    # a manifest without ids (an unversioned bucket, an older lake) reads the current object
    unversioned = {**manifest, "files": {"part-00000.parquet": {"bytes": listed["bytes"]}}}
    assert store.read_listed(prefix, unversioned, "part-00000.parquet") == parquet_bytes(new)

    # removing a file the new manifest no longer lists deletes the key, not the listed version
    store.write_folder(prefix, {}, {"counts": {"staged_rows": 0}})
    assert volt_env.list_keys(prefix) == [prefix + "_manifest.json"]
    assert store.read_listed(prefix, manifest, "part-00000.parquet") == parquet_bytes(old)

    # raw (replace=False): a later write's manifest lists files this store uploaded earlier
    # without their ids (raw's tombstones are built from the capture's manifest): it gets them
    raw = f"raw/t/dt={day}/"
    parts = {"part-1.jsonl.gz": gzip.compress(b'{"id": 1}\n')}
    store.write_folder(raw, parts, {"table": "t"}, replace=False)
    captured = store.read_manifest(raw)
    store.write_folder(
        raw,
        {"_deletes-1.parquet": parquet_bytes(old)},
        folder_manifest(parts, {"table": "t"}),
        replace=False,
    )
    after = store.read_manifest(raw)["files"]
    assert after["part-1.jsonl.gz"] == captured["files"]["part-1.jsonl.gz"]
    assert (
        after["_deletes-1.parquet"]["version_id"]
        == s3.head_object(Bucket=bucket, Key=raw + "_deletes-1.parquet")["VersionId"]
    )

    # an unversioned bucket: no ids, readers read the current objects as before
    plain = f"{bucket}-plain"
    s3.create_bucket(
        Bucket=plain, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name}
    )
    plain_store = LakeStore(s3, plain)
    plain_store.write_folder(prefix, {"part-00000.parquet": parquet_bytes(old)}, {})
    assert plain_store.read_manifest(prefix)["files"] == {
        "part-00000.parquet": {"bytes": len(parquet_bytes(old))}
    }
    assert LakePartitions(plain_store, "staging", "t", [day]).read_parquet(day).equals(old)


def test_a_run_on_an_unversioned_bucket_is_told_so_once(volt_env):
    from volt_assets.defs.lake.io_manager import _VERSIONING_CHECKED, warn_if_unversioned
    from volt_assets.lib.store.lake_store import LakeStore

    class Log:
        def __init__(self):
            self.warnings = []

        def warning(self, text):
            self.warnings.append(text)

    s3 = volt_env.s3
    plain = f"{volt_env.bucket}-plain"
    s3.create_bucket(
        Bucket=plain, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name}
    )
    log = Log()
    _VERSIONING_CHECKED.discard(volt_env.bucket)
    for bucket in (volt_env.bucket, plain, plain):  # versioned: quiet; unversioned: said once
        warn_if_unversioned(LakeStore(s3, bucket), log)
    assert (
        len(log.warnings) == 1
        and repr(plain) in log.warnings[0]
        and "bucket apply" in log.warnings[0]
    )


def test_a_mass_delete_above_ten_percent_changes_nothing_and_ten_percent_is_tombstoned(
    volt_env, monkeypatch
):
    """max_delete_share 0.10 pinned on both sides, on runs reaching the latest partition
    (yesterday): 11 of 100 known keys gone fails and leaves raw and staging as they were; 10 of
    100 is tombstoned, on the range run's last day only."""
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = yesterday - dt.timedelta(days=2)
    monkeypatch.setenv("VOLT_PARTITIONS_START", first.isoformat())
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(
        conn,
        "electrical_components",
        [component(i, f"{first} 10:{i % 60:02d}") for i in range(1, 101)],
    )
    assert materialize(BOTH, (first.isoformat(), yesterday.isoformat())).success

    def lake_state() -> dict[str, bytes]:
        keys = volt_env.list_keys("raw/") + volt_env.list_keys("staging/")
        return {k: volt_env.read_object(k) for k in keys}

    before = lake_state()
    with conn.cursor() as cur:
        cur.execute("DELETE FROM electrical_components WHERE id <= 11 RETURNING id")
        assert cur.rowcount == 11
    conn.commit()
    result = materialize(BOTH, yesterday.isoformat(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "refusing to tombstone 11 of 100 known" in str(failure.event_specific_data.error.message)
    after = lake_state()
    assert after == before  # not a byte of raw or staging changed, no deletes sidecar written

    insert(conn, "electrical_components", [component(11, f"{first} 10:11")])  # back: 10 of 100 gone
    # a range run scans the source's keys for its last day: the tombstones land there only
    assert materialize(BOTH, (first.isoformat(), yesterday.isoformat())).success
    tombstones = {
        d: sorted(
            r["id"]
            for r in staging_rows(volt_env, "electrical_components", d.isoformat())
            if r["_deleted"]
        )
        for d in (first, first + dt.timedelta(days=1), yesterday)
    }
    assert tombstones == {
        first: [],
        first + dt.timedelta(days=1): [],
        yesterday: list(range(1, 11)),
    }
    conn.close()


def test_raw_parts_roll_over_at_the_part_limit_on_line_ends(volt_env, monkeypatch):
    """8 MB parts in production; lowered to 4 KiB here, a day of ~25 KiB becomes several
    parts, each finished on a line end, none bigger than the limit plus the chunk that crossed
    it, no line lost."""
    from volt_assets.lib.capture import extract as ex

    assert ex.PART_BYTES == 8 * 1024 * 1024  # the README's figure
    limit, chunk = 4096, 512  # rows are compressed in chunks of FLUSH_BYTES (1 MiB in production)
    monkeypatch.setattr(ex, "PART_BYTES", limit)
    monkeypatch.setattr(ex, "FLUSH_BYTES", chunk)
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(
        conn,
        "electrical_components",
        [
            component(i, f"2026-01-02 10:{i % 60:02d}", description=f"part {i} " + "x" * 300)
            for i in range(1, 61)
        ],
    )
    conn.close()
    assert materialize(BOTH, "2026-01-02").success

    prefix = f"{RAW}/dt=2026-01-02/"
    parts = [k for k in volt_env.list_keys(prefix) if k.endswith(".jsonl.gz")]
    texts = [gzip.decompress(volt_env.read_object(k)) for k in parts]
    assert len(parts) >= 3, [len(t) for t in texts]
    longest_line = max(len(line) + 1 for t in texts for line in t.splitlines())
    for text in texts:
        assert text.endswith(b"\n") and all(json.loads(line)["id"] for line in text.splitlines())
        # rolled over once past the limit: the chunk that crossed it is finished in the part
        assert len(text) <= limit + chunk + longest_line
    assert all(len(t) > limit for t in texts[:-1])
    ids = sorted(json.loads(line)["id"] for t in texts for line in t.splitlines())
    assert ids == list(range(1, 61))
    manifest = json.loads(volt_env.read_object(prefix + "_manifest.json"))
    assert set(parts) == {prefix + n for n in manifest["files"] if n.endswith(".jsonl.gz")}
    assert len(staging_rows(volt_env, "electrical_components", "2026-01-02")) == 60


def test_a_part_this_process_uploaded_is_read_back_from_local_disk(volt_env, tmp_path):
    """Staging downloads the parts raw uploaded moments before in the same process: the exact
    version it asks for comes from a local copy, with no GET; another version (the key written
    again by another writer) comes from S3; the oldest copies go past the limit."""
    from volt_assets.lib.store import upload_copies as local_copies
    from volt_assets.lib.store.lake_store import LakeStore

    s3, bucket = volt_env.s3, volt_env.bucket
    gets: list[str] = []
    s3.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: gets.append(params["Key"])
    )
    store = LakeStore(s3, bucket)
    key = "raw/t/dt=2026-01-02/part-1-00000.jsonl.gz"
    written = tmp_path / "written.jsonl.gz"
    written.write_bytes(gzip.compress(b'{"id": 1}\n'))
    _, version = store.put(key, written)
    written.unlink()  # raw removes its files once a day is written: the copy stays
    got = store.download(key, tmp_path / "read.jsonl.gz", version_id=version)
    assert got.read_bytes() == gzip.compress(b'{"id": 1}\n') and gets == []

    # taken once: asked again, and for a version another writer made, it is S3's
    assert store.download(key, tmp_path / "again.jsonl.gz", version_id=version).exists()
    other = s3.put_object(Bucket=bucket, Key=key, Body=b"other")["VersionId"]
    assert store.download(key, tmp_path / "other", version_id=other).read_bytes() == b"other"
    assert gets == [key, key]

    copies = local_copies.LocalCopies(limit=10)
    copies.keep(bucket, "a", "v1", b"123456")
    copies.keep(bucket, "b", "v1", b"7890")
    copies.keep(bucket, "c", "v1", b"xy")  # 12 bytes: the oldest goes
    assert not copies.take(bucket, "a", "v1", tmp_path / "a")
    assert (
        copies.take(bucket, "b", "v1", tmp_path / "b") and (tmp_path / "b").read_bytes() == b"7890"
    )
    assert not copies.take(bucket, "c", "v2", tmp_path / "c")  # another version: not this copy


def test_a_manifest_this_process_wrote_is_not_read_back_while_it_is_current(volt_env):
    """Staging lists the run's raw days once and takes a manifest its own raw step wrote from
    memory; one another writer replaced since (a new ETag in the listing) is read from S3."""
    from volt_assets.defs.lake.io_manager import LakePartitions
    from volt_assets.lib.store.lake_store import LakeStore

    s3, bucket = volt_env.s3, volt_env.bucket
    gets: list[str] = []
    s3.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: gets.append(params["Key"])
    )
    store = LakeStore(s3, bucket)
    days = [dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
    raw = LakePartitions(store, "raw", "t", days)
    for day in days:
        store.write_folder(raw.prefix(day), {"part-00000.jsonl": b'{"id": 1}\n'}, {"rows": 1})
    etags = raw.manifest_etags(days)
    assert sorted(etags) == days
    assert [raw.manifest(day, etags[day])["rows"] for day in days] == [1, 1] and gets == []

    key = raw.prefix(days[1]) + "_manifest.json"
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"rows": 2, "files": {}}')  # another writer
    etags = raw.manifest_etags(days)
    assert [raw.manifest(day, etags[day])["rows"] for day in days] == [1, 2] and gets == [key]
    assert raw.manifest_etags([dt.date(2026, 1, 4)]) == {}


def test_the_pipelines_client_sends_small_bodies_without_waiting_for_100_continue(volt_env):
    """A PUT under 2 MB goes without `Expect: 100-continue` (a round trip saved per PUT); a
    bigger one still asks first; both land, signed."""
    from dagster_aws.s3 import S3Resource

    from volt_assets.defs.resources import pooled_client

    env = volt_env.env
    client = pooled_client(
        S3Resource(
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="eu-central-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
    )
    sent: list[tuple[str, bytes | None]] = []
    client.meta.events.register_last(  # the least specific event: its handlers run last
        "before-send",
        lambda request, **_: sent.append((request.method, request.headers.get("Expect"))),
    )
    small, big = b"s" * ((2 << 20) - 1), b"b" * (2 << 20)
    client.put_object(Bucket=volt_env.bucket, Key="small", Body=small)
    client.put_object(Bucket=volt_env.bucket, Key="big", Body=big)
    assert sent == [("PUT", None), ("PUT", b"100-continue")]
    assert volt_env.read_object("small") == small and volt_env.read_object("big") == big
    # requests that never asked (a multipart upload's start, a batch delete) go as they were
    upload = client.create_multipart_upload(Bucket=volt_env.bucket, Key="parts")
    client.abort_multipart_upload(Bucket=volt_env.bucket, Key="parts", UploadId=upload["UploadId"])
    client.delete_objects(Bucket=volt_env.bucket, Delete={"Objects": [{"Key": "small"}]})
