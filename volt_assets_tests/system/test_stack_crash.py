"""The embedded stack after a crash: both servers killed with SIGKILL (a power cut, an OOM kill)
and after `make dev` is interrupted with Ctrl-C (SIGINT to its process group).

A pipeline run writes the lake and the marts through `volt-assets stack up`'s servers; after
the fault, `stack up` must bring back every object version with its version id, metadata
and the bucket's configuration, every PostgreSQL row, and a new run on top must reconcile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest

from volt_assets.devstack import stack
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.settings import project_root
from volt_assets_tests.pipeline import component, create_source_schema, insert, ts
from volt_assets_tests.system.test_stack import BUCKET, ODD_KEY, StackCli, _gone

D = "2026-01-02"
PIPELINE = [
    "raw/electrical_components",
    "staging/electrical_components",
    "raw/orders",
    "staging/orders",
    "marts/daily_category_sales",
]
LIFECYCLE = {
    "Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 3}}
    ]
}


def order(id_: int, quantity: int, updated: str) -> dict:
    return {
        "id": id_,
        "user_id": None,
        "component_id": 1,
        "quantity": quantity,
        "unit_price": "5.50",
        "currency": "EUR",
        "status": "paid",
        "payment_method": "card",
        "ordered_at": ts(f"{D} 09:00"),
        "updated_at": ts(updated),
    }


@pytest.fixture(scope="module")
def cli() -> Iterator[StackCli]:
    root = Path(
        tempfile.mkdtemp(prefix="volt-test-crash-")
    )  # see test_stack: not pytest's 0700 tmp
    runner = StackCli(root / "state")
    try:
        yield runner
    finally:
        runner("down")
        import shutil

        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def on_stack(cli: StackCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackCli:
    """The test process pointed at the stack's settings, as `dagster` run from the checkout is."""
    cli.up()
    point_at(cli, monkeypatch)
    monkeypatch.setenv("VOLT_PARTITIONS_START", "2026-01-01")
    monkeypatch.setenv("VOLT_STATE_DIR", str(cli.state_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return cli


def point_at(cli: StackCli, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's settings: the stack's (its ports may change at `stack up`)."""
    for key, value in cli.settings().items():
        if key != "VOLT_PARTITIONS_START":
            monkeypatch.setenv(key, value)


def run_pipeline() -> dg.ExecuteInProcessResult:
    from volt_assets.definitions import build_definitions

    job = build_definitions().resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(k.split("/")) for k in PIPELINE]
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=keys,
        partition_key=D,
        raise_on_error=False,
    )


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) >= 5  # the raw, staging and mart checks ran
    # Freshness judges D against today's clock, not the lake: a past day is never fresh.
    return [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in evaluations
        if not e.passed
        and e.severity == dg.AssetCheckSeverity.ERROR
        and e.check_name != "freshness"
    ]


def lake_state(cli: StackCli) -> dict:
    """Every version of every key (id, ETag, latest, delete marker), metadata of the current
    ones, and the bucket's configuration."""
    s3 = cli.s3()
    versions, heads = [], {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        versions += [
            (v["Key"], v["VersionId"], v["ETag"], v["IsLatest"], v["Size"])
            for v in page.get("Versions", [])
        ]
        versions += [
            (m["Key"], m["VersionId"], "marker", m["IsLatest"], 0)
            for m in page.get("DeleteMarkers", [])
        ]
    for key, _, etag, latest, _ in versions:
        if latest and etag != "marker":
            head = s3.head_object(Bucket=BUCKET, Key=key)
            heads[key] = (head["ContentType"], head["Metadata"])
    return {
        "versions": sorted(versions),
        "heads": heads,
        "lifecycle": s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"],
        "versioning": s3.get_bucket_versioning(Bucket=BUCKET)["Status"],
    }


def pg_rows(cli: StackCli) -> list[tuple]:
    conn = cli.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id, quantity FROM orders ORDER BY id")
        rows = cur.fetchall()
        cur.execute("SELECT dt::text, units_sold FROM marts.daily_category_sales ORDER BY dt")
        rows += cur.fetchall()
    conn.close()
    return rows


def kill_servers(cli: StackCli) -> None:
    """SIGKILL the postmaster, its children and the S3 server, as a power cut leaves them."""
    procs = cli.processes()
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:  # a short-lived worker (autovacuum) that just ended
            pass
    deadline = time.monotonic() + 15
    while not all(_gone(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in procs)
    assert (cli.state_dir / "pg" / "data" / "postmaster.pid").exists()  # left behind by the kill
    assert cli("status").returncode == 3


def write_through_stack(cli: StackCli) -> None:
    """Source rows, a pipeline run (raw, staging, mart), and objects a pipeline does not make."""
    conn = cli.connect()
    create_source_schema(conn)
    insert(conn, "electrical_components", [component(1, f"{D} 08:00", category="fuses")])
    insert(conn, "orders", [order(1, 2, f"{D} 09:00"), order(2, 3, f"{D} 10:00")])
    conn.close()
    result = run_pipeline()
    assert result.success and failed_checks(result) == []
    s3 = cli.s3()
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=LIFECYCLE)
    s3.put_object(
        Bucket=BUCKET,
        Key=ODD_KEY,
        Body=b"\x89PNG" * 100,
        ContentType="image/png",
        Metadata={"component-id": "7", "sha256": "abc"},
    )
    s3.put_object(Bucket=BUCKET, Key="tmp/gone.txt", Body=b"soon deleted")
    s3.delete_object(Bucket=BUCKET, Key="tmp/gone.txt")  # a delete marker over a version


def assert_pipeline_reconciles_on_top(cli: StackCli, before_rows: list[tuple], monkeypatch) -> None:
    """A changed order and a new run: every check passes, the mart follows the change."""
    point_at(cli, monkeypatch)
    conn = cli.connect()
    with conn, conn.cursor() as cur:
        # as the app does, a later updated_at (still within D)
        cur.execute(
            "UPDATE orders SET quantity = quantity + 10, "
            "updated_at = updated_at + interval '1 minute' WHERE id = 1"
        )
    conn.close()
    result = run_pipeline()
    assert result.success and failed_checks(result) == []
    assert pg_rows(cli) == [
        (1, before_rows[0][1] + 10),
        *before_rows[1:2],
        (D, before_rows[2][1] + 10),
    ]


def test_sigkill_of_both_servers_loses_nothing_acknowledged(
    on_stack: StackCli, monkeypatch
) -> None:
    cli = on_stack
    write_through_stack(cli)
    before, rows = lake_state(cli), pg_rows(cli)
    assert rows == [(1, 2), (2, 3), (D, 5)]
    assert len(before["versions"]) >= 12 and ("tmp/gone.txt", "marker") in [
        (v[0], v[2]) for v in before["versions"]
    ]
    old_s3_port = int(cli.settings()["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])

    kill_servers(cli)
    with socket.socket() as squatter:  # another program took the S3 port meanwhile
        squatter.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # past the killed server's TIME_WAIT
        squatter.bind(("127.0.0.1", old_s3_port))
        squatter.listen()
        cli.up()
    out = cli.outputs[-1]
    assert "stale" in out and f"port {old_s3_port}" in out and "taken by another program" in out, (
        out
    )
    assert int(cli.settings()["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]) != old_s3_port

    assert lake_state(cli) == before  # same version ids, ETags, markers, metadata, configuration
    assert pg_rows(cli) == rows
    store = LakeStore(cli.s3(), BUCKET)
    for prefix in (f"raw/orders/dt={D}/", f"staging/orders/dt={D}/"):
        manifest = store.read_manifest(prefix)
        for name in manifest["files"]:
            assert store.read_listed(prefix, manifest, name)  # the manifest's version ids resolve
    assert_pipeline_reconciles_on_top(cli, rows, monkeypatch)


def _wait_for_dagster(port: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "make dev exited early"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).read()
            return
        except OSError:
            time.sleep(1)
    raise AssertionError("dagster dev did not answer")


def test_ctrl_c_on_make_dev_leaves_the_stack_running_and_whole(
    on_stack: StackCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = on_stack
    before_rows = pg_rows(cli)
    port = stack.free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **cli.env,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    proc = subprocess.Popen(
        ["make", "-s", "-o", ".venv/.installed", "dev", f"BIN={bin_dir}", f"DAGSTER_PORT={port}"],
        cwd=project_root(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        _wait_for_dagster(port, proc)
        s3 = cli.s3()
        answer = s3.put_object(
            Bucket=BUCKET, Key="dev/while-running.txt", Body=b"written during make dev"
        )
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (
        "The stack keeps running" in out
        and "postgres  running" in out
        and "s3        running" in out
    ), out
    assert cli("status").returncode == 0
    leftovers = [p.pid for p in psutil.process_iter() if f"-p {port}" in " ".join(_safe_cmdline(p))]
    assert leftovers == []  # Dagster's webserver and daemon ended with Ctrl-C

    kill_servers(cli)  # and then the machine goes down
    cli.up()
    obj = cli.s3().get_object(Bucket=BUCKET, Key="dev/while-running.txt")
    assert (
        obj["Body"].read() == b"written during make dev" and obj["VersionId"] == answer["VersionId"]
    )
    assert pg_rows(cli) == before_rows
    assert_pipeline_reconciles_on_top(cli, before_rows, monkeypatch)


def _safe_cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def test_a_postgresql_16_data_folder_is_upgraded_by_stack_up(tmp_path: Path) -> None:
    """The data folder of the older stack (pgserver's PostgreSQL 16), killed mid-run, moves
    to 18."""
    from volt_assets.devstack import pg_upgrade

    old_bin = pg_upgrade.old_bin_dir(16)
    assert old_bin is not None  # pgserver is a dev dependency for this test
    pg_dir = Path(
        tempfile.mkdtemp(prefix="volt-test-pg16-")
    )  # reachable by the server's user as root
    try:
        owner = stack._prepare_pg_dir(pg_dir)
        error = stack._run_pg_tool(
            "initdb",
            [
                "-D",
                str(pg_dir / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ],
            pg_dir,
            owner,
            120,
            bin_dir=old_bin,
        )
        assert not error and stack.data_major(pg_dir / "data") == 16
        port = stack.free_port()
        sock = stack._socket_dir(pg_dir, owner)
        assert not stack._run_pg_tool(
            "pg_ctl",
            [
                "-D",
                str(pg_dir / "data"),
                "-w",
                "-l",
                str(pg_dir / "postgres.log"),
                "-o",
                f"-h '' -k {sock} -p {port}",
                "start",
            ],
            pg_dir,
            owner,
            120,
            bin_dir=old_bin,
        )
        import psycopg2

        conn = psycopg2.connect(host=str(sock), port=port, user="postgres", dbname="postgres")
        with conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE kept (id int PRIMARY KEY, name text); "
                "INSERT INTO kept VALUES (1, 'fuse')"
            )
        conn.close()
        postmaster = psutil.Process(stack._postmaster(pg_dir)[0])
        postmaster.send_signal(signal.SIGKILL)  # left dirty, as a crash leaves it
        deadline = time.monotonic() + 15
        while stack._postmaster(pg_dir) and time.monotonic() < deadline:
            time.sleep(0.1)

        pg = stack.start_postgres(pg_dir)
        try:
            conn = pg.connect()
            with conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT current_setting('server_version_num')::int / 10000, name FROM kept"
                )
                assert cur.fetchall() == [(18, "fuse")]
            conn.close()
        finally:
            stack.stop_postgres(pg_dir)
        assert (
            stack.data_major(pg_dir / "data") == 18 and stack.data_major(pg_dir / "data-16") == 16
        )
    finally:
        stack.stop_postgres(pg_dir)
        import shutil

        shutil.rmtree(pg_dir, ignore_errors=True)


def test_without_the_old_binaries_the_message_gives_the_command(tmp_path: Path) -> None:
    from volt_assets.devstack import pg_upgrade

    text = pg_upgrade.help_text(tmp_path / "pg", 16)
    assert "PostgreSQL 16" in text and "PostgreSQL 18" in text
    assert "pip install 'pgserver>=0.1.4,<0.2' && volt-assets stack up" in text
