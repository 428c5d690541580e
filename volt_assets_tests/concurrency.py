"""Runs at the same time, judged against one sequential run: what the tests of concurrent runs
share (`test_concurrent_runs.py`: two CLI processes; `test_dev_backfill.py`: `dagster dev`).

- `sequential_shop`: the seeded shop (a template twin database and bucket, `faults.dataset`) and
  its sequential run (`dagster asset materialize` of the three days, once per session), read
  with `faults.lake.snapshot`: every object, manifest, raw line, Parquet file and mart row.
- `FolderGate`: the test itself holds the writer locks of the last day's raw folders, so a
  run reaching them surely waits there (and logs `WAITED`) however slowly it started: the
  overlap a concurrency test needs is made certain instead of hoped for.
- `overlap`: on the project's instance, the gate is kept on one table until the other run's
  step of that table is blocked by Dagster's pool: both runs are surely inside at once.
- `assert_same_as_sequential`: the lake and the marts of a twin equal the sequential run's
  (up to capture clocks), and a manifest-following reader trips over nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from volt_assets.devstack import stack
from volt_assets.lib.config.table_config import load_tables
from volt_assets.lib.store.writer_locks import folder_lock
from volt_assets_tests.faults import dataset, lake
from volt_assets_tests.faults.env import Twin, clone_twin, drop_twin, make_twin, without_env
from volt_assets_tests.faults.runs import materialize_argv, wait_until
from volt_assets_tests.integration.marts.test_marts import LAKE, MARTS
from volt_assets_tests.pipeline import SUITE_TODAY

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
RANGE = f"{DAYS[0]}...{DAYS[-1]}"
TABLES = list(load_tables())
WAITED = "waiting for lock"  # the writer locks' log line
POOL_WAIT = "Step blocked by limit for pool volt_"  # Dagster's, when a pool holds a step back
WAITED_FOR = re.compile(r"waiting for lock 'volt_assets/raw/(\w+)/")


def cli(env: dict[str, str], partition: str, cwd: Path) -> subprocess.Popen:
    """`dagster asset materialize` as a user types it (a range, or one day); log in cwd/cli.log."""
    cwd.mkdir(parents=True, exist_ok=True)
    out = open(cwd / "cli.log", "wb")
    return subprocess.Popen(
        materialize_argv(LAKE + MARTS, partition),
        env={**os.environ, **env},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def finish(process: subprocess.Popen, cwd: Path) -> str:
    """Wait for a `cli` run; its log, after asserting it succeeded."""
    code = process.wait(600)
    log = (cwd / "cli.log").read_text(errors="replace")
    assert code == 0, log[-3000:]
    return log


@contextmanager
def sequential_shop(
    pg_server, s3_endpoint: str, home: Path
) -> Iterator[tuple[Twin, lake.Snapshot]]:
    """The seeded shop (template twin, to clone) and its sequential run's snapshot."""
    base = {
        "AWS_ACCESS_KEY_ID": stack.S3_DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": stack.S3_DUMMY_KEY,
        "AWS_DEFAULT_REGION": stack.S3_REGION,
        "VOLT_PARTITIONS_START": "2026-01-01",
        "VOLT_TODAY": SUITE_TODAY,
        "VOLT_USE_STACK": "0",
        "VOLT_IMAGES_DIR": str(home),  # no pictures: the images asset writes nothing
    }
    twins: list[Twin] = []
    try:
        with without_env():
            twins.append(make_twin(pg_server, s3_endpoint, base, home / "template"))
            conn = twins[0].connect()
            dataset.seed(conn, DAYS)
            conn.close()
            twins.append(clone_twin(pg_server, s3_endpoint, twins[0], home / "reference"))
            finish(cli(twins[1].env, RANGE, home / "reference" / "run"), home / "reference" / "run")
            expected = lake.snapshot(twins[1])
        yield twins[0], expected
    finally:
        for twin in twins:
            drop_twin(pg_server, twin)


def assert_same_as_sequential(twin: Twin, expected: lake.Snapshot) -> None:
    assert lake.problems(twin) == []
    assert lake.orphans(twin) == []
    assert lake.compare(expected, lake.snapshot(twin)) == []


def waited_table(log: str) -> str | None:
    """The table of the first raw folder a run's log says it waits for (None: no such line)."""
    found = WAITED_FOR.search(log)
    return found.group(1) if found else None


def overlap(gate: FolderGate, logs: Callable[[], list[str]], timeout: float = 600) -> str:
    """Make runs on the project's instance (concurrency pools) overlap for certain, whichever
    starts first. The first run to log that it waits for the test's lock holds that table's
    pool while it waits: the gate frees the other tables, and keeps that one until every
    other run has logged that the table's pool blocks its step. The table.
    `logs()` gives each run's log so far (and fails when a run has ended)."""

    def first_waiter() -> tuple[int, str] | None:
        found = [(i, table) for i, text in enumerate(logs()) if (table := waited_table(text))]
        return found[0] if found else None

    holder, table = wait_until(first_waiter, timeout, interval=1, what=f"a run logging {WAITED!r}")
    gate.keep_only(table)
    blocked = f"{POOL_WAIT}lake_{table}"
    wait_until(
        lambda: all(blocked in text for i, text in enumerate(logs()) if i != holder),
        timeout,
        interval=1,
        what=f"the other runs logging {blocked!r}",
    )
    return table


class FolderGate:
    """The writer locks of `day`'s raw folder of every table, held by the test (the runs' own
    locks: same names, same database) until `close()`; `keep_only(table)` frees the others."""

    def __init__(self, twin: Twin, day: dt.date):
        self.names = {table: folder_lock("raw", table, day) for table in TABLES}
        self.conn = twin.connect()
        self.conn.autocommit = True
        for name in self.names.values():
            self._call("pg_advisory_lock", name)

    def _call(self, function: str, name: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT {function}(hashtextextended(%s, 0))", (name,))

    def keep_only(self, table: str) -> None:
        for other, name in list(self.names.items()):
            if other != table:
                self._call("pg_advisory_unlock", name)
                del self.names[other]

    def close(self) -> None:
        self.conn.close()  # ends the session: PostgreSQL frees every lock it held

    def __enter__(self) -> FolderGate:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
