"""`staging/{table}`: the raw day typed, cleaned and deduplicated; refused rows to quarantine.

One declared Arrow schema per table (tables.yaml), zstd Parquet, one row per primary key
(its latest valid version), soft deletes and noticed hard deletes flagged `_deleted`.
Refused rows go to `quarantine/{table}/dt=D/` with every reason. The quality gate, a
blocking check, fails when more than the configured share of a day is refused, so such a
day never reaches the marts.
"""

import datetime as dt
import itertools
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from volt_assets.defs import catalog
from volt_assets.defs.lake.io_manager import LakeOutput, LakePartitions
from volt_assets.defs.policies import (
    LAKE_IO_MANAGER,
    NETWORK_RETRY,
    SINGLE_RUN,
    lake_pool,
    missing_partition,
    partitions,
)
from volt_assets.defs.quality.staging_checks import StagingQuality, staging_check_specs
from volt_assets.defs.resources import PostgresResource
from volt_assets.lib.config.partitions import context_days
from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.process_memory import release_garbage, release_memory
from volt_assets.lib.staging.raw_reader import (
    grouped_by_size,
    missing_declared,
    read_text_batches,
    rescaled_declared,
)
from volt_assets.lib.staging.transform import (
    ChunkBuilder,
    StagingDay,
    parquet_bytes,
    staging_slices,
)
from volt_assets.lib.store.lake_store import FolderWrite
from volt_assets.lib.store.layout import RAW_DELETES, listed_sidecar, partition_prefix
from volt_assets.lib.store.writer_locks import WriterLocks, application_name, folder_lock

PART = "part-00000.parquet"
PREFETCH_DAYS = 6  # raw days downloading while others are built (a day is two small GETs)
# Days built in one pass: the parse and the rule book cost per batch, not per day, and a
# group's rows are held until its days are written, so the group is bounded in bytes too.
CHUNK_DAYS = 31
# gzip raw parts: 8 MB held ~80 MB of a 5M-row table's days at once (5x backfill 493 -> 455 MB)
CHUNK_BYTES = 4 << 20


@dataclass
class RawDay:
    """Raw D as staging needs it: its manifest, its parts on local disk, its noticed deletes."""

    day: dt.date
    manifest: dict
    paths: list[Path]
    deletes: pa.Table | None


def fetch_raw_day(
    config: TableConfig, raw: LakePartitions, day: dt.date, workdir: Path, etag: str | None = None
) -> RawDay:
    """Download raw D: the files its manifest lists (a folder without one is an error).
    `etag`: the manifest's, as the run's listing showed it."""
    manifest = raw.manifest(day, etag)
    if manifest is None:
        raise missing_partition(f"raw/{config.name}", day)
    refuse_drifted(config, day, manifest)
    parts = sorted(n for n in manifest.get("files", {}) if n.endswith((".jsonl.gz", ".jsonl")))
    paths = raw.download(day, parts, workdir, manifest)
    deletes = None
    deletes_file = listed_sidecar(manifest, RAW_DELETES)
    if deletes_file is not None and (manifest.get("deletes") or {}).get("file") == deletes_file:
        body = raw.store.read_listed(raw.prefix(day), manifest, deletes_file)
        deletes = pq.read_table(pa.BufferReader(body))
    return RawDay(day, manifest, paths, deletes)


def refuse_drifted(config: TableConfig, day: dt.date, manifest: dict) -> None:
    """Fail for good when raw D was captured without a declared column: staging would fill it
    with NULL and the marts would take that for a change of every row (SCD2 versions)."""
    refuse_rescaled(config, day, manifest)
    missing, extra = missing_declared(config, manifest)
    if not missing:
        return
    named = ", ".join(f"`{c}`" for c in missing)
    found = f" (it has {', '.join(f'`{c}`' for c in extra)} undeclared)" if extra else ""
    raise dg.Failure(
        description=f"staging/{config.name} {day}: raw holds no declared column {named}: the "
        f"source table dropped or renamed it{found}. Update `{config.name}` in tables.yaml to "
        "match the app's migration (rename or remove the column), or undo the migration, then "
        f"re-materialise raw and staging for {day}. Nothing of staging {day} was written.",
        allow_retries=False,
    )


def refuse_rescaled(config: TableConfig, day: dt.date, manifest: dict) -> None:
    """Fail for good when raw D was captured with a numeric's precision or scale other than
    declared: staging would round values into the old type or refuse those that do not fit."""
    found = rescaled_declared(config, manifest)
    if not found:
        return
    changes = "; ".join(f"`{c}` is {a} at the source, declared {d}" for c, (d, a) in found.items())
    edits = ", ".join(f"`{c}: {{type: {a}}}`" for c, (_, a) in found.items())
    raise dg.Failure(
        description=f"staging/{config.name} {day}: the source changed a numeric's precision or "
        f"scale: {changes}. Set {edits} under `{config.name}` in tables.yaml (or undo the "
        f"migration), then re-materialise raw and staging for {day}. Nothing of staging {day} "
        "was written.",
        allow_retries=False,
    )


def prefetched(
    fetch: Callable[[dt.date], RawDay], days: list[dt.date], ahead: int = PREFETCH_DAYS
) -> Iterator[RawDay]:
    """`fetch(day)` for each day in order, the next `ahead` days downloading in the background
    while the current one is built (S3's latency hidden behind the work; a few days on disk)."""
    with ThreadPoolExecutor(max(1, ahead), thread_name_prefix="volt-raw-fetch") as pool:
        queued: deque[Future] = deque()
        upcoming = iter(days)
        for day in itertools.islice(upcoming, ahead + 1):
            queued.append(pool.submit(fetch, day))
        while queued:
            fetched = queued.popleft().result()
            next_day = next(upcoming, None)
            if next_day is not None:
                queued.append(pool.submit(fetch, next_day))
            yield fetched


def chunks(raw_days: Iterable[RawDay]) -> Iterator[list[RawDay]]:
    """Consecutive raw days in groups of at most CHUNK_DAYS days and about CHUNK_BYTES of parts
    (a day bigger than that is a group of its own): staging builds a group in one pass."""

    def day_bytes(raw_day: RawDay) -> int:
        return sum(p.stat().st_size for p in raw_day.paths)

    return grouped_by_size(raw_days, day_bytes, CHUNK_BYTES, CHUNK_DAYS)


def build_chunk(config: TableConfig, raw_days: list[RawDay], workdir: Path) -> list[StagingDay]:
    """Build staging + quarantine for consecutive days from their raw days, in one read of
    their parts (which are removed once read); one StagingDay per day, in order. A day too
    big for memory is built through a file in `workdir` (its staging is then that file)."""
    extracted_at: dict[str, dt.datetime] = {}
    day_of_file: dict[str, str] = {}
    exact: list[Path] = []
    for raw_day in raw_days:
        day = raw_day.day.isoformat()
        for extraction in raw_day.manifest.get("extractions", []):
            when = dt.datetime.fromisoformat(extraction["extracted_at"])
            for name in extraction.get("files", []):
                extracted_at[f"{day}-{name}"] = when
        day_of_file.update({p.name: day for p in raw_day.paths})
        if any(e.get("long_numbers", True) for e in raw_day.manifest.get("extractions", [])):
            exact += raw_day.paths
    builder = ChunkBuilder(
        config, [r.day.isoformat() for r in raw_days], day_of_file, extracted_at, workdir
    )
    paths = [p for raw_day in raw_days for p in raw_day.paths]
    for batch in read_text_batches(config, paths, exact=exact):
        builder.add(batch)
    for path in paths:
        path.unlink()
    built = builder.finish({r.day.isoformat(): r.deletes for r in raw_days})
    return [built[r.day.isoformat()] for r in raw_days]


def cursor_range(staging: pa.Table | Path, cursor: str) -> tuple[str | None, str | None]:
    """The day's cursor range as ISO-8601 UTC text, like raw's (tombstones carry no cursor)."""
    names = staging.column_names if isinstance(staging, pa.Table) else pq.read_schema(staging).names
    if cursor not in names:
        return None, None
    # a day in a file a row group at a time (a million cursors read at once held ~40 MB)
    found = [pc.min_max(part[cursor]) for part in staging_slices(staging, [cursor])]
    lows = [b["min"].as_py() for b in found if b["min"].is_valid]
    highs = [b["max"].as_py() for b in found if b["max"].is_valid]
    return _iso(min(lows, default=None)), _iso(max(highs, default=None))


def _iso(instant: dt.datetime | None) -> str | None:
    return (
        None
        if instant is None
        else instant.isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def build_staging_asset(config: TableConfig) -> dg.AssetsDefinition:
    key = dg.AssetKey(["staging", config.name])

    @dg.asset(
        key=key,
        ins={"raw": dg.AssetIn(key=dg.AssetKey(["raw", config.name]))},
        partitions_def=partitions(),
        backfill_policy=SINGLE_RUN,
        retry_policy=NETWORK_RETRY,
        io_manager_key=LAKE_IO_MANAGER,
        group_name="staging",
        pool=lake_pool(config.name),
        kinds={"s3", "parquet"},
        check_specs=staging_check_specs(config, key),
        **catalog.lake_catalog(
            "staging", config, {"partition_expr": config.cursor, "primary_key": config.primary_key}
        ),
        description=(
            f"`{config.name}` typed and cleaned: one row per `{config.primary_key}` (latest valid version "
            "of the day), `_deleted` for soft and hard deletes; refused rows in quarantine/."
        ),
    )
    def staging_asset(
        context: dg.AssetExecutionContext, raw: LakePartitions, source: PostgresResource
    ):
        days = context_days(context)
        # staging D and quarantine D are one folder pair: locked together until published
        locks = WriterLocks(
            lambda: source.new_connection(application_name(context.run_id)),
            [folder_lock("staging", config.name, d) for d in days],
            context.log,
            f"staging/{config.name}",
        )
        with locks:
            yield from build_days(config, raw, days)

    return staging_asset


def build_days(config: TableConfig, raw: LakePartitions, days: list[dt.date]):
    """The staging asset's body: the output (its writes streamed to the IO manager), then the
    quality checks judged on the days as they streamed past."""
    if config.cdc:  # its raw days hold change lines, which staging does not read yet
        raise dg.Failure(
            description=f"{config.name} is `sync: cdc`: staging of change lines is not built "
            "yet (docs/cdc.md); its raw days are complete in the lake",
            allow_retries=False,
        )
    quality = StagingQuality(config, raw.store, days)
    stats: dict = {}
    writes = staging_writes(config, raw, days, quality, stats)
    yield dg.Output(LakeOutput(writes=writes, stats=stats))
    yield from quality.results()


def staging_writes(
    config: TableConfig,
    raw: LakePartitions,
    days: list[dt.date],
    quality: StagingQuality,
    stats: dict,
):
    """Staging D and quarantine D for each day, raw days prefetched; the run's totals land in
    `stats`."""
    release_garbage()
    per_day: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix=f"volt-staging-{config.name}-") as tmp:
        etags = raw.manifest_etags(days)  # one listing: manifests raw just wrote are not read back
        fetched = prefetched(lambda d: fetch_raw_day(config, raw, d, Path(tmp), etags.get(d)), days)
        for chunk in chunks(fetched):
            for raw_day, built in zip(chunk, build_chunk(config, chunk, Path(tmp)), strict=True):
                per_day[raw_day.day.isoformat()] = built.counts
                quality.observe(raw_day.day, built, raw_day.manifest)
                yield from day_writes(config, raw_day, built)
                if isinstance(built.staging, Path):  # uploaded before the run moved on
                    built.staging.unlink()
            release_memory()
    totals = {k: sum(c[k] for c in per_day.values()) for k in next(iter(per_day.values()), {})}
    stats["metadata"] = {f"total_{k}": dg.MetadataValue.int(v) for k, v in totals.items()}


def day_writes(config: TableConfig, raw_day: RawDay, built: StagingDay) -> list[FolderWrite]:
    """The two folder writes of one day: staging D, then quarantine D (empty when none refused)."""
    day, raw_manifest = raw_day.day, raw_day.manifest
    manifest = {
        "table": config.name,
        "dt": day.isoformat(),
        "counts": built.counts,
        "raw_extracted_at": (raw_manifest or {}).get("extracted_at"),
    }
    staging = FolderWrite(
        day=day,
        prefix=partition_prefix("staging", config.name, day),
        files={
            PART: built.staging if isinstance(built.staging, Path) else parquet_bytes(built.staging)
        },
        manifest={**manifest, "layer": "staging"},
        rows=built.counts["staged_rows"] + built.counts["tombstones"],
        cursor_range=cursor_range(built.staging, config.cursor),
        metadata=built.counts,  # raw_rows, staged_rows, quarantined_rows, ... of the day
    )
    q_files = {PART: parquet_bytes(built.quarantine)} if built.quarantine.num_rows else {}
    quarantine = FolderWrite(
        day=day,
        prefix=partition_prefix("quarantine", config.name, day),
        files=q_files,
        manifest={**manifest, "layer": "quarantine"},
        rows=built.quarantine.num_rows,
        primary=False,
    )
    return [staging, quarantine]
