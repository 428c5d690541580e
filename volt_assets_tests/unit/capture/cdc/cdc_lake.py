"""Helpers of the cdc tests: a source made ready for logical replication, a capture on the
test's database and bucket, and raw read back as a reader of the lake would."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
from decimal import Decimal

from volt_assets.lib.capture.cdc.capture import CdcCapture
from volt_assets.lib.config import table_config
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import MANIFEST
from volt_assets_tests.pipeline import ts

OPENING_DAY = dt.date(2026, 1, 1)  # VOLT_PARTITIONS_START of the suite (conftest)


def user(id_: int) -> dict:
    """A users row as the app inserts it (the cdc tests' table)."""
    return {
        "id": id_,
        "email": f"u{id_}@volt.example",
        "created_at": ts("2026-01-02 08:00"),
        "updated_at": ts("2026-01-02 08:00"),
    }


def make_ready(conn, tables: list[str]) -> None:
    with conn.cursor() as cur:
        for name in tables:
            cur.execute(f"ALTER TABLE {name} REPLICA IDENTITY FULL")
        cur.execute(f"CREATE PUBLICATION volt_assets_cdc FOR TABLE {', '.join(tables)}")
    conn.commit()


def cdc_capture(volt_env, tables: list[str]) -> CdcCapture:
    """A capture of `tables` as `sync: cdc` tables, its slot named after the test's database
    (slots are per server, the databases per test)."""
    configs = [dataclasses.replace(table_config.table(t), sync="cdc") for t in tables]
    return CdcCapture(
        configs,
        volt_env.dsn,
        LakeStore(volt_env.s3, volt_env.bucket),
        OPENING_DAY,
        slot=f"cdc_{volt_env.dbname}",
    )


def raw_texts(volt_env, table: str) -> list[str]:
    """Every line raw holds for `table`, as text: its days in order, each day's files in the
    order its manifest's captures added them."""
    lines = []
    days = sorted({k.split("/")[2] for k in volt_env.list_keys(f"raw/{table}/")})
    for day in days:
        manifest = json.loads(volt_env.read_object(f"raw/{table}/{day}/{MANIFEST}"))
        for extraction in manifest["extractions"]:
            for name in extraction["files"]:
                version = manifest["files"][name].get("version_id")
                body = gzip.decompress(volt_env.read_object(f"raw/{table}/{day}/{name}", version))
                lines += body.decode("utf-8").splitlines()
    return lines


def raw_lines(volt_env, table: str) -> list[dict]:
    """Raw's lines parsed, numbers as Decimal (exactly as written)."""
    return [json.loads(t, parse_float=Decimal) for t in raw_texts(volt_env, table)]


def raw_days(volt_env, table: str) -> list[str]:
    return sorted({k.split("/")[2] for k in volt_env.list_keys(f"raw/{table}/")})
