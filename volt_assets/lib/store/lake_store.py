"""The lake bucket as folders of files with a manifest: paginated listings, uploads, and the
write order that keeps a partition whole for readers.

A partition folder is complete when its `_manifest.json` lists its files. Writers put the
files first, then the manifest, then remove files the manifest no longer lists. File names
are deterministic (`part-00000.parquet`), so a re-run overwrites objects in place and a plain
`*.parquet` glob sees at most one version of each part.

The lake bucket is versioned, and the manifest records the S3 version id of every file it
lists (`{"bytes": n, "version_id": "..."}`); readers that follow the manifest GET exactly
that version (`read_listed`, `download(..., version_id=)`). So a run killed between a part's
PUT and the manifest's PUT leaves the old manifest naming the old version, which a reader
still gets whole: never the new file under the old manifest. The old version stays readable
until the bucket's noncurrent-version expiry (`volt-assets bucket apply`) removes it. Without
a version id (an unversioned bucket, a manifest written before ids were recorded) a reader
gets the current object. Removing files (`delete`) deletes keys, not versions: on a versioned
bucket that adds a delete marker and leaves every listed version of other files untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from botocore.exceptions import (
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import ProtocolError

from volt_assets.lib.store.layout import MANIFEST, day_of_prefix, listed_version, s3_uri
from volt_assets.lib.store.upload_copies import LOCAL_COPIES
from volt_assets.lib.store.written_objects import KNOWN_OBJECTS

# Files readers download whole (raw's parts, for staging): this process keeps a local copy of
# each it uploads, for a step that reads it back (only of a known version)
DOWNLOADED = (".jsonl.gz", ".jsonl")
MULTIPART_BYTES = 64 * 1024 * 1024  # local files this big go up in parts (boto3's upload_file)
COPY_CHUNK = 1 << 20
# A GET's body cut mid-stream: botocore retried the request, not the read.
STREAM_ERRORS = (ResponseStreamingError, IncompleteReadError, ReadTimeoutError, ProtocolError)

# botocore sends every PUT's headers first and waits for S3's "100 Continue" before the body:
# a round trip more per PUT, for a check (is the request refused?) worth it only for big
# bodies. Smaller bodies go straight, as the AWS SDK for Go does below its 2 MB threshold.
CONTINUE_BYTES = 2 << 20

# A conditional PUT that lost: the condition failed, or another conditional write was under way
CONFLICT_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")

# Errors no retry can fix: say what to fix and stop.
FATAL_CODES = {
    "NoSuchBucket": "the bucket {bucket!r} does not exist at the configured endpoint: create it "
    "(`volt-assets stack up` does for the embedded stack) or set S3_BUCKET_NAME",
    "InvalidAccessKeyId": "S3 does not know the access key in AWS_ACCESS_KEY_ID: check the credentials",
    "SignatureDoesNotMatch": "S3 refused the signature: AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID",
    "AccessDenied": "S3 denied access to bucket {bucket!r}: the credentials lack the pipeline's IAM "
    "policy (infrastructure/iam-policy-pipeline.json)",
    "InvalidBucketName": "S3_BUCKET_NAME {bucket!r} is not a valid bucket name",
}


@dataclass
class FolderWrite:
    """One partition folder to write: files (bytes or a local file) and its manifest."""

    day: dt.date
    prefix: str
    files: dict[str, bytes | Path]
    manifest: dict
    replace: bool = True
    rows: int = 0  # rows this write adds to the asset's output (0 for side folders)
    primary: bool = True  # the asset's own folder (False: quarantine, a late-row merge, ...)
    cursor_range: tuple[str | None, str | None] = (None, None)
    remove: list[str] = field(default_factory=list)  # superseded files, deleted after the manifest
    metadata: dict = field(default_factory=dict)  # more figures for the day's materialisation page
    unchanged: bool = (
        False  # nothing to write (the folder stays as it is); still accounted for the day
    )


def send_small_bodies_at_once(client) -> None:
    """Make `client` send bodies under CONTINUE_BYTES without `Expect: 100-continue`."""
    client.meta.events.register("before-send.s3", _no_continue_for_small_bodies)


def _no_continue_for_small_bodies(request, **_) -> None:
    length = request.headers.get("Content-Length")
    if length is not None and int(length) < CONTINUE_BYTES:
        request.headers.pop("Expect", None)  # not part of the signature (SigV4 skips it)


class WriteConflict(Exception):
    """A conditional PUT lost: the object changed (or appeared) since the writer read it."""


class LakeError(dg.Failure):
    """A lake operation failed for a reason a person must fix (no secrets in the text).

    A `dg.Failure` that bypasses the assets' retry policy: retrying cannot fix it, so the run
    fails at once instead of after the policy's backoff."""

    def __init__(self, description: str):
        super().__init__(description=description, allow_retries=False)


def explain(exc: ClientError, bucket: str, key: str | None = None) -> LakeError | None:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    if code in FATAL_CODES:
        return LakeError(FATAL_CODES[code].format(bucket=bucket) + f" (S3 error {code})")
    if code == "InvalidObjectState" and key:
        return archived(bucket, key, error.get("StorageClass"))
    return None


def archived(bucket: str, key: str, storage_class: str | None) -> LakeError:
    """An object moved to an archive storage class (the bucket's lifecycle rule tiers old raw
    objects to GLACIER): what it is, and how to get it back."""
    return LakeError(
        f"s3://{bucket}/{key} is archived in storage class {storage_class or 'GLACIER'} (the "
        "bucket's lifecycle rule moves old raw objects there) and cannot be read until it is "
        f"restored: `aws s3api restore-object --bucket {bucket} --key {key} --restore-request "
        "'{\"Days\": 7}'`, then run again once the restore has finished (hours for GLACIER). "
        "Only an audit or a re-run of that old day reads it; the daily runs do not."
    )


@dataclass
class LakeStore:
    client: Any
    bucket: str
    # key -> the S3 version id of this store's last PUT of it: a manifest that lists a file
    # this store uploaded earlier (raw's tombstones beside the day's parts) gets its id here.
    uploaded: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def _call(self, method: str, **kwargs):
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            raise (explain(exc, self.bucket, kwargs.get("Key")) or exc) from None

    # --- reading -------------------------------------------------------------------------
    def list_objects(
        self, prefix: str, start_after: str | None = None, stop_before: str | None = None
    ) -> list[dict]:
        """Every object under a prefix (paginated: S3 answers 1,000 keys a page), in key order.

        `start_after` / `stop_before` bound the keys (S3 lists keys in byte order, and
        `dt=YYYY-MM-DD` folders sort by day): a run lists its days' folders in one pass instead
        of one request per day."""
        out: list[dict] = []
        token = None
        while True:
            kwargs = {"Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            elif start_after:
                kwargs["StartAfter"] = start_after
            page = self._call("list_objects_v2", **kwargs)
            contents = page.get("Contents", [])
            if stop_before is not None and contents and contents[-1]["Key"] >= stop_before:
                return out + [o for o in contents if o["Key"] < stop_before]
            out.extend(contents)
            if not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]

    def list_days_objects(self, layer: str, first: dt.date, last: dt.date) -> dict[str, int]:
        """Key -> size of every object in the `dt=` folders of days [first, last] under `layer`."""
        return {o["Key"]: o["Size"] for o in self.days_objects(layer, first, last)}

    def days_objects(self, layer: str, first: dt.date, last: dt.date) -> list[dict]:
        """The listing entries (Key, Size, ETag, ...) of the `dt=` folders of [first, last]."""
        # "dt=D" sorts just before every key of "dt=D/", and "dt=D0" just after ("0" follows "/")
        objects = self.list_objects(
            layer,
            start_after=f"{layer}dt={first.isoformat()}",
            stop_before=f"{layer}dt={last.isoformat()}0",
        )

        def in_range(key: str) -> bool:  # not `dt=2026-01-03.tmp/` or other look-alikes
            folder, _, rest = key[len(layer) :].partition("/")
            day = day_of_prefix(folder)
            return (
                bool(rest)
                and day is not None
                and first <= day <= last
                and folder == f"dt={day.isoformat()}"
            )

        return [o for o in objects if in_range(o["Key"])]

    def list_days(self, prefix: str) -> list[dt.date]:
        """The `dt=` folders directly under a layer prefix, oldest first."""
        days: list[dt.date] = []
        token = None
        while True:
            kwargs = {"Prefix": prefix, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list_objects_v2", **kwargs)
            days.extend(
                d for p in page.get("CommonPrefixes", []) if (d := day_of_prefix(p["Prefix"]))
            )
            if not page.get("IsTruncated"):
                return sorted(days)
            token = page["NextContinuationToken"]

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """An object's current body and ETag (what a conditional PUT names), or None if absent."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise (explain(exc, self.bucket, key) or exc) from None
        body = answer["Body"].read()
        KNOWN_OBJECTS.keep(self.bucket, key, answer["ETag"], body)
        return body, answer["ETag"]

    def last_known(self, key: str) -> tuple[str, bytes] | None:
        """The ETag and body of `key` as this process last wrote or read it (store/written_objects.py),
        current or not."""
        return KNOWN_OBJECTS.get(self.bucket, key)

    def known(self, key: str, etag: str | None) -> bytes | None:
        """The body of `key` this process last wrote or read, if it is the version `etag` (as a
        listing shows it); None: read it from S3."""
        known = self.last_known(key)
        return known[1] if known is not None and etag is not None and known[0] == etag else None

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        """An object's body: the version `version_id` when given, else the current one."""
        return self._call("get_object", Key=key, **_version(version_id))["Body"].read()

    def read_listed(self, prefix: str, manifest: dict | None, name: str) -> bytes:
        """File `name` of folder `prefix` as its manifest lists it (the recorded version)."""
        return self.get_bytes(prefix + name, listed_version(manifest, name))

    def download(
        self, key: str, path: Path, attempts: int = 3, version_id: str | None = None
    ) -> Path:
        """Stream an object (the version `version_id` when given) to a local file (one GET; a
        connection cut mid-body starts over), or move this process's copy of that version
        there (`store/upload_copies.py`)."""
        if version_id and LOCAL_COPIES.take(self.bucket, key, version_id, path):
            return path
        for attempt in range(1, attempts + 1):
            body = self._call("get_object", Key=key, **_version(version_id))["Body"]
            try:
                with open(path, "wb") as out:
                    shutil.copyfileobj(body, out, COPY_CHUNK)
                return path
            except STREAM_ERRORS:
                if attempt == attempts:
                    raise
            finally:
                body.close()
        return path

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise (explain(exc, self.bucket) or exc) from None

    def versioned(self) -> bool | None:
        """Whether the bucket keeps object versions (None: S3 would not say, e.g. no permission)."""
        try:
            return self.client.get_bucket_versioning(Bucket=self.bucket).get("Status") == "Enabled"
        except ClientError:
            return None

    def read_manifest(self, prefix: str, etag: str | None = None) -> dict | None:
        """The manifest of a partition folder, or None when the folder was never completed.
        `etag`: the manifest's in a listing, whose version this process may hold already."""
        if (body := self.known(prefix + MANIFEST, etag)) is not None:
            return json.loads(body)
        try:
            return json.loads(self.get_bytes(prefix + MANIFEST))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def uri(self, key: str) -> str:
        return s3_uri(self.bucket, key)

    # --- writing -------------------------------------------------------------------------
    def put(
        self, key: str, body: bytes | Path, content_type: str = "application/octet-stream"
    ) -> tuple[int, str | None]:
        """Upload bytes or a local file (multipart for big files); returns the size and the
        version id S3 gave the new object (None on an unversioned bucket)."""
        try:
            if isinstance(body, Path):
                size = body.stat().st_size
                if size >= MULTIPART_BYTES:
                    self.client.upload_file(
                        str(body), self.bucket, key, ExtraArgs={"ContentType": content_type}
                    )
                    # upload_file does not say which version it made: the object's current one
                    # (a multipart upload's key has a unique name: no other writer replaces it)
                    answer = self.client.head_object(Bucket=self.bucket, Key=key)
                else:
                    # one PUT straight from the file: s3transfer's threads and futures cost more
                    # than the upload for the few-megabyte parts of a normal day
                    with open(body, "rb") as f:
                        answer = self.client.put_object(
                            Bucket=self.bucket, Key=key, Body=f, ContentType=content_type
                        )
            else:
                size = len(body)
                answer = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentType=content_type
                )
        except ClientError as exc:
            raise (explain(exc, self.bucket) or exc) from None
        if key.endswith(MANIFEST) and isinstance(body, bytes):  # a later step reads it
            KNOWN_OBJECTS.keep(self.bucket, key, answer["ETag"], body)
        version_id = answer.get("VersionId")
        if version_id in (None, "null"):  # "null": a bucket whose versioning is suspended
            self.uploaded.pop(key, None)
            return size, None
        self.uploaded[key] = version_id
        if key.endswith(DOWNLOADED):
            LOCAL_COPIES.keep(self.bucket, key, version_id, body)
        return size, version_id

    def put_if(self, key: str, body: bytes, content_type: str, etag: str | None) -> str:
        """PUT only over the version read (`etag`), or only where there is none (None): S3's
        conditional writes, so two writers that read the same version cannot both replace it.
        Returns the new ETag; raises WriteConflict when another writer came first. An endpoint
        without conditional writes (501) gets a plain PUT."""
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        args = {"Key": key, "Body": body, "ContentType": content_type}
        try:
            new_etag = self.client.put_object(Bucket=self.bucket, **args, **condition)["ETag"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in CONFLICT_CODES:
                raise WriteConflict(key) from None
            if code not in ("NotImplemented", "501"):
                raise (explain(exc, self.bucket) or exc) from None
            new_etag = self._call("put_object", **args)["ETag"]
        KNOWN_OBJECTS.keep(self.bucket, key, new_etag, body)
        return new_etag

    def write_folder(
        self,
        prefix: str,
        files: dict[str, bytes | Path],
        manifest: dict,
        replace: bool = True,
        remove: list[str] | tuple[str, ...] = (),
        existing: set[str] | None = None,
    ) -> int:
        """Write a partition folder: files, then the manifest, then (replace) remove the rest.

        With `replace=False` the files already in the folder stay (raw only grows) and the
        manifest passed in must list them as well; `remove` names files the new manifest no
        longer lists, deleted once it is written. `existing`: the folder's keys listed before
        the write, when the caller listed a run's folders at once (else the folder is listed
        here). Returns the bytes uploaded.
        """
        written = 0
        versions: dict[str, str] = {}
        for name, body in files.items():
            size, version_id = self.put(prefix + name, body, content_type_of(name))
            written += size
            if version_id is not None:
                versions[name] = version_id
        for name, info in manifest.get(
            "files", {}
        ).items():  # listed without an id, uploaded earlier by this store
            if (
                name not in files
                and "version_id" not in info
                and (uploaded := self.uploaded.get(prefix + name))
            ):
                versions[name] = uploaded
        manifest = folder_manifest(files, manifest, versions)
        listed = manifest["files"]
        body = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        written += self.put(prefix + MANIFEST, body, "application/json")[0]
        if replace:
            keep = {prefix + MANIFEST} | {prefix + n for n in listed}
            before = (
                existing if existing is not None else {o["Key"] for o in self.list_objects(prefix)}
            )
            stale = sorted(k for k in before if k.startswith(prefix) and k not in keep)
            self.delete(stale)
        elif remove:
            self.delete([prefix + n for n in remove if n not in listed])
        return written

    def delete(self, keys: list[str]) -> None:
        """Delete keys (not versions): on a versioned bucket each gets a delete marker, and the
        versions a manifest lists stay readable until the noncurrent-version expiry."""
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys a call
            chunk = keys[start : start + 1000]
            self._call(
                "delete_objects", Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )


def folder_manifest(
    files: dict[str, bytes | Path], manifest: dict, versions: dict[str, str] | None = None
) -> dict:
    """The manifest as `write_folder` writes it: `files` listed with their sizes beside the
    files the manifest already lists, each with the S3 version id `versions` gives it (the
    one place that rule lives). Without an id in `versions`, a file the manifest already
    lists keeps the id it has; an uploaded file gets none (an unversioned bucket)."""
    versions = versions or {}
    listed = dict(manifest.get("files", {}))
    for name, body in files.items():
        listed[name] = {"bytes": body.stat().st_size if isinstance(body, Path) else len(body)}
    for name, version_id in versions.items():
        if name in listed:
            listed[name] = {**listed[name], "version_id": version_id}
    return {**manifest, "files": dict(sorted(listed.items()))}


def _version(version_id: str | None) -> dict:
    return {"VersionId": version_id} if version_id else {}


def content_type_of(name: str) -> str:
    if name.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".jsonl.gz"):
        return "application/gzip"
    if name.endswith(".jsonl"):
        return "application/x-ndjson"
    return "application/octet-stream"
