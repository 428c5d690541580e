"""`volt-assets bucket apply`: the command around the bucket's policies (lib/store/bucket_policy.py)."""

import argparse
import sys

from botocore.exceptions import BotoCoreError, ClientError

from volt_assets.lib.store.bucket_policy import (
    BucketPolicy,
    BucketPolicyError,
    bucket_name,
    describe_error,
    s3_client,
    sync_bucket,
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=["apply"], help="apply: bring the bucket to the desired state"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what differs (has vs should be) and change nothing",
    )
    parser.epilog = "Overrides: " + ", ".join(
        [*BucketPolicy.ENV, "VOLT_KMS_KEY_ID", "VOLT_BUCKET_TLS_ONLY"]
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 on success (with --dry-run, whatever differs), 1 on an S3 error, 2 on an invalid override."""
    bucket = bucket_name()
    try:
        client = s3_client()
        policy = BucketPolicy.from_env(endpoint_url=client.meta.endpoint_url)
        sync_bucket(client, bucket, policy, dry_run=args.dry_run, log=print)
    except BucketPolicyError as exc:
        print(f"volt-assets bucket: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(
            f"volt-assets bucket: failed on bucket {bucket}: {describe_error(exc)}", file=sys.stderr
        )
        return 1
    return 0
