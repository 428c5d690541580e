"""`dagster dev` as a data engineer runs it: a UI backfill of three days of every asset.

Starts `dagster dev` (webserver + daemon) on 127.0.0.1 against the test database and bucket,
launches a partition backfill through the GraphQL API exactly as the UI does, waits for it
to finish, and checks that every layer was written for each day.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from volt_assets.instance_config import prepare_dagster_home
from volt_assets.stack import free_port
from volt_assets_tests.pipeline import component, create_source_schema, insert, ts

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""
ASSETS = "{ assetNodes { assetKey { path } isPartitioned } }"


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
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


def seed_three_days(volt_env) -> None:
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(
        conn,
        "electrical_components",
        [
            component(d * 10 + i, f"{day} 1{i}:00")
            for d, day in enumerate(DAYS, 1)
            for i in range(5)
        ],
    )
    insert(
        conn,
        "users",
        [
            {
                "id": i,
                "email": f"user{i}@example.com",
                "full_name": f"User {i}",
                "country": "PL",
                "created_at": ts(f"{DAYS[0]} 08:00"),
                "updated_at": ts(f"{DAYS[0]} 08:00"),
            }
            for i in range(1, 4)
        ],
    )
    insert(
        conn,
        "orders",
        [
            {
                "id": i,
                "user_id": 1 + i % 3,
                "component_id": 10 + i % 5,
                "quantity": 2,
                "unit_price": "10.00",
                "currency": "EUR",
                "status": "paid",
                "payment_method": "card",
                "ordered_at": ts(f"{DAYS[i % 3]} 12:00"),
                "updated_at": ts(f"{DAYS[i % 3]} 12:00"),
            }
            for i in range(1, 10)
        ],
    )
    conn.close()


def test_ui_backfill_of_three_days_writes_every_layer(volt_env, tmp_path):
    seed_three_days(volt_env)
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home, environ={})
    port = free_port()
    env = {**os.environ, **volt_env.env, "DAGSTER_HOME": str(home)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    process = subprocess.Popen(
        [dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=workspace.parent,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "dev.log", "w"),
        start_new_session=True,
    )
    try:
        wait_for_webserver(port, process, time.time() + 180)
        nodes = graphql(port, ASSETS)["assetNodes"]
        selection = [{"path": n["assetKey"]["path"]} for n in nodes if n["isPartitioned"]]
        assert {"raw/orders", "staging/orders"} <= {"/".join(s["path"]) for s in selection}
        launched = graphql(
            port,
            LAUNCH,
            {"params": {"partitionNames": DAYS, "assetSelection": selection, "fromFailure": False}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline, status = time.time() + 420, None
        while time.time() < deadline:
            status = graphql(port, STATUS, {"id": launched["backfillId"]})[
                "partitionBackfillOrError"
            ]["status"]
            if status not in ("REQUESTED", "CANCELING", "FAILING"):
                break
            time.sleep(3)
        assert status == "COMPLETED_SUCCESS", (status, (tmp_path / "dev.log").read_text()[-3000:])
    finally:
        stop_dev(process)

    for day in DAYS:
        for layer in ("raw", "staging"):
            for table in ("electrical_components", "users", "orders"):
                assert volt_env.list_keys(f"{layer}/{table}/dt={day}/_manifest.json"), (
                    layer,
                    table,
                    day,
                )
    # the marts, once the code location has them
    marts = [key for key in selection if key["path"][0] == "marts"]
    for key in marts:
        for day in DAYS:
            assert volt_env.list_keys(f"mart/{key['path'][1]}/dt={day}/"), (key, day)
