"""Test helpers: run the real Dagster assets against the test database and bucket, and put
hand-made rows into the Volt source schema."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import dagster as dg
import psycopg2
import pyarrow.parquet as pq

from volt_assets.settings import project_root

UTC = dt.UTC
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
SUITE_TODAY = "2000-01-01"  # VOLT_TODAY of the suite's runs: each reaches the present (conftest)


def create_source_schema(conn) -> None:
    with conn.cursor() as cur:
        for path in sorted((project_root() / "sql" / "source").glob("*.sql")):
            cur.execute(path.read_text(encoding="utf-8"))
    conn.commit()


def insert(conn, table: str, rows: list[dict]) -> None:
    """Insert rows as the app would (columns named by the dicts)."""
    with conn.cursor() as cur:
        for row in rows:
            cols = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join(["%s"] * len(row))
            cur.execute(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', list(row.values()))
    conn.commit()


def ts(text: str) -> dt.datetime:
    """An aware UTC instant from `2026-01-02 10:00[:00.000001]`."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def materialize(
    selection: list[str], partition: str | tuple[str, str], instance=None, raise_on_error=True
):
    """Materialise asset keys (`raw/orders`, ...) for a partition or an inclusive range, in one
    run, through the code location's own Definitions and resources (built from the env now)."""
    from volt_assets.definitions import build_definitions

    defs = build_definitions()
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(s.split("/")) for s in selection]
    instance = instance or dg.DagsterInstance.ephemeral()
    if isinstance(partition, tuple):
        tags = {RANGE_START: partition[0], RANGE_END: partition[1]}
        return job.execute_in_process(
            instance=instance, asset_selection=keys, tags=tags, raise_on_error=raise_on_error
        )
    return job.execute_in_process(
        instance=instance,
        asset_selection=keys,
        partition_key=partition,
        raise_on_error=raise_on_error,
    )


def read_parquet(volt_env, key: str):
    return pq.read_table(io.BytesIO(volt_env.read_object(key)))


def component(id_: int, updated: str, **values) -> dict:
    row = {
        "id": id_,
        "sku": f"SKU-{id_}",
        "name": f"Component {id_}",
        "category": "fuses",
        "manufacturer": "ABB",
        "price": "10.00",
        "currency": "EUR",
        "created_at": ts("2026-01-01 00:00"),
        "updated_at": ts(updated),
    }
    row.update(values)
    return row


def root() -> Path:
    return project_root()


class BucketAndDatabase:
    """A test's database and bucket as a reader sees them (VoltEnv, and the fault tests' twins):
    needs `dsn`, `s3` (a boto3 client) and `bucket`."""

    def connect(self):
        """A new psycopg2 connection to the database (autocommit off)."""
        return psycopg2.connect(self.dsn)

    def list_keys(self, prefix: str = "") -> list[str]:
        """All keys of the bucket under prefix, sorted."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def read_object(self, key: str, version_id: str | None = None) -> bytes:
        """An object's body: the version `version_id` when given, else the current one."""
        extra = {"VersionId": version_id} if version_id else {}
        return self.s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()
