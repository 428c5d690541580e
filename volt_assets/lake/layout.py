"""Where things live in the lake bucket: one function per kind of key, so no other module
spells a prefix by hand (contract: "The lake")."""

from __future__ import annotations

import datetime as dt

MANIFEST = "_manifest.json"
# Raw sidecars, `{kind}-{capture stamp}.parquet`: a new name for every rewrite, never an object
# the current manifest lists, so a run killed before its manifest leaves the listed ones intact.
RAW_VERSIONS = "_versions"  # (primary key, cursor, capture) of every captured line
RAW_DELETES = "_deletes"  # hard deletes noticed while this day ran


def sidecar_name(kind: str, stamp: str) -> str:
    """`_versions-20260102T101112123456Z.parquet`."""
    return f"{kind}-{stamp}.parquet"


def listed_sidecar(manifest: dict | None, kind: str) -> str | None:
    """The `kind` sidecar a raw manifest lists (also the fixed `_versions.parquet` of older lakes)."""
    names = [n for n in (manifest or {}).get("files", {})
             if n == f"{kind}.parquet" or (n.startswith(f"{kind}-") and n.endswith(".parquet"))]
    return max(names) if names else None


def partition_prefix(layer: str, name: str, day: dt.date) -> str:
    """`raw/orders/dt=2026-01-02/`: hive style, one folder per day."""
    return f"{layer}/{name}/dt={day.isoformat()}/"


def layer_prefix(layer: str, name: str) -> str:
    return f"{layer}/{name}/"


def day_of_prefix(prefix: str) -> dt.date | None:
    """The day of a `.../dt=YYYY-MM-DD/` folder, or None for anything else."""
    part = prefix.rstrip("/").rsplit("/", 1)[-1]
    if not part.startswith("dt="):
        return None
    try:
        return dt.date.fromisoformat(part[3:])
    except ValueError:
        return None


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def image_key(component_id: int, filename: str) -> str:
    return f"images/components/{component_id}/{filename}"


def landing_prefix(table: str) -> str:
    return f"landing/{table}/"


def upload_key(layer: str, table: str, day: dt.date, stem: str) -> str:
    """Landing files once validated: `staging/uploads/{table}/dt={day}/{stem}.parquet`."""
    return f"{layer}/uploads/{table}/dt={day.isoformat()}/{stem}.parquet"
