"""What a cdc capture writes to the lake: the raw day folders of its changes (parts added, the
manifest saying through which change raw holds each day) and the slot's position, written
after the days it covers, so a crash in between replays and the replay is dropped."""

from __future__ import annotations

import datetime as dt
import json

from botocore.exceptions import ClientError

from volt_assets.lib.capture.cdc.pgoutput import lsn_of, lsn_text
from volt_assets.lib.capture.cdc.spool import DayPart, Place
from volt_assets.lib.config.partitions import day_window
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import cdc_position_key, partition_prefix


def place_record(place: Place | None) -> dict | None:
    return None if place is None else {"commit_lsn": lsn_text(place[0]), "position": place[1]}


def place_of(record: dict | None) -> Place | None:
    return None if not record else (lsn_of(record["commit_lsn"]), int(record["position"]))


def through_of(manifest: dict | None) -> Place | None:
    """The last change raw D holds (in stream order), from its manifest."""
    return place_of(((manifest or {}).get("cdc") or {}).get("through"))


def superseded_snapshot(manifest: dict | None) -> list[str]:
    """The files of an earlier opening snapshot (a capture opened again after an opening that
    never wrote its position): the new snapshot replaces them."""
    return sorted(
        name
        for extraction in (manifest or {}).get("extractions", [])
        if extraction.get("snapshot")
        for name in extraction.get("files", [])
    )


def cdc_manifest(
    table: str,
    day: dt.date,
    previous: dict | None,
    part: DayPart,
    extracted_at: dt.datetime,
    snapshot: bool,
) -> tuple[dict, list[str]]:
    """(raw D's manifest with this drain's part added, the files it no longer lists)."""
    previous = previous or {}
    superseded = superseded_snapshot(previous) if snapshot else []
    extraction = {
        "extracted_at": extracted_at.isoformat(),
        "rows_added": part.rows,
        "files": [part.path.name],
        "snapshot": snapshot,
        "first": place_record(part.first),
        "last": place_record(part.last),
        "columns": part.columns,
    }
    extractions = [
        e for e in previous.get("extractions", []) if not set(e.get("files", [])) & set(superseded)
    ] + [extraction]
    through = part.last if snapshot else max(p for p in (through_of(previous), part.last) if p)
    start, end = day_window(day)
    manifest = {
        "table": table,
        "dt": day.isoformat(),
        "sync": "cdc",
        "window": [start.isoformat(), end.isoformat()],  # the commits of [D, D+1) UTC
        "row_count": sum(e["rows_added"] for e in extractions),
        "extracted_at": extraction["extracted_at"],
        "columns": part.columns,
        "extractions": extractions,
        "files": {n: v for n, v in previous.get("files", {}).items() if n not in superseded},
        "cdc": {"through": place_record(through)},
    }
    return manifest, superseded


def write_days(
    store: LakeStore,
    parts: dict[tuple[str, dt.date], DayPart],
    manifests: dict[tuple[str, dt.date], dict | None],
    extracted_at: dt.datetime,
    snapshot: bool = False,
) -> None:
    """Add each part to its raw day (parts, then the manifest, as every raw write)."""
    for (table, day), part in sorted(parts.items()):
        manifest, superseded = cdc_manifest(
            table, day, manifests.get((table, day)), part, extracted_at, snapshot
        )
        store.write_folder(
            partition_prefix("raw", table, day),
            {part.path.name: part.path},
            manifest,
            replace=False,
            remove=superseded,
        )


def read_position(store: LakeStore, slot: str) -> dict | None:
    """The slot's position in the lake, None before the capture was opened."""
    try:
        return json.loads(store.get_bytes(cdc_position_key(slot)))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def write_position(store: LakeStore, slot: str, position: dict) -> None:
    body = json.dumps(position, indent=2, sort_keys=True).encode()
    store.put(cdc_position_key(slot), body, "application/json")
