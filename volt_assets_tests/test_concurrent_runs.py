"""Runs at the same time: two `dagster asset materialize` processes on one DAGSTER_HOME over the
same days end with the lake and the marts of one sequential run.

Each case starts from the same seeded shop (a twin database and bucket). The sequential run
is the reference; the lakes are compared with the fault harness (`faults.lake.compare`: every
object, manifest, raw line and Parquet byte, up to capture clocks), the marts row for row.
The waiting itself is asserted: a test of "no duplicate" that never overlapped proves nothing.
- started together, on an instance without pool limits, while the test itself holds the last
  day's raw folders until both runs wait for them: the writer locks alone keep the runs apart;
- staggered, a backfill of the three days and the last day alone, on the project's
  dagster.yaml (concurrency pools): Dagster's pools keep the steps apart, the locks stay
  behind them.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from volt_assets import stack
from volt_assets.lib.locks import folder_lock
from volt_assets.lib.table_config import load_tables
from volt_assets.settings import project_root
from volt_assets_tests.faults import dataset, lake
from volt_assets_tests.faults.env import clone_twin, drop_twin, make_twin, without_env
from volt_assets_tests.faults.runs import IN_PROCESS
from volt_assets_tests.pipeline import SUITE_TODAY
from volt_assets_tests.test_marts import LAKE, MARTS

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
RANGE = f"{DAYS[0]}...{DAYS[-1]}"
SELECT = ",".join(LAKE + MARTS)
TABLES = list(load_tables())
WAITED = "waiting for lock"  # the writer locks' log line
POOL_WAIT = "Step blocked by limit for pool volt_"  # Dagster's, when a pool holds a step back


def cli(env: dict[str, str], partition: str, cwd: Path) -> subprocess.Popen:
    """`dagster asset materialize` as a user types it (a range, or one day)."""
    flag = "--partition-range" if "..." in partition else "--partition"
    cwd.mkdir(parents=True, exist_ok=True)
    out = open(cwd / "cli.log", "wb")
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "volt_assets",
            "--select",
            SELECT,
            flag,
            partition,
            "--config-json",
            IN_PROCESS,
        ],
        env={**os.environ, **env},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def wait_for_lines(runs: list[tuple[subprocess.Popen, Path]], text: str, timeout: float = 600):
    """Until every run's log holds `text` (each has logged that it waits); a run that ended
    before is a failure, with its log."""
    deadline = time.monotonic() + timeout
    logs = [cwd / "cli.log" for _, cwd in runs]
    while not all(p.exists() and text in p.read_text(errors="replace") for p in logs):
        for (process, _), log in zip(runs, logs):
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"not every run logged {text!r}"
        time.sleep(0.5)


def prepare_instance(env: dict[str, str]) -> None:
    """Create the instance's storage once, as a deployed instance has it: two processes that
    both find a new DAGSTER_HOME race to create its SQLite tables (Dagster's own limit)."""
    dagster = str(Path(sys.executable).parent / "dagster")
    done = subprocess.run(
        [dagster, "instance", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def finish(process: subprocess.Popen, cwd: Path) -> str:
    code = process.wait(600)
    log = (cwd / "cli.log").read_text(errors="replace")
    assert code == 0, log[-3000:]
    return log


@pytest.fixture(scope="module")
def shop(pg_server, s3_endpoint, tmp_path_factory):
    """The seeded shop (template twin) and its sequential run (reference twin)."""
    home = tmp_path_factory.mktemp("concurrent")
    base = {
        "AWS_ACCESS_KEY_ID": stack.S3_DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": stack.S3_DUMMY_KEY,
        "AWS_DEFAULT_REGION": stack.S3_REGION,
        "VOLT_PARTITIONS_START": "2026-01-01",
        "VOLT_TODAY": SUITE_TODAY,
        "VOLT_USE_STACK": "0",
        "VOLT_IMAGES_DIR": str(home),
    }
    with without_env():
        template = make_twin(pg_server, s3_endpoint, base, home / "template")
        conn = template.connect()
        dataset.seed(conn, DAYS)
        conn.close()
        reference = clone_twin(pg_server, s3_endpoint, template, home / "reference")
        finish(cli(reference.env, RANGE, home / "reference" / "run"), home / "reference" / "run")
        expected = lake.snapshot(reference)
        yield template, expected, home
        for twin in (template, reference):
            drop_twin(pg_server, twin)


def assert_same_as_sequential(twin, expected) -> None:
    assert lake.problems(twin) == []
    assert lake.orphans(twin) == []
    assert lake.compare(expected, lake.snapshot(twin)) == []


def test_two_runs_started_together_write_as_one(shop, pg_server, s3_endpoint):
    template, expected, home = shop
    with without_env():
        twin = clone_twin(pg_server, s3_endpoint, template, home / "together")
        try:
            # The test holds the raw folders of the last day until both runs wait for them, so
            # the two runs are surely inside the lake at the same time, however slowly each starts.
            gate = twin.connect()
            gate.autocommit = True
            with gate.cursor() as cur:
                for table in TABLES:
                    cur.execute(
                        "SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                        (folder_lock("raw", table, DAYS[-1]),),
                    )
            prepare_instance(twin.env)
            runs = [
                (cli(twin.env, RANGE, home / "together" / f"run{i}"), home / "together" / f"run{i}")
                for i in (1, 2)
            ]
            wait_for_lines(runs, WAITED)
            gate.close()  # frees the test's locks: the runs go on, one after the other per folder
            logs = [finish(p, cwd) for p, cwd in runs]
            assert all(WAITED in log for log in logs)
            assert_same_as_sequential(twin, expected)
        finally:
            drop_twin(pg_server, twin)


def test_a_day_run_during_a_backfill_on_the_projects_instance(shop, pg_server, s3_endpoint):
    template, expected, home = shop
    with without_env():
        twin = clone_twin(pg_server, s3_endpoint, template, home / "staggered")
        dagster_home = Path(twin.env["DAGSTER_HOME"])
        (dagster_home / "dagster.yaml").write_text(
            (project_root() / "dagster.yaml").read_text(), encoding="utf-8"
        )
        try:
            prepare_instance(twin.env)
            backfill = cli(twin.env, RANGE, home / "staggered" / "backfill")
            time.sleep(1.5)
            tick = cli(twin.env, DAYS[-1].isoformat(), home / "staggered" / "tick")
            logs = [
                finish(backfill, home / "staggered" / "backfill"),
                finish(tick, home / "staggered" / "tick"),
            ]
            assert any(POOL_WAIT in log for log in logs), "the runs never overlapped"
            assert_same_as_sequential(twin, expected)
        finally:
            drop_twin(pg_server, twin)
