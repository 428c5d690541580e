"""IO managers: the lake on S3 (one `dt=` folder per day, ranges included).

Lake assets return a `LakeOutput`: folder writes produced lazily, one day at a time, so a
365-day single-run backfill streams through in bounded memory. The IO manager performs each
write in the order that keeps a partition whole for readers (`LakeStore.write_folder`) and
records rows, bytes, the S3 URI, the cursor range, duration and rows/s as output metadata.
Downstream assets receive a `LakePartitions` reader over the days they depend on.
"""


import datetime as dt
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from volt_assets.defs.catalog import ROW_COUNT
from volt_assets.lib.layout import layer_prefix, listed_version, partition_prefix
from volt_assets.lib.store import LakeStore
from volt_assets.lib.partitions import UTC, days_between
from volt_assets.defs.resources import LakeResource


WRITERS = 4  # folders uploading at once
DETAILED_WRITES = 6  # folder writes logged one by one (a day's raw, staging and quarantine)
PROGRESS_SECONDS = 10.0


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
    unchanged: bool = False  # nothing to write (the folder stays as it is); still accounted for the day


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

    def manifest(self, day: dt.date) -> dict | None:
        return self.store.read_manifest(self.prefix(day))

    def download(self, day: dt.date, names: Iterable[str], directory: Path, manifest: dict | None = None) -> list[Path]:
        """Download files of the day to `directory`: the versions `manifest` lists (the day's
        manifest, read here when not given)."""
        if manifest is None:
            manifest = self.manifest(day)
        paths = []
        for name in names:
            target = directory / f"{day.isoformat()}-{name}"
            paths.append(self.store.download(self.prefix(day) + name, target, version_id=listed_version(manifest, name)))
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
    totals = {"run_rows": sum(d.get("rows", 0) for d in per_day.values()),
              "run_bytes": sum(d.get("bytes", 0) for d in per_day.values())}
    step.add_asset_metadata({k: dg.MetadataValue.int(v) for k, v in totals.items()}, asset_key=context.asset_key)
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
        log.warning(f"the lake bucket {store.bucket!r} is not versioned: manifests cannot pin their files' "
                    "versions, so a run killed between a file and its manifest leaves that partition half "
                    "written until it is re-run. `volt-assets bucket apply` turns versioning on.")


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
        rows = written = written_rows = 0  # rows: what the partitions hold; written_rows: of those written now
        days: dict[str, dict] = {}
        cursor = {"min": None, "max": None}
        folders, seen, last_log = 0, 0, started  # folders written; writes handled (written or kept)
        run_days = [dt.date.fromisoformat(k) for k in context.asset_partition_keys] if context.has_asset_partitions else []
        before = RunFolders(store, run_days)

        def account(write: FolderWrite, size: int) -> None:
            nonlocal rows, written, folders, seen, last_log, written_rows
            written += size
            entry = days.setdefault(write.day.isoformat(), {"rows": 0, "bytes": 0})
            entry["bytes"] += size
            if write.primary:
                rows += write.rows
                entry["rows"] += write.rows
                entry["s3_uri"] = store.uri(write.prefix)
                entry.update(write.metadata)
            lo, hi = write.cursor_range
            if lo is not None:
                cursor["min"] = lo if cursor["min"] is None else min(cursor["min"], lo)
                entry["cursor_min"] = min(entry.get("cursor_min", lo), lo)
            if hi is not None:
                cursor["max"] = hi if cursor["max"] is None else max(cursor["max"], hi)
                entry["cursor_max"] = max(entry.get("cursor_max", hi), hi)
            seen += 1
            if not write.unchanged:
                folders += 1
                written_rows += write.rows if write.primary else 0
            # Every log line is an event the instance stores (one commit each): a 365-day run
            # logs its first folders, then progress at most every PROGRESS_SECONDS, then a total.
            now = time.perf_counter()
            if seen <= DETAILED_WRITES or now - last_log >= PROGRESS_SECONDS:
                uri = store.uri(write.prefix)
                text = (f"kept {uri} as it is: {write.rows} rows, nothing new" if write.unchanged
                        else f"wrote {uri}: {write.rows} rows, {size} bytes")
                context.log.info(text + ("" if seen <= DETAILED_WRITES else f" ({folders} folders written so far)"))
                last_log = now

        # Folders are written by WRITERS threads while the asset builds the next days, so S3's
        # latency overlaps the work; a folder's own order (files, manifest, removals) is kept
        # by write_folder, and two writes to one folder run one after the other. At most
        # WRITERS + 1 writes are held at once: memory stays a few days' worth.
        pending: deque[tuple[FolderWrite, Future]] = deque()
        latest: dict[str, Future] = {}
        with ThreadPoolExecutor(WRITERS, thread_name_prefix="volt-lake-write") as pool:
            for write in obj.writes:
                if write.unchanged:
                    pending.append((write, None))
                    continue
                existing = before.existing(write)
                if write.prefix in latest:
                    latest[write.prefix].result()
                future = pool.submit(store.write_folder, write.prefix, write.files, write.manifest,
                                     replace=write.replace, remove=write.remove, existing=existing)
                latest[write.prefix] = future
                pending.append((write, future))
                if any(isinstance(body, Path) for body in write.files.values()):
                    future.result()  # a local file must be uploaded before the asset moves on and removes it
                while pending and (len(pending) > WRITERS or pending[0][1] is None or pending[0][1].done()):
                    done, future = pending.popleft()
                    account(done, future.result() if future else 0)
            while pending:
                done, future = pending.popleft()
                account(done, future.result() if future else 0)
        seconds = time.perf_counter() - started
        if seen > DETAILED_WRITES:
            kept = f", kept {seen - folders} as they were" if seen > folders else ""
            context.log.info(f"wrote {folders} folders under {store.uri(layer_prefix(layer, name))}{kept}: "
                             f"{written_rows} rows, {written} bytes in {seconds:.1f} s")
        metadata = {
            "rows": dg.MetadataValue.int(rows),
            "bytes": dg.MetadataValue.int(written),
            "s3_uri": dg.MetadataValue.path(store.uri(layer_prefix(layer, name))),
            "partitions_written": dg.MetadataValue.int(len(days)),
            "duration_seconds": dg.MetadataValue.float(round(seconds, 3)),
            "rows_per_second": dg.MetadataValue.float(round(written_rows / seconds, 1) if seconds > 0 else 0.0),
            "cursor_min": dg.MetadataValue.text(cursor["min"] or ""),
            "cursor_max": dg.MetadataValue.text(cursor["max"] or ""),
        }
        # No per-day table here: in a range run Dagster copies the output metadata onto every
        # day's event, so a 365-day table would be stored 365 times. Each day's figures go on
        # that day's own event instead (add_partition_metadata).
        metadata.update({k: v for k, v in obj.stats.get("metadata", {}).items()})
        context.add_output_metadata(metadata)
        add_partition_metadata(context, days)

    def load_input(self, context: dg.InputContext) -> LakePartitions:
        layer, name = asset_layer_and_name(context.asset_key)
        if context.has_asset_partitions:
            window = context.asset_partitions_time_window
            days = days_between(window.start.astimezone(UTC), window.end.astimezone(UTC))
        else:
            days = []
        return LakePartitions(self.lake.store(), layer, name, days)
