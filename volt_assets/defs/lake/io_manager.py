"""IO managers: the lake on S3 (one `dt=` folder per day, ranges included).

Lake assets return a `LakeOutput`: folder writes produced lazily, one day at a time, so a
365-day single-run backfill streams through in bounded memory. The IO manager performs each
write in the order that keeps a partition whole for readers (`LakeStore.write_folder`) and
records rows, bytes, the S3 URI, the cursor range, duration and rows/s as output metadata.
Downstream assets receive a `LakePartitions` reader over the days they depend on.
`handle_output` delegates to named steps: `FolderUploader` writes the folders, `RunTally`
adds up each day's and the run's figures, `WriteProgress` says what happened in the log.
"""

import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from volt_assets.defs.catalog import ROW_COUNT
from volt_assets.defs.resources import LakeResource
from volt_assets.lib.config.partitions import UTC, days_between
from volt_assets.lib.store.lake_store import FolderWrite, LakeStore
from volt_assets.lib.store.layout import MANIFEST, layer_prefix, listed_version, partition_prefix

# Folders uploading at once: a small day's cost on S3 is the latency of its requests, not
# bandwidth, so many days are in flight. Writes queue up to PENDING_WRITES (and
# PENDING_BYTES of files held in memory) before the asset waits: it builds the next days
# while a burst of small days uploads.
WRITERS = 16
PENDING_WRITES = 64
PENDING_BYTES = 32 << 20
DETAILED_WRITES = 6  # folder writes logged one by one (a day's raw, staging and quarantine)
PROGRESS_SECONDS = 10.0


@dataclass
class LakeOutput:
    """What a lake asset returns. `stats` is filled while the writes happen, for the checks."""

    writes: Iterable[FolderWrite]
    stats: dict = field(default_factory=dict)


@dataclass
class LakePartitions:
    """Read access to one asset's day folders (what a downstream asset receives)."""

    store: LakeStore
    layer: str
    name: str
    days: list[dt.date]

    def prefix(self, day: dt.date) -> str:
        return partition_prefix(self.layer, self.name, day)

    def manifest(self, day: dt.date, etag: str | None = None) -> dict | None:
        """The day's manifest (`etag`: as `manifest_etags` listed it)."""
        return self.store.read_manifest(self.prefix(day), etag)

    def manifest_etags(self, days: list[dt.date]) -> dict[dt.date, str]:
        """The ETags of the days' manifests, in one listing: a manifest this process wrote
        with that ETag (the run's raw step, moments before) is then not read back."""
        if not days:
            return {}
        wanted = {self.prefix(day) + MANIFEST: day for day in days}
        found = self.store.days_objects(layer_prefix(self.layer, self.name), min(days), max(days))
        return {wanted[o["Key"]]: o["ETag"] for o in found if o["Key"] in wanted}

    def download(
        self, day: dt.date, names: Iterable[str], directory: Path, manifest: dict | None = None
    ) -> list[Path]:
        """Download files of the day to `directory`: the versions `manifest` lists (the day's
        manifest, read here when not given)."""
        if manifest is None:
            manifest = self.manifest(day)
        paths = []
        for name in names:
            target = directory / f"{day.isoformat()}-{name}"
            paths.append(
                self.store.download(
                    self.prefix(day) + name, target, version_id=listed_version(manifest, name)
                )
            )
        return paths

    def read_parquet(self, day: dt.date, columns: list[str] | None = None) -> pa.Table | None:
        """The day's Parquet files as one table (None when the day was never written)."""
        manifest = self.manifest(day)
        if manifest is None:
            return None
        tables = []
        for name in sorted(manifest.get("files", {})):
            if name.endswith(".parquet"):
                body = self.store.read_listed(self.prefix(day), manifest, name)
                tables.append(pq.read_table(pa.BufferReader(body), columns=columns))
        return pa.concat_tables(tables) if tables else None


def add_partition_metadata(context: dg.OutputContext, per_day: dict[str, dict]) -> None:
    """Give each partition's materialisation its own figures (rows, bytes, folder, cursor range).

    The output metadata describes the whole run; in a range run Dagster copies it onto every
    partition's event, so the UI's page of one day would show the year's rows. Partition-scoped
    asset metadata overrides it key by key for that day; `run_rows` / `run_bytes` keep the totals.
    A day's `rows` is also Dagster's standard `dagster/row_count` (the UI's row-count column
    and chart), the rows that partition holds.
    """
    if not context.has_asset_partitions:
        return
    step = context.step_context
    targeted = set(context.asset_partition_keys)
    totals = {
        "run_rows": sum(d.get("rows", 0) for d in per_day.values()),
        "run_bytes": sum(d.get("bytes", 0) for d in per_day.values()),
    }
    step.add_asset_metadata(
        {k: dg.MetadataValue.int(v) for k, v in totals.items()}, asset_key=context.asset_key
    )
    for day, figures in per_day.items():
        if day not in targeted:  # e.g. a late-row merge into the day before the run's first
            continue
        metadata = {}
        for key, value in figures.items():
            if isinstance(value, int) and not isinstance(value, bool):
                metadata[key] = dg.MetadataValue.int(value)
            elif key == "s3_uri":
                metadata[key] = dg.MetadataValue.path(value)
            else:
                metadata[key] = dg.MetadataValue.text(str(value))
        if "rows" in figures:
            metadata[ROW_COUNT] = dg.MetadataValue.int(figures["rows"])
        step.add_asset_metadata(metadata, asset_key=context.asset_key, partition_key=day)


class RunFolders:
    """What the run's day folders held before it wrote: one listing per layer for the run's
    days, instead of one per folder (a 365-day run would list 730 folders one by one)."""

    def __init__(self, store: LakeStore, days: list[dt.date]):
        self.store = store
        self.first, self.last = (min(days), max(days)) if days else (None, None)
        self.listed: dict[str, set[str]] = {}

    def existing(self, write: FolderWrite) -> set[str] | None:
        """The keys in the write's folder (None: outside the run's days, list it when writing)."""
        if self.first is None or not (self.first <= write.day <= self.last) or not write.replace:
            return None
        layer = write.prefix[: write.prefix.index("dt=")]
        if layer not in self.listed:
            self.listed[layer] = set(self.store.list_days_objects(layer, self.first, self.last))
        return {k for k in self.listed[layer] if k.startswith(write.prefix)}


def asset_layer_and_name(asset_key: dg.AssetKey) -> tuple[str, str]:
    layer, *rest = asset_key.path
    return layer, "/".join(rest)


_VERSIONING_CHECKED: set[str] = set()  # buckets this process has looked at


def warn_if_unversioned(store: LakeStore, log) -> None:
    """Say (once per bucket and process) when the lake bucket keeps no versions: manifests then
    carry no version ids, and a run killed between a file and its manifest leaves a half."""
    if store.bucket in _VERSIONING_CHECKED:
        return
    _VERSIONING_CHECKED.add(store.bucket)
    if store.versioned() is False:
        log.warning(
            f"the lake bucket {store.bucket!r} is not versioned: manifests cannot pin their files' "
            "versions, so a run killed between a file and its manifest leaves that partition half "
            "written until it is re-run. `volt-assets bucket apply` turns versioning on."
        )


class RunTally:
    """What a run's folder writes add up to: totals, the cursor range, and each day's figures
    (`days`, what add_partition_metadata puts on each day's materialisation)."""

    def __init__(self, uri: Callable[[str], str]):
        self.uri = uri  # the S3 URI of a key
        self.rows = 0  # rows the written or kept partitions hold
        self.bytes = 0
        self.written_rows = 0  # rows of the folders written now
        self.folders = 0  # folders written
        self.seen = 0  # writes handled (written or kept as they were)
        self.days: dict[str, dict] = {}
        self.cursor_min: str | None = None
        self.cursor_max: str | None = None

    def add(self, write: FolderWrite, size: int) -> None:
        """Account one handled write that uploaded `size` bytes."""
        self.bytes += size
        entry = self.days.setdefault(write.day.isoformat(), {"rows": 0, "bytes": 0})
        entry["bytes"] += size
        if write.primary:
            self.rows += write.rows
            entry["rows"] += write.rows
            entry["s3_uri"] = self.uri(write.prefix)
            entry.update(write.metadata)
        lo, hi = write.cursor_range
        if lo is not None:
            self.cursor_min = lo if self.cursor_min is None else min(self.cursor_min, lo)
            entry["cursor_min"] = min(entry.get("cursor_min", lo), lo)
        if hi is not None:
            self.cursor_max = hi if self.cursor_max is None else max(self.cursor_max, hi)
            entry["cursor_max"] = max(entry.get("cursor_max", hi), hi)
        self.seen += 1
        if not write.unchanged:
            self.folders += 1
            self.written_rows += write.rows if write.primary else 0

    def metadata(self, where: str, seconds: float) -> dict:
        """The output metadata of the run (`where`: the asset's S3 URI)."""
        return {
            "rows": dg.MetadataValue.int(self.rows),
            "bytes": dg.MetadataValue.int(self.bytes),
            "s3_uri": dg.MetadataValue.path(where),
            "partitions_written": dg.MetadataValue.int(len(self.days)),
            "duration_seconds": dg.MetadataValue.float(round(seconds, 3)),
            "rows_per_second": dg.MetadataValue.float(
                round(self.written_rows / seconds, 1) if seconds > 0 else 0.0
            ),
            "cursor_min": dg.MetadataValue.text(self.cursor_min or ""),
            "cursor_max": dg.MetadataValue.text(self.cursor_max or ""),
        }


class WriteProgress:
    """The run's log lines about its writes. Every log line is an event the instance stores
    (one commit each): a 365-day run logs its first folders, then progress at most every
    PROGRESS_SECONDS, then a total."""

    def __init__(self, log, uri: Callable[[str], str], started: float, clock=time.perf_counter):
        self.log, self.uri, self.clock = log, uri, clock
        self.last_log = started

    def wrote(self, write: FolderWrite, size: int, tally: RunTally) -> None:
        """Say what happened to one write (`tally` has accounted it)."""
        now = self.clock()
        if tally.seen <= DETAILED_WRITES or now - self.last_log >= PROGRESS_SECONDS:
            uri = self.uri(write.prefix)
            text = (
                f"kept {uri} as it is: {write.rows} rows, nothing new"
                if write.unchanged
                else f"wrote {uri}: {write.rows} rows, {size} bytes"
            )
            if tally.seen > DETAILED_WRITES:
                text += f" ({tally.folders} folders written so far)"
            self.log.info(text)
            self.last_log = now

    def summary(self, tally: RunTally, where: str, seconds: float) -> None:
        """The total, when the writes were too many to log one by one."""
        if tally.seen > DETAILED_WRITES:
            kept = (
                f", kept {tally.seen - tally.folders} as they were"
                if tally.seen > tally.folders
                else ""
            )
            self.log.info(
                f"wrote {tally.folders} folders under {where}{kept}: "
                f"{tally.written_rows} rows, {tally.bytes} bytes in {seconds:.1f} s"
            )


class FolderUploader:
    """Writes folders on WRITERS threads while the asset builds the next days, so S3's latency
    overlaps the work. A folder's own order (files, manifest, removals) is kept by
    write_folder, and two writes to one folder run one after the other. At most
    PENDING_WRITES + 1 writes, and about PENDING_BYTES of their files, are held at once."""

    def __init__(self, store: LakeStore, before: RunFolders):
        self.store, self.before = store, before
        self.pending: deque[tuple[FolderWrite, Future | None]] = deque()
        self.latest: dict[str, Future] = {}  # the last write submitted to each folder
        self.pending_bytes = 0  # bytes of the pending writes' files held in memory
        self.pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="volt-lake-write")

    def __enter__(self) -> "FolderUploader":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True)

    def write_all(self, writes: Iterable[FolderWrite]) -> Iterator[tuple[FolderWrite, int]]:
        """Each write, once done, with the bytes it uploaded (0 when unchanged), in order."""
        for write in writes:
            self.submit(write)
            if not write.unchanged:  # a kept folder is handed back with the next one written
                yield from self.finished()
        yield from self.finished(everything=True)

    def submit(self, write: FolderWrite) -> None:
        if write.unchanged:
            self.pending.append((write, None))
            return
        existing = self.before.existing(write)
        if write.prefix in self.latest:
            self.latest[write.prefix].result()
        future = self.pool.submit(
            self.store.write_folder,
            write.prefix,
            write.files,
            write.manifest,
            replace=write.replace,
            remove=write.remove,
            existing=existing,
        )
        self.latest[write.prefix] = future
        self.pending.append((write, future))
        self.pending_bytes += held_bytes(write)
        if any(isinstance(body, Path) for body in write.files.values()):
            # a local file must be uploaded before the asset moves on and removes it
            future.result()

    def finished(self, everything: bool = False) -> Iterator[tuple[FolderWrite, int]]:
        """The oldest writes that are done (all of them, waiting, with `everything`); the
        oldest is waited for when more than PENDING_WRITES, or PENDING_BYTES, are pending."""
        while self.pending and (
            everything
            or len(self.pending) > PENDING_WRITES
            or self.pending_bytes > PENDING_BYTES
            or self.pending[0][1] is None
            or self.pending[0][1].done()
        ):
            write, future = self.pending.popleft()
            size = future.result() if future else 0
            self.pending_bytes -= held_bytes(write) if future else 0
            yield write, size


def held_bytes(write: FolderWrite) -> int:
    """The bytes a write holds in memory until it is uploaded (local files are on disk)."""
    return sum(len(body) for body in write.files.values() if isinstance(body, bytes))


def run_days(context: dg.OutputContext) -> list[dt.date]:
    """The days the output's run targets (none for an unpartitioned output)."""
    if not context.has_asset_partitions:
        return []
    return [dt.date.fromisoformat(k) for k in context.asset_partition_keys]


class S3LakeIOManager(dg.ConfigurableIOManager):
    """Writes `LakeOutput`s to the lake bucket and hands downstream a `LakePartitions`."""

    lake: dg.ResourceDependency[LakeResource]

    def handle_output(self, context: dg.OutputContext, obj: LakeOutput) -> None:
        if obj is None:
            return
        store = self.lake.store()
        warn_if_unversioned(store, context.log)
        layer, name = asset_layer_and_name(context.asset_key)
        started = time.perf_counter()
        tally = RunTally(store.uri)
        progress = WriteProgress(context.log, store.uri, started)
        with FolderUploader(store, RunFolders(store, run_days(context))) as uploader:
            for write, size in uploader.write_all(obj.writes):
                tally.add(write, size)
                progress.wrote(write, size, tally)
        seconds = time.perf_counter() - started
        where = store.uri(layer_prefix(layer, name))
        progress.summary(tally, where, seconds)
        metadata = tally.metadata(where, seconds)
        # No per-day table here: in a range run Dagster copies the output metadata onto every
        # day's event, so a 365-day table would be stored 365 times. Each day's figures go on
        # that day's own event instead (add_partition_metadata).
        metadata.update({k: v for k, v in obj.stats.get("metadata", {}).items()})
        context.add_output_metadata(metadata)
        add_partition_metadata(context, tally.days)

    def load_input(self, context: dg.InputContext) -> LakePartitions:
        layer, name = asset_layer_and_name(context.asset_key)
        if context.has_asset_partitions:
            window = context.asset_partitions_time_window
            days = days_between(window.start.astimezone(UTC), window.end.astimezone(UTC))
        else:
            days = []
        return LakePartitions(self.lake.store(), layer, name, days)
