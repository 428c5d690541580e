"""A table's state, built where it is missing and handed to readers as local Parquet files.

`state/{table}/dt=D/` holds, for each staging day D, the lake as it stands at the end of D:
`latest-<digest>.parquet` (each key's latest version) and, for a table with a type 2 history,
`type2-<digest>.parquet`, listed by the folder's `_manifest.json`. A reader asks for the days
it needs; the first day whose state is not current (chain.py) and every later one up to the
last day asked for are rebuilt first, each from the day before and that day's staging, one
day after another (a day a blocking check stopped adds nothing). A run may rebuild back to
`rebuild_from`; a state stale from an older day stops it (`StateStale`) with the day named,
so a daily run never silently turns into a rebuild of years.

Builders of one table take its lock (`lock`): two runs never write one state folder at once.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.state.chain import LAYER, Chain, Link, read_chain
from volt_assets.lib.state.merge import Type2Spec, merge_latest, merge_type2
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import listed_version, partition_prefix

LATEST, TYPE2 = "latest", "type2"
LEFT_OUT = "days_left_out"  # the manifest's list of staging days a blocking check kept out


@dataclass
class StateFiles:
    """The local files of the state of staging day `day`, by kind (`latest`, `type2`)."""

    day: dt.date
    paths: dict[str, Path]

    def __getitem__(self, kind: str) -> Path:
        return self.paths[kind]


class StateStale(Exception):
    """The state a run needs is stale from a day before what the run may rebuild."""

    def __init__(self, table: str, day: dt.date, needed: dt.date):
        self.table, self.day, self.needed = table, day, needed
        super().__init__(
            f"state/{table} is stale from {day} (staging/{table} {day} changed, or its quality "
            f"report did, after the state was built; or it was never built), and this run may "
            f"rebuild it only back to {needed}. Rebuild it in one backfill that starts on {day}: "
            f"materialise the marts over {day}...{needed} or later (`--partition-range`), or set "
            "VOLT_STATE_REBUILD_DAYS to let this run go further back."
        )


@dataclass
class TableState:
    """The state of one table. `gate(day, manifest)` names the blocking checks that keep a
    staging day out ([]: it counts); `lock()` serialises builders; files land in `workdir`."""

    store: LakeStore
    config: TableConfig
    gate: Callable[[dt.date, dict], list[str]]
    lock: Callable[[], AbstractContextManager]
    workdir: Path
    type2: Type2Spec | None = None
    log: Callable[[str], None] = print
    # staging day -> the days a blocking check kept out of its state so far (its manifest's)
    left_out: dict[dt.date, list[str]] = field(default_factory=dict)

    def kinds(self) -> list[str]:
        return [LATEST, TYPE2] if self.type2 else [LATEST]

    def files(
        self, days: list[dt.date], rebuild_from: dt.date | None = None
    ) -> dict[dt.date, StateFiles | None]:
        """Per day asked for, the state files as of its end (None: no staging day up to it)."""
        with self.lock():
            chain = read_chain(self.store, self.config, max(days), repr(self.type2))
            stale = chain.first_stale(LATEST)
            if self.type2 and (t := chain.first_stale(TYPE2)) is not None:
                stale = t if stale is None else min(stale, t)
            held: dict[dt.date, StateFiles] = {}
            if stale is not None:
                first = chain.links[stale].day
                if rebuild_from is not None and first < rebuild_from:
                    raise StateStale(self.config.name, first, rebuild_from)
                held = self._rebuild(chain, stale)
            out: dict[dt.date, StateFiles | None] = {}
            for day in days:
                link = chain.at(day)
                out[day] = None if link is None else (held.get(link.day) or self._download(link))
                if link is not None:
                    held[link.day] = out[day]
            return out

    def days_left_out(self, found: StateFiles | None) -> list[str]:
        """The staging days a blocking check kept out of a state, up to its day (from the
        state folder's manifest, read once)."""
        if found is None:
            return []
        if found.day not in self.left_out:
            manifest = self.store.read_manifest(
                partition_prefix(LAYER, self.config.name, found.day)
            )
            self.left_out[found.day] = list((manifest or {}).get(LEFT_OUT, []))
        return self.left_out[found.day]

    def _download(self, link: Link) -> StateFiles:
        prefix = partition_prefix(LAYER, self.config.name, link.day)
        out = {}
        for kind in self.kinds():
            path = self.workdir / f"{self.config.name}-{link.file(kind)}"
            if not path.exists():
                self.store.download(prefix + link.file(kind), path)
            out[kind] = path
        return StateFiles(link.day, out)

    def _rebuild(self, chain: Chain, start: int) -> dict[dt.date, StateFiles]:
        """States of links[start:], each from the one before; the files of every day built."""
        previous = self._download(chain.links[start - 1]) if start else None
        built: dict[dt.date, StateFiles] = {}
        for link in chain.links[start:]:
            previous = built[link.day] = self._build_day(link, previous)
        self.log(
            f"state/{self.config.name}: rebuilt {len(chain.links) - start} day(s), "
            f"{chain.links[start].day} to {chain.links[-1].day}"
        )
        return built

    def _build_day(self, link: Link, previous: StateFiles | None) -> StateFiles:
        """The state of one day: written to the lake, kept in `workdir` for the next."""
        config, day = self.config, link.day
        today, excluded = self._staging_day(day)
        out = {k: self.workdir / f"{config.name}-{link.file(k)}" for k in self.kinds()}
        prev = previous.paths if previous else {}
        left_out = self.days_left_out(previous) + ([day.isoformat()] if excluded else [])
        self.left_out[day] = left_out
        rows = merge_latest(
            config, day, prev.get(LATEST), today, out[LATEST], self.workdir, self._sticky()
        )
        if self.type2:
            merge_type2(
                config,
                self.type2,
                day,
                prev.get(TYPE2),
                prev.get(LATEST),
                today,
                out[LATEST],
                out[TYPE2],
                self.workdir,
            )
        if today is not None:
            today.unlink()
        manifest = {
            "table": config.name,
            "dt": day.isoformat(),
            "layer": LAYER,
            "rows": rows,
            "staging_left_out": excluded,  # blocking checks that kept the day's staging out
            LEFT_OUT: left_out,
        }
        self.store.write_folder(
            partition_prefix(LAYER, config.name, day),
            {link.file(k): p for k, p in out.items()},
            manifest,
        )
        return StateFiles(day, out)

    def _sticky(self) -> tuple[str, ...]:
        return self.type2.type1 if self.type2 else ()

    def _staging_day(self, day: dt.date) -> tuple[Path | None, list[str]]:
        """Staging D as one local file conformed to today's schema, or None and the blocking
        checks that keep it out."""
        prefix = partition_prefix("staging", self.config.name, day)
        manifest = self.store.read_manifest(prefix) or {}
        failed = self.gate(day, manifest)
        if failed:
            return None, failed
        names = sorted(n for n in manifest.get("files", {}) if n.endswith(".parquet"))
        target = self.workdir / f"{self.config.name}-staging-{day}.parquet"
        parts = []
        for name in names:
            path = self.workdir / f"{self.config.name}-{day}-{name}"
            self.store.download(prefix + name, path, version_id=listed_version(manifest, name))
            parts.append(path)
        conform(parts, self.config.staging_schema(), target)
        for path in parts:
            path.unlink()
        return target, []


def conform(parts: list[Path], schema: pa.Schema, out: Path) -> None:
    """The parts' rows in `schema` (a column staging did not have then is null), one file;
    a row group at a time."""
    if len(parts) == 1 and pq.read_schema(parts[0]).remove_metadata() == schema:
        shutil.copyfile(parts[0], out)
        return
    with pq.ParquetWriter(out, schema) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches():
                have = set(batch.schema.names)
                columns = [
                    batch.column(f.name).cast(f.type)
                    if f.name in have
                    else pa.nulls(batch.num_rows, f.type)
                    for f in schema
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
