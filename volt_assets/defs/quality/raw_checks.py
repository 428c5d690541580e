"""The checks of `raw/{table}`, evaluated in the raw step as it captures each day.

- `schema_drift` (result built in `assets/raw.py`, before extraction): reported here in the
  day's quality report as well;
- `source_reconciliation`: every (primary key, cursor) the source holds for the day, as of the
  capture, is in the versions index raw D's manifest lists (`_versions-<capture>.parquet`; raw
  may hold more: older versions the source has since overwritten), and it has the manifest's
  `row_count` rows. ERROR, not
  blocking: raw only grows, so the next capture (or the next day's look-back) heals a late commit;
  it is reported so nobody trusts a partition with holes.
- `files_present`: every file raw D's manifest lists exists with the size it was written with.
  ERROR and blocking: staging cannot be built from a partition that lost a file (someone removed
  it by hand), so the run stops at the check instead of failing on a download.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg2 import sql

from volt_assets.defs.quality.outcome import ERROR, WARN, DayOutcome, Sample, Tally
from volt_assets.defs.quality.report import LAYER, ReportWriter
from volt_assets.lib.capture import extract as ex
from volt_assets.lib.capture.captured_versions import VersionSet
from volt_assets.lib.config.partitions import capture_window
from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import (
    MANIFEST,
    RAW_VERSIONS,
    layer_prefix,
    listed_sidecar,
    partition_prefix,
)

RECONCILIATION = "source_reconciliation"
FILES = "files_present"
DRIFT = "schema_drift"


def raw_check_specs(config: TableConfig) -> list[dg.AssetCheckSpec]:
    """The raw asset's checks besides `schema_drift` (which raw.py declares)."""
    key = dg.AssetKey(["raw", config.name])
    return [
        dg.AssetCheckSpec(
            RECONCILIATION,
            asset=key,
            description=(
                f"Every `{config.name}` row the source has with `{config.cursor}` in the day (as of the "
                "capture) is in raw's versions index, which has the manifest's row_count rows. ERROR "
                "on any missing row (not blocking: the next capture adds late rows)."
            ),
        ),
        dg.AssetCheckSpec(
            FILES,
            asset=key,
            blocking=True,
            description=(
                "Every file the raw manifest lists exists with its size. ERROR (blocks staging) when a "
                "file is missing or truncated, e.g. removed by hand: restore it from the bucket's versions."
            ),
        ),
    ]


class RawQuality:
    """Checks the raw days a run captures: `observe(day, ...)` reconciles a day with the source
    right after its capture (on the run's source connection, with the versions in hand), and
    `results()`, once the writes are done, checks the files, writes the reports and yields the
    check results."""

    def __init__(
        self,
        config: TableConfig,
        session: ex.SourceSession,
        store: LakeStore,
        drift: ex.Drift | None = None,
        log=None,
    ):
        self.config, self.session, self.store, self.drift, self.log = (
            config,
            session,
            store,
            drift,
            log,
        )
        self.key = dg.AssetKey(["raw", config.name])
        self.manifests: dict[dt.date, dict | None] = {}
        self.reconciled: dict[dt.date, DayOutcome] = {}

    def observe(self, day: dt.date, manifest: dict | None, versions: pa.Table | None) -> None:
        """Reconcile day D as captured: `manifest` and `versions` (pk, cursor) as just written."""
        self.manifests[day] = manifest
        config, drift = self.config, self.drift
        if drift is not None and (
            config.cursor in drift.dropped
            or config.cursor in drift.retyped
            or config.primary_key in drift.dropped
        ):
            note = f"not reconciled: the source's {config.cursor}/{config.primary_key} drifted (see schema_drift)"
            self.reconciled[day] = DayOutcome(0, 0, WARN, note=note)
            return
        captured = None if versions is None else VersionSet(versions["pk"], versions["cursor"])
        del versions  # the set is all the reconciliation needs (the caller holds no copy)
        self.reconciled[day] = self.session.run(
            lambda conn: self._reconcile_day(conn, day, manifest, captured)
        )

    def results(self, days: list[dt.date]) -> Iterator[dg.AssetCheckResult]:
        tallies = {
            RECONCILIATION: Tally(RECONCILIATION, self.key),
            FILES: Tally(FILES, self.key, unit="files"),
        }
        for day in days:
            if day not in self.reconciled:  # not captured by this run: judge what the bucket holds
                self.observe(
                    day,
                    self.store.read_manifest(partition_prefix("raw", self.config.name, day)),
                    None,
                )
        # one listing for the run's days, not one per folder
        sizes = (
            self.store.list_days_objects(
                layer_prefix("raw", self.config.name), min(days), max(days)
            )
            if days
            else {}
        )
        reports = ReportWriter(self.store, self.config.name, days)
        for day in days:
            outcomes = {
                RECONCILIATION: self.reconciled[day],
                FILES: self._files(day, self.manifests[day], sizes),
            }
            if self.drift is not None:
                outcomes[DRIFT] = drift_outcome(self.config, self.drift)
            # a dropped (or renamed) column or a rescaled numeric stops staging
            # (lake/staging.py refuse_drifted) and every reader of the day; an added column or
            # another retype does not
            blocking = {FILES, DRIFT} if self.drift is not None and self.drift.blocking else {FILES}
            reports.submit(self.config.name, day, "raw", outcomes, blocking=frozenset(blocking))
            for name, tally in tallies.items():
                tally.add(day, outcomes[name])
        reports = reports.uris()
        where = (
            reports[0]
            if len(reports) == 1
            else self.store.uri(layer_prefix(LAYER, self.config.name)) + "dt=*/report.json"
        )
        extra = {"quality_report": dg.MetadataValue.path(where)}
        yield tallies[RECONCILIATION].result(
            "every source row of the window is in raw",
            "source rows missing from raw on {days}",
            extra,
        )
        yield tallies[FILES].result(
            "every listed file is present with its size",
            "listed files missing or resized on {days}",
            extra,
        )

    # --- files_present -------------------------------------------------------------------------
    def _files(self, day: dt.date, manifest: dict | None, sizes: dict[str, int]) -> DayOutcome:
        prefix = partition_prefix("raw", self.config.name, day)
        if manifest is None:
            return DayOutcome(
                1, 1, ERROR, [Sample(MANIFEST, "missing")], note="raw partition has no manifest"
            )
        samples = []
        listed = manifest.get("files", {})
        for name, info in sorted(listed.items()):
            size = sizes.get(prefix + name)
            if size is None:
                samples.append(Sample(name, "listed in the manifest but missing from the bucket"))
            elif info.get("bytes") is not None and size != info["bytes"]:
                samples.append(
                    Sample(name, f"{size} bytes in the bucket, {info['bytes']} in the manifest")
                )
        return DayOutcome(
            failing=len(samples),
            rows=len(listed),
            verdict=ERROR if samples else None,
            samples=samples,
            note=f"{len(samples)} of {len(listed)} listed files missing or resized"
            if samples
            else "",
        )

    # --- source_reconciliation ----------------------------------------------------------------------
    def _captured(self, day: dt.date, manifest: dict) -> VersionSet:
        name = listed_sidecar(manifest, RAW_VERSIONS)
        if name is None:
            return VersionSet(pa.array([], pa.string()), pa.array([], pa.string()))
        prefix = partition_prefix("raw", self.config.name, day)
        versions = pq.read_table(
            pa.BufferReader(self.store.read_listed(prefix, manifest, name)),
            columns=["pk", "cursor"],
        )
        return VersionSet(versions["pk"], versions["cursor"])

    def _reconcile_day(
        self, conn, day: dt.date, manifest: dict | None, captured: VersionSet | None
    ) -> DayOutcome:
        config = self.config
        if manifest is None:
            return DayOutcome(1, 1, ERROR, note="raw partition has no manifest")
        if captured is None:
            captured = self._captured(day, manifest)
        as_of = dt.datetime.fromisoformat(manifest["extracted_at"])
        query = reconcile_query(config, day, as_of)
        source_rows, missing, samples = 0, 0, []
        for batch in ex.copied_pairs(conn, query):
            pks, cursors = batch.column(0), batch.column(1)
            source_rows += batch.num_rows
            absent = captured.absent(pks, cursors)
            n = pc.sum(absent).as_py() or 0
            if n:
                missing += n
                for pk, cursor in zip(
                    pc.filter(pks, absent).to_pylist()[:20],
                    pc.filter(cursors, absent).to_pylist()[:20],
                    strict=True,
                ):
                    if len(samples) < 20:
                        samples.append(
                            Sample(pk, f"{config.cursor} {cursor} is in the source, not in raw")
                        )
        row_count = manifest.get("row_count")
        notes = []
        if missing:
            notes.append(f"{missing} of {source_rows} source rows missing from raw")
        if row_count != len(captured):
            notes.append(
                f"manifest row_count {row_count} but the versions index has {len(captured)} versions"
            )
        return DayOutcome(
            failing=missing + (0 if row_count == len(captured) else 1),
            rows=source_rows,
            verdict=ERROR if notes else None,
            samples=samples,
            details={"source_rows": source_rows, "raw_versions": len(captured), "missing": missing},
            note="; ".join(notes),
        )


def reconcile_query(config: TableConfig, day: dt.date, as_of: dt.datetime) -> sql.Composed:
    """The source's (pk, cursor) text of raw D's window, as extraction renders them."""
    # Only rows stamped before the capture started can be expected in it; later ones belong
    # to the next capture.
    where = [sql.SQL("{c} < {t}").format(c=sql.Identifier(config.cursor), t=sql.Literal(as_of))]
    if config.incremental:
        start, end = capture_window(day)  # the first partition's window has no start
        where.append(
            sql.SQL("{c} < {e}").format(c=sql.Identifier(config.cursor), e=sql.Literal(end))
        )
        if start is not None:
            where.append(
                sql.SQL("{c} >= {s}").format(c=sql.Identifier(config.cursor), s=sql.Literal(start))
            )
    return sql.SQL("SELECT {pk}::text, {c} FROM {t} WHERE {w}").format(
        pk=sql.Identifier(config.primary_key),
        c=ex.exact_timestamp(sql.Identifier(config.cursor)),  # as extraction renders the cursor
        t=sql.Identifier(config.name),
        w=sql.SQL(" AND ").join(where),
    )


def drift_outcome(config: TableConfig, drift: ex.Drift) -> DayOutcome:
    """The schema-drift result in the report's form (the check result itself is raw.py's)."""
    samples = [Sample(c, f"column added ({t})") for c, t in drift.added.items()]
    samples += [Sample(c, "column dropped") for c in drift.dropped]
    samples += [
        Sample(c, f"column retyped: declared {d}, source has {a}")
        for c, (d, a) in drift.retyped.items()
    ]
    verdict = ERROR if (drift.dropped or drift.retyped) else WARN if drift.added else None
    return DayOutcome(
        len(samples),
        len(config.columns) + len(drift.added),
        verdict,
        samples,
        note=drift.describe() if drift.any else "",
    )
