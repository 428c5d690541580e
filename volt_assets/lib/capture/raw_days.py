"""The raw capture engine: one table's days extracted and added to the lake, versions exact.

`RawCapture.capture(D)` extracts day D, keeps the (primary key, cursor) versions raw D does
not hold yet, and returns the `FolderWrite` that adds them (or an `unchanged` one). Its
`notice_deletes(D)` compares the source's live keys with the keys the lake knows and returns
D's tombstones. The Dagster asset around it (defs/lake/raw.py) locks the folders, checks the
schema and hands the writes to the IO manager; nothing here needs Dagster.
"""

import datetime as dt
import gzip
import itertools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from volt_assets.lib.capture import extract as ex
from volt_assets.lib.capture.captured_versions import VersionSet
from volt_assets.lib.config.partitions import capture_window
from volt_assets.lib.config.table_config import TableConfig, arrow_type
from volt_assets.lib.staging.transform import HELD_BYTES, parquet_body, parquet_bytes
from volt_assets.lib.store.lake_store import FolderWrite, LakeStore, folder_manifest
from volt_assets.lib.store.layout import (
    MANIFEST,
    RAW_DELETES,
    RAW_VERSIONS,
    layer_prefix,
    listed_sidecar,
    partition_prefix,
    sidecar_name,
)

HISTORY_READERS = 8  # raw days read at once when hard-delete detection gathers the known keys
# `file` names the capture of each version: a handful of values over a million rows, so a
# dictionary (4 bytes a row instead of the name's ~30)
VERSIONS_SCHEMA = pa.schema(
    [("pk", pa.string()), ("cursor", pa.string()), ("file", pa.dictionary(pa.int32(), pa.string()))]
)
DELETES_SCHEMA = pa.schema([("pk", pa.string()), ("noticed_at", pa.timestamp("us", tz="UTC"))])


class MassDeleteRefused(Exception):
    """More of the known keys vanished than `max_delete_share` allows: nothing is tombstoned."""


def capture_stamp(extracted_at: dt.datetime) -> str:
    """The name a capture gives its parts and sidecars: when it read the source, to the µs."""
    return f"{extracted_at:%Y%m%dT%H%M%S%fZ}"


def new_versions(extracted: pa.Table, captured: pa.Table) -> pa.Table:
    """The extracted (pk, cursor) versions raw does not hold yet (`captured`), in their order."""
    held = VersionSet(captured["pk"], captured["cursor"])
    return extracted.filter(
        held.absent(extracted["pk"].combine_chunks(), extracted["cursor"].combine_chunks())
    )


def tag_versions(versions: pa.Table, stem: str) -> pa.Table:
    """The versions index rows of one capture: each version with the capture it came in."""
    return pa.table(
        {
            "pk": versions["pk"],
            "cursor": versions["cursor"],
            "file": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(versions.num_rows, np.int32)), pa.array([stem])
            ),
        },
        schema=VERSIONS_SCHEMA,
    )


def cursor_bounds(versions: pa.Table) -> tuple[str | None, str | None]:
    """(lowest, highest) cursor of a versions index; (None, None) when it is empty."""
    if not versions.num_rows:
        return None, None
    return pc.min(versions["cursor"]).as_py(), pc.max(versions["cursor"]).as_py()


def _filter_lines(
    paths: list[Path], config: TableConfig, keep: set[tuple[str, str]], out: Path
) -> tuple[list[Path], int]:
    """Rewrite parts keeping only lines whose (pk, cursor) is in `keep` (re-captures only)."""
    kept_paths, rows = [], 0
    for path in paths:
        target = out / path.name
        n = 0
        with (
            gzip.open(path, "rb") as src,
            gzip.GzipFile(target, "wb", compresslevel=1, mtime=0) as dst,
        ):
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


def raw_manifest(
    config: TableConfig,
    day: dt.date,
    window,
    previous: dict,
    versions: pa.Table,
    extraction: dict,
    columns,
    superseded: list[str],
) -> dict:
    """Raw D's manifest after one capture: `previous` (the manifest D had, or {}) with this
    capture's `extraction` record added, the files it supersedes left out."""
    lo, hi = cursor_bounds(versions)
    return {
        "table": config.name,
        "dt": day.isoformat(),
        "sync": config.sync,
        # [start, end) of the cursor; the first partition's start is null (it opens the lake)
        "window": [window[0] and window[0].isoformat(), window[1].isoformat()] if window else None,
        "row_count": versions.num_rows,
        "cursor_column": config.cursor,
        "cursor_min": lo,
        "cursor_max": hi,
        "extracted_at": extraction["extracted_at"],
        "columns": columns,
        "extractions": previous.get("extractions", []) + [extraction],
        "files": {n: v for n, v in previous.get("files", {}).items() if n not in superseded},
        "deletes": previous.get("deletes"),
    }


def refuse_mass_delete(config: TableConfig, missing: int, known: int) -> None:
    """Raise `MassDeleteRefused` when `missing` of `known` keys is over `max_delete_share`."""
    share = missing / known if known else 0.0
    if missing and share > config.max_delete_share:
        raise MassDeleteRefused(
            f"refusing to tombstone {missing} of {known} known {config.name} keys "
            f"({share:.1%} > max_delete_share {config.max_delete_share:.0%}): the source looks "
            "broken or truncated. If the deletes are real, raise max_delete_share in tables.yaml."
        )


def _merge_keys(parts: list[pa.Array], key_type: pa.DataType, integer_keys: bool):
    """The distinct keys of several arrays: a sorted int64 numpy array for integer keys, else
    an Arrow string array."""
    if integer_keys:
        arrays = [
            p.to_numpy(zero_copy_only=False).astype(np.int64, copy=False) for p in parts if len(p)
        ]
        return np.unique(np.concatenate(arrays)) if arrays else np.empty(0, np.int64)
    return pc.unique(pa.chunked_array(parts, key_type).combine_chunks())


def absent_integer_keys(known: np.ndarray, live: pa.Array, key_type: pa.DataType) -> np.ndarray:
    """The `known` integer keys (sorted, distinct) that `live` does not hold."""
    live_sorted = np.sort(live.drop_null().cast(key_type).to_numpy())
    if not len(live_sorted):
        return known
    at = np.minimum(np.searchsorted(live_sorted, known), len(live_sorted) - 1)
    return known[live_sorted[at] != known]


class RawCapture:
    """Captures days of one table into the lake (the work behind the raw asset).

    `session`: the run's source connection; `actual`: the source's columns as the run read them;
    `listed`: the raw keys of the run's days (one listing), so a day raw never had costs no
    manifest request. After `capture(D)`, `manifests[D]` is raw D's manifest as written (or as
    it stays) and `versions` its (pk, cursor) index."""

    def __init__(
        self,
        config: TableConfig,
        session: ex.SourceSession,
        store: LakeStore,
        log,
        actual: dict[str, str] | None = None,
        listed: set[str] | None = None,
        notices_deletes: bool = False,
        lake_keys: Callable[[dt.date], pa.Array | None] | None = None,
    ):
        self.config, self.session, self.store, self.log = config, session, store, log
        self.actual, self.listed = actual, listed
        # a run reaching the present looks for hard deletes once its days are captured
        self.notices_deletes = notices_deletes
        # the keys the lake's state holds (not hard-deleted) at the end of the day before a
        # day, or None when it cannot say: read instead of every raw day's versions index
        self.lake_keys = lake_keys
        self.rows_added = 0  # versions this run captured that raw did not have yet
        self.manifests: dict[dt.date, dict] = {}
        self.versions: pa.Table = VERSIONS_SCHEMA.empty_table()
        # the key column of each day captured, for a run that notices deletes (its distinct
        # keys are taken only then); other runs keep none: a 5M-row year's keys are ~55 MB
        self.keys_by_day: dict[dt.date, pa.ChunkedArray] = {}

    def take_versions(self) -> pa.Table:
        """The versions index of the day just captured, no longer held here (a big day's is
        tens of MB, let go once its check has what it needs)."""
        versions, self.versions = self.versions, VERSIONS_SCHEMA.empty_table()
        return versions

    def read_manifest(self, prefix: str) -> dict | None:
        if self.listed is not None and prefix + MANIFEST not in self.listed:
            return None  # the run's listing shows no such folder
        return self.store.read_manifest(prefix)

    def _remember(self, day: dt.date, manifest: dict, versions: pa.Table) -> None:
        self.manifests[day], self.versions = manifest, versions
        if self.notices_deletes:
            self.keys_by_day[day] = versions["pk"]

    def _key_type(self) -> tuple[pa.DataType, bool]:
        key_type = arrow_type(self.config.columns[self.config.primary_key])
        return (key_type, True) if pa.types.is_integer(key_type) else (pa.string(), False)

    def _keys_of(self, values: pa.Array) -> pa.Array:
        key_type, integer_keys = self._key_type()
        keys = values.drop_null().cast(key_type)
        if integer_keys:  # sorting integers: no hash table beside a million keys
            return pa.array(np.unique(keys.to_numpy()), key_type)
        return pc.unique(keys)

    def extract_days(
        self, days: list[dt.date], workdir: Path
    ) -> dict[dt.date, tuple[dt.datetime, ex.Extract]]:
        """Consecutive days of an incremental table in one read of the source (one snapshot,
        one pair of COPYs), for `capture(D, workdir, extracted)`; a cursor whose text does not
        start with its day (`ex.splits_by_day`) gets {} and each day is read on its own."""
        if len(days) < 2 or not self.config.incremental or not ex.splits_by_day(self.config):
            return {}
        window = (capture_window(days[0])[0], capture_window(days[-1])[1])
        extracted_at = ex.utc_now()
        stem = f"part-{capture_stamp(extracted_at)}"
        attempts = itertools.count(1)

        def run(conn):  # a retried read starts from nothing, in a folder of its own
            target = workdir / f"days-{days[0].isoformat()}-{next(attempts)}"
            target.mkdir()
            return ex.extract_days(conn, self.config, days, window, target, stem, self.actual)

        found = self.session.run(run)
        return {day: (extracted_at, extract) for day, extract in found.items()}

    def capture(
        self,
        day: dt.date,
        workdir: Path,
        extracted: tuple[dt.datetime, ex.Extract] | None = None,
    ) -> FolderWrite:
        """Add day D's new versions to raw D (`unchanged` when nothing is new): from
        `extracted` (when and what `extract_days` read for D), or read here."""
        prefix = partition_prefix("raw", self.config.name, day)
        window = capture_window(day) if self.config.incremental else None
        if extracted is None:
            extracted_at = ex.utc_now()
            extract = self._extract(day, window, workdir, f"part-{capture_stamp(extracted_at)}")
        else:
            extracted_at, extract = extracted
        stamp = capture_stamp(extracted_at)
        manifest = self.read_manifest(prefix)
        fresh, paths, rows = extract.versions, extract.paths, extract.rows
        old = VERSIONS_SCHEMA.empty_table()
        if manifest is not None:
            old = self._versions(prefix, manifest)
            fresh = new_versions(extract.versions, old)
            paths, rows = self._new_lines(day, extract, fresh, workdir)
            if not paths:
                # nothing new since the last capture: raw D stays as it is, and its page says
                # what it holds
                self._remember(day, manifest, old)
                return FolderWrite(
                    day=day,
                    prefix=prefix,
                    files={},
                    manifest=manifest,
                    replace=False,
                    rows=old.num_rows,
                    unchanged=True,
                    cursor_range=(manifest.get("cursor_min"), manifest.get("cursor_max")),
                )
        versions = pa.concat_tables([old, tag_versions(fresh, f"part-{stamp}")]) if paths else old
        extraction = {
            "extracted_at": extracted_at.isoformat(),
            "rows_added": rows,
            "rows_read": extract.rows,
            "files": sorted(p.name for p in paths),
            "seconds": round(extract.seconds, 3),
            # the source's columns as this capture read them: staging refuses a day whose
            # parts lack a declared column (a rename or drop at the source), never reads NULLs
            "columns": list(extract.columns),
            # and their types: staging refuses a day captured with a numeric's precision or
            # scale other than the declared one
            "column_types": dict(extract.types),
            # staging reads these parts exactly (exact_json.py)
            "long_numbers": extract.long_numbers,
        }
        return self._added(
            day, prefix, manifest, window, versions, extraction, extract.columns, paths, stamp
        )

    def _extract(self, day: dt.date, window, workdir: Path, stem: str) -> ex.Extract:
        """Extract D into a fresh folder per attempt (a retried read starts from nothing)."""
        attempts = itertools.count(1)

        def run(conn):
            target = workdir / f"{day.isoformat()}-{next(attempts)}"
            target.mkdir()
            return ex.extract(conn, self.config, window, target, stem, actual=self.actual)

        return self.session.run(run)

    def _new_lines(
        self, day: dt.date, extract: ex.Extract, fresh: pa.Table, workdir: Path
    ) -> tuple[list[Path], int]:
        """The extracted parts cut down to the `fresh` versions, and their rows."""
        if fresh.num_rows == 0:
            return [], 0
        if fresh.num_rows == extract.versions.num_rows:
            return extract.paths, extract.rows
        keep = set(zip(fresh["pk"].to_pylist(), fresh["cursor"].to_pylist()))
        filtered = workdir / f"{day.isoformat()}-filtered"
        filtered.mkdir(exist_ok=True)
        return _filter_lines(extract.paths, self.config, keep, filtered)

    def _added(
        self,
        day: dt.date,
        prefix: str,
        manifest: dict | None,
        window,
        versions: pa.Table,
        extraction: dict,
        columns,
        paths: list[Path],
        stamp: str,
    ) -> FolderWrite:
        """The write adding one capture's parts and the new versions index to raw D."""
        # The index is rewritten under a new name: the one the current manifest lists stays
        # untouched until the new manifest replaces it (a run killed in between changes nothing).
        superseded = [n for n in [listed_sidecar(manifest, RAW_VERSIONS)] if n]
        new_manifest = raw_manifest(
            self.config, day, window, manifest or {}, versions, extraction, columns, superseded
        )
        # A normal day's parts travel as bytes: the IO manager may still be uploading them when
        # this generator has moved on and removed its temporary files. A big day's go from disk.
        held = sum(p.stat().st_size for p in paths) < HELD_BYTES
        files: dict[str, bytes | Path] = {p.name: p.read_bytes() if held else p for p in paths}
        index = sidecar_name(RAW_VERSIONS, stamp)
        files[index] = (
            parquet_body(versions, paths[0].parent / index) if paths else parquet_bytes(versions)
        )
        self.rows_added += extraction["rows_added"]
        self._remember(day, folder_manifest(files, new_manifest), versions)
        return FolderWrite(
            day=day,
            prefix=prefix,
            files=files,
            manifest=new_manifest,
            replace=False,
            rows=versions.num_rows,
            cursor_range=cursor_bounds(versions),
            remove=superseded,
        )

    def _versions(self, prefix: str, manifest: dict | None) -> pa.Table:
        """The versions index the manifest lists (what a completed capture recorded)."""
        name = listed_sidecar(manifest, RAW_VERSIONS)
        if name is None:
            return VERSIONS_SCHEMA.empty_table()
        return pq.read_table(pa.BufferReader(self.store.read_listed(prefix, manifest, name))).cast(
            VERSIONS_SCHEMA
        )

    def _day_keys(self, d: dt.date, day: dt.date) -> tuple[pa.Array | None, pa.Array | None]:
        """(keys raw d holds, when d <= `day`; keys tombstoned in d, if it has any)."""
        prefix = partition_prefix("raw", self.config.name, d)
        if d in self.keys_by_day:  # captured by this run: its keys are in hand
            manifest = self.manifests[d]
            known = self._keys_of(self.keys_by_day[d].combine_chunks())
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
        return pq.read_table(pa.BufferReader(self.store.read_listed(prefix, manifest, name))).cast(
            DELETES_SCHEMA
        )

    def _live_in_lake(self, day: dt.date) -> pa.Array:
        """Keys the lake holds up to D that it has not tombstoned: from the lake's state before
        the run's days and the keys of the days this run captured, when the state can say
        (no old raw day is read, so one archived or expired never stops the run); else from
        every raw day's versions index and tombstones."""
        if self.lake_keys is not None and self.keys_by_day:
            before = self.lake_keys(min(self.keys_by_day))
            if before is not None:
                return self._live_from_state(before, day)
        return self._live_in_raw(day)

    def _live_from_state(self, before: pa.Array, day: dt.date) -> pa.Array:
        """`before` (the state's keys) with the keys of the run's days <= D, less the keys
        those days have tombstoned."""
        key_type, integer_keys = self._key_type()
        found = [self._day_keys(d, day) for d in sorted(self.keys_by_day)]
        known = _merge_keys(
            [self._keys_of(before)] + [k for k, _ in found if k is not None], key_type, integer_keys
        )
        return self._without(known, [g for _, g in found if g is not None], key_type, integer_keys)

    def _without(self, known, gone_parts: list, key_type: pa.DataType, integer_keys: bool):
        """`known` less every key of `gone_parts` (tombstones)."""
        if not gone_parts:
            return known
        gone = _merge_keys(gone_parts, key_type, integer_keys)
        if integer_keys:
            return known[~np.isin(known, gone)]
        return known.filter(pc.invert(pc.is_in(known, value_set=gone)))

    def _live_in_raw(self, day: dt.date) -> pa.Array:
        """Keys raw holds on days <= D that no day of the lake has tombstoned yet (a tombstone
        stays where it was written, on any day: it is never noticed twice)."""
        key_type, integer_keys = self._key_type()
        # the run's own days may still be uploading: they are known from memory
        history = sorted(
            set(self.store.list_days(layer_prefix("raw", self.config.name))) | set(self.keys_by_day)
        )
        # The days are read from S3 a few at a time: on a daily run a year in, that is 365
        # manifests and indexes, where latency, not bandwidth, is the cost.
        with ThreadPoolExecutor(HISTORY_READERS, thread_name_prefix="volt-raw-history") as pool:
            found = list(pool.map(lambda d: self._day_keys(d, day), history))
        known = _merge_keys([k for k, _ in found if k is not None], key_type, integer_keys)
        return self._without(known, [g for _, g in found if g is not None], key_type, integer_keys)

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
            if integer_keys:
                return as_text(absent_integer_keys(known, live, key_type)).to_pylist(), len(live)
            absent = pc.invert(pc.is_in(known, value_set=pc.cast(live, pa.string())))
            return known.filter(absent).to_pylist(), len(live)

        return self.session.run(find)

    def notice_deletes(self, day: dt.date) -> FolderWrite | None:
        """Compare the source's live keys with the keys the lake knows up to D and has not
        tombstoned yet; add the missing ones to D's tombstones (those D already has stay).
        Called only by a run reaching the present (`reaches_present`). Refuses
        (`MassDeleteRefused`) to delete more than `max_delete_share`; None when raw D has no
        manifest."""
        known = self._live_in_lake(day)
        found, live_count = self._find_missing(known)
        missing = sorted(found)
        refuse_mass_delete(self.config, len(missing), len(known))
        prefix = partition_prefix("raw", self.config.name, day)
        manifest = (
            self.manifests[day] if day in self.manifests else self.store.read_manifest(prefix)
        )
        if manifest is None:
            return None
        return self._tombstones(day, prefix, manifest, missing, len(known), live_count)

    def _tombstones(
        self,
        day: dt.date,
        prefix: str,
        manifest: dict,
        missing: list[str],
        known: int,
        live_count: int,
    ) -> FolderWrite:
        """The write adding `missing` to D's tombstones."""
        # D's tombstones stay, row for row; the record says what this check saw (so the last
        # of two runs at once leaves what one run alone would have)
        earlier = self._deletes(prefix, manifest)
        manifest = dict(manifest)
        noticed = ex.utc_now()
        deletes = pa.table(
            {"pk": missing, "noticed_at": [noticed] * len(missing)}, schema=DELETES_SCHEMA
        )
        if earlier is not None:
            deletes = pa.concat_tables(
                [earlier, deletes]
            )  # the tombstones D had, then the new ones
        name = sidecar_name(RAW_DELETES, capture_stamp(noticed))
        superseded = [n for n in [listed_sidecar(manifest, RAW_DELETES)] if n]
        manifest["files"] = {
            n: v for n, v in manifest.get("files", {}).items() if n not in superseded
        }
        # known_keys counts D's earlier tombstones too: a re-run after a killed one records
        # what the first run would have
        before = earlier.num_rows if earlier is not None else 0
        manifest["deletes"] = {
            "file": name,
            "count": deletes.num_rows,
            "noticed_at": noticed.isoformat(),
            "known_keys": known + before,
            "live_keys": live_count,
        }
        return FolderWrite(
            day=day,
            prefix=prefix,
            files={name: parquet_bytes(deletes)},
            manifest=manifest,
            replace=False,
            rows=0,
            primary=False,
            remove=superseded,
        )
