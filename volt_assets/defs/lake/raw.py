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
Writer locks (lib/locks.py) keep two runs from writing the same folders at once.
"""


import datetime as dt
import json
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from volt_assets.defs import catalog
from volt_assets.defs.policies import LAKE_IO_MANAGER, NETWORK_RETRY, SINGLE_RUN, lake_pool, partitions
from volt_assets.defs.lake.io_manager import FolderWrite, LakeOutput
from volt_assets.lib import extract as ex
from volt_assets.lib.layout import (
    MANIFEST, RAW_DELETES, RAW_VERSIONS, layer_prefix, listed_sidecar, partition_prefix, sidecar_name,
)
from volt_assets.lib.locks import WriterLocks, application_name, folder_lock
from volt_assets.lib.transform import parquet_bytes
from volt_assets.lib.store import MULTIPART_BYTES, LakeStore, folder_manifest
from volt_assets.lib.partitions import capture_window, context_days, reaches_present
from volt_assets.defs.quality.raw_checks import RawQuality, raw_check_specs
from volt_assets.defs.resources import LakeResource, PostgresResource, SourceUnavailable
from volt_assets.lib.table_config import TableConfig, arrow_type

HISTORY_READERS = 8  # raw days read at once when hard-delete detection gathers the known keys
VERSIONS_SCHEMA = pa.schema([("pk", pa.string()), ("cursor", pa.string()), ("file", pa.string())])
DELETES_SCHEMA = pa.schema([("pk", pa.string()), ("noticed_at", pa.timestamp("us", tz="UTC"))])


def _version_ids(versions: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(versions["pk"], versions["cursor"], "\x1f")


def _filter_lines(paths: list[Path], config: TableConfig, keep: set[tuple[str, str]], out: Path) -> tuple[list[Path], int]:
    """Rewrite parts keeping only lines whose (pk, cursor) is in `keep` (re-captures only)."""
    import gzip

    kept_paths, rows = [], 0
    for path in paths:
        target = out / path.name
        n = 0
        with gzip.open(path, "rb") as src, gzip.GzipFile(target, "wb", compresslevel=1, mtime=0) as dst:
            for line in src:
                record = json.loads(line)
                pk, cursor = record.get(config.primary_key), record.get(config.cursor)
                if (None if pk is None else str(pk), cursor) in keep:
                    dst.write(line)
                    n += 1
        if n:
            kept_paths.append(target)
            rows += n
    return kept_paths, rows


def _merge_keys(parts: list[pa.Array], key_type: pa.DataType, integer_keys: bool):
    """The distinct keys of several arrays: a sorted int64 numpy array for integer keys, else
    an Arrow string array."""
    if integer_keys:
        arrays = [p.to_numpy(zero_copy_only=False).astype(np.int64, copy=False) for p in parts if len(p)]
        return np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.int64)
    return pc.unique(pa.chunked_array(parts, key_type).combine_chunks())


class RawCapture:
    """Captures days of one table into the lake (the work behind the raw asset).

    `session`: the run's source connection; `actual`: the source's columns as the run read them;
    `listed`: the raw keys of the run's days (one listing), so a day raw never had costs no
    manifest request. After `capture(D)`, `manifests[D]` is raw D's manifest as written (or as
    it stays) and `versions` its (pk, cursor) index."""

    def __init__(self, config: TableConfig, session: ex.SourceSession, store: LakeStore, log,
                 actual: dict[str, str] | None = None, listed: set[str] | None = None):
        self.config, self.session, self.store, self.log = config, session, store, log
        self.actual, self.listed = actual, listed
        self.rows_added = 0  # versions this run captured that raw did not have yet
        self.manifests: dict[dt.date, dict] = {}
        self.versions: pa.Table = VERSIONS_SCHEMA.empty_table()
        self.keys_by_day: dict[dt.date, pa.Array] = {}  # distinct keys of the days captured

    def read_manifest(self, prefix: str) -> dict | None:
        if self.listed is not None and prefix + MANIFEST not in self.listed:
            return None  # the run's listing shows no such folder
        return self.store.read_manifest(prefix)

    def _remember(self, day: dt.date, manifest: dict, versions: pa.Table) -> None:
        self.manifests[day], self.versions = manifest, versions
        self.keys_by_day[day] = self._keys_of(versions["pk"].combine_chunks())

    def _key_type(self) -> tuple[pa.DataType, bool]:
        key_type = arrow_type(self.config.columns[self.config.primary_key])
        return (key_type, True) if pa.types.is_integer(key_type) else (pa.string(), False)

    def _keys_of(self, values: pa.Array) -> pa.Array:
        return pc.unique(values.drop_null().cast(self._key_type()[0]))

    def capture(self, day: dt.date, workdir: Path) -> FolderWrite:
        """Extract day D and add its new versions to raw D (`unchanged` when nothing is new)."""
        config = self.config
        prefix = partition_prefix("raw", config.name, day)
        window = capture_window(day) if config.incremental else None
        extracted_at = ex.utc_now()
        stamp = f"{extracted_at:%Y%m%dT%H%M%S%fZ}"
        stem = f"part-{stamp}"
        attempt = 0

        def run(conn):
            nonlocal attempt
            attempt += 1
            target = workdir / f"{day.isoformat()}-{attempt}"
            target.mkdir()
            return ex.extract(conn, config, window, target, stem, actual=self.actual)

        extract = self.session.run(run)
        manifest = self.read_manifest(prefix)
        new_versions = extract.versions
        paths, rows = extract.paths, extract.rows
        if manifest is not None:
            old = self._versions(prefix, manifest)
            is_new = pc.invert(pc.is_in(_version_ids(new_versions), value_set=_version_ids(old)))
            fresh = new_versions.filter(is_new)
            if fresh.num_rows == 0:
                paths, rows = [], 0
            elif fresh.num_rows < new_versions.num_rows:
                keep = set(zip(fresh["pk"].to_pylist(), fresh["cursor"].to_pylist()))
                filtered = workdir / f"{day.isoformat()}-filtered"
                filtered.mkdir(exist_ok=True)
                paths, rows = _filter_lines(extract.paths, config, keep, filtered)
            new_versions = fresh
        else:
            old = VERSIONS_SCHEMA.empty_table()
        if manifest is not None and not paths:
            # nothing new since the last capture: raw D stays as it is, and its page says what it holds
            self._remember(day, manifest, old)
            return FolderWrite(day=day, prefix=prefix, files={}, manifest=manifest, replace=False,
                               rows=old.num_rows, unchanged=True,
                               cursor_range=(manifest.get("cursor_min"), manifest.get("cursor_max")))
        files_of = {p.name: p for p in paths}
        tagged = pa.table(
            {
                "pk": new_versions["pk"],
                "cursor": new_versions["cursor"],
                "file": pa.array([stem] * new_versions.num_rows, pa.string()),  # the capture it came in
            },
            schema=VERSIONS_SCHEMA,
        )
        versions = pa.concat_tables([old, tagged]) if paths else old
        cursors = versions["cursor"]
        lo = pc.min(cursors).as_py() if versions.num_rows else None
        hi = pc.max(cursors).as_py() if versions.num_rows else None
        previous = manifest or {}
        # The index is rewritten under a new name: the one the current manifest lists stays
        # untouched until the new manifest replaces it (a run killed in between changes nothing).
        superseded = [n for n in [listed_sidecar(manifest, RAW_VERSIONS)] if n]
        extractions = previous.get("extractions", []) + [
            {
                "extracted_at": extracted_at.isoformat(),
                "rows_added": rows,
                "rows_read": extract.rows,
                "files": sorted(files_of),
                "seconds": round(extract.seconds, 3),
                "long_numbers": extract.long_numbers,  # staging reads these parts exactly (exact_json.py)
            }
        ]
        new_manifest = {
            "table": config.name,
            "dt": day.isoformat(),
            "sync": config.sync,
            # [start, end) of the cursor; the first partition's start is null (it opens the lake)
            "window": [window[0] and window[0].isoformat(), window[1].isoformat()] if window else None,
            "row_count": versions.num_rows,
            "cursor_column": config.cursor,
            "cursor_min": lo,
            "cursor_max": hi,
            "extracted_at": extracted_at.isoformat(),
            "columns": extract.columns,
            "extractions": extractions,
            "files": {n: v for n, v in previous.get("files", {}).items() if n not in superseded},
            "deletes": previous.get("deletes"),
        }
        # Parts small enough for one PUT travel as bytes: the IO manager may still be uploading
        # them when this generator has moved on and removed its temporary files.
        files: dict[str, bytes | Path] = {n: p.read_bytes() if p.stat().st_size < MULTIPART_BYTES else p
                                          for n, p in files_of.items()}
        files[sidecar_name(RAW_VERSIONS, stamp)] = parquet_bytes(versions)
        self.rows_added += rows
        self._remember(day, folder_manifest(files, new_manifest), versions)
        return FolderWrite(
            day=day, prefix=prefix, files=files, manifest=new_manifest, replace=False,
            rows=versions.num_rows, cursor_range=(lo, hi), remove=superseded,
        )

    def _versions(self, prefix: str, manifest: dict | None) -> pa.Table:
        """The versions index the manifest lists (what a completed capture recorded)."""
        name = listed_sidecar(manifest, RAW_VERSIONS)
        if name is None:
            return VERSIONS_SCHEMA.empty_table()
        return pq.read_table(pa.BufferReader(self.store.read_listed(prefix, manifest, name))).cast(VERSIONS_SCHEMA)

    def _day_keys(self, d: dt.date, day: dt.date) -> tuple[pa.Array | None, pa.Array | None]:
        """(keys raw d holds, when d <= `day`; keys tombstoned in d, if it has any)."""
        prefix = partition_prefix("raw", self.config.name, d)
        if d in self.keys_by_day:  # captured by this run: its keys are in hand
            manifest, known = self.manifests[d], self.keys_by_day[d]
        else:
            manifest = self.store.read_manifest(prefix)
            known = None
            if d <= day:
                known = self._keys_of(self._versions(prefix, manifest)["pk"].combine_chunks())
        gone = self._deletes(prefix, manifest)
        return known, (None if gone is None else self._keys_of(gone["pk"].combine_chunks()))

    def _deletes(self, prefix: str, manifest: dict | None) -> pa.Table | None:
        """The tombstones a raw day's manifest lists (None: it has none)."""
        name = listed_sidecar(manifest, RAW_DELETES)
        if name is None:
            return None
        return pq.read_table(pa.BufferReader(self.store.read_listed(prefix, manifest, name))).cast(DELETES_SCHEMA)

    def _live_in_lake(self, day: dt.date) -> pa.Array:
        """Keys raw holds on days <= D that no day of the lake has tombstoned yet (a tombstone
        stays where it was written, on any day: it is never noticed twice)."""
        key_type, integer_keys = self._key_type()
        # the run's own days may still be uploading: they are known from memory
        history = sorted(set(self.store.list_days(layer_prefix("raw", self.config.name))) | set(self.keys_by_day))
        # The days are read from S3 a few at a time: on a daily run a year in, that is 365
        # manifests and indexes, where latency, not bandwidth, is the cost.
        with ThreadPoolExecutor(HISTORY_READERS, thread_name_prefix="volt-raw-history") as pool:
            found = list(pool.map(lambda d: self._day_keys(d, day), history))
        known = _merge_keys([k for k, _ in found if k is not None], key_type, integer_keys)
        gone_parts = [g for _, g in found if g is not None]
        if not gone_parts:
            return known
        gone = _merge_keys(gone_parts, key_type, integer_keys)
        if integer_keys:
            return known[~np.isin(known, gone)]
        return known.filter(pc.invert(pc.is_in(known, value_set=gone)))

    def _find_missing(self, known) -> tuple[list[str], int]:
        """(known keys the source no longer has, as text; how many keys it has)."""
        config = self.config
        key_type, integer_keys = self._key_type()

        def as_text(keys) -> pa.Array:
            return pa.array(keys, key_type).cast(pa.string()) if integer_keys else keys

        def find(conn) -> tuple[list[str], int]:
            estimate = ex.table_rows_estimate(conn, config)
            if 0 < len(known) < ex.PROBE_SHARE * estimate:
                # a few days of a big table: probe those keys, never read the whole table's keys
                return ex.absent_keys(conn, config, as_text(known)).to_pylist(), int(estimate)
            live = ex.live_keys(conn, config)
            live_count = len(live)
            if integer_keys:
                live_sorted = np.sort(live.drop_null().cast(key_type).to_numpy())
                del live
                if not len(live_sorted):
                    return as_text(known).to_pylist(), 0
                at = np.minimum(np.searchsorted(live_sorted, known), len(live_sorted) - 1)
                absent = live_sorted[at] != known
                return as_text(known[absent]).to_pylist(), live_count
            absent = pc.invert(pc.is_in(known, value_set=pc.cast(live, pa.string())))
            return known.filter(absent).to_pylist(), live_count

        return self.session.run(find)

    def notice_deletes(self, day: dt.date) -> FolderWrite | None:
        """Compare the source's live keys with the keys the lake knows up to D and has not
        tombstoned yet; add the missing ones to D's tombstones (those D already has stay).
        Called only by a run reaching the present (`reaches_present`). Refuses (dg.Failure) to
        delete more than `max_delete_share`; None when raw D has no manifest."""
        config = self.config
        known = self._live_in_lake(day)
        found, live_count = self._find_missing(known)
        missing = sorted(found)
        share = len(missing) / len(known) if len(known) else 0.0
        if missing and share > config.max_delete_share:
            raise dg.Failure(
                description=(
                    f"refusing to tombstone {len(missing)} of {len(known)} known {config.name} keys "
                    f"({share:.1%} > max_delete_share {config.max_delete_share:.0%}): the source looks "
                    "broken or truncated. If the deletes are real, raise max_delete_share in tables.yaml."
                ),
                allow_retries=False,
            )
        prefix = partition_prefix("raw", config.name, day)
        manifest = self.manifests[day] if day in self.manifests else self.store.read_manifest(prefix)
        if manifest is None:
            return None
        # D's tombstones stay, row for row; the record says what this check saw (so the last
        # of two runs at once leaves what one run alone would have)
        earlier = self._deletes(prefix, manifest)
        manifest = dict(manifest)
        noticed = ex.utc_now()
        deletes = pa.table({"pk": missing, "noticed_at": [noticed] * len(missing)}, schema=DELETES_SCHEMA)
        if earlier is not None:
            deletes = pa.concat_tables([earlier, deletes])  # the tombstones D had, then the new ones
        name = sidecar_name(RAW_DELETES, f"{noticed:%Y%m%dT%H%M%S%fZ}")
        superseded = [n for n in [listed_sidecar(manifest, RAW_DELETES)] if n]
        manifest["files"] = {n: v for n, v in manifest.get("files", {}).items() if n not in superseded}
        # known_keys counts D's earlier tombstones too: a re-run after a killed one records
        # what the first run would have
        before = earlier.num_rows if earlier is not None else 0
        manifest["deletes"] = {"file": name, "count": deletes.num_rows, "noticed_at": noticed.isoformat(),
                               "known_keys": len(known) + before, "live_keys": live_count}
        return FolderWrite(day=day, prefix=prefix, files={name: parquet_bytes(deletes)},
                           manifest=manifest, replace=False, rows=0, primary=False, remove=superseded)


def raw_locks(config: TableConfig, days: list[dt.date]) -> list[str]:
    """The writer locks of a raw run: its days, the late-commit days before them, and the
    table's tombstones when the run reaches the present (two such runs would notice one delete
    twice)."""
    back = config.lookback_days if config.incremental else 0
    first = days[0] - dt.timedelta(days=back)
    names = [folder_lock("raw", config.name, first + dt.timedelta(days=i)) for i in range((days[-1] - first).days + 1)]
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
        **catalog.lake_catalog("raw", config, {"partition_expr": config.cursor, "sync": config.sync,
                                               "primary_key": config.primary_key}),
        description=(
            f"Exact capture of `{config.name}`: rows whose `{config.cursor}` lies in the day "
            "[D, D+1) UTC, as JSON Lines; every captured version is kept."
        ),
    )
    def raw_asset(context: dg.AssetExecutionContext, source: PostgresResource, lake: LakeResource):
        # The run's folders are locked before their manifests are read and stay locked until
        # the output is published (Dagster handles the Output before the generator resumes).
        locks = WriterLocks(lambda: source.new_connection(application_name(context.run_id)),
                            raw_locks(config, context_days(context)), context.log, f"raw/{config.name}")
        with locks, ex.SourceSession(source, context.log) as session:  # one connection for the reads
            yield from capture_days(context, session, lake.store())

    def capture_days(context: dg.AssetExecutionContext, session: ex.SourceSession, store: LakeStore):
        days = context_days(context)
        source = session.database
        try:
            actual = session.run(lambda conn: ex.source_columns(conn, config.name))
        except SourceUnavailable as exc:  # a dg.Failure: retried unless no retry can fix it
            raise SourceUnavailable(str(exc), permanent=exc.permanent) from None
        if not actual:
            raise dg.Failure(
                description=f"source table {config.name!r} does not exist in {source.where}: "
                "create the Volt schema (`volt-assets seed` does) or check POSTGRES_DB",
                allow_retries=False,
            )
        drift = ex.detect_drift(config, actual)
        if drift.any:
            context.log.warning(f"schema drift in {config.name}: {drift.describe()}")
        first = days[0] - dt.timedelta(days=config.lookback_days if config.incremental else 0)
        listed = set(store.list_days_objects(layer_prefix("raw", config.name), first, days[-1]))
        capture = RawCapture(config, session, store, context.log, actual=actual, listed=listed)
        quality = RawQuality(config, session, store, drift, context.log)
        stats: dict = {"late_rows": 0}

        def writes():
            with tempfile.TemporaryDirectory(prefix=f"volt-raw-{config.name}-") as tmp:
                workdir = Path(tmp)
                if config.incremental:
                    # Late commits: re-read the days before the run's first day that raw already
                    # has, and add what committed after they were captured.
                    for back in range(config.lookback_days, 0, -1):
                        previous = days[0] - dt.timedelta(days=back)
                        if capture.read_manifest(partition_prefix("raw", config.name, previous)) is None:
                            continue
                        added_before = capture.rows_added
                        late = capture.capture(previous, workdir)
                        if not late.unchanged:
                            late.primary = False
                            stats["late_rows"] += capture.rows_added - added_before
                            context.log.warning(
                                f"{capture.rows_added - added_before} late rows of {previous} added to its raw partition"
                            )
                            yield late
                for day in days:
                    write = capture.capture(day, workdir)
                    quality.observe(day, capture.manifests[day], capture.versions)
                    yield write
                    for p in workdir.glob(f"{day.isoformat()}-*/*"):
                        p.unlink()  # keep the disk bounded too
                # Only a run reaching the present notices hard deletes: a re-run of a past day
                # keeps the tombstones it had and never gains deletes made after it.
                tombstones = capture.notice_deletes(days[-1]) if reaches_present(days[-1]) else None
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

        output = LakeOutput(writes=writes(), stats=stats)
        yield dg.Output(output)
        yield dg.AssetCheckResult(
            check_name="schema_drift",
            passed=not drift.any,
            severity=dg.AssetCheckSeverity.WARN if not (drift.dropped or drift.retyped) else dg.AssetCheckSeverity.ERROR,
            description=drift.describe(),
            metadata={
                "added": dg.MetadataValue.json(drift.added),
                "dropped": dg.MetadataValue.json(drift.dropped),
                "retyped": dg.MetadataValue.json({c: list(v) for c, v in drift.retyped.items()}),
            },
        )
        yield from quality.results(days)

    return raw_asset
