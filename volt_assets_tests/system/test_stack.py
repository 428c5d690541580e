"""`volt-assets stack up|down|status` end to end, run as a user runs it: as subprocesses.

Every command runs with VOLT_STATE_DIR on a temporary folder, so the developer's `.volt/` is
never touched, and the module always ends with `stack down`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg2
import psycopg2.extras
import pytest

from volt_assets.devstack import stack
from volt_assets.settings import parse_env_file, write_env_file

BUCKET = "volt-data-lake"
ODD_KEY = "images/components/7/ohm's law é #1 (2).png"


class StackCli:
    """Runs `volt-assets stack ...` on one state folder and keeps everything it printed."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.outputs: list[str] = []
        self.env = {**os.environ, "VOLT_STATE_DIR": str(state_dir)}
        # The stack must create the default bucket whatever the developer's shell says.
        self.env.pop("S3_BUCKET_NAME", None)

    def __call__(self, action: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "volt_assets.cli.main", "stack", action],
            cwd=self.state_dir.parent,  # away from the checkout's .env
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.outputs.append(result.stdout + result.stderr)
        password = self.settings().get("POSTGRES_PASSWORD")
        assert not password or password not in self.outputs[-1], (
            f"`stack {action}` printed the password"
        )
        return result

    def up(self) -> None:
        result = self("up")
        assert result.returncode == 0, result.stdout + result.stderr

    def settings(self) -> dict[str, str]:
        return parse_env_file(self.state_dir / "stack.env")

    def pids(self) -> dict[str, int]:
        state = json.loads((self.state_dir / "stack.json").read_text())
        return {svc: state[svc].get("pid") for svc in ("postgres", "s3")}

    def processes(self) -> list[psutil.Process]:
        """The servers and all their children (PostgreSQL's checkpointer, walwriter, ...)."""
        procs = [psutil.Process(pid) for pid in self.pids().values()]
        return procs + [child for proc in procs for child in proc.children(recursive=True)]

    def connect(self):
        env = self.settings()
        return psycopg2.connect(
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            dbname=env["POSTGRES_DB"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            connect_timeout=5,
        )

    def s3(self):
        return stack.s3_client(self.settings()["AWS_ENDPOINT_URL"])


def _gone(proc: psutil.Process) -> bool:
    # Our servers are orphans adopted by pid 1, which may never reap them: a zombie is gone.
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def cli() -> Iterator[StackCli]:
    # Not under pytest's tmp folder: as root, PostgreSQL runs as `pgserver`, which cannot
    # enter pytest's root-only (0700) folder.
    root = Path(tempfile.mkdtemp(prefix="volt-test-stack-"))
    runner = StackCli(root / "state")
    try:
        yield runner
    finally:
        runner("down")
        shutil.rmtree(root, ignore_errors=True)


def test_status_of_a_stack_never_started_exits_3(tmp_path: Path) -> None:
    result = StackCli(tmp_path / "state")("status")
    assert result.returncode == 3
    assert "postgres  stopped" in result.stdout and "s3        stopped" in result.stdout


def test_up_starts_postgres_and_s3(cli: StackCli) -> None:
    cli.up()
    assert cli("status").returncode == 0

    env = cli.settings()
    assert env["POSTGRES_HOST"] == "127.0.0.1" and env["POSTGRES_DB"] == "volt"
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["AWS_DEFAULT_REGION"] == "eu-central-1" and env["S3_BUCKET_NAME"] == BUCKET
    assert Path(env["VOLT_IMAGES_DIR"]).is_dir()
    assert (cli.state_dir / "stack.env").stat().st_mode & 0o077 == 0

    with cli.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        assert int(cur.fetchone()[0]) // 10000 == 18
        cur.execute("SHOW wal_level")  # `sync: cdc` tables read logical replication
        assert cur.fetchone() == ("logical",)
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(
            host="127.0.0.1",
            port=env["POSTGRES_PORT"],
            dbname="volt",
            user="postgres",
            password="wrong",
            connect_timeout=5,
        )

    assert cli.s3().get_bucket_location(Bucket=BUCKET)["LocationConstraint"] == "eu-central-1"
    assert (
        cli.s3().get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    )  # as the lake is deployed


def test_up_twice_is_harmless(cli: StackCli) -> None:
    cli.up()
    before, settings_before = cli.pids(), cli.settings()
    cli.up()
    assert cli.pids() == before
    assert cli.settings() == settings_before


def test_rows_and_objects_survive_down_and_up(cli: StackCli) -> None:
    cli.up()
    conn = cli.connect()
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS survivors (id int PRIMARY KEY, name text)")
        cur.execute(
            "INSERT INTO survivors VALUES (1, 'resistor'), (2, 'capacitor') ON CONFLICT DO NOTHING"
        )
    conn.close()
    body = bytes(range(256)) * 40
    cli.s3().put_object(
        Bucket=BUCKET,
        Key=ODD_KEY,
        Body=body,
        ContentType="image/png",
        Metadata={"component-id": "7", "sha256": "abc123"},
    )
    # A lake folder: its manifest records the part's version id, which the restore renames.
    from volt_assets.lib.store.lake_store import LakeStore

    folder = "staging/survivors/dt=2026-01-02/"
    LakeStore(cli.s3(), BUCKET).write_folder(
        folder, {"part-00000.parquet": b"old part"}, {"table": "survivors"}
    )
    # A key the seed records: `up` must keep it.
    settings = cli.settings()
    write_env_file(cli.state_dir / "stack.env", {**settings, "VOLT_PARTITIONS_START": "2026-02-01"})

    assert cli("down").returncode == 0
    assert cli("status").returncode == 3
    cli.up()

    after = cli.settings()
    assert after["VOLT_PARTITIONS_START"] == "2026-02-01"
    assert after["POSTGRES_PASSWORD"] == settings["POSTGRES_PASSWORD"]
    conn = cli.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id, name FROM survivors ORDER BY id")
        assert cur.fetchall() == [(1, "resistor"), (2, "capacitor")]
    conn.close()
    obj = cli.s3().get_object(Bucket=BUCKET, Key=ODD_KEY)
    assert obj["Body"].read() == body
    assert obj["ContentType"] == "image/png"
    assert obj["Metadata"] == {"component-id": "7", "sha256": "abc123"}
    store = LakeStore(cli.s3(), BUCKET)
    manifest = store.read_manifest(folder)
    head = cli.s3().head_object(Bucket=BUCKET, Key=folder + "part-00000.parquet")
    assert manifest["files"]["part-00000.parquet"]["version_id"] == head["VersionId"]
    assert store.read_listed(folder, manifest, "part-00000.parquet") == b"old part"


def test_down_stops_every_process_it_started(cli: StackCli) -> None:
    cli.up()
    procs = cli.processes()
    assert len(procs) > 2  # the postmaster has children

    assert cli("down").returncode == 0
    assert all(_gone(proc) for proc in procs), [p.pid for p in procs if not _gone(p)]
    assert cli("status").returncode == 3
    second = cli("down")
    assert second.returncode == 0 and "not running" in second.stdout


def test_no_command_prints_the_password(cli: StackCli) -> None:
    cli.up()
    cli("status")
    password = cli.settings()["POSTGRES_PASSWORD"]
    assert len(password) >= 16
    assert cli.outputs and not any(password in out for out in cli.outputs)


def test_volt_env_gives_a_fresh_database_and_bucket(volt_env) -> None:
    """The fixture the other suites build on: the contract's variables, on empty services."""
    assert os.environ["POSTGRES_DB"] == volt_env.dbname == volt_env.env["POSTGRES_DB"]
    assert os.environ["S3_BUCKET_NAME"] == volt_env.bucket
    assert (volt_env.dagster_home / "dagster.yaml").is_file() and volt_env.images_dir.is_dir()
    conn = volt_env.connect()
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        assert cur.fetchone() == (volt_env.dbname, 0)
    conn.close()
    assert volt_env.list_keys() == []
    volt_env.s3.put_object(Bucket=volt_env.bucket, Key="raw/x/dt=2026-01-01/a.jsonl", Body=b"{}\n")
    assert volt_env.list_keys("raw/") == ["raw/x/dt=2026-01-01/a.jsonl"]
    assert volt_env.read_object("raw/x/dt=2026-01-01/a.jsonl") == b"{}\n"


def test_suite_postgres_serves_logical_replication(pg_server: stack.PgHandle) -> None:
    """The suite's server runs as the stack's does: logical WAL, room for a slot per test
    database, a slot's kept WAL bounded."""
    with pg_server.admin_cursor() as cur:
        found = {}
        for name in ("wal_level", "max_replication_slots", "max_wal_senders"):
            cur.execute(f"SHOW {name}")
            found[name] = cur.fetchone()[0]
        cur.execute("SELECT setting, unit FROM pg_settings WHERE name = 'max_slot_wal_keep_size'")
        keep = cur.fetchone()
    assert found == {"wal_level": "logical", "max_replication_slots": "32", "max_wal_senders": "32"}
    assert keep == ("2048", "MB")


def test_drop_database_drops_its_replication_slots(pg_server: stack.PgHandle) -> None:
    """A database with a logical slot (one a walsender holds, too) is dropped, slot and all."""
    stack.ensure_database(pg_server, "volt_slotted")
    conn = pg_server.connect("volt_slotted")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_create_logical_replication_slot('volt_slotted_a', 'pgoutput')")
    replication = psycopg2.connect(
        pg_server.dsn("volt_slotted"),
        connection_factory=psycopg2.extras.LogicalReplicationConnection,
    )
    rcur = replication.cursor()
    rcur.create_replication_slot("volt_slotted_b", output_plugin="pgoutput")
    rcur.start_replication(
        slot_name="volt_slotted_b",
        options={"proto_version": "1", "publication_names": "none"},
        decode=False,
    )
    conn.close()
    stack.drop_database(pg_server, "volt_slotted")
    with pg_server.admin_cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname = 'volt_slotted'")
        assert cur.fetchone() == (0,)
        cur.execute("SELECT slot_name FROM pg_replication_slots WHERE database = 'volt_slotted'")
        assert cur.fetchall() == []
    replication.close()


def test_postgres_starts_over_the_socket_lock_of_a_killed_server_left_a_zombie(
    tmp_path: Path,
) -> None:
    """A SIGKILLed postmaster stays a zombie until its parent reaps it; PostgreSQL counts a
    zombie as alive and refused to start over its socket lock. `start_postgres` removes it."""
    pg_dir = tmp_path / "pg"
    pg = stack.start_postgres(pg_dir)
    port = pg.port
    stack.stop_postgres(pg_dir)
    owner = stack._pg_owner(pg_dir)  # the server's OS user: its zombie answers kill(pid, 0)
    as_owner = {"user": owner[0], "group": owner[1]} if owner else {}
    zombie = subprocess.Popen(["sleep", "60"], **as_owner)
    zombie.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:  # killed, never reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lock = pg_dir / f".s.PGSQL.{port}.lock"
    lock.write_text(f"{zombie.pid}\n{pg_dir / 'data'}\n")
    try:
        pg = stack.start_postgres(pg_dir, port=port)
        try:
            with pg.admin_cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
        finally:
            stack.stop_postgres(pg_dir)
    finally:
        zombie.wait()
