"""`dagster dev` as a data engineer runs it: a UI backfill of three days of every asset while the
daily schedule's tick runs two of them ends as one sequential run.

Starts `dagster dev` (webserver + daemon, the project's dagster.yaml as `make dev` prepares it)
on 127.0.0.1 against a twin of the seeded shop (`concurrency.py`), then, through the GraphQL
API exactly as the UI does:
- launches a partition backfill of the three days (Materialize → Launch backfill);
- evaluates `volt_daily_schedule` at the fourth day's 01:30 tick (Test schedule:
  `scheduleDryRun`) — yesterday and the day before, the backfill's last two days — and
  launches its run request (Launch all: `launchMultipleRuns`) into the daemon's run queue.
The daemon cannot be made to tick at a chosen time; the UI's Test schedule is how an operator
does it, and its run is the one the daemon's tick would create (same job, tags, run config).

The overlap is made certain, not hoped for (`concurrency.overlap`): the test holds the last
day's raw folders until one run waits in a table's raw step, holding that table's pool, and
keeps that folder until the other run logs that the pool blocks its step of that table. Both
end well, every layer is written, and the lake and the marts equal the sequential run's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from volt_assets.defs.operations.schedule import RANGE_END, RANGE_START
from volt_assets.devstack.instance_config import prepare_dagster_home
from volt_assets.devstack.stack import free_port
from volt_assets_tests.concurrency import (
    DAYS,
    FolderGate,
    assert_same_as_sequential,
    overlap,
)
from volt_assets_tests.faults.env import Twin, clone_twin, drop_twin, without_env
from volt_assets_tests.faults.runs import wait_until

SCHEDULE = "volt_daily_schedule"
TICK = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)  # its next tick: 01-04 01:30, days 01-02..01-03
TIMEOUT = 420.0

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on Error { message }
  }
}"""
ASSETS = "{ assetNodes { assetKey { path } isPartitioned } }"
REPOSITORIES = (
    "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
)
SCHEDULE_JOB = """
query($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) { ... on Schedule { pipelineName } }
}"""
DRY_RUN = """
mutation($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult {
        runRequests {
          runKey jobName runConfigYaml tags { key value }
          assetSelection { path } assetChecks { name assetKey { path } }
        }
        skipReason
        error { message }
      }
    }
    ... on Error { message }
  }
}"""
LAUNCH_RUNS = """
mutation($params: [ExecutionParams!]!) {
  launchMultipleRuns(executionParamsList: $params) {
    __typename
    ... on LaunchMultipleRunsResult {
      launchMultipleRunsResult { __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message } }
    }
    ... on Error { message }
  }
}"""
RUNS = """
query($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status } } }
}"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
LOGS = """
query($id: ID!) {
  logsForRun(runId: $id) { ... on EventConnection { events { ... on MessageEvent { message } } } }
}"""


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # GraphQL's errors come with a 4xx/5xx: show them
        raise AssertionError(f"{exc}: {exc.read().decode(errors='replace')[:3000]}") from None
    assert "errors" not in answer, answer
    return answer["data"]


def wait_for_webserver(port: int, process: subprocess.Popen, deadline: float) -> None:
    while time.time() < deadline:
        assert process.poll() is None, "dagster dev exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError("dagster dev did not answer")


def start_dev(twin: Twin, log: Path) -> tuple[subprocess.Popen, int]:
    """`dagster dev` on a free port of 127.0.0.1, on the twin, DAGSTER_HOME as `make dev` has it."""
    prepare_dagster_home(twin.env["DAGSTER_HOME"], environ={})
    port = free_port()
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(workspace)]
        + ["-h", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **twin.env},
        cwd=workspace.parent,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        start_new_session=True,
    )
    return process, port


def stop_dev(process: subprocess.Popen) -> None:
    """Stop `dagster dev` and everything it started. SIGINT is its own clean shutdown (a group
    SIGTERM leaves code servers that run in sessions of their own); survivors are killed."""
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
    _, alive = psutil.wait_procs(family, timeout=10)
    for child in alive:
        child.kill()
    psutil.wait_procs(alive, timeout=10)


def launch_backfill(port: int) -> tuple[str, list[dict]]:
    """The UI's backfill of every partitioned asset over DAYS; its id and the selection."""
    nodes = graphql(port, ASSETS)["assetNodes"]
    selection = [{"path": n["assetKey"]["path"]} for n in nodes if n["isPartitioned"]]
    assert {"raw/orders", "staging/orders"} <= {"/".join(s["path"]) for s in selection}
    params = {
        "partitionNames": [day.isoformat() for day in DAYS],
        "assetSelection": selection,
        "fromFailure": False,
    }
    launched = graphql(port, LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"], selection


def schedule_selector(port: int) -> tuple[dict, str]:
    """The UI's address of `volt_daily_schedule`, and the job it runs."""
    repository = graphql(port, REPOSITORIES)["repositoriesOrError"]["nodes"][0]
    selector = {
        "repositoryLocationName": repository["location"]["name"],
        "repositoryName": repository["name"],
        "scheduleName": SCHEDULE,
    }
    schedule = graphql(port, SCHEDULE_JOB, {"selector": selector})["scheduleOrError"]
    return selector, schedule["pipelineName"]


def launch_tick(port: int, at: dt.datetime) -> str:
    """Test schedule, then Launch all: the schedule's run request for its tick after `at`,
    launched as the UI's EvaluateScheduleDialog does. The run id."""
    selector, job = schedule_selector(port)
    tick = graphql(port, DRY_RUN, {"selector": selector, "timestamp": at.timestamp()})
    result = tick["scheduleDryRun"]
    assert result["__typename"] == "DryRunInstigationTick", result
    requests = result["evaluationResult"]["runRequests"] or []
    assert len(requests) == 1, result["evaluationResult"]
    request = requests[0]
    tags = {tag["key"]: tag["value"] for tag in request["tags"]}
    # the tick's days overlap the backfill's: yesterday and the day before
    assert (tags[RANGE_START], tags[RANGE_END]) == (DAYS[-2].isoformat(), DAYS[-1].isoformat())
    assert tags["dagster/schedule_name"] == SCHEDULE  # the daemon's tick tags its runs alike
    params = {
        "runConfigData": request["runConfigYaml"],
        "selector": {
            "jobName": request["jobName"] or job,  # the UI's fallback too
            "repositoryLocationName": selector["repositoryLocationName"],
            "repositoryName": selector["repositoryName"],
            "assetSelection": request["assetSelection"] or [],
            "assetCheckSelection": request["assetChecks"] or [],
        },
        "mode": "default",
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
    }
    launched = graphql(port, LAUNCH_RUNS, {"params": [params]})["launchMultipleRuns"]
    (run,) = launched["launchMultipleRunsResult"]
    assert run["__typename"] == "LaunchRunSuccess", run
    return run["run"]["runId"]


def run_log(port: int, run_id: str) -> str:
    events = graphql(port, LOGS, {"id": run_id})["logsForRun"]["events"]
    return "\n".join(e.get("message", "") for e in events)


def backfill_log(port: int, backfill_id: str) -> str:
    """Every message of the backfill's runs so far."""
    tag = {"key": "dagster/backfill", "value": backfill_id}
    runs = graphql(port, RUNS, {"filter": {"tags": [tag]}})["runsOrError"]["results"]
    return "\n".join(run_log(port, run["runId"]) for run in runs)


def backfill_status(port: int, backfill_id: str) -> str | None:
    """The backfill's status once it has ended (None while it runs)."""
    answer = graphql(port, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    ended = answer["status"] not in ("REQUESTED", "CANCELING", "FAILING")
    return answer["status"] if ended else None


def run_status(port: int, run_id: str) -> str | None:
    """The run's status once it has ended (None while queued or running)."""
    status = graphql(port, RUN, {"id": run_id})["runOrError"]["status"]
    return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None


def running_logs(port: int, backfill_id: str, tick_run: str) -> list[str]:
    """The backfill's and the tick's logs so far; either having ended is a failure."""
    assert backfill_status(port, backfill_id) is None, backfill_status(port, backfill_id)
    tick_log = run_log(port, tick_run)
    assert run_status(port, tick_run) is None, tick_log[-3000:]
    return [backfill_log(port, backfill_id), tick_log]


def overlap_backfill_and_tick(port: int, twin: Twin) -> tuple[str, list[dict], str]:
    """Launch both, and make them overlap for certain (module doc). The backfill's id and
    asset selection, and the tick's run id."""
    with FolderGate(twin, DAYS[-1]) as gate:
        backfill_id, selection = launch_backfill(port)
        tick_run = launch_tick(port, TICK)
        overlap(gate, lambda: running_logs(port, backfill_id, tick_run), TIMEOUT)
    return backfill_id, selection, tick_run


def run_both(twin: Twin, log: Path) -> list[dict]:
    """`dagster dev`, the overlapping backfill and tick, both ended well; the backfill's
    asset selection."""
    process, port = start_dev(twin, log)
    try:
        wait_for_webserver(port, process, time.time() + 180)
        backfill_id, selection, tick_run = overlap_backfill_and_tick(port, twin)
        ended = wait_until(
            lambda: backfill_status(port, backfill_id) and run_status(port, tick_run),
            TIMEOUT,
            interval=3,
            what="the backfill and the tick's run ending",
        )
        status = backfill_status(port, backfill_id)
        assert status == "COMPLETED_SUCCESS", (status, log.read_text()[-3000:])
        assert ended == "SUCCESS", run_log(port, tick_run)[-3000:]
        return selection
    finally:
        stop_dev(process)


def test_ui_backfill_during_a_schedule_tick_writes_as_one_sequential_run(
    concurrent_shop, pg_server, s3_endpoint
):
    template, expected, home = concurrent_shop
    with without_env():
        twin = clone_twin(pg_server, s3_endpoint, template, home / "dev")
        try:
            selection = run_both(twin, home / "dev" / "dev.log")
            for day in DAYS:
                for layer in ("raw", "staging"):
                    for table in ("electrical_components", "users", "orders"):
                        manifest = f"{layer}/{table}/dt={day}/_manifest.json"
                        assert twin.list_keys(manifest), manifest
                for key in selection:
                    if key["path"][0] == "marts":
                        assert twin.list_keys(f"mart/{key['path'][1]}/dt={day}/"), (key, day)
            assert_same_as_sequential(twin, expected)
        finally:
            drop_twin(pg_server, twin)
