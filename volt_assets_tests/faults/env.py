"""More than one test environment at a time: a twin database + bucket for an undisturbed run
to compare against, and switching the process environment between them."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg2 import sql

from volt_assets.devstack import stack
from volt_assets.lib.store.layout import MANIFEST, remap_version_ids
from volt_assets_tests.pipeline import BucketAndDatabase


@dataclass
class Twin(BucketAndDatabase):
    """A database and a bucket on the session's servers, with the README's configuration variables."""

    env: dict[str, str]
    dbname: str
    bucket: str
    s3: Any
    dsn: str = field(repr=False)


def make_twin(pg_server, s3_endpoint: str, base_env: dict[str, str], home: Path) -> Twin:
    """A fresh database and bucket; the variables of `base_env` re-pointed at them."""
    suffix = uuid.uuid4().hex[:8]
    dbname, bucket = f"volt_t_{suffix}", f"volt-t-{suffix}"
    stack.ensure_database(pg_server, dbname)
    s3 = stack.s3_client(s3_endpoint)
    stack.ensure_bucket(s3, bucket)
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    (home / "dagster_home" / "dagster.yaml").write_text("", encoding="utf-8")
    env = {
        **base_env,
        "POSTGRES_HOST": pg_server.host,
        "POSTGRES_PORT": str(pg_server.port),
        "POSTGRES_DB": dbname,
        "POSTGRES_USER": pg_server.user,
        "POSTGRES_PASSWORD": pg_server.password,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "S3_BUCKET_NAME": bucket,
        "DAGSTER_HOME": str(home / "dagster_home"),
        "VOLT_STATE_DIR": str(home / "state"),
    }
    return Twin(env=env, dbname=dbname, bucket=bucket, s3=s3, dsn=pg_server.dsn(dbname))


def drop_twin(pg_server, twin: Twin) -> None:
    stack.drop_database(pg_server, twin.dbname)


@contextmanager
def using_env(values: dict[str, str]) -> Iterator[None]:
    """Set variables in os.environ for the block, then restore what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def clone_twin(pg_server, s3_endpoint: str, source: Twin, home: Path) -> Twin:
    """A new twin holding a copy of `source`'s database and bucket, as they are now.

    Kill tests start many runs from one "old" state: building it once and copying it
    (`CREATE DATABASE ... TEMPLATE`, then S3 CopyObject of every key) is much faster than
    materialising it again, and the copy is byte-identical, raw capture names included."""
    clone = make_twin(pg_server, s3_endpoint, source.env, home)
    with pg_server.admin_cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(clone.dbname)))
        # a template must have no other sessions (a finished run may leave one closing)
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (source.dbname,),
        )
        cur.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(clone.dbname), sql.Identifier(source.dbname)
            )
        )
    # The copies get new version ids: the manifests are copied last, their files' ids renamed.
    keys = source.list_keys()
    manifests = [k for k in keys if k.endswith("/" + MANIFEST)]
    current = {
        o["Key"]: o["VersionId"]
        for page in source.s3.get_paginator("list_object_versions").paginate(Bucket=source.bucket)
        for o in page.get("Versions", [])
        if o["IsLatest"]
    }
    versions: dict[tuple[str, str], str] = {}
    for key in keys:
        if key in manifests:
            continue
        copy_source = {"Bucket": source.bucket, "Key": key, "VersionId": current[key]}
        answer = clone.s3.copy_object(Bucket=clone.bucket, Key=key, CopySource=copy_source)
        versions[(key, current[key])] = answer["VersionId"]
    for key in manifests:
        manifest = json.loads(source.read_object(key))
        copied = remap_version_ids(manifest, key[: -len(MANIFEST)], versions)
        listed = [n for n, info in manifest.get("files", {}).items() if "version_id" in info]
        missing = [n for n in listed if "version_id" not in copied["files"][n]]
        assert not missing, (
            f"{key} lists versions that are not current, which a clone does not copy: {missing}"
        )
        clone.s3.put_object(
            Bucket=clone.bucket,
            Key=key,
            Body=json.dumps(copied, indent=2, sort_keys=True).encode(),
            ContentType="application/json",
        )
    return clone


@dataclass
class AuthS3:
    """A moto S3 server of its own that checks credentials (SigV4 against moto's IAM), with one
    user allowed everything: `key_id` / `secret`, and a bucket of theirs."""

    url: str
    key_id: str
    secret: str = field(repr=False)
    bucket: str = "volt-auth-lake"


@contextmanager
def authenticating_s3(log_path: Path) -> Iterator[AuthS3]:
    """The session's moto server accepts any credentials; this one refuses wrong ones, as S3
    does: an unknown key is `InvalidAccessKeyId`, a wrong secret `SignatureDoesNotMatch`."""
    import json
    import urllib.request

    import boto3

    handle = stack.start_s3(None, log_path)
    try:
        # the next 3 requests go unauthenticated (they create the user), then moto checks every one
        request = urllib.request.Request(
            handle.url + "/moto-api/reset-auth",
            data=b"3",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).read()
        anonymous = {
            "endpoint_url": handle.url,
            "region_name": stack.S3_REGION,
            "aws_access_key_id": "dummy-bootstrap",
            "aws_secret_access_key": "dummy-bootstrap",
        }
        iam = boto3.client("iam", **anonymous)
        iam.create_user(UserName="volt-pipeline")
        key = iam.create_access_key(UserName="volt-pipeline")["AccessKey"]
        iam.put_user_policy(
            UserName="volt-pipeline",
            PolicyName="lake",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        auth = AuthS3(handle.url, key["AccessKeyId"], key["SecretAccessKey"])
        client = boto3.client(
            "s3",
            endpoint_url=handle.url,
            region_name=stack.S3_REGION,
            aws_access_key_id=auth.key_id,
            aws_secret_access_key=auth.secret,
        )
        stack.ensure_bucket(client, auth.bucket)
        yield auth
    finally:
        stack.stop_s3(handle)


# Settings a developer's shell may hold that would point a module's runs elsewhere (the
# function-scoped `volt_env` fixture removes them the same way).
DEVELOPER_SETTINGS = ("MARTS_DATABASE_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN")


@contextmanager
def without_env(names: tuple[str, ...] = DEVELOPER_SETTINGS) -> Iterator[None]:
    """Remove variables from os.environ for the block, then restore them."""
    saved = {k: os.environ.pop(k) for k in names if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
