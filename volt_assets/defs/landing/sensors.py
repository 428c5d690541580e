"""Sensors: landing files to staging uploads, and an alert on every failed run.

`landing_files_sensor` watches `landing/{table}/*.csv` for every table of the table
configuration and starts one `landing_file_job` run per object version: `run_key` is the key,
ETag and LastModified (a re-upload of the same key, even with identical bytes, is a new
version and runs again; nothing runs twice). Its cursor is a watermark on LastModified plus
the versions seen in a short lookback before it: S3 stamps a multipart upload with the time
it *started*, so a big file can appear after smaller ones with an older LastModified, and a
plain `> watermark` would miss it. At most `MAX_FILES_PER_TICK` runs a tick; the rest wait
for the next one.

`landing_file_job` validates one file (`landing.judge`) and writes
`staging/uploads/{table}/dt={day received}/{stem}.parquet` and the refused rows (or the whole
refused file, as one record) to `quarantine/uploads/...`, then moves the CSV to
`landing/processed/{table}/dt={day received}/` (the bucket lifecycle expires that prefix).
A refused file is a successful run: retrying cannot fix it.

`run_failure_alert` logs every failed run of the code location and, when
VOLT_ALERT_WEBHOOK_URL is set, POSTs it as JSON; a webhook that is down never fails the sensor.
"""

# No `from __future__ import annotations`: Dagster reads the op's config/resource annotations.
import datetime as dt
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import dagster as dg
from botocore.exceptions import ClientError
from dagster_aws.s3.sensor import get_objects
from pydantic import Field

from volt_assets.defs.policies import NETWORK_RETRY
from volt_assets.defs.landing import csv_files as landing
from volt_assets.lib.layout import landing_prefix, upload_key
from volt_assets.lib.transform import parquet_bytes
from volt_assets.lib.store import LakeStore, content_type_of, explain
from volt_assets.defs.resources import LakeResource
from volt_assets.settings import mask_dsn
from volt_assets.lib.table_config import load_tables

UTC = dt.timezone.utc
MAX_FILES_PER_TICK = 20
LOOKBACK = dt.timedelta(minutes=10)
LANDING_OP = "process_landing_file"
PROCESSED = "landing/processed"  # expired by the bucket lifecycle (volt_assets/bucket.py)

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
WEBHOOK_TIMEOUT_SECONDS = 5
SECRET_VARIABLES = ("POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "VOLT_API_TOKEN")
MAX_ERROR_CHARS = 500


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
        return json.dumps({"watermark": self.watermark.isoformat(), "seen": self.seen}, sort_keys=True)

    @property
    def since(self) -> dt.datetime | None:
        return self.watermark - LOOKBACK if self.watermark else None

    def take(self, candidates: list[LandingObject], limit: int) -> tuple[list[LandingObject], "LandingCursor"]:
        """The next `limit` new versions, oldest first, and the cursor once they are requested."""
        since = self.since
        new = sorted(
            (o for o in candidates if (since is None or o.last_modified > since) and o.version not in self.seen),
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
        for obj in get_objects(store.bucket, prefix=prefix, since_last_modified=since, client=store.client):
            name = obj["Key"][len(prefix):]
            if "/" in name or not name.lower().endswith(".csv"):
                continue  # sub-folders and other files are not landing files
            found.append(LandingObject(table, obj["Key"], obj["ETag"], obj["LastModified"].astimezone(UTC)))
    return found


class LandingFileConfig(dg.Config):
    key: str = Field(description="The landing object, `landing/{table}/{name}.csv`.")
    etag: str = Field(default="", description="The version the sensor saw; empty: whatever is there now.")


def landing_run_request(obj: LandingObject) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=obj.version,
        run_config={"ops": {LANDING_OP: {"config": {"key": obj.key, "etag": obj.etag}}}},
        tags={"volt/landing_key": obj.key, "volt/table": obj.table},
    )


# --- the job a landing file starts ------------------------------------------------------------
def processed_key(table: str, day: dt.date, filename: str) -> str:
    return f"{PROCESSED}/{table}/dt={day.isoformat()}/{filename}"


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def process_landing_object(store: LakeStore, key: str, etag: str = "") -> dict:
    """Validate one landing file, write its staging and quarantine Parquet, move it to processed."""
    table, _, filename = key.removeprefix("landing/").partition("/")
    tables = load_tables()
    if not key.startswith("landing/") or table not in tables or "/" in filename or not filename:
        raise dg.Failure(f"{key!r} is not a landing file `landing/{{table}}/{{name}}.csv` of a configured "
                         f"table ({', '.join(tables)})", allow_retries=False)
    client, bucket = store.client, store.bucket
    try:
        obj = client.get_object(Bucket=bucket, Key=key, **({"IfMatch": etag} if etag else {}))
    except ClientError as exc:
        if _code(exc) in ("NoSuchKey", "404"):
            return {"outcome": "gone", "key": key}  # processed by an earlier run of this version
        if _code(exc) in ("PreconditionFailed", "412"):
            return {"outcome": "superseded", "key": key}  # re-uploaded since: that version has its own run
        raise (explain(exc, bucket) or exc) from None
    etag = obj["ETag"]
    received_at = obj["LastModified"].astimezone(UTC)
    with obj["Body"] as body:
        data = body.read(landing.MAX_BYTES + 1)  # bounded: a bigger file is refused whole
    judged = landing.judge(tables[table], data, key, received_at)

    day, stem = received_at.date(), PurePosixPath(filename).stem
    written = {}
    for layer, rows in (("staging", judged.staging), ("quarantine", judged.quarantine)):
        out_key = upload_key(layer, table, day, stem)
        if rows is not None and rows.num_rows:
            store.put(out_key, parquet_bytes(rows), content_type_of(out_key))
            written[f"{layer}_key"] = out_key
        else:
            store.delete([out_key])  # an earlier upload of the same name may have left one
    moved_to = processed_key(table, day, filename)
    client.copy_object(Bucket=bucket, Key=moved_to, CopySource={"Bucket": bucket, "Key": key}, CopySourceIfMatch=etag)
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
        "processed_key": moved_to,
    }


@dg.op(name=LANDING_OP, out=dg.Out(dg.Nothing), retry_policy=NETWORK_RETRY)
def process_landing_file(context: dg.OpExecutionContext, config: LandingFileConfig, lake: LakeResource):
    """Validate one landing CSV against the table configuration; valid rows to staging/uploads,
    refused rows (or the whole file) to quarantine/uploads; the CSV to landing/processed."""
    store = lake.store()
    summary = process_landing_object(store, config.key, config.etag)
    if summary["outcome"] in ("gone", "superseded"):
        context.log.info(f"{config.key}: nothing to do ({summary['outcome']})")
    elif summary["file_reasons"]:
        context.log.warning(f"{config.key}: whole file refused: {'; '.join(summary['file_reasons'])}")
    else:
        context.log.info(f"{config.key}: {summary['staged_rows']} rows staged, "
                         f"{summary['quarantined_rows']} quarantined")
    return dg.Output(None, metadata={k: dg.MetadataValue.json(v) if isinstance(v, list) else v
                                     for k, v in summary.items()})


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
    taken, cursor = cursor.take(list_landing(store, load_tables(), cursor.since), MAX_FILES_PER_TICK)
    if not taken:
        return dg.SensorResult(skip_reason="no new landing files", cursor=context.cursor)
    return dg.SensorResult(run_requests=[landing_run_request(o) for o in taken], cursor=cursor.dump())


# --- alerts on failed runs --------------------------------------------------------------------
def scrub(text: str) -> str:
    """`text` without passwords: DSN passwords and the values of the secret variables masked."""
    text = mask_dsn(text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:  # a one-letter value would mask every such letter
            text = text.replace(value, "***")
    return text


def error_summary(error) -> str:
    """Dagster's wrapper line plus the root cause (`RuntimeError: ...`), which says what broke."""
    root = error
    while getattr(root, "cause", None) is not None:
        root = root.cause
    top = error.message.strip()
    return top if root is error else f"{top} caused by {root.message.strip()}"


def failure_alert(context: dg.RunFailureSensorContext) -> dict:
    """The alert of a failed run: what, where and a link; no run config, no secrets."""
    run = context.dagster_run
    step_events = context.get_step_failure_events()
    steps = [e.step_key for e in step_events]
    errors = [error_summary(e.event_specific_data.error) for e in step_events
              if e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)]
    error = errors[0] if errors else (context.failure_event.message or "run failed")
    error = scrub(error.strip())
    if len(error) > MAX_ERROR_CHARS:
        error = error[:MAX_ERROR_CHARS] + "…"
    base = (os.environ.get("VOLT_DAGSTER_URL") or DEFAULT_DAGSTER_URL).rstrip("/")
    link = f"{base}/runs/{run.run_id}"
    steps_text = ", ".join(steps) or "no step"
    return {
        "event": "dagster_run_failure",
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "failed_steps": steps,
        "error": error,
        "url": link,
        "text": f"Dagster run {run.run_id} of {run.job_name} failed ({steps_text}): {error} {link}",
    }


def post_alert(url: str, alert: dict) -> str | None:
    """POST the alert as JSON; the reason it failed, or None. Never raises, never echoes the URL
    (webhook URLs often carry their own secret)."""
    if not url.lower().startswith(("http://", "https://")):
        return "VOLT_ALERT_WEBHOOK_URL is not an http(s) URL"
    request = urllib.request.Request(
        url, data=json.dumps(alert).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "volt-assets-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        return f"the webhook answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the webhook is unreachable ({type(reason).__name__})"
    return None


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run and POSTs it to VOLT_ALERT_WEBHOOK_URL when set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext):
    alert = failure_alert(context)
    context.log.error(alert["text"])
    url = os.environ.get("VOLT_ALERT_WEBHOOK_URL", "").strip()
    if url and (problem := post_alert(url, alert)):
        context.log.warning(f"alert of run {alert['run_id']} not delivered: {problem}")
