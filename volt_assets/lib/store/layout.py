"""Where things live in the lake bucket: one function per kind of key, so no other module
spells a prefix by hand (README: "The data lake")."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import PurePosixPath

# Every top-level prefix the pipeline reads or writes (the pipeline's IAM policy grants exactly these).
LAKE_LAYERS = ("raw", "staging", "quarantine", "mart", "quality", "state", "images", "landing")
MANIFEST = "_manifest.json"
QUALITY_REPORT = "report.json"  # quality/{table}/dt=D/: every check's verdict of the day
# Raw sidecars, `{kind}-{capture stamp}.parquet`: a new name for every rewrite, never an object
# the current manifest lists, so a run killed before its manifest leaves the listed ones intact.
RAW_VERSIONS = "_versions"  # (primary key, cursor, capture) of every captured line
RAW_DELETES = "_deletes"  # hard deletes noticed while this day ran


CDC_POSITIONS = (
    "raw/_cdc/"  # where each replication slot's position lives, beside the raw it covers
)


def cdc_position_key(slot: str) -> str:
    """`raw/_cdc/volt_assets_cdc.json`: the slot's position in the lake (docs/cdc.md)."""
    return f"{CDC_POSITIONS}{slot}.json"


def sidecar_name(kind: str, stamp: str) -> str:
    """`_versions-20260102T101112123456Z.parquet`."""
    return f"{kind}-{stamp}.parquet"


def listed_sidecar(manifest: dict | None, kind: str) -> str | None:
    """The `kind` sidecar a raw manifest lists (also the fixed `_versions.parquet` of older lakes)."""
    names = [
        n
        for n in (manifest or {}).get("files", {})
        if n == f"{kind}.parquet" or (n.startswith(f"{kind}-") and n.endswith(".parquet"))
    ]
    return max(names) if names else None


def listed_version(manifest: dict | None, name: str) -> str | None:
    """The S3 version id the manifest records for file `name` (None: read the current object;
    a manifest written to an unversioned bucket, or before version ids were recorded)."""
    info = (manifest or {}).get("files", {}).get(name)
    return info.get("version_id") if isinstance(info, dict) else None


def remap_version_ids(manifest: dict, prefix: str, versions: dict[tuple[str, str], str]) -> dict:
    """The manifest of folder `prefix` with its files' version ids renamed by `versions`
    ((key, old version id) -> the id of the same body in a copied or restored bucket). An id
    `versions` does not know is dropped (the file is then read as the current object): a copy
    holds only the objects that were current."""
    files = {}
    for name, info in manifest.get("files", {}).items():
        info = dict(info)
        old = info.pop("version_id", None)
        if old is not None and (prefix + name, old) in versions:
            info["version_id"] = versions[(prefix + name, old)]
        files[name] = info
    return {**manifest, "files": files}


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


def top_prefix(layer: str) -> str:
    """`raw/`: everything of one layer (lifecycle rules, policies)."""
    return f"{layer}/"


def landing_prefix(table: str) -> str:
    return f"landing/{table}/"


def landing_table_and_name(key: str) -> tuple[str, str] | None:
    """(`table`, `name.csv`) of a landing key `landing/{table}/{name}`, None for any other key."""
    if not key.startswith(top_prefix("landing")):
        return None
    table, _, filename = key.removeprefix(top_prefix("landing")).partition("/")
    return (table, filename) if table and filename and "/" not in filename else None


# Landing files once taken, kept for a while (the bucket lifecycle expires the prefix).
LANDING_PROCESSED = "landing/processed/"
# Objects dropped in landing/ that are no landing file, moved aside with the reason.
LANDING_REJECTED = "landing/rejected/"


def landing_refusal(key: str, tables) -> str | None:
    """Why an object under `landing/` is no landing file `landing/{table}/{name}.csv` of one of
    `tables`, or None when it is one (the pipeline's own `processed/` and `rejected/` are
    neither: callers leave them alone)."""
    parts = key.removeprefix(top_prefix("landing")).split("/")
    if any(p in ("", ".", "..") for p in parts) or not key.isprintable():
        return "an unsafe key (an empty, `.` or `..` path segment, or a control character)"
    if len(parts) == 1:
        return "not in a table's folder: landing files go in landing/{table}/"
    if parts[0] not in tables:
        return f"`{parts[0]}` is not a configured table ({', '.join(tables)})"
    if len(parts) > 2:
        return f"in a sub-folder: landing files lie directly in landing/{parts[0]}/"
    if not parts[1].lower().endswith(".csv"):
        return "not a .csv file"
    return None


def rejected_key(key: str, day: dt.date, etag: str) -> str:
    """`landing/rejected/dt={day}/{digest}-{key with every unsafe character as _}`: one flat,
    safe name per object version, its original suffix last."""
    rest = key.removeprefix(top_prefix("landing"))
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in rest)
    digest = hashlib.sha256(f"{key}@{etag.strip(chr(34))}".encode()).hexdigest()[:10]
    return f"{LANDING_REJECTED}dt={day.isoformat()}/{digest}-{safe}"


def upload_name(filename: str, key: str, etag: str, received_at: dt.datetime) -> str:
    """`batch-3f2a9c1b7d`: the file's stem and a digest of the object version (key, ETag,
    LastModified), so every upload has outputs of its own: the same name uploaded twice on one
    day, or `report.CSV` beside `report.csv`, never replaces the other's."""
    version = f"{key}@{etag.strip(chr(34))}@{received_at.isoformat()}"
    return f"{PurePosixPath(filename).stem}-{hashlib.sha256(version.encode()).hexdigest()[:10]}"


def processed_key(table: str, day: dt.date, name: str, filename: str) -> str:
    """`landing/processed/{table}/dt={day}/{name}.csv`: `name` from `upload_name`, the suffix as
    the file had it."""
    return f"{LANDING_PROCESSED}{table}/dt={day.isoformat()}/{name}{PurePosixPath(filename).suffix}"


def uploads_prefix(layer: str, table: str, day: dt.date) -> str:
    return f"{layer}/uploads/{table}/dt={day.isoformat()}/"


def upload_key(layer: str, table: str, day: dt.date, name: str) -> str:
    """Landing files once validated: `staging/uploads/{table}/dt={day}/{name}.parquet`, `name`
    from `upload_name`."""
    return f"{uploads_prefix(layer, table, day)}{name}.parquet"
