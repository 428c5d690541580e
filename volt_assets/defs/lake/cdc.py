"""`cdc_capture_job`: the replication slot of the `sync: cdc` tables drained into raw (the engine
is lib/capture/cdc), then raw D of each cdc table reported materialised once the capture has
read past D+1 00:00 UTC: every drain emits a heartbeat, so an idle source closes its days too.

`cdc_capture_sensor` starts the job every minute while no run of it is in flight. A job rather
than the sensor's own tick: a drain uploads to S3 and may take minutes (a tick has a 60-second
limit), and a run keeps its logs and failures where the UI shows them. Both exist only when
`tables.yaml` has a cdc table, so a location without one is unchanged.
"""

# No `from __future__ import annotations`: Dagster reads the op's resource annotations.
import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
from psycopg2.extensions import make_dsn

from volt_assets.defs.resources import LakeResource, PostgresResource
from volt_assets.lib.capture.cdc.capture import CdcCapture, DrainResult
from volt_assets.lib.capture.cdc.source_check import SourceNotReady
from volt_assets.lib.capture.cdc.stream import CaptureError
from volt_assets.lib.config.partitions import first_day
from volt_assets.lib.config.table_config import TableConfig, load_tables
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import layer_prefix, partition_prefix

CDC_JOB = "cdc_capture_job"
# A commit's timestamp is taken just before its WAL record: a heartbeat this far past
# midnight is past every commit stamped before midnight.
CLOSE_MARGIN = dt.timedelta(seconds=1)
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def cdc_tables() -> list[TableConfig]:
    return [t for t in load_tables().values() if t.cdc]


def last_closed_day(opening: dt.date, heartbeat_at: str | None) -> dt.date | None:
    """The last day the capture has read past: D is closed once a heartbeat emitted after
    D+1 00:00 UTC (and the margin) has been read."""
    if heartbeat_at is None:
        return None
    read_past = dt.datetime.fromisoformat(heartbeat_at) - CLOSE_MARGIN
    last = read_past.date() - dt.timedelta(days=1)
    return last if last >= opening else None


def source_dsn(source: PostgresResource) -> str:
    """The source's DSN for the capture's own connections (the password never leaves it)."""
    return make_dsn(
        host=source.host,
        port=source.port,
        dbname=source.dbname,
        user=source.user,
        password=source.password,
        application_name="volt_assets_cdc",
        connect_timeout=10,
    )


def closed_materializations(
    store: LakeStore, table: str, days: list[dt.date], reported: set[str]
) -> list[dg.AssetMaterialization]:
    """Raw D of `table` for each closed day not reported yet: what the day holds."""
    with_folders = set(store.list_days(layer_prefix("raw", table)))
    events = []
    for day in days:
        if day.isoformat() in reported:
            continue
        manifest = (
            store.read_manifest(partition_prefix("raw", table, day))
            if day in with_folders
            else None
        )
        events.append(
            dg.AssetMaterialization(
                asset_key=dg.AssetKey(["raw", table]),
                partition=day.isoformat(),
                description="closed by the change capture: every commit of the day is in raw",
                metadata={
                    "sync": "cdc",
                    "dagster/row_count": dg.MetadataValue.int((manifest or {}).get("row_count", 0)),
                    "through": dg.MetadataValue.json(
                        ((manifest or {}).get("cdc") or {}).get("through")
                    ),
                },
            )
        )
    return events


def report(context, store: LakeStore, tables: list[TableConfig], result: DrainResult) -> None:
    opening = first_day()
    last = last_closed_day(opening, result.heartbeat_at)
    if last is None:
        return
    days = [opening + dt.timedelta(days=i) for i in range((last - opening).days + 1)]
    for t in tables:
        reported = context.instance.get_materialized_partitions(dg.AssetKey(["raw", t.name]))
        for event in closed_materializations(store, t.name, days, set(reported)):
            context.log_event(event)


@dg.op(
    description="Drain the cdc tables' replication slot into raw and close the days it read past."
)
def drain_cdc_slot(
    context: dg.OpExecutionContext, source: PostgresResource, lake: LakeResource
) -> None:
    tables = cdc_tables()
    store = lake.store()
    capture = CdcCapture(tables, source_dsn(source), store, first_day(), log=context.log)
    try:
        with tempfile.TemporaryDirectory(prefix="volt-cdc-") as tmp:
            result = capture.run(Path(tmp))
    except (SourceNotReady, CaptureError) as exc:
        # retrying cannot fix a source that lacks setup or a lost slot: say so at once
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    behind = "" if result.lag_seconds is None else f", {result.lag_seconds:.0f} s since the last"
    context.log.info(
        f"{result.changes} changes added to raw ({result.replayed} replayed and dropped); "
        f"read up to the heartbeat of {result.heartbeat_at}; the slot was "
        f"{result.lag_bytes} WAL bytes behind when the drain began{behind}"
    )
    report(context, store, tables, result)


@dg.job(name=CDC_JOB, description="Drain the cdc slot into raw; raw D materialises when D closes.")
def cdc_capture_job():
    drain_cdc_slot()


@dg.sensor(
    job=cdc_capture_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def cdc_capture_sensor(context: dg.SensorEvaluationContext):
    """A drain a minute, never two at once (the slot takes one reader)."""
    running = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=CDC_JOB, statuses=IN_FLIGHT), limit=1
    )
    if running:
        return dg.SkipReason(f"run {running[0].run_id} is still draining the slot")
    return dg.RunRequest()


@dg.definitions
def defs() -> dg.Definitions:
    if not cdc_tables():
        return dg.Definitions()
    return dg.Definitions(jobs=[cdc_capture_job], sensors=[cdc_capture_sensor])
