"""The landing sensor and job: landing CSV files to staging uploads.

`landing_files_sensor` watches `landing/{table}/*.csv` for every table of the table
configuration and starts one `landing_file_job` run per object version: `run_key` is the key,
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
    landing_prefix,
    landing_table_and_name,
    processed_key,
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


def list_landing(store: LakeStore, tables, since: dt.datetime | None) -> list[LandingObject]:
    """The CSV files directly under each table's landing folder, modified after `since`."""
    found = []
    for table in tables:
        prefix = landing_prefix(table)
        for obj in get_objects(
            store.bucket, prefix=prefix, since_last_modified=since, client=store.client
        ):
            name = obj["Key"][len(prefix) :]
            if "/" in name or not name.lower().endswith(".csv"):
                continue  # sub-folders and other files are not landing files
            found.append(
                LandingObject(table, obj["Key"], obj["ETag"], obj["LastModified"].astimezone(UTC))
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
        tags={"volt/landing_key": obj.key, "volt/table": obj.table},
    )


# --- the job a landing file starts ------------------------------------------------------------
def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def process_landing_object(store: LakeStore, key: str, etag: str = "") -> dict:
    """Validate one landing file, write its staging and quarantine Parquet, move it to processed."""
    table, filename = landing_table_and_name(key) or ("", "")
    tables = load_tables()
    if table not in tables:
        raise dg.Failure(
            f"{key!r} is not a landing file `landing/{{table}}/{{name}}.csv` of a configured "
            f"table ({', '.join(tables)})",
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
    etag = obj["ETag"]
    received_at = obj["LastModified"].astimezone(UTC)
    with obj["Body"] as body:
        data = body.read(landing.MAX_BYTES + 1)  # bounded: a bigger file is refused whole
    config = tables[table]
    judged = landing.judge(config, data, key, received_at)

    day, name = received_at.date(), upload_name(filename, key, etag, received_at)
    written = {}
    for layer, rows in (("staging", judged.staging), ("quarantine", judged.quarantine)):
        if rows is not None and rows.num_rows:
            out_key = upload_key(layer, table, day, name)
            store.put(out_key, parquet_bytes(rows), content_type_of(out_key))
            written[f"{layer}_key"] = out_key
    shared = shared_keys_report(store, config, day, written.get("staging_key"), judged.staging)
    moved_to = processed_key(table, day, name, filename)
    client.copy_object(
        Bucket=bucket,
        Key=moved_to,
        CopySource={"Bucket": bucket, "Key": key},
        CopySourceIfMatch=etag,
    )
    try:
        # Only the version just processed: a re-upload in between stays for its own run.
        client.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
    except ClientError as exc:
        if _code(exc) not in ("PreconditionFailed", "412"):
            raise (explain(exc, bucket) or exc) from None
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
    if summary["outcome"] in ("gone", "superseded"):
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
    f"(at most {MAX_FILES_PER_TICK} a tick).",
)
def landing_files_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    cursor = LandingCursor.parse(context.cursor)
    store = lake.store()
    taken, cursor = cursor.take(
        list_landing(store, load_tables(), cursor.since), MAX_FILES_PER_TICK
    )
    if not taken:
        return dg.SensorResult(skip_reason="no new landing files", cursor=context.cursor)
    return dg.SensorResult(
        run_requests=[landing_run_request(o) for o in taken], cursor=cursor.dump()
    )
