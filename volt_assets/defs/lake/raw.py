"""`raw/{table}`: each day's changed rows captured exactly, never lost.

Partition D reads the rows with cursor in [D, D+1) UTC (or a snapshot for full-sync tables)
and adds the versions not yet captured to `raw/{table}/dt=D/` (one line per primary key and
cursor value; earlier captures stay). The first partition (VOLT_PARTITIONS_START) opens the
lake: its window has no start, so a shop older than the lake is whole in it. Before
extracting, the source's columns are compared with the declared ones (schema-drift check).
Each run also re-reads the day before its first day (late commits, see README). A run
reaching the present (its last day yesterday or later, UTC) notices hard deletes: keys the
lake holds that the source no longer has and no day has tombstoned yet become tombstones of
its last day; a re-run of an older day notices none, so the past is never rewritten.
Consecutive days are read from the source in one pass (one snapshot, the stream split by
day as it arrives) and written day by day. Writer locks (lib/store/writer_locks.py) keep two runs from
writing the same folders at once.
The capture itself is lib/capture/raw_days.py's `RawCapture`; this module wires it into Dagster.
"""

import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg

from volt_assets.defs import catalog
from volt_assets.defs.lake.io_manager import LakeOutput
from volt_assets.defs.lake.state import live_keys, table_states
from volt_assets.defs.policies import (
    LAKE_IO_MANAGER,
    NETWORK_RETRY,
    SINGLE_RUN,
    lake_pool,
    partitions,
)
from volt_assets.defs.quality.raw_checks import RawQuality, raw_check_specs
from volt_assets.defs.resources import LakeResource, PostgresResource, SourceUnavailable
from volt_assets.lib.capture import extract as ex
from volt_assets.lib.capture.raw_days import MassDeleteRefused, RawCapture
from volt_assets.lib.config.partitions import context_days, reaches_present
from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.process_memory import release_garbage, release_memory
from volt_assets.lib.state.table_state import TableState
from volt_assets.lib.store.lake_store import FolderWrite, LakeStore, folder_manifest
from volt_assets.lib.store.layout import layer_prefix, partition_prefix
from volt_assets.lib.store.writer_locks import WriterLocks, application_name, folder_lock

# Days read from the source in one pass (one snapshot, one pair of COPYs split by day as they
# stream): a 365-day run paid a transaction and two round trips a day. The days' parts wait on
# local disk until each day is written.
READ_DAYS = 31


def raw_locks(config: TableConfig, days: list[dt.date]) -> list[str]:
    """The writer locks of a raw run: its days, the late-commit days before them, and the
    table's tombstones when the run reaches the present (two such runs would notice one delete
    twice)."""
    back = config.lookback_days if config.incremental else 0
    first = days[0] - dt.timedelta(days=back)
    names = [
        folder_lock("raw", config.name, first + dt.timedelta(days=i))
        for i in range((days[-1] - first).days + 1)
    ]
    if reaches_present(days[-1]):
        names.append(folder_lock("raw", config.name, "deletes"))
    return names


def build_raw_asset(config: TableConfig) -> dg.AssetsDefinition:
    drift_check = dg.AssetCheckSpec(
        "schema_drift",
        asset=dg.AssetKey(["raw", config.name]),
        description="The source table has exactly the declared columns and types (tables.yaml).",
    )

    @dg.asset(
        key=["raw", config.name],
        deps=[catalog.source_key(config.name)],
        partitions_def=partitions(),
        backfill_policy=SINGLE_RUN,
        retry_policy=NETWORK_RETRY,
        io_manager_key=LAKE_IO_MANAGER,
        group_name="raw",
        pool=lake_pool(config.name),
        kinds={"postgres", "s3"},
        check_specs=[drift_check, *raw_check_specs(config)],
        **catalog.lake_catalog(
            "raw",
            config,
            {
                "partition_expr": config.cursor,
                "sync": config.sync,
                "primary_key": config.primary_key,
            },
        ),
        description=(
            f"Exact capture of `{config.name}`: rows whose `{config.cursor}` lies in the day "
            "[D, D+1) UTC, as JSON Lines; every captured version is kept."
        ),
    )
    def raw_asset(context: dg.AssetExecutionContext, source: PostgresResource, lake: LakeResource):
        # The run's folders are locked before their manifests are read and stay locked until
        # the output is published (Dagster handles the Output before the generator resumes).
        locks = WriterLocks(
            lambda: source.new_connection(application_name(context.run_id)),
            raw_locks(config, context_days(context)),
            context.log,
            f"raw/{config.name}",
        )
        store = lake.store()
        with (
            locks,
            ex.SourceSession(source, context.log) as session,  # one connection for the reads
            table_states(store, source, context.log, context.run_id, [config.name]) as states,
        ):
            yield from capture_days(context, config, session, store, states[config.name])

    return raw_asset


def checked_source_columns(config: TableConfig, session: ex.SourceSession) -> dict[str, str]:
    """The source table's columns as the run reads them (a failure when it has none)."""
    try:
        actual = session.run(lambda conn: ex.source_columns(conn, config.name))
    except SourceUnavailable as exc:  # a dg.Failure: retried unless no retry can fix it
        raise SourceUnavailable(str(exc), permanent=exc.permanent) from None
    if not actual:
        raise dg.Failure(
            description=f"source table {config.name!r} does not exist in {session.database.where}: "
            "create the Volt schema (`volt-assets seed` does) or check POSTGRES_DB",
            allow_retries=False,
        )
    return actual


def refuse_lost_keys(config: TableConfig, drift: ex.Drift) -> None:
    """Fail at once (no retry can help) when the source lost the cursor or primary key column:
    every read of the table names it, and PostgreSQL would answer UndefinedColumn."""
    lost = [c for c in (config.cursor, config.primary_key) if c in drift.dropped]
    if not lost:
        return
    role = {config.cursor: "cursor", config.primary_key: "primary key"}
    named = " and ".join(f"{role[c]} column `{c}`" for c in lost)
    added = ", ".join(f"`{c}` ({t})" for c, t in drift.added.items())
    hint = f" It has {added} undeclared: a rename?" if added else ""
    raise dg.Failure(
        description=f"source table {config.name!r} has no {named} any more (renamed or dropped "
        f"by a migration).{hint} Set `cursor` / `primary_key` and the column of "
        f"`{config.name}` in tables.yaml to the source's new name (or undo the migration), then "
        "re-run.",
        allow_retries=False,
    )


def capture_days(
    context: dg.AssetExecutionContext,
    config: TableConfig,
    session: ex.SourceSession,
    store: LakeStore,
    state: TableState,
):
    """The raw asset's body: the output (its writes streamed to the IO manager), then the
    schema-drift check and the raw checks. `state`: the table's, for hard deletes."""
    if config.cdc:  # its changes come from logical replication, never from a window's read
        raise dg.Failure(
            description=f"{config.name} is `sync: cdc`: its raw days are written by the change "
            "capture draining the replication slot (docs/cdc.md), not by reading the table",
            allow_retries=False,
        )
    days = context_days(context)
    actual = checked_source_columns(config, session)
    drift = ex.detect_drift(config, actual)
    if drift.any:
        context.log.warning(f"schema drift in {config.name}: {drift.describe()}")
    refuse_lost_keys(config, drift)
    first = days[0] - dt.timedelta(days=config.lookback_days if config.incremental else 0)
    listed = set(store.list_days_objects(layer_prefix("raw", config.name), first, days[-1]))
    capture = RawCapture(
        config,
        session,
        store,
        context.log,
        actual=actual,
        listed=listed,
        notices_deletes=reaches_present(days[-1]),
        lake_keys=lambda first: live_keys(state, first),
    )
    quality = RawQuality(config, session, store, drift, context.log)
    stats: dict = {"late_rows": 0}
    writes = raw_writes(config, days, capture, quality, drift, stats, context.log)
    output = LakeOutput(writes=writes, stats=stats)
    yield dg.Output(output)
    yield drift_check_result(drift)
    yield from quality.results(days)


def raw_writes(
    config: TableConfig,
    days: list[dt.date],
    capture: RawCapture,
    quality: RawQuality,
    drift: ex.Drift,
    stats: dict,
    log,
):
    """The run's folder writes, one day at a time: late rows of the days before, each day,
    then (a run reaching the present) the tombstones; the run's figures land in `stats`."""
    release_garbage()
    with tempfile.TemporaryDirectory(prefix=f"volt-raw-{config.name}-") as tmp:
        workdir = Path(tmp)
        yield from late_writes(config, days[0], capture, workdir, stats, log)
        for start in range(0, len(days), READ_DAYS):
            chunk = days[start : start + READ_DAYS]
            extracted = capture.extract_days(chunk, workdir)
            for day in chunk:
                write = capture.capture(day, workdir, extracted.pop(day, None))
                release_memory()  # what reading the day freed, before reconciling it
                quality.observe(day, capture.manifests[day], capture.take_versions())
                yield write
                release_memory()  # the day's versions and parts, before the next day's read
                for p in workdir.glob(f"{day.isoformat()}-*/*"):
                    p.unlink()  # keep the disk bounded too
                for p in workdir.glob(f"days-*/{day.isoformat()}/*"):
                    p.unlink()
        # Only a run reaching the present notices hard deletes: a re-run of a past day
        # keeps the tombstones it had and never gains deletes made after it.
        tombstones = notice_deletes(capture, days[-1]) if capture.notices_deletes else None
        if tombstones is not None:
            stats["deletes"] = tombstones.manifest["deletes"]["count"]
            quality.manifests[days[-1]] = folder_manifest(tombstones.files, tombstones.manifest)
            yield tombstones
    stats["metadata"] = {
        "rows_added": dg.MetadataValue.int(capture.rows_added - stats["late_rows"]),
        "late_rows_merged": dg.MetadataValue.int(stats["late_rows"]),
        "hard_deletes_noticed": dg.MetadataValue.int(stats.get("deletes", 0)),
        "schema_drift": dg.MetadataValue.text(drift.describe()),
    }


def late_writes(
    config: TableConfig, first_day: dt.date, capture: RawCapture, workdir: Path, stats: dict, log
):
    """Late commits: re-read the days before the run's first day that raw already has, and
    add what committed after they were captured."""
    if not config.incremental:
        return
    for back in range(config.lookback_days, 0, -1):
        previous = first_day - dt.timedelta(days=back)
        if capture.read_manifest(partition_prefix("raw", config.name, previous)) is None:
            continue
        added_before = capture.rows_added
        late = capture.capture(previous, workdir)
        if not late.unchanged:
            late.primary = False
            stats["late_rows"] += capture.rows_added - added_before
            log.warning(
                f"{capture.rows_added - added_before} late rows of {previous} added to its raw partition"
            )
            yield late


def notice_deletes(capture: RawCapture, day: dt.date) -> FolderWrite | None:
    """`capture.notice_deletes(day)`, its refusal of a mass delete failing the run for good."""
    try:
        return capture.notice_deletes(day)
    except MassDeleteRefused as exc:
        refused = str(exc)
    # raised outside the except block: the Failure carries no caught exception, and no frame
    # holds one in a cycle through its traceback
    raise dg.Failure(description=refused, allow_retries=False)


def drift_check_result(drift: ex.Drift) -> dg.AssetCheckResult:
    """The schema_drift check: a warning for added columns, an error for dropped or retyped."""
    return dg.AssetCheckResult(
        check_name="schema_drift",
        passed=not drift.any,
        severity=dg.AssetCheckSeverity.WARN
        if not (drift.dropped or drift.retyped)
        else dg.AssetCheckSeverity.ERROR,
        description=drift.describe(),
        metadata={
            "added": dg.MetadataValue.json(drift.added),
            "dropped": dg.MetadataValue.json(drift.dropped),
            "retyped": dg.MetadataValue.json({c: list(v) for c, v in drift.retyped.items()}),
        },
    )
