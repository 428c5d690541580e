"""`volt-assets presign COMPONENT_ID [--hours H]`: a presigned GET URL of a component's picture.

`volt-assets presign --component-id ID --expiration H` is the same call as the Volt app's
Node.js route spawns its presign script: the JSON answer alone on stdout, exit 0 with a URL.

The picture of a component is the object under `images/components/{id}/` that is not a
`thumb_` thumbnail (the newest, should a folder ever hold several). URLs are SigV4, signed
by boto3 for the endpoint of AWS_ENDPOINT_URL (AWS when unset) with the credentials boto3
finds; they are valid 1 to 168 hours (SigV4's limit is 7 days). The answer is the README's
JSON, shared with `volt-assets serve`:
`{"success": true, "data": {"componentId", "imageUrl", "expiresAt", "expiresInHours"}}`
(`componentId` a string, `"123"`, as the app passes it), or `{"success": false, "error": "..."}`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from volt_assets.defs.images.upload import THUMB_PREFIX, component_prefix
from volt_assets.settings import stack_down_hint

DEFAULT_HOURS = 24
MAX_HOURS = 168
MAX_COMPONENT_ID = 2**63 - 1  # bigint


class PresignError(Exception):
    """An answer that is not a URL: `status` is its HTTP status, the message is safe to show."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_component_id(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", text.strip()) or not 0 < int(text) <= MAX_COMPONENT_ID:
        raise PresignError(400, "componentId must be a positive integer")
    return int(text)


def parse_hours(text: str | None) -> int:
    if text is None:
        return DEFAULT_HOURS
    if not re.fullmatch(r"[0-9]{1,4}", text.strip()) or not 1 <= int(text) <= MAX_HOURS:
        raise PresignError(400, f"expirationHours must be a whole number from 1 to {MAX_HOURS}")
    return int(text)


def s3_client() -> Any:
    """A boto3 client for presigning: SigV4, the configured endpoint (path-style when one is set)."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "virtual"},
        connect_timeout=5,
        read_timeout=10,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_DEFAULT_REGION") or None,
        config=config,
    )


@dataclass
class Presigner:
    """Finds a component's picture in the lake bucket and signs a GET URL for it."""

    client: Any
    bucket: str

    @classmethod
    def from_env(cls) -> Presigner:
        return cls(s3_client(), os.environ["S3_BUCKET_NAME"])

    def picture_key(self, component_id: int) -> str | None:
        prefix = component_prefix(component_id)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            pictures = [
                o
                for page in pages
                for o in page.get("Contents", [])
                if "/" not in o["Key"][len(prefix) :]
                and not o["Key"][len(prefix) :].startswith(THUMB_PREFIX)
            ]
        except (BotoCoreError, ClientError) as exc:
            code = (
                exc.response.get("Error", {}).get("Code", "")
                if isinstance(exc, ClientError)
                else ""
            )
            # The S3 error code only: never a URL or credential.
            down = stack_down_hint(endpoint_url=self.client.meta.endpoint_url)
            raise PresignError(
                503,
                f"the picture store is unavailable ({code or type(exc).__name__})"
                + (f": {down}" if down else ""),
            ) from None
        if not pictures:
            return None
        return max(pictures, key=lambda o: (o["LastModified"], o["Key"]))["Key"]

    def answer(self, component_id: int, hours: int, now: dt.datetime | None = None) -> dict:
        """The documented success answer; `PresignError(404)` for a component without a picture."""
        key = self.picture_key(component_id)
        if key is None:
            raise PresignError(404, f"component {component_id} has no picture")
        now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=hours * 3600
        )
        expires = now + dt.timedelta(hours=hours)
        return {
            "success": True,
            "data": {
                "componentId": str(component_id),  # a string, as the Node.js app has it
                "imageUrl": url,
                "expiresAt": expires.isoformat().replace("+00:00", "Z"),
                "expiresInHours": hours,
            },
        }


def error_answer(message: str) -> dict:
    return {"success": False, "error": message}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "component_id",
        metavar="COMPONENT_ID",
        nargs="?",
        help="the component's id (a positive integer)",
    )
    parser.add_argument(
        "--component-id",
        dest="component_id_option",
        metavar="ID",
        help="the component's id, as the Volt app's route passes it",
    )
    parser.add_argument(
        "--hours",
        "--expiration",
        dest="hours",
        default=str(DEFAULT_HOURS),
        help=f"how long the URL is valid, 1 to {MAX_HOURS} hours "
        f"(default {DEFAULT_HOURS}); --expiration is the Volt app's name for it",
    )
    parser.epilog = (
        "Prints the JSON answer alone; exit 0 with a URL, 2 for a bad argument, 1 otherwise."
    )


def component_id_argument(args: argparse.Namespace) -> str:
    """COMPONENT_ID or --component-id: exactly one of them (or both the same)."""
    given = {v for v in (args.component_id, args.component_id_option) if v is not None}
    if len(given) != 1:
        raise PresignError(400, "give the component's id once: COMPONENT_ID or --component-id ID")
    return given.pop()


def run(args: argparse.Namespace) -> int:
    try:
        component_id = parse_component_id(component_id_argument(args))
        hours = parse_hours(args.hours)
        answer = Presigner.from_env().answer(component_id, hours)
    except PresignError as exc:
        print(json.dumps(error_answer(str(exc))))
        return 2 if exc.status == 400 else 1
    print(json.dumps(answer))
    return 0
