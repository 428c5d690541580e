"""The project's way, as a user runs it: `dagster asset materialize -m volt_assets ...` as a
child process, then the run's own numbers read back from the DagsterInstance event log of
the bench's DAGSTER_HOME (step durations, and the materialisations' metadata: rows, bytes,
duration_seconds)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

from bench.common import Measure, run_measured

LAKE_ASSETS = "raw/electrical_components,staging/electrical_components"
DAILY_JOB = "volt_daily"  # defs/operations/schedule.py: every layer, the tick's [D-1, D]


# Run config asking for a process per step (the project's executor runs steps in the
# `dagster` process itself unless a run asks for this; volt_assets/defs/executor.py).
MULTIPROCESS = '{"execution": {"config": {"multiprocess": {}}}}'


def materialize_cmd(
    select: str,
    first: dt.date,
    last: dt.date | None = None,
    multiprocess: bool = False,
    module: str = "volt_assets",
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        module,
        "--select",
        select,
    ]
    if multiprocess:
        cmd += ["--config-json", MULTIPROCESS]
    if last is None or last == first:
        return cmd + ["--partition", first.isoformat()]
    return cmd + ["--partition-range", f"{first.isoformat()}...{last.isoformat()}"]


def job_cmd(job: str, first: dt.date, last: dt.date, module: str = "volt_assets") -> list[str]:
    """`dagster job execute` of a partitioned asset job over [first, last] in one run, tagged
    as the daily schedule's RunRequest tags it (a partition range)."""
    tags = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
    return [
        *[sys.executable, "-m", "dagster", "job", "execute", "-m", module, "-j", job],
        *["--tags", json.dumps(tags)],
    ]


def run_stats(dagster_home: Path) -> dict:
    """The latest run of the instance: status, step seconds, per-asset metadata."""
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        runs = instance.get_runs(limit=1)
        if not runs:
            return {}
        run = runs[0]
        steps: dict[str, dict] = {}
        assets: dict[str, dict] = {}
        checks: dict[str, bool] = {}
        first = last = None
        for entry in instance.all_logs(run.run_id):
            first = entry.timestamp if first is None else min(first, entry.timestamp)
            last = entry.timestamp if last is None else max(last, entry.timestamp)
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type
            if kind == DagsterEventType.STEP_START:
                steps.setdefault(entry.step_key, {})["start"] = entry.timestamp
            elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                steps.setdefault(entry.step_key, {})["end"] = entry.timestamp
                steps[entry.step_key]["ok"] = kind == DagsterEventType.STEP_SUCCESS
            elif kind == DagsterEventType.ASSET_MATERIALIZATION:
                mat = event.step_materialization_data.materialization
                key = mat.asset_key.to_user_string()
                meta = {
                    k: v.value
                    for k, v in mat.metadata.items()
                    if k
                    in (
                        "rows",
                        "bytes",
                        "duration_seconds",
                        "rows_per_second",
                        "partitions_written",
                    )
                }
                # a range materialises once per partition key with the same metadata: keep one
                assets[key] = meta
            elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
                data = event.asset_check_evaluation_data
                checks[f"{data.asset_key.to_user_string()}:{data.check_name}"] = bool(data.passed)
        step_seconds = {
            k: round(v["end"] - v["start"], 3)
            for k, v in steps.items()
            if "start" in v and "end" in v
        }
        return {
            "run_id": run.run_id,
            "status": run.status.value,
            "steps": step_seconds,
            "assets": assets,
            "checks_failed": sorted(k for k, ok in checks.items() if not ok),
            "run_seconds": round(last - first, 3) if first is not None else None,
        }
    finally:
        instance.dispose()


def materialize(
    name: str,
    env: dict,
    log: Path,
    select: str,
    first: dt.date,
    last: dt.date | None = None,
    timeout: float = 3600,
    multiprocess: bool = False,
    module: str = "volt_assets",
) -> Measure:
    """One `dagster asset materialize` process, measured, with its run's numbers in .report.
    `module`: the code location (bench.floor: the same assets doing nothing)."""
    measure = run_measured(
        name, materialize_cmd(select, first, last, multiprocess, module), env, log, timeout=timeout
    )
    # the instance's dagster.yaml reads its PostgreSQL settings from the environment
    os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_POSTGRES_")})
    measure.report = run_stats(Path(env["DAGSTER_HOME"]))
    if measure.report.get("status") != "SUCCESS":
        measure.returncode = measure.returncode or 1
    return measure


def run_job(name: str, env: dict, log: Path, first: dt.date, last: dt.date) -> Measure:
    """One `dagster job execute` process over [first, last], measured, its run's numbers in
    .report."""
    measure = run_measured(name, job_cmd(name, first, last), env, log)
    os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER_POSTGRES_")})
    measure.report = run_stats(Path(env["DAGSTER_HOME"]))
    if measure.report.get("status") != "SUCCESS":
        measure.returncode = measure.returncode or 1
    return measure
