"""`volt-assets bucket apply` and `bucket_policies_job` against a real S3 endpoint (moto server).

Each test gets a fresh bucket from `volt_env` (created versioned, as the embedded stack
creates the lake bucket); the command runs as a user runs it, in a subprocess, and every
setting is read back with boto3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource

from volt_assets.defs.operations.bucket_job import bucket_policies_job
from volt_assets.devstack import stack
from volt_assets.lib.store.bucket_policy import POLICY_SID, _normalise_rule

SECRET = "s3cr3t-never-printed-7f3a"  # moto accepts any key: a value we can look for in output


def bucket_apply(volt_env, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `volt-assets bucket apply ARGS` with the test's environment (plus `env`)."""
    full_env = {**os.environ, **volt_env.env, "AWS_SECRET_ACCESS_KEY": SECRET, **env}
    result = subprocess.run(
        [sys.executable, "-m", "volt_assets.cli.main", "bucket", "apply", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert SECRET not in result.stdout + result.stderr
    return result


def lifecycle(s3, bucket: str) -> dict[str, dict]:
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return {r["ID"]: r for r in rules}


def policy_statements(s3, bucket: str) -> dict[str, dict]:
    document = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    return {s.get("Sid"): s for s in document["Statement"]}


def test_apply_sets_every_setting_on_a_fresh_bucket(volt_env):
    s3, bucket = volt_env.s3, f"{volt_env.bucket}-plain"
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": stack.S3_REGION}
    )  # no versioning
    result = bucket_apply(volt_env, VOLT_BUCKET_TLS_ONLY="1", S3_BUCKET_NAME=bucket)
    assert result.returncode == 0, result.stderr
    assert "5 settings changed." in result.stdout

    rules = lifecycle(s3, bucket)
    assert set(rules) == {
        "raw-tiering",
        "quarantine-expiry",
        "landing-processed-expiry",
        "noncurrent-versions-expiry",
        "abort-incomplete-multipart",
    }
    assert all(r["Status"] == "Enabled" for r in rules.values())
    assert rules["raw-tiering"]["Filter"] == {"Prefix": "raw/"}
    assert [(t["Days"], t["StorageClass"]) for t in rules["raw-tiering"]["Transitions"]] == [
        (30, "STANDARD_IA"),
        (90, "GLACIER"),
    ]
    assert rules["quarantine-expiry"]["Filter"] == {"Prefix": "quarantine/"}
    assert rules["quarantine-expiry"]["Expiration"] == {"Days": 30}
    assert rules["landing-processed-expiry"]["Filter"] == {"Prefix": "landing/processed/"}
    assert rules["landing-processed-expiry"]["Expiration"] == {"Days": 30}
    assert rules["noncurrent-versions-expiry"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 30
    }
    assert rules["abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
        "Rules"
    ][0]
    assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    blocks = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    assert block == dict.fromkeys(blocks, True)
    deny = policy_statements(s3, bucket)[POLICY_SID]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_a_second_run_changes_nothing(volt_env):
    assert bucket_apply(volt_env, VOLT_BUCKET_TLS_ONLY="1").returncode == 0
    again = bucket_apply(volt_env, VOLT_BUCKET_TLS_ONLY="1")
    assert again.returncode == 0, again.stderr
    assert "All 5 settings in sync: nothing changed." in again.stdout
    for setting in ("public-access-block", "encryption", "versioning", "lifecycle", "policy"):
        assert any(line.split() == [setting, "unchanged"] for line in again.stdout.splitlines()), (
            setting
        )


def test_dry_run_names_the_drift_and_changes_nothing(volt_env):
    s3, bucket = volt_env.s3, volt_env.bucket
    assert bucket_apply(volt_env).returncode == 0
    # Order of rules is no drift: put them back reversed, minus one rule; suspend versioning.
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    kept = [r for r in rules if r["ID"] != "quarantine-expiry"][::-1]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": kept})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})

    dry = bucket_apply(volt_env, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 settings would change" in dry.stdout
    assert 'Status: has "Suspended", should be "Enabled"' in dry.stdout
    assert "rule quarantine-expiry: has nothing, should be" in dry.stdout
    assert "encryption" in dry.stdout and "unchanged" in dry.stdout
    # Nothing was applied.
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    assert "quarantine-expiry" not in lifecycle(s3, bucket)

    fixed = bucket_apply(volt_env)
    assert fixed.returncode == 0, fixed.stderr
    assert "2 settings changed." in fixed.stdout
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert "quarantine-expiry" in lifecycle(s3, bucket)
    assert "0 settings would change" in bucket_apply(volt_env, "--dry-run").stdout


def test_a_missing_bucket_is_created_in_the_region(volt_env):
    name = f"{volt_env.bucket}-new"
    dry = bucket_apply(volt_env, "--dry-run", S3_BUCKET_NAME=name)
    assert dry.returncode == 0, dry.stderr
    assert f"bucket {name} does not exist: would create it in {stack.S3_REGION}" in dry.stdout
    with pytest.raises(ClientError):
        volt_env.s3.head_bucket(Bucket=name)

    made = bucket_apply(volt_env, S3_BUCKET_NAME=name)
    assert made.returncode == 0, made.stderr
    assert f"created it in {stack.S3_REGION}" in made.stdout
    assert volt_env.s3.get_bucket_location(Bucket=name)["LocationConstraint"] == stack.S3_REGION
    assert volt_env.s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"


def test_environment_overrides_kms_and_lifecycle_days(volt_env):
    result = bucket_apply(
        volt_env,
        VOLT_KMS_KEY_ID="alias/volt-lake",
        VOLT_LIFECYCLE_RAW_IA_DAYS="45",
        VOLT_LIFECYCLE_RAW_GLACIER_DAYS="180",
        VOLT_LIFECYCLE_EXPIRE_DAYS="14",
    )
    assert result.returncode == 0, result.stderr
    rule = volt_env.s3.get_bucket_encryption(Bucket=volt_env.bucket)[
        "ServerSideEncryptionConfiguration"
    ]["Rules"][0]
    default = rule["ApplyServerSideEncryptionByDefault"]
    assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/volt-lake"}
    assert rule["BucketKeyEnabled"] is True
    rules = lifecycle(volt_env.s3, volt_env.bucket)
    assert [t["Days"] for t in rules["raw-tiering"]["Transitions"]] == [45, 180]
    assert rules["quarantine-expiry"]["Expiration"] == {"Days": 14}


def test_an_invalid_override_exits_2_and_changes_nothing(volt_env):
    result = bucket_apply(volt_env, VOLT_LIFECYCLE_RAW_GLACIER_DAYS="40")
    assert result.returncode == 2
    assert "VOLT_LIFECYCLE_RAW_GLACIER_DAYS" in result.stderr
    with pytest.raises(ClientError, match="NoSuchLifecycleConfiguration"):
        volt_env.s3.get_bucket_lifecycle_configuration(Bucket=volt_env.bucket)


def test_only_the_managed_policy_statement_is_touched(volt_env):
    s3, bucket = volt_env.s3, volt_env.bucket
    reader = {
        "Sid": "AnalystsReadMarts",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/mart/*",
    }
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [reader]})
    )

    assert bucket_apply(volt_env, VOLT_BUCKET_TLS_ONLY="1").returncode == 0
    assert set(policy_statements(s3, bucket)) == {"AnalystsReadMarts", POLICY_SID}

    # Over a plain-http endpoint (auto) the deny is unwanted: removed, the other statement kept.
    result = bucket_apply(volt_env)
    assert result.returncode == 0, result.stderr
    assert f"statement {POLICY_SID}: has" in result.stdout and "should be removed" in result.stdout
    assert set(policy_statements(s3, bucket)) == {"AnalystsReadMarts"}


def test_s3_errors_exit_1_with_a_clear_message(volt_env):
    closed = f"http://127.0.0.1:{stack.free_port()}"
    result = bucket_apply(volt_env, AWS_ENDPOINT_URL=closed, AWS_MAX_ATTEMPTS="1")
    assert result.returncode == 1
    assert f"failed on bucket {volt_env.bucket}" in result.stderr
    assert "Traceback" not in result.stderr


def test_rules_read_back_in_any_spelling_normalise_alike():
    canonical = {
        "ID": "r",
        "Filter": {"Prefix": "raw/"},
        "Status": "Enabled",
        "Transitions": [
            {"Days": 30, "StorageClass": "STANDARD_IA"},
            {"Days": 90, "StorageClass": "GLACIER"},
        ],
    }
    legacy = {
        "ID": "r",
        "Prefix": "raw/",
        "Status": "Enabled",
        "Transitions": [
            {"Days": 90, "StorageClass": "GLACIER", "Date": None},
            {"Days": 30, "StorageClass": "STANDARD_IA"},
        ],
    }
    assert _normalise_rule(legacy) == _normalise_rule(canonical) == canonical
    assert _normalise_rule({"ID": "a", "Filter": {}, "Status": "Enabled"})["Filter"] == {
        "Prefix": ""
    }
    tagged = {"ID": "t", "Filter": {"Tag": {"Key": "k", "Value": "v"}}, "Status": "Enabled"}
    assert _normalise_rule(tagged)["Filter"] == {"Tag": {"Key": "k", "Value": "v"}}


def s3_resource(volt_env, **kwargs) -> S3Resource:
    return S3Resource(
        endpoint_url=volt_env.env["AWS_ENDPOINT_URL"],
        region_name=volt_env.env["AWS_DEFAULT_REGION"],
        **kwargs,
    )


def test_the_dagster_job_applies_and_is_idempotent(volt_env):
    first = bucket_policies_job.execute_in_process(resources={"s3": s3_resource(volt_env)})
    assert first.success
    assert first.output_for_node(
        "apply_bucket_policies"
    ) == [  # the test bucket is created versioned
        "public-access-block",
        "encryption",
        "lifecycle",
    ]
    assert volt_env.s3.get_bucket_versioning(Bucket=volt_env.bucket)["Status"] == "Enabled"

    volt_env.s3.delete_bucket_encryption(Bucket=volt_env.bucket)
    dry = bucket_policies_job.execute_in_process(
        resources={"s3": s3_resource(volt_env)},
        run_config={"ops": {"apply_bucket_policies": {"config": {"dry_run": True}}}},
    )
    assert dry.output_for_node("apply_bucket_policies") == ["encryption"]
    with pytest.raises(ClientError):
        volt_env.s3.get_bucket_encryption(Bucket=volt_env.bucket)

    again = bucket_policies_job.execute_in_process(resources={"s3": s3_resource(volt_env)})
    assert again.output_for_node("apply_bucket_policies") == ["encryption"]
    final = bucket_policies_job.execute_in_process(resources={"s3": s3_resource(volt_env)})
    assert final.output_for_node("apply_bucket_policies") == []


def test_the_dagster_job_fails_with_a_clear_message(volt_env):
    closed = S3Resource(
        endpoint_url=f"http://127.0.0.1:{stack.free_port()}",
        region_name=stack.S3_REGION,
        max_attempts=1,
    )
    result = bucket_policies_job.execute_in_process(resources={"s3": closed}, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("apply_bucket_policies")
    assert f"bucket apply failed on {volt_env.bucket}" in failure.error.message
