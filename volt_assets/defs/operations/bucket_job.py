"""`bucket_policies_job`: the lake bucket brought to its desired policies from the Dagster UI,
the same as `volt-assets bucket apply` (volt_assets/lib/store/bucket_policy.py holds the policies)."""

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource

from volt_assets.lib.store.bucket_policy import (
    BucketPolicy,
    BucketPolicyError,
    bucket_name,
    describe_error,
    sync_bucket,
)


class BucketPoliciesConfig(dg.Config):
    """Run config of `apply_bucket_policies`."""

    dry_run: bool = False


@dg.op(description="Apply the lake bucket's lifecycle, versioning, encryption and access policies.")
def apply_bucket_policies(
    context: dg.OpExecutionContext, config: BucketPoliciesConfig, s3: S3Resource
) -> dg.Output[list[str]]:
    client = s3.get_client()
    bucket = bucket_name()
    try:
        policy = BucketPolicy.from_env(endpoint_url=client.meta.endpoint_url)
        plan = sync_bucket(client, bucket, policy, dry_run=config.dry_run, log=context.log.info)
    except BucketPolicyError as exc:
        raise dg.Failure(description=f"Invalid bucket policy configuration: {exc}") from None
    except (ClientError, BotoCoreError) as exc:
        raise dg.Failure(
            description=f"bucket apply failed on {bucket}: {describe_error(exc)}"
        ) from None
    changed = [d.setting.name for d in plan.changes]
    return dg.Output(
        changed,
        metadata={
            "bucket": bucket,
            "dry_run": config.dry_run,
            "changed_settings": ", ".join(changed) or "none",
        },
    )


@dg.job(
    description="Bring the lake bucket to its desired policies (the same as `volt-assets bucket apply`)."
)
def bucket_policies_job():
    apply_bucket_policies()
