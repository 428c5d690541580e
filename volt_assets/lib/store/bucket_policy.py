"""The lake bucket's policies as code, applied idempotently (`volt-assets bucket apply`, cli/bucket.py).

The desired state lives in `BucketPolicy` (defaults below, each overridable from the
environment). `sync_bucket` reads what the bucket has, compares it with the desired state
setting by setting (after normalising both, so rule order or AWS's own formatting never
counts as drift), and writes only what differs. The CLI and the Dagster job
`bucket_policies_job` (volt_assets/defs/operations/bucket_job.py) both call it, so they can never disagree.

Settings, in the order they are applied:
- public-access-block: all four blocks on;
- encryption: SSE-S3 (AES256), or SSE-KMS with an S3 Bucket Key when VOLT_KMS_KEY_ID is set;
- versioning: Enabled;
- lifecycle: the whole lifecycle configuration is owned here (see `lifecycle_rules`);
- policy: one statement, `DenyInsecureTransport`, is owned here; other statements of the
  bucket policy are kept as they are.

Environment (all optional):
| variable | default | meaning |
| --- | --- | --- |
| VOLT_LIFECYCLE_RAW_IA_DAYS | 30 | raw/ moves to STANDARD_IA after this many days (>= 30) |
| VOLT_LIFECYCLE_RAW_GLACIER_DAYS | 90 | raw/ moves to GLACIER after this many days (>= IA days + 30) |
| VOLT_LIFECYCLE_EXPIRE_DAYS | 30 | quarantine/ and landing/processed/ objects expire |
| VOLT_LIFECYCLE_NONCURRENT_DAYS | 30 | noncurrent object versions expire |
| VOLT_LIFECYCLE_MULTIPART_DAYS | 7 | incomplete multipart uploads are aborted |
| VOLT_KMS_KEY_ID | unset | KMS key id/ARN/alias: SSE-KMS instead of SSE-S3 |
| VOLT_BUCKET_TLS_ONLY | auto | 1/0: apply the deny-insecure-transport statement; auto = on unless the S3 endpoint is plain http:// |
"""

# No `from __future__ import annotations`: Dagster reads the op's config/resource annotations at import.
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from volt_assets.lib.store.layout import LANDING_PROCESSED, top_prefix
from volt_assets.settings import DEFAULTS, mask_dsn

POLICY_SID = "DenyInsecureTransport"

# Error codes S3 answers when a setting was simply never configured: that is "absent", not a failure.
ABSENT_CODES = {
    "NoSuchLifecycleConfiguration",
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchBucketPolicy",
    "NoSuchPublicAccessBlockConfiguration",
}
MISSING_BUCKET_CODES = {"404", "NoSuchBucket", "NotFound"}


class BucketPolicyError(ValueError):
    """The configured desired state is invalid (a bad environment override)."""


@dataclass(frozen=True)
class BucketPolicy:
    """The lake bucket's desired state. `from_env` applies the VOLT_* overrides."""

    raw_ia_days: int = 30
    raw_glacier_days: int = 90
    expire_days: int = 30
    noncurrent_days: int = 30
    multipart_days: int = 7
    kms_key_id: str | None = None
    tls_only: bool = True

    # environment variable -> field; the one place the override names are defined
    ENV = {
        "VOLT_LIFECYCLE_RAW_IA_DAYS": "raw_ia_days",
        "VOLT_LIFECYCLE_RAW_GLACIER_DAYS": "raw_glacier_days",
        "VOLT_LIFECYCLE_EXPIRE_DAYS": "expire_days",
        "VOLT_LIFECYCLE_NONCURRENT_DAYS": "noncurrent_days",
        "VOLT_LIFECYCLE_MULTIPART_DAYS": "multipart_days",
    }

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, endpoint_url: str | None = None
    ) -> "BucketPolicy":
        """Defaults overridden by the environment; `endpoint_url` decides VOLT_BUCKET_TLS_ONLY=auto."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, name in cls.ENV.items():
            raw = env.get(var, "").strip()
            if raw:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise BucketPolicyError(
                        f"{var} must be a whole number of days, got {raw!r}"
                    ) from None
        values["kms_key_id"] = env.get("VOLT_KMS_KEY_ID", "").strip() or None
        values["tls_only"] = _tls_only(env.get("VOLT_BUCKET_TLS_ONLY", "auto"), endpoint_url)
        policy = cls(**values)
        policy.validate()
        return policy

    def validate(self) -> None:
        """Reject values S3 would refuse, before any request is sent."""
        var = {name: env for env, name in self.ENV.items()}
        for name in var:
            if getattr(self, name) < 1:
                raise BucketPolicyError(
                    f"{var[name]} must be at least 1 day, got {getattr(self, name)}"
                )
        if self.raw_ia_days < 30:
            raise BucketPolicyError(
                f"{var['raw_ia_days']} must be at least 30 (S3's minimum for STANDARD_IA), got {self.raw_ia_days}"
            )
        if self.raw_glacier_days < self.raw_ia_days + 30:
            raise BucketPolicyError(
                f"{var['raw_glacier_days']} must be at least {var['raw_ia_days']} + 30 "
                f"(S3 keeps objects 30 days in STANDARD_IA), got {self.raw_glacier_days} and {self.raw_ia_days}"
            )


def _tls_only(setting: str, endpoint_url: str | None) -> bool:
    setting = setting.strip().lower()
    if setting in ("1", "true", "yes", "on"):
        return True
    if setting in ("0", "false", "no", "off"):
        return False
    if setting not in ("", "auto"):
        raise BucketPolicyError(f"VOLT_BUCKET_TLS_ONLY must be 1, 0 or auto, got {setting!r}")
    # A plain-http endpoint (the embedded stack, MinIO without TLS) would be locked out by the deny.
    return not (endpoint_url or "").lower().startswith("http://")


# --- desired state and normalisation -----------------------------------------------------------


def lifecycle_rules(policy: BucketPolicy) -> list[dict[str, Any]]:
    """The lifecycle rules, in the canonical shape `_normalise_rule` produces."""
    everything = {"Prefix": ""}
    return [
        {
            # raw/ is the audit record, read rarely after its first weeks: cheaper tiers, never deleted.
            "ID": "raw-tiering",
            "Filter": {"Prefix": top_prefix("raw")},
            "Status": "Enabled",
            "Transitions": [
                {"Days": policy.raw_ia_days, "StorageClass": "STANDARD_IA"},
                {"Days": policy.raw_glacier_days, "StorageClass": "GLACIER"},
            ],
        },
        {
            "ID": "quarantine-expiry",
            "Filter": {"Prefix": top_prefix("quarantine")},
            "Status": "Enabled",
            "Expiration": {"Days": policy.expire_days},
        },
        {
            "ID": "landing-processed-expiry",
            "Filter": {"Prefix": LANDING_PROCESSED},
            "Status": "Enabled",
            "Expiration": {"Days": policy.expire_days},
        },
        {
            # Replaced staging/mart partitions leave noncurrent versions; expired ones leave
            # lone delete markers, which this also cleans up.
            "ID": "noncurrent-versions-expiry",
            "Filter": everything,
            "Status": "Enabled",
            "Expiration": {"ExpiredObjectDeleteMarker": True},
            "NoncurrentVersionExpiration": {"NoncurrentDays": policy.noncurrent_days},
        },
        {
            "ID": "abort-incomplete-multipart",
            "Filter": everything,
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": policy.multipart_days},
        },
    ]


def _drop_empty(value: Any) -> Any:
    """Recursively drop None/False/empty members AWS adds or omits at will (`"Date": None`)."""
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None and v is not False and v != {}}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def _normalise_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A lifecycle rule as read back, in the canonical shape of `lifecycle_rules`."""
    out = _drop_empty({k: v for k, v in rule.items() if k not in ("Prefix", "Filter")})
    filter_ = dict(rule.get("Filter") or {})
    if not filter_ or set(filter_) == {"Prefix"}:
        # The legacy top-level Prefix, an empty Filter and Filter.Prefix="" all mean the same.
        filter_ = {"Prefix": filter_.get("Prefix", rule.get("Prefix", "")) or ""}
    out["Filter"] = _drop_empty(filter_) or {"Prefix": ""}
    for key in ("Transitions", "NoncurrentVersionTransitions"):
        if key in out:
            out[key] = sorted(
                out[key], key=lambda t: (t.get("Days", t.get("NoncurrentDays", 0)), str(t))
            )
    return out


def _canonical(value: Any) -> Any:
    """A JSON value with list order and one-element lists normalised (IAM treats them alike)."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        return items[0] if len(items) == 1 else items
    return value


def deny_insecure_transport(bucket: str) -> dict[str, Any]:
    """The bucket-policy statement refusing every request made without TLS."""
    return {
        "Sid": POLICY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


# --- the settings: read (normalised, None = not configured), desired, write --------------------


def _read(call: Callable[..., dict], bucket: str) -> dict | None:
    try:
        return call(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ABSENT_CODES:
            return None
        raise


def _read_public_access_block(client, bucket: str) -> dict | None:
    answer = _read(client.get_public_access_block, bucket)
    return None if answer is None else dict(answer["PublicAccessBlockConfiguration"])


def _desired_public_access_block(policy: BucketPolicy, bucket: str) -> dict:
    return {
        k: True
        for k in (
            "BlockPublicAcls",
            "IgnorePublicAcls",
            "BlockPublicPolicy",
            "RestrictPublicBuckets",
        )
    }


def _write_public_access_block(client, bucket: str, desired: dict) -> None:
    client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=desired)


def _read_encryption(client, bucket: str) -> dict | None:
    answer = _read(client.get_bucket_encryption, bucket)
    if answer is None:
        return None
    rules = answer["ServerSideEncryptionConfiguration"].get("Rules") or [{}]
    default = rules[0].get("ApplyServerSideEncryptionByDefault", {})
    state = {"SSEAlgorithm": default.get("SSEAlgorithm")}
    if state["SSEAlgorithm"] != "AES256":
        # Key and Bucket Key only mean something for KMS; AWS reports BucketKeyEnabled=false for AES256.
        state["KMSMasterKeyID"] = default.get("KMSMasterKeyID")
        state["BucketKeyEnabled"] = bool(rules[0].get("BucketKeyEnabled", False))
    return state


def _desired_encryption(policy: BucketPolicy, bucket: str) -> dict:
    if policy.kms_key_id is None:
        return {"SSEAlgorithm": "AES256"}
    # A Bucket Key cuts KMS requests (and their cost) by orders of magnitude for many small objects.
    return {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": policy.kms_key_id,
        "BucketKeyEnabled": True,
    }


def _write_encryption(client, bucket: str, desired: dict) -> None:
    default = {k: v for k, v in desired.items() if k != "BucketKeyEnabled"}
    rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": default}
    if "BucketKeyEnabled" in desired:
        rule["BucketKeyEnabled"] = desired["BucketKeyEnabled"]
    client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})


def _read_versioning(client, bucket: str) -> dict | None:
    status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    return None if status is None else {"Status": status}  # no Status: versioning never enabled


def _desired_versioning(policy: BucketPolicy, bucket: str) -> dict:
    return {"Status": "Enabled"}


def _write_versioning(client, bucket: str, desired: dict) -> None:
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=desired)


def _read_lifecycle(client, bucket: str) -> dict | None:
    answer = _read(client.get_bucket_lifecycle_configuration, bucket)
    if answer is None:
        return None
    rules = (_normalise_rule(r) for r in answer.get("Rules", []))
    return {r.pop("ID", ""): r for r in rules}


def _desired_lifecycle(policy: BucketPolicy, bucket: str) -> dict:
    return {r["ID"]: {k: v for k, v in r.items() if k != "ID"} for r in lifecycle_rules(policy)}


def _write_lifecycle(client, bucket: str, desired: dict) -> None:
    rules = [{"ID": rule_id, **rule} for rule_id, rule in desired.items()]
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": rules}
    )


def _read_policy_document(client, bucket: str) -> dict | None:
    answer = _read(client.get_bucket_policy, bucket)
    return None if answer is None else json.loads(answer["Policy"])


def _read_policy(client, bucket: str) -> dict | None:
    document = _read_policy_document(client, bucket)
    if document is None:
        return None
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    return {s["Sid"]: _canonical(s) for s in statements if s.get("Sid") == POLICY_SID}


def _desired_policy(policy: BucketPolicy, bucket: str) -> dict:
    return {POLICY_SID: _canonical(deny_insecure_transport(bucket))} if policy.tls_only else {}


def _write_policy(client, bucket: str, desired: dict) -> None:
    # Only our statement is managed: statements other teams added stay in place.
    document = _read_policy_document(client, bucket) or {"Version": "2012-10-17", "Statement": []}
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = [s for s in statements if s.get("Sid") != POLICY_SID]
    document["Statement"] = kept + list(desired.values())
    if document["Statement"]:
        client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(document))
    else:
        client.delete_bucket_policy(Bucket=bucket)


@dataclass(frozen=True)
class Setting:
    """One managed bucket setting: how to read it (normalised), what it should be, how to write it."""

    name: str
    read: Callable[[Any, str], dict | None]
    desired: Callable[[BucketPolicy, str], dict]
    write: Callable[[Any, str, dict], None]
    item: str = ""  # how one member is called in a difference ("rule ", "statement ")


# Public access first: nothing may be public while the rest is being applied.
SETTINGS = (
    Setting(
        "public-access-block",
        _read_public_access_block,
        _desired_public_access_block,
        _write_public_access_block,
    ),
    Setting("encryption", _read_encryption, _desired_encryption, _write_encryption),
    Setting("versioning", _read_versioning, _desired_versioning, _write_versioning),
    Setting("lifecycle", _read_lifecycle, _desired_lifecycle, _write_lifecycle, item="rule "),
    Setting("policy", _read_policy, _desired_policy, _write_policy, item="statement "),
)


# --- plan, apply, report ---------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as compact, key-sorted JSON for the report."""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


@dataclass(frozen=True)
class Drift:
    """One setting: what the bucket has (None: not configured) and what it should have."""

    setting: Setting
    current: dict | None
    desired: dict

    @property
    def changed(self) -> bool:
        return (self.current or {}) != self.desired

    def differences(self) -> list[str]:
        """One line per member that differs: `rule raw-tiering: has ..., should be ...`."""
        current = self.current or {}
        lines = []
        for key in sorted(set(current) | set(self.desired), key=str):
            if current.get(key) == self.desired.get(key):
                continue
            has = _show(current[key]) if key in current else "nothing"
            should = (
                f"should be {_show(self.desired[key])}"
                if key in self.desired
                else "should be removed"
            )
            lines.append(f"{self.setting.item}{key}: has {has}, {should}")
        return lines


@dataclass(frozen=True)
class Plan:
    bucket: str
    region: str
    bucket_exists: bool
    drifts: tuple[Drift, ...]

    @property
    def changes(self) -> list[Drift]:
        return [d for d in self.drifts if d.changed]


def plan_bucket(client, bucket: str, policy: BucketPolicy) -> Plan:
    """Compare the bucket with the desired state; reads only, never writes."""
    region = client.meta.region_name or DEFAULTS["AWS_DEFAULT_REGION"]
    try:
        client.head_bucket(Bucket=bucket)
        exists = True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in MISSING_BUCKET_CODES:
            raise
        exists = False
    drifts = tuple(
        Drift(s, s.read(client, bucket) if exists else None, s.desired(policy, bucket))
        for s in SETTINGS
    )
    return Plan(bucket, region, exists, drifts)


def apply_plan(client, plan: Plan) -> None:
    """Create the bucket if it is missing, then write the settings that differ."""
    if not plan.bucket_exists:
        create: dict[str, Any] = {"Bucket": plan.bucket}
        if plan.region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
            create["CreateBucketConfiguration"] = {"LocationConstraint": plan.region}
        client.create_bucket(**create)
    for drift in plan.changes:
        drift.setting.write(client, plan.bucket, drift.desired)


def report(plan: Plan, *, dry_run: bool) -> list[str]:
    """Human-readable lines: one per setting, then a summary that counts the changes."""
    verb = "would change" if dry_run else "changed"
    lines = []
    if not plan.bucket_exists:
        lines.append(
            f"bucket {plan.bucket} does not exist: "
            + (f"would create it in {plan.region}" if dry_run else f"created it in {plan.region}")
        )
    width = max(len(s.name) for s in SETTINGS)
    for drift in plan.drifts:
        if not drift.changed:
            lines.append(f"  {drift.setting.name:<{width}}  unchanged")
            continue
        absent = " (not configured)" if drift.current is None else ""
        lines.append(f"  {drift.setting.name:<{width}}  {verb}{absent}:")
        lines.extend(f"      {line}" for line in drift.differences())
    n = len(plan.changes)
    noun = "setting" if n == 1 else "settings"
    if dry_run:
        lines.append(f"{n} {noun} would change (dry run: nothing was applied).")
    elif n:
        lines.append(f"{n} {noun} changed.")
    else:
        lines.append(f"All {len(plan.drifts)} settings in sync: nothing changed.")
    return lines


def sync_bucket(
    client, bucket: str, policy: BucketPolicy, *, dry_run: bool, log: Callable[[str], None]
) -> Plan:
    """Plan, apply unless `dry_run`, and log the report line by line. Shared by CLI and job."""
    endpoint = mask_dsn(client.meta.endpoint_url or "")
    log(f"bucket {bucket} at {endpoint} ({'dry run' if dry_run else 'apply'})")
    if not policy.tls_only:
        log(
            f"  note: no {POLICY_SID} statement wanted "
            "(VOLT_BUCKET_TLS_ONLY=0, or a plain-http endpoint it would lock out)"
        )
    plan = plan_bucket(client, bucket, policy)
    if not dry_run:
        apply_plan(client, plan)
    for line in report(plan, dry_run=dry_run):
        log(line)
    return plan


def bucket_name() -> str:
    """S3_BUCKET_NAME (cli.main and the package import have applied .env and defaults)."""
    return os.environ.get("S3_BUCKET_NAME") or DEFAULTS["S3_BUCKET_NAME"]


def s3_client():
    """The boto3 S3 client of the CLI: AWS_ENDPOINT_URL when set, standard retries.

    The attempt count stays boto3's (AWS_MAX_ATTEMPTS, default 3 in standard mode).
    """
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        config=Config(retries={"mode": "standard"}),
    )


def describe_error(exc: Exception) -> str:
    """A one-line error for people: S3's code and message, never credentials."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "request")
        return mask_dsn(
            f"{operation}: {error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
        )
    return mask_dsn(str(exc))
