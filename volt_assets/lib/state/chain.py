"""Which days' states are current, told from listings alone (no object read).

The state of staging day d is named by a digest of everything it was made from: the digest of
the day before (so a change on any earlier day changes every later name), the ETag of staging
d's manifest and the ETag of d's quality report (a blocking check that fails later keeps the
day out). A state file whose name is the digest the current lake gives is current; the first
day without one is where a rebuild starts. Three listings (staging, quality, state) answer
it: one request per 1,000 objects, not a read per day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from volt_assets.lib.config.table_config import TableConfig
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import MANIFEST, QUALITY_REPORT, day_of_prefix, layer_prefix

STATE_FORMAT = "volt-state-1"  # a change of what a state file holds renames every state
LAYER = "state"


@dataclass(frozen=True)
class Link:
    """One staging day of the chain and the digest its state is named by."""

    day: dt.date
    digest: str

    def file(self, kind: str) -> str:
        return f"{kind}-{self.digest}.parquet"


def digest(*parts: str | None) -> str:
    text = "\x1f".join("-" if p is None else p for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def root(config: TableConfig, extra: str = "") -> str:
    """The chain's start: the format and the columns a state holds (a new column rebuilds)."""
    return digest(STATE_FORMAT, config.name, str(config.staging_schema()), extra)


def listed_by_day(store: LakeStore, layer: str, name: str) -> dict[dt.date, dict[str, str]]:
    """File name -> ETag of every object in each `dt=` folder of `layer/name/`."""
    prefix = layer_prefix(layer, name)
    found: dict[dt.date, dict[str, str]] = {}
    for obj in store.list_objects(prefix):
        folder, _, file = obj["Key"][len(prefix) :].partition("/")
        day = day_of_prefix(folder)
        if day is not None and file and folder == f"dt={day.isoformat()}":
            found.setdefault(day, {})[file] = obj["ETag"]
    return found


@dataclass
class Chain:
    """The chain of a table as the lake stands: its links, and the state files each day has."""

    links: list[Link]
    states: dict[dt.date, dict[str, str]]

    def first_stale(self, kind: str = "latest") -> int | None:
        """The index of the first link whose state file is missing (None: all current)."""
        for i, link in enumerate(self.links):
            if link.file(kind) not in self.states.get(link.day, {}):
                return i
        return None

    def at(self, day: dt.date) -> Link | None:
        """The link whose state is the lake's at the end of `day` (the latest staging day <= it)."""
        found = [link for link in self.links if link.day <= day]
        return found[-1] if found else None


def read_chain(store: LakeStore, config: TableConfig, through: dt.date, extra: str = "") -> Chain:
    """The chain of `config`'s staging days up to `through`, from three listings."""
    staging = listed_by_day(store, "staging", config.name)
    reports = listed_by_day(store, "quality", config.name)
    links: list[Link] = []
    current = root(config, extra)
    for day in sorted(d for d, files in staging.items() if d <= through and MANIFEST in files):
        current = digest(current, staging[day][MANIFEST], reports.get(day, {}).get(QUALITY_REPORT))
        links.append(Link(day, current))
    return Chain(links, listed_by_day(store, LAYER, config.name))
