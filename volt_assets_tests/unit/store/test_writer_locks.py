"""The writer locks on a real PostgreSQL: a lock another session holds is waited for and named,
and a lock an earlier, failed attempt of this process left behind is freed, not waited for."""

import dagster as dg
import psycopg2
import pytest

from volt_assets.lib.store.writer_locks import WriterLocks, folder_lock

NAME = folder_lock("raw", "orders", "2026-01-02")


class Log:
    def __init__(self):
        self.lines: list[str] = []

    def warning(self, text):
        self.lines.append(text)

    info = warning


def test_a_lock_held_elsewhere_is_waited_for_then_given_up_naming_the_holder(volt_env):
    other = psycopg2.connect(volt_env.dsn, application_name="volt_assets run other-run-id")
    other.autocommit = True
    with other.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (NAME,))
    log = Log()
    try:
        with pytest.raises(dg.Failure) as failed:
            with WriterLocks(
                lambda: psycopg2.connect(volt_env.dsn), [NAME], log, "raw/orders", timeout=1.5
            ):
                pass
        assert "waiting for lock" in log.lines[0] and "other-run-id" in log.lines[0]
        assert NAME in failed.value.description and "other-run-id" in failed.value.description
    finally:
        other.close()
    with WriterLocks(
        lambda: psycopg2.connect(volt_env.dsn), [NAME], log, "raw/orders", timeout=1.5
    ):
        pass  # the other session ended: the lock is free


def test_a_lock_left_by_a_failed_attempt_of_this_process_is_freed(volt_env):
    log = Log()
    abandoned = WriterLocks(
        lambda: psycopg2.connect(volt_env.dsn), [NAME], log, "raw/orders", timeout=1
    )
    abandoned.__enter__()  # a step's generator suspended inside its `with`, never closed
    assert abandoned.conn is not None
    with WriterLocks(lambda: psycopg2.connect(volt_env.dsn), [NAME], log, "raw/orders", timeout=1):
        assert abandoned.conn is None  # its session, and so its lock, is gone
    assert any("left behind" in line for line in log.lines)
