"""Runs at the same time: two `dagster asset materialize` processes on one DAGSTER_HOME over the
same days end with the lake and the marts of one sequential run.

Each case starts from the same seeded shop (a twin database and bucket, `concurrency.py`), whose
sequential run is the reference: the lakes are compared object by object, manifest, raw line
and Parquet byte (up to capture clocks), the marts row for row. The overlap itself is made
certain and asserted: the test holds the last day's raw folders (`FolderGate`), a test of
"no duplicate" that never overlapped proves nothing.
- started together, on an instance without pool limits: both runs wait for the test's locks,
  then the writer locks alone keep them apart;
- staggered, a backfill of the three days and, 1.5 s later, the last day alone, on the
  project's dagster.yaml (concurrency pools): the first run to reach the test's locks waits
  there holding its table's pool until the other run's step of that table is blocked by the
  pool (`concurrency.overlap`); Dagster's pools keep the steps apart, the locks stay behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from volt_assets.devstack.instance_config import prepare_dagster_home
from volt_assets_tests.concurrency import (
    DAYS,
    POOL_WAIT,
    RANGE,
    WAITED,
    FolderGate,
    assert_same_as_sequential,
    cli,
    finish,
    overlap,
)
from volt_assets_tests.faults.env import clone_twin, drop_twin, without_env


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


def test_two_runs_started_together_write_as_one(concurrent_shop, pg_server, s3_endpoint):
    template, expected, home = concurrent_shop
    with without_env():
        twin = clone_twin(pg_server, s3_endpoint, template, home / "together")
        try:
            prepare_instance(twin.env)
            with FolderGate(twin, DAYS[-1]):
                runs = [
                    (cli(twin.env, RANGE, home / "together" / f"r{i}"), home / "together" / f"r{i}")
                    for i in (1, 2)
                ]
                wait_for_lines(runs, WAITED)
            # the gate is open: the runs go on, one after the other per folder
            logs = [finish(p, cwd) for p, cwd in runs]
            assert all(WAITED in log for log in logs)
            assert_same_as_sequential(twin, expected)
        finally:
            drop_twin(pg_server, twin)


def cli_logs(runs: list[tuple[subprocess.Popen, Path]]) -> list[str]:
    """Each run's log so far; a run that ended is a failure, with its log."""
    logs = []
    for process, cwd in runs:
        text = (cwd / "cli.log").read_text(errors="replace") if (cwd / "cli.log").exists() else ""
        assert process.poll() is None, text[-3000:]
        logs.append(text)
    return logs


def test_a_day_run_during_a_backfill_on_the_projects_instance(
    concurrent_shop, pg_server, s3_endpoint
):
    template, expected, home = concurrent_shop
    with without_env():
        twin = clone_twin(pg_server, s3_endpoint, template, home / "staggered")
        prepare_dagster_home(twin.env["DAGSTER_HOME"], environ={})  # as `make dev` does
        backfill_dir, tick_dir = home / "staggered" / "backfill", home / "staggered" / "tick"
        try:
            prepare_instance(twin.env)
            with FolderGate(twin, DAYS[-1]) as gate:
                backfill = cli(twin.env, RANGE, backfill_dir)
                time.sleep(1.5)
                tick = cli(twin.env, DAYS[-1].isoformat(), tick_dir)
                table = overlap(
                    gate, lambda: cli_logs([(backfill, backfill_dir), (tick, tick_dir)])
                )
            logs = [finish(backfill, backfill_dir), finish(tick, tick_dir)]
            assert any(f"{POOL_WAIT}lake_{table}" in log for log in logs)
            assert_same_as_sequential(twin, expected)
        finally:
            drop_twin(pg_server, twin)
