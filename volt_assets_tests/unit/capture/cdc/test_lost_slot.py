"""A slot that can no longer continue the lake fails the capture loudly, naming where raw is
complete and the recovery; following the recovery leaves raw's opening equal to the source."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import pytest

from volt_assets.devstack import stack
from volt_assets.lib.capture.cdc.capture import CdcCapture, SlotLost
from volt_assets.lib.config import table_config
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import cdc_position_key
from volt_assets_tests.pipeline import create_source_schema, insert
from volt_assets_tests.unit.capture.cdc.cdc_lake import (
    OPENING_DAY,
    cdc_capture,
    make_ready,
    raw_lines,
    user,
)


def execute(conn, statement: str, args=()) -> None:
    with conn.cursor() as cur:
        cur.execute(statement, args)
    conn.commit()


def test_a_dropped_slot_fails_the_drain_naming_the_recovery(volt_env, source, tmp_path) -> None:
    make_ready(source, ["users"])
    capture = cdc_capture(volt_env, ["users"])
    capture.run(tmp_path / "open")
    execute(source, "SELECT pg_drop_replication_slot(%s)", (capture.slot,))
    insert(source, "users", [user(1)])
    with pytest.raises(SlotLost) as lost:
        capture.drain(tmp_path / "drain")
    message = str(lost.value)
    assert f"the replication slot {capture.slot!r} is gone" in message
    assert f"delete s3://{volt_env.bucket}/{cdc_position_key(capture.slot)}" in message
    assert raw_lines(volt_env, "users") == []  # nothing written on a guess


@pytest.fixture
def tight_server():
    """A server of its own that keeps at most 1 MB of WAL for a slot behind."""
    root = Path(tempfile.mkdtemp(prefix="volt-test-pg-tight-"))
    try:
        yield stack.start_postgres(root / "pg", server_settings={"max_slot_wal_keep_size": "1MB"})
    finally:
        stack.stop_postgres(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


def test_an_invalidated_slot_fails_with_the_recovery_and_the_recovery_restores_the_lake(
    tight_server, volt_env, tmp_path
) -> None:
    conn = tight_server.connect()
    create_source_schema(conn)
    make_ready(conn, ["users"])
    insert(conn, "users", [user(1)])
    configs = [dataclasses.replace(table_config.table("users"), sync="cdc")]
    store = LakeStore(volt_env.s3, volt_env.bucket)
    capture = CdcCapture(configs, tight_server.dsn(), store, OPENING_DAY, slot="tight")
    capture.run(tmp_path / "open")
    insert(conn, "users", [user(2)])  # a change the lost WAL held
    conn.autocommit = True
    with conn.cursor() as cur:  # the capture stopped while the shop wrote a lot of WAL
        for _ in range(4):
            cur.execute("CREATE TABLE IF NOT EXISTS filler (n int)")
            cur.execute("INSERT INTO filler SELECT generate_series(1, 50000)")
            cur.execute("SELECT pg_switch_wal()")
        cur.execute("CHECKPOINT")
        cur.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'tight'")
        assert cur.fetchone() == ("lost",)  # the fault happened
    with pytest.raises(SlotLost) as lost:
        capture.drain(tmp_path / "drain")
    message = str(lost.value)
    assert "was invalidated (wal_removed)" in message
    assert "SELECT pg_drop_replication_slot('tight');" in message

    # the recovery, as the message says it
    execute(conn, "SELECT pg_drop_replication_slot('tight')")
    volt_env.s3.delete_object(Bucket=volt_env.bucket, Key=cdc_position_key("tight"))
    capture.run(tmp_path / "again")
    assert sorted((x["op"], x["key"]) for x in raw_lines(volt_env, "users")) == [
        ("snapshot", 1),
        ("snapshot", 2),
    ]
    conn.close()
