"""Dagster resources: the Volt source database and the lake bucket, configured from the
environment with `EnvVar` (see `build_resources`)."""

import functools
import os
import time
from contextlib import contextmanager

import boto3
import dagster as dg
import psycopg2
from botocore.config import Config
from dagster_aws.s3 import S3Resource

from volt_assets.lib.store.lake_store import LakeStore, send_small_bodies_at_once
from volt_assets.settings import stack_down_hint

# Connection errors no retry can fix (psycopg2's first line), and what to check for each.
PERMANENT_PG_ERRORS = {
    "password authentication": "check POSTGRES_USER and POSTGRES_PASSWORD",
    "does not exist": "check POSTGRES_DB and POSTGRES_USER",
    "no pg_hba.conf": "the server's pg_hba.conf does not admit this user from this host",
}


class SourceUnavailable(dg.Failure):
    """PostgreSQL could not be reached or refused us: the message says where, never the password.

    A `dg.Failure`: the retry policy applies to a server that is down or unreachable, not to
    one that refused the credentials or has no such database (`permanent`)."""

    def __init__(self, description: str, permanent: bool = False):
        super().__init__(description=description, allow_retries=not permanent)
        self.permanent = permanent


def permanent_pg_error(first_line: str) -> str | None:
    """What to fix when psycopg2's message is an error no retry can fix, else None."""
    return next((hint for text, hint in PERMANENT_PG_ERRORS.items() if text in first_line), None)


class PostgresResource(dg.ConfigurableResource):
    """A PostgreSQL database (the Volt source, or the marts). The password stays in config."""

    host: str
    port: int = 5432
    dbname: str
    user: str
    password: str = ""
    connect_attempts: int = 3

    @property
    def where(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def _connect_once(self, application_name: str = "volt_assets"):
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.user,
            password=self.password,
            connect_timeout=10,
            application_name=application_name,
            keepalives=1,
            keepalives_idle=30,
        )

    def new_connection(self, application_name: str = "volt_assets"):
        """Connect, retrying transient failures; bad credentials or a missing database fail at once.
        `application_name` is what pg_stat_activity shows (a run's writer locks name its run id)."""
        for attempt in range(1, self.connect_attempts + 1):
            try:
                return self._connect_once(application_name)
            except psycopg2.OperationalError as exc:
                first_line = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                hint = permanent_pg_error(first_line) or stack_down_hint(
                    host=self.host, port=self.port
                )
                if hint:
                    raise SourceUnavailable(
                        f"cannot connect to {self.where}: {first_line}: {hint}", permanent=True
                    ) from None
                if attempt == self.connect_attempts:
                    raise SourceUnavailable(
                        f"cannot connect to {self.where}: {first_line}"
                    ) from None
                time.sleep(0.5 * 2**attempt)

    @contextmanager
    def connect(self):
        conn = self.new_connection()
        try:
            yield conn
        finally:
            conn.close()


class LakeResource(dg.ConfigurableResource):
    """The lake bucket on any S3-compatible endpoint (AWS_ENDPOINT_URL; unset means AWS)."""

    s3: dg.ResourceDependency[S3Resource]
    bucket: str

    def store(self) -> LakeStore:
        return LakeStore(pooled_client(self.s3), self.bucket)


# The lake's upload, download and report threads share one client: botocore's pool of 10
# connections would drop and reopen connections beyond that (on real S3, a TLS handshake each).
S3_CONNECTIONS = 32


def pooled_client(s3: S3Resource):
    """The client `S3Resource.get_client()` makes (same endpoint, credentials and retries),
    with a connection pool as wide as the lake's threads; one per process and configuration
    (a boto3 client is thread-safe, and making one costs ~0.1 s: a run asks four times)."""
    return _client(
        s3.profile_name,
        s3.region_name,
        s3.use_ssl,
        s3.verify,
        s3.endpoint_url,
        s3.aws_access_key_id,
        s3.aws_secret_access_key,
        s3.aws_session_token,
        s3.max_attempts,
    )


@functools.lru_cache(maxsize=4)
def _client(profile, region, use_ssl, verify, endpoint, key_id, secret, token, max_attempts):
    session = boto3.session.Session(profile_name=profile)
    client = session.client(
        "s3",
        region_name=region,
        use_ssl=use_ssl,
        verify=verify,
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=S3_CONNECTIONS,
        ),
    )
    send_small_bodies_at_once(client)
    return client


def env_or_none(name: str):
    """EnvVar for a set variable, None for an unset optional one (EnvVar would fail to load)."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def s3_resource() -> S3Resource:
    return S3Resource(
        endpoint_url=env_or_none("AWS_ENDPOINT_URL"),
        region_name=env_or_none("AWS_DEFAULT_REGION"),
        aws_access_key_id=env_or_none("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env_or_none("AWS_SECRET_ACCESS_KEY"),
        max_attempts=int(os.environ.get("VOLT_S3_MAX_ATTEMPTS", "8")),
    )


def source_database() -> PostgresResource:
    return PostgresResource(
        host=dg.EnvVar("POSTGRES_HOST"),
        port=dg.EnvVar.int("POSTGRES_PORT"),
        dbname=dg.EnvVar("POSTGRES_DB"),
        user=dg.EnvVar("POSTGRES_USER"),
        password=env_or_none("POSTGRES_PASSWORD") or "",
    )


def lake_resource(s3: S3Resource) -> LakeResource:
    return LakeResource(s3=s3, bucket=dg.EnvVar("S3_BUCKET_NAME"))


def shared_resources() -> dict:
    """The resources every domain uses: source database, S3, the lake and its IO manager."""
    from volt_assets.defs.lake.io_manager import S3LakeIOManager  # it builds on LakeResource
    from volt_assets.defs.policies import LAKE_IO_MANAGER

    s3 = s3_resource()
    lake = lake_resource(s3)
    return {
        "source": source_database(),
        "s3": s3,
        "lake": lake,
        LAKE_IO_MANAGER: S3LakeIOManager(lake=lake),
    }


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources=shared_resources())
