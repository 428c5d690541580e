"""The capture as its own process: SIGKILLed while it writes raw or before it writes the
position (so before it confirms the slot), the next run holds every change once; and a
1,000,000-row transaction streams through in bounded memory."""

from __future__ import annotations

import subprocess

import pytest

from volt_assets.lib.store.layout import cdc_position_key
from volt_assets_tests.faults.runs import wait_until
from volt_assets_tests.faults.s3 import S3FaultProxy
from volt_assets_tests.unit.capture.cdc import drain_process
from volt_assets_tests.unit.capture.cdc.cdc_lake import (
    cdc_capture,
    make_ready,
    raw_days,
    raw_lines,
)

ROWS = 200


def insert_users(conn, first: int, count: int) -> None:
    """`count` users in one transaction."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO users (id, email, created_at, updated_at) SELECT g, 'u' || g || "
            "'@volt.example', now(), now() FROM generate_series(%s, %s) g",
            (first, first + count - 1),
        )
    conn.commit()


def kill_when_held(volt_env, s3_endpoint, slot, tmp_path, path_regex: str) -> None:
    """A drain through a proxy holding the first PUT matching `path_regex`, SIGKILLed while it
    waits for the answer: the held request never reaches S3."""
    with S3FaultProxy(s3_endpoint) as proxy:
        hold = proxy.hold("PUT", path_regex)
        child = subprocess.Popen(
            drain_process.command(volt_env, proxy.url, slot, "users", tmp_path / "killed"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert hold.wait(120), f"the drain never sent PUT {path_regex}"
        finally:
            child.kill()
            child.wait(30)
            hold.release()
        wait_until(lambda: hold.forwarded is not None, 10, what="the proxy to drop the request")
        assert hold.forwarded is False


@pytest.mark.parametrize(
    "held",
    [r"/raw/users/dt=[0-9-]+/_manifest\.json$", r"/raw/_cdc/[a-z0-9_]+\.json$"],
    ids=["during-the-raw-write", "before-the-position"],
)
def test_a_capture_killed_before_confirming_loses_and_doubles_nothing(
    held, volt_env, source, s3_endpoint, tmp_path
) -> None:
    make_ready(source, ["users"])
    capture = cdc_capture(volt_env, ["users"])
    capture.run(tmp_path / "open")
    insert_users(source, 1, ROWS)
    position_before = volt_env.read_object(cdc_position_key(capture.slot))
    kill_when_held(volt_env, s3_endpoint, capture.slot, tmp_path, held)
    assert volt_env.read_object(cdc_position_key(capture.slot)) == position_before
    insert_users(source, ROWS + 1, ROWS)
    after = capture.run(tmp_path / "after")
    lines = raw_lines(volt_env, "users")
    assert sorted(x["key"] for x in lines) == list(range(1, 2 * ROWS + 1))  # each change once
    assert after.changes + after.replayed >= ROWS  # it read them again
    with source.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        assert cur.fetchone() == (2 * ROWS,)


def test_a_million_row_transaction_streams_through_in_bounded_memory(
    volt_env, source, s3_endpoint, tmp_path
) -> None:
    """The heavy day's bound (docs/performance.md): +150 MB over a drain of one change."""
    make_ready(source, ["users"])
    capture = cdc_capture(volt_env, ["users"])
    capture.run(tmp_path / "open")
    insert_users(source, 1, 1)
    idle = drain_process.run(volt_env, s3_endpoint, capture.slot, "users", tmp_path / "one")
    insert_users(source, 2, 1_000_000)
    heavy = drain_process.run(volt_env, s3_endpoint, capture.slot, "users", tmp_path / "heavy")
    assert (idle["changes"], heavy["changes"]) == (1, 1_000_000)
    assert heavy["peak_mb"] - idle["peak_mb"] < 150, (idle, heavy)
    (day,) = raw_days(volt_env, "users")  # today's: the opening found the table empty
    manifest = volt_env.read_object(f"raw/users/{day}/_manifest.json")
    assert b'"row_count": 1000001' in manifest
