"""Where things live in the lake bucket: one function per kind of key, so no other module
spells a prefix by hand (contract: "The lake")."""

from __future__ import annotations

import datetime as dt

MANIFEST = "_manifest.json"
RAW_VERSIONS = "_versions.parquet"  # (primary key, cursor) of every captured line
RAW_DELETES = "_deletes.parquet"  # hard deletes noticed while this day ran


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
