"""The landing sensor and job: landing CSV files to staging uploads.

`landing_files_sensor` watches `landing/` and starts one `landing_file_job` run per object
version: `run_key` is the key,
ETag and LastModified (a re-upload of the same key, even with identical bytes, is a new
version and runs again; nothing runs twice). Its cursor is a watermark on LastModified plus
the versions seen in a short lookback before it: S3 stamps a multipart upload with the time
it *started*, so a big file can appear after smaller ones with an older LastModified, and a
plain `> watermark` would miss it. At most `MAX_FILES_PER_TICK` runs a tick; the rest wait
for the next one.

`landing_file_job` validates one file (`landing.judge`) and writes
`staging/uploads/{table}/dt={day received}/{stem}-{digest}.parquet` and the refused rows (or
the whole refused file, as one record) to `quarantine/uploads/...`, then moves the CSV to
`landing/processed/{table}/dt={day received}/{stem}-{digest}.csv` (the bucket lifecycle
expires that prefix). The digest is of the object version (key, ETag, LastModified): two
uploads of one name never replace each other's rows. Keys a file stages that another upload
file of the same day staged too are named in the run (a warning and `keys_in_other_uploads`);
both files' rows are kept. A refused file is a successful run: retrying cannot fix it.

An object under `landing/` that is no `landing/{table}/{name}.csv` of a configured table (in
a sub-folder, in an unknown table's folder, a key with a `..` segment, another suffix) is
reported once, by the sensor's log and its run's warning, and that run moves it to
`landing/rejected/dt={day received}/{digest}-{flattened key}` with the reason and the
original key in its S3 metadata (`rejected-reason`, `original-key`). `landing/processed/`,
`landing/rejected/` and empty folder markers are never taken.
"""

# No `from __future__ import annotations`: Dagster reads the op's config/resource annotations.
import datetime as dt
import io
import json
from dataclasses import dataclass, field

import dagster as dg
import pyarrow.parquet as pq
from botocore.exceptions import ClientError
from dagster_aws.s3.sensor import get_objects
from pydantic import Field

from volt_assets.defs.landing import csv_files as landing
from volt_assets.defs.policies import NETWORK_RETRY
from volt_assets.defs.resources import LakeResource
from volt_assets.lib.config.table_config import load_tables
from volt_assets.lib.staging.transform import parquet_bytes
from volt_assets.lib.store.lake_store import LakeStore, content_type_of, explain
from volt_assets.lib.store.layout import (
    LANDING_PROCESSED,
    LANDING_REJECTED,
    landing_refusal,
    landing_table_and_name,
    processed_key,
    rejected_key,
    top_prefix,
    upload_key,
    upload_name,
    uploads_prefix,
)

UTC = dt.UTC
MAX_FILES_PER_TICK = 20
LOOKBACK = dt.timedelta(minutes=10)
LANDING_OP = "process_landing_file"


# --- the landing sensor ----------------------------------------------------------------------
@dataclass(frozen=True)
class LandingObject:
    table: str
    key: str
    etag: str
    last_modified: dt.datetime  # UTC
    refusal: str | None = None  # why it is no landing file (it is moved to landing/rejected/)

    @property
    def version(self) -> str:
        """The identity of one upload of the key: the run key and the cursor's memory."""
        return f"{self.key}@{self.etag.strip(chr(34))}@{self.last_modified.isoformat()}"


@dataclass
class LandingCursor:
    """`watermark`: greatest LastModified taken; `seen`: versions taken within LOOKBACK of it."""

    watermark: dt.datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)  # version -> its LastModified (ISO)

    @classmethod
    def parse(cls, text: str | None) -> "LandingCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(dt.datetime.fromisoformat(data["watermark"]), dict(data["seen"]))

    def dump(self) -> str:
        return json.dumps(
            {"watermark": self.watermark.isoformat(), "seen": self.seen}, sort_keys=True
        )

    @property
    def since(self) -> dt.datetime | None:
        return self.watermark - LOOKBACK if self.watermark else None

    def take(
        self, candidates: list[LandingObject], limit: int
    ) -> tuple[list[LandingObject], "LandingCursor"]:
        """The next `limit` new versions, oldest first, and the cursor once they are requested."""
        since = self.since
        new = sorted(
            (
                o
                for o in candidates
                if (since is None or o.last_modified > since) and o.version not in self.seen
            ),
            key=lambda o: (o.last_modified, o.key),
        )[:limit]
        if not new:
            return [], self
        watermark = max(filter(None, [self.watermark, new[-1].last_modified]))
        seen = {**self.seen, **{o.version: o.last_modified.isoformat() for o in new}}
        keep_after = watermark - LOOKBACK
        seen = {v: t for v, t in seen.items() if dt.datetime.fromisoformat(t) > keep_after}
        return new, LandingCursor(watermark, seen)


def landing_folders(store: LakeStore) -> tuple[list[str], list[dict]]:
    """The folders directly under `landing/` (but the pipeline's own) and the loose objects."""
    folders, loose = [], []
    pages = store.client.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=top_prefix("landing"), Delimiter="/"
    )
    for page in pages:
        folders += [
            p["Prefix"]
            for p in page.get("CommonPrefixes", [])
            if p["Prefix"] not in (LANDING_PROCESSED, LANDING_REJECTED)
        ]
        loose += page.get("Contents", [])
    return folders, loose


def list_landing(store: LakeStore, tables, since: dt.datetime | None) -> list[LandingObject]:
    """Every object under `landing/` modified after `since` (but `processed/`, `rejected/` and
    empty folder markers): the landing files of `tables`, and the others with their refusal."""
    folders, loose = landing_folders(store)
    objects = [o for o in loose if since is None or o["LastModified"] > since]
    for prefix in folders:
        objects += get_objects(
            store.bucket, prefix=prefix, since_last_modified=since, client=store.client
        )
    found = []
    for obj in objects:
        key = obj["Key"]
        if key.endswith("/") and not obj.get("Size"):
            continue  # a folder made in a console: no content to lose
        table, _ = landing_table_and_name(key) or ("", "")
        found.append(
            LandingObject(
                table,
                key,
                obj["ETag"],
                obj["LastModified"].astimezone(UTC),
                landing_refusal(key, tables),
            )
        )
    return found


class LandingFileConfig(dg.Config):
    key: str = Field(description="The landing object, `landing/{table}/{name}.csv`.")
    etag: str = Field(
        default="", description="The version the sensor saw; empty: whatever is there now."
    )


def landing_run_request(obj: LandingObject) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=obj.version,
        run_config={"ops": {LANDING_OP: {"config": {"key": obj.key, "etag": obj.etag}}}},
        tags={
            "volt/landing_key": obj.key,
            "volt/table": obj.table if obj.refusal is None else "",
            **({"volt/landing_rejected": "true"} if obj.refusal else {}),
        },
    )


# --- the job a landing file starts ------------------------------------------------------------
def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def process_landing_object(store: LakeStore, key: str, etag: str = "") -> dict:
    """Validate one landing file, write its staging and quarantine Parquet, move it to processed."""
    tables = load_tables()
    if not key.startswith(top_prefix("landing")) or key.startswith(
        (LANDING_PROCESSED, LANDING_REJECTED)
    ):
        raise dg.Failure(
            f"{key!r} is not an object dropped in landing/ (landing/{{table}}/{{name}}.csv)",
            allow_retries=False,
        )
    client, bucket = store.client, store.bucket
    try:
        obj = client.get_object(Bucket=bucket, Key=key, **({"IfMatch": etag} if etag else {}))
    except ClientError as exc:
        if _code(exc) in ("NoSuchKey", "404"):
            return {"outcome": "gone", "key": key}  # processed by an earlier run of this version
        if _code(exc) in ("PreconditionFailed", "412"):
            return {
                "outcome": "superseded",
                "key": key,
            }  # re-uploaded since: that version has its own run
        raise (explain(exc, bucket) or exc) from None
    refusal = landing_refusal(key, tables)
    if refusal is not None:
        obj["Body"].close()
        return reject_landing_object(store, obj, key, refusal)
    table, filename = landing_table_and_name(key)
    etag = obj["ETag"]
    received_at = obj["LastModified"].astimezone(UTC)
    config = tables[table]
    with obj["Body"] as body:  # checked as it streams: a bigger file is refused at the cap
        judged = landing.judge(config, body, key, received_at)

    day, name = received_at.date(), upload_name(filename, key, etag, received_at)
    written = {}
    for layer, rows in (("staging", judged.staging), ("quarantine", judged.quarantine)):
        if rows is not None and rows.num_rows:
            out_key = upload_key(layer, table, day, name)
            store.put(out_key, parquet_bytes(rows), content_type_of(out_key))
            written[f"{layer}_key"] = out_key
    shared = shared_keys_report(store, config, day, written.get("staging_key"), judged.staging)
    moved_to = processed_key(table, day, name, filename)
    move_version(store, key, etag, moved_to)
    return {
        "outcome": "refused" if judged.file_reasons else "accepted",
        "key": key,
        "table": table,
        "received_day": day.isoformat(),
        "file_reasons": judged.file_reasons,
        **judged.counts,
        **written,
        "keys_in_other_uploads": shared,
        "processed_key": moved_to,
    }


def move_version(store: LakeStore, key: str, etag: str, to: str, metadata=None) -> None:
    """Copy that version of `key` to `to` (with `metadata` replacing the user metadata), then
    delete `key` if it is still that version: a re-upload in between stays for its own run."""
    client, bucket = store.client, store.bucket
    extra = {"Metadata": metadata, "MetadataDirective": "REPLACE"} if metadata else {}
    client.copy_object(
        Bucket=bucket,
        Key=to,
        CopySource={"Bucket": bucket, "Key": key},
        CopySourceIfMatch=etag,
        **extra,
    )
    try:
        client.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
    except ClientError as exc:
        if _code(exc) not in ("PreconditionFailed", "412"):
            raise (explain(exc, bucket) or exc) from None


def _ascii(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode()


def reject_landing_object(store: LakeStore, obj: dict, key: str, refusal: str) -> dict:
    """Move an object that is no landing file to `landing/rejected/`, the reason and the
    original key in its metadata (S3 metadata is ASCII: other characters as escapes)."""
    received_at = obj["LastModified"].astimezone(UTC)
    moved_to = rejected_key(key, received_at.date(), obj["ETag"])
    metadata = {"rejected-reason": _ascii(refusal), "original-key": _ascii(key)}
    move_version(store, key, obj["ETag"], moved_to, metadata)
    return {"outcome": "rejected", "key": key, "reason": refusal, "rejected_key": moved_to}


def shared_keys_report(
    store: LakeStore, config, day: dt.date, own_key: str | None, staged
) -> dict[str, dict]:
    """The other staging upload files of the table and day that hold keys this file staged:
    other key -> {"keys": how many, "sample": up to 20 keys}. Each file keeps its rows as sent
    (the audit of what was uploaded); this is what a reader folding by key must know. Listed
    after this file's own write, so of two files processed at once the later one names both."""
    if own_key is None or staged is None:
        return {}
    key = config.primary_key
    mine = staged.select([key])
    found = {}
    for obj in store.list_objects(uploads_prefix("staging", config.name, day)):
        if obj["Key"] == own_key:
            continue
        theirs = pq.read_table(io.BytesIO(store.get_bytes(obj["Key"])), columns=[key])
        both = mine.join(theirs, keys=key, join_type="inner").sort_by(key)[key]
        if len(both):
            found[obj["Key"]] = {"keys": len(both), "sample": both.slice(0, 20).to_pylist()}
    return found


@dg.op(name=LANDING_OP, out=dg.Out(dg.Nothing), retry_policy=NETWORK_RETRY)
def process_landing_file(
    context: dg.OpExecutionContext, config: LandingFileConfig, lake: LakeResource
):
    """Validate one landing CSV against the table configuration; valid rows to staging/uploads,
    refused rows (or the whole file) to quarantine/uploads; the CSV to landing/processed."""
    store = lake.store()
    summary = process_landing_object(store, config.key, config.etag)
    if summary["outcome"] == "rejected":
        context.log.warning(
            f"{config.key!r} is no landing file: {summary['reason']}; "
            f"moved to {summary['rejected_key']}"
        )
    elif summary["outcome"] in ("gone", "superseded"):
        context.log.info(f"{config.key}: nothing to do ({summary['outcome']})")
    elif summary["file_reasons"]:
        context.log.warning(
            f"{config.key}: whole file refused: {'; '.join(summary['file_reasons'])}"
        )
    else:
        context.log.info(
            f"{config.key}: {summary['staged_rows']} rows staged, "
            f"{summary['quarantined_rows']} quarantined"
        )
    for other, shared in summary.get("keys_in_other_uploads", {}).items():
        context.log.warning(
            f"{config.key}: {shared['keys']} key(s) also staged from another landing file of "
            f"the day, {other} (e.g. {shared['sample'][:5]}): both files' rows are kept; "
            "the latest by the table's cursor is the current one"
        )
    return dg.Output(
        None,
        metadata={
            k: dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v
            for k, v in summary.items()
        },
    )


@dg.job(description="Validate one landing CSV (run config: ops.process_landing_file.config.key).")
def landing_file_job():
    process_landing_file()


@dg.sensor(
    job=landing_file_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Starts landing_file_job once for every new version of `landing/{{table}}/*.csv` "
    f"(at most {MAX_FILES_PER_TICK} a tick); any other object in landing/ is reported and moved "
    "to landing/rejected/.",
)
def landing_files_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    cursor = LandingCursor.parse(context.cursor)
    store = lake.store()
    taken, cursor = cursor.take(
        list_landing(store, load_tables(), cursor.since), MAX_FILES_PER_TICK
    )
    if not taken:
        return dg.SensorResult(skip_reason="no new landing files", cursor=context.cursor)
    for obj in taken:
        if obj.refusal:
            context.log.warning(
                f"{obj.key!r} is no landing file: {obj.refusal}; "
                "its run moves it to landing/rejected/"
            )
    return dg.SensorResult(
        run_requests=[landing_run_request(o) for o in taken], cursor=cursor.dump()
    )
