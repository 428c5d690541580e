"""Looking at a lake the way its readers do, and comparing two lakes.

`snapshot()` reads a bucket (and the marts schema) into comparable values. Everything a
capture time makes different between two otherwise identical runs is normalised:
- raw part names `part-20260102T101112123456Z-00000.jsonl.gz` -> `part-<captured>-00000.jsonl.gz`
  (and the sidecars `_versions-<stamp>.parquet`, `_deletes-<stamp>.parquet` alike), and state
  files `latest-<digest>.parquet` (named by their inputs' ETags, which follow those clocks);
- manifest fields that are clocks (`extracted_at`, `seconds`, `noticed_at`, ...), the S3
  version ids a manifest records for its files (`version_id` -> `<version>`: whether a file
  has one is compared, its value is not), and the sizes it lists for Parquet files (which
  follow their clock columns; the files themselves are compared as below);
- Parquet columns that are clocks (`_extracted_at`, any `_..._at`): their values are not
  compared, but the bytes are: the expected table, given the actual run's clock columns,
  must encode to exactly the actual file's bytes.

`problems()` is what a reader following `_manifest.json` would trip over: listed files that
are missing or have another size than listed, counts that disagree with the files, raw
`_versions.parquet` naming lines the listed parts do not hold.

Like the pipeline's readers, both read each listed file at the version its manifest records
(`version_id`), and the current object when it records none.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from volt_assets.lib.staging.transform import parquet_bytes
from volt_assets.lib.store.layout import RAW_VERSIONS, listed_sidecar, listed_version

MANIFEST = "_manifest.json"
CAPTURE = re.compile(r"(part|_versions|_deletes)-\d{8}T\d{12}Z")
# state files are named by a digest of their inputs' ETags, which follow the capture clocks
STATE_DIGEST = re.compile(r"(latest|type2)-[0-9a-f]{20}")
FOLDER = re.compile(r"^(.*?/dt=\d{4}-\d{2}-\d{2}/)")
VOLATILE = {
    "extracted_at",
    "seconds",
    "noticed_at",
    "raw_extracted_at",
    "duration_seconds",
    "loaded_at",
    "written_at",
}
BYTE_EXACT_LAYERS = ("staging/", "quarantine/")  # written with staging.parquet_bytes


def jsonl_lines(body: bytes) -> list[str]:
    """The lines of JSON Lines text: split on \\n only. str.splitlines() would also split inside
    values holding U+0085, U+2028 or U+2029, which JSON leaves unescaped."""
    return [line for line in body.decode().split("\n") if line]


def normalise_name(text: str) -> str:
    return STATE_DIGEST.sub(r"\1-<digest>", CAPTURE.sub(r"\1-<captured>", text))


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        out = {
            normalise_name(k): "<version>" if k == "version_id" else _normalise(v)
            for k, v in value.items()
            if k not in VOLATILE
        }
        for name, info in out.items():
            # A Parquet file's size follows the clocks it holds (capture stamps in raw sidecars,
            # `_extracted_at` in staging, whose zstd-compressed timestamps take more or fewer
            # bytes as their values differ): Parquet is compared below, row by row, and byte for
            # byte with the clocks put back; `problems()` checks every listed size.
            if name.endswith(".parquet") and isinstance(info, dict):
                info.pop("bytes", None)
        return out
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str):
        return normalise_name(value)
    return value


def is_clock_column(name: str) -> bool:
    return name.startswith("_") and name.endswith("_at")


def folder_of(key: str) -> str | None:
    m = FOLDER.match(key)
    return m.group(1) if m else None


@dataclass
class ParquetFile:
    table: pa.Table  # clock columns dropped
    clocks: dict[str, list]  # clock column -> values, for the byte comparison
    data: bytes


@dataclass
class Snapshot:
    keys: set[str] = field(default_factory=set)  # every object, names normalised
    manifests: dict[str, dict] = field(default_factory=dict)  # folder -> normalised manifest
    raw_lines: dict[str, list[str]] = field(
        default_factory=dict
    )  # folder -> sorted lines of listed parts
    sidecars: dict[str, list] = field(
        default_factory=dict
    )  # raw _versions/_deletes (clock-free rows)
    parquet: dict[str, ParquetFile] = field(default_factory=dict)  # listed parquet files
    marts: dict[str, list[tuple]] = field(default_factory=dict)  # marts.<table> -> sorted rows

    def folder_state(self, folder: str):
        """Everything a manifest-following reader sees of one folder (None: not visible)."""
        if folder not in self.manifests:
            return None
        files = {k: v for k, v in self.parquet.items() if k.startswith(folder)}
        return (
            json.dumps(self.manifests[folder], sort_keys=True, default=str),
            tuple(self.raw_lines.get(folder, ())),
            json.dumps(
                {k: v for k, v in self.sidecars.items() if k.startswith(folder)},
                sort_keys=True,
                default=str,
            ),
            tuple((k, f.table.to_pylist().__repr__()) for k, f in sorted(files.items())),
        )


def _rows(table: pa.Table) -> list:
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())


def snapshot(target, marts: bool = True) -> Snapshot:
    """Read the lake of `target` (anything with list_keys/read_object/connect: VoltEnv, Twin)."""
    snap = Snapshot()
    keys = target.list_keys()
    snap.keys = {normalise_name(k) for k in keys}
    for key in keys:
        if not key.endswith("/" + MANIFEST):
            continue
        folder = key[: -len(MANIFEST)]
        manifest = json.loads(target.read_object(key))
        snap.manifests[folder] = _normalise(manifest)
        for name in sorted(manifest.get("files", {})):
            full = folder + name
            body = target.read_object(full, listed_version(manifest, name))
            nname = folder + normalise_name(name)
            if name.endswith(".jsonl.gz"):
                snap.raw_lines.setdefault(folder, []).extend(jsonl_lines(gzip.decompress(body)))
            elif name.endswith(".jsonl"):
                snap.raw_lines.setdefault(folder, []).extend(jsonl_lines(body))
            elif name.endswith(".parquet") and name.startswith("_"):
                table = pq.read_table(io.BytesIO(body))
                table = table.drop_columns(
                    [c for c in table.column_names if c in ("noticed_at", "file")]
                )
                snap.sidecars[nname] = _rows(table)
            elif name.endswith(".parquet"):
                table = pq.read_table(io.BytesIO(body))
                clocks = {c: table[c].to_pylist() for c in table.column_names if is_clock_column(c)}
                snap.parquet[nname] = ParquetFile(table.drop_columns(list(clocks)), clocks, body)
        if folder in snap.raw_lines:
            snap.raw_lines[folder].sort()
    if marts:
        snap.marts = read_marts(target)
    return snap


def read_marts(target) -> dict[str, list[tuple]]:
    """Every table of schema `marts`, rows sorted, clock columns left out."""
    out: dict[str, list[tuple]] = {}
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'"
                " AND table_type = 'BASE TABLE' ORDER BY 1"
            )
            for (table,) in cur.fetchall():
                cur.execute(f'SELECT * FROM marts."{table}"')
                names = [d.name for d in cur.description]
                keep = [i for i, n in enumerate(names) if not (is_clock_column(n) or n in VOLATILE)]
                out[table] = sorted((tuple(r[i] for i in keep) for r in cur.fetchall()), key=repr)
    finally:
        conn.close()
    return out


def compare(expected: Snapshot, actual: Snapshot) -> list[str]:
    """Differences between two lakes, in words (empty: identical up to capture clocks)."""
    diffs: list[str] = []
    if expected.keys != actual.keys:
        diffs.append(f"objects only expected: {sorted(expected.keys - actual.keys)[:10]}")
        diffs.append(f"objects only actual: {sorted(actual.keys - expected.keys)[:10]}")
    for folder in sorted(set(expected.manifests) | set(actual.manifests)):
        a, b = expected.manifests.get(folder), actual.manifests.get(folder)
        if a != b:
            diffs.append(f"manifest {folder}: expected {a}, actual {b}")
        if expected.raw_lines.get(folder) != actual.raw_lines.get(folder):
            diffs.append(
                f"raw lines {folder}: expected {len(expected.raw_lines.get(folder, []))} lines, "
                f"actual {len(actual.raw_lines.get(folder, []))} (or different text)"
            )
    for key in sorted(set(expected.sidecars) | set(actual.sidecars)):
        if expected.sidecars.get(key) != actual.sidecars.get(key):
            diffs.append(f"raw sidecar {key} differs")
    for key in sorted(set(expected.parquet) | set(actual.parquet)):
        e, a = expected.parquet.get(key), actual.parquet.get(key)
        if e is None or a is None:
            diffs.append(f"parquet {key}: only in {'actual' if e is None else 'expected'}")
            continue
        if not e.table.equals(a.table, check_metadata=True):
            diffs.append(
                f"parquet {key}: rows differ ({e.table.num_rows} expected, {a.table.num_rows} actual)"
            )
            continue
        if key.startswith(BYTE_EXACT_LAYERS):
            rebuilt = _with_clocks(e, a)
            if parquet_bytes(rebuilt) != a.data:
                diffs.append(f"parquet {key}: same rows but different bytes")
    for table in sorted(set(expected.marts) | set(actual.marts)):
        if expected.marts.get(table) != actual.marts.get(table):
            diffs.append(
                f"marts.{table}: {len(expected.marts.get(table, []))} rows expected, {len(actual.marts.get(table, []))} actual (or different values)"  # noqa: E501
            )
    return diffs


def _with_clocks(expected: ParquetFile, actual: ParquetFile) -> pa.Table:
    """The expected rows with the actual run's clock columns, in the actual file's column order."""
    schema = pq.read_schema(io.BytesIO(actual.data))
    columns = {}
    for f in schema:
        if f.name in actual.clocks:
            columns[f.name] = pa.array(actual.clocks[f.name], f.type)
        else:
            columns[f.name] = expected.table[f.name]
    return pa.table(columns, schema=schema)


# --- what a manifest-following reader trips over ------------------------------------------------


def problems(target) -> list[str]:
    """Broken promises of the lake as it stands (see module doc); empty when every complete
    folder is whole. Folders without a manifest are invisible to readers, not a problem."""
    out: list[str] = []
    objects = {}
    for page in target.s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket):
        for obj in page.get("Contents", []):
            objects[obj["Key"]] = obj["Size"]
    for key in sorted(k for k in objects if k.endswith("/" + MANIFEST)):
        folder = key[: -len(MANIFEST)]
        manifest = json.loads(target.read_object(key))
        listed = manifest.get("files", {})
        for name, info in listed.items():
            size = _listed_size(target, folder + name, info, objects)
            if size is None:
                out.append(f"{folder}{name}: listed in the manifest but missing")
            elif "bytes" in info and info["bytes"] != size:
                out.append(
                    f"{folder}{name}: manifest says {info['bytes']} bytes, object has {size}"
                )
        parts = [n for n in listed if n.endswith(".parquet") and not n.startswith("_")]
        want = _manifest_rows(folder.split("/", 1)[0], manifest)
        if want is not None and parts:
            rows = sum(
                pq.read_metadata(io.BytesIO(_read_listed(target, folder, manifest, n))).num_rows
                for n in parts
            )
            if rows != want:
                out.append(f"{folder}: files hold {rows} rows, manifest counts say {want}")
        if folder.startswith("raw/") and listed_sidecar(manifest, RAW_VERSIONS):
            out += _raw_versions_problems(target, folder, manifest)
    return out


def _manifest_rows(layer: str, manifest: dict) -> int | None:
    """The rows a folder's Parquet files must hold, as its manifest says (None: it says none)."""
    counts = manifest.get("counts") or {}
    if layer == "staging" and counts:
        return counts["staged_rows"] + counts.get("tombstones", 0)
    if layer == "quarantine" and counts:
        return counts["quarantined_rows"]
    if layer == "mart":
        return manifest.get("rows")
    return None


def _read_listed(target, folder: str, manifest: dict, name: str) -> bytes:
    return target.read_object(folder + name, listed_version(manifest, name))


def _listed_size(target, key: str, info: dict, objects: dict[str, int]) -> int | None:
    """The size of the version the manifest lists (None: missing), else of the current object."""
    if not info.get("version_id"):
        return objects.get(key)
    try:
        return target.s3.head_object(Bucket=target.bucket, Key=key, VersionId=info["version_id"])[
            "ContentLength"
        ]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in (
            "404",
            "NoSuchKey",
            "NoSuchVersion",
            "NotFound",
            "400",
        ):
            return None
        raise


def _raw_versions_problems(target, folder: str, manifest: dict) -> list[str]:
    """The listed versions index (`_versions-<stamp>.parquet`) must name exactly the (pk, cursor)
    of the lines the listed parts hold."""
    from volt_assets.lib.config.table_config import load_tables

    pk, cursor = (
        load_tables()[manifest["table"]].primary_key,
        manifest.get("cursor_column", "updated_at"),
    )
    lines = []
    for name in manifest.get("files", {}):
        if name.endswith(".jsonl.gz"):
            lines += jsonl_lines(gzip.decompress(_read_listed(target, folder, manifest, name)))
    records = [json.loads(line) for line in lines]
    in_parts = sorted((str(r[pk]), r[cursor]) for r in records)
    name = listed_sidecar(manifest, RAW_VERSIONS)
    versions = pq.read_table(io.BytesIO(_read_listed(target, folder, manifest, name)))
    listed = sorted(zip(versions["pk"].to_pylist(), versions["cursor"].to_pylist()))
    if in_parts != listed:
        extra = sorted(set(listed) - set(in_parts))
        return [
            f"{folder}{name} names {len(listed)} versions, the listed parts hold {len(in_parts)}"
            f" (e.g. not in any listed part: {extra[:3]})"
        ]
    return []


def orphans(target) -> list[str]:
    """Objects inside a complete folder that its manifest does not list (left by a killed run)."""
    keys = target.list_keys()
    listed: dict[str, set[str]] = {}
    for key in keys:
        if key.endswith("/" + MANIFEST):
            folder = key[: -len(MANIFEST)]
            listed[folder] = set(json.loads(target.read_object(key)).get("files", {})) | {MANIFEST}
    return [k for k in keys if (f := folder_of(k)) in listed and k[len(f) :] not in listed[f]]
