"""The embedded S3 endpoint: moto's server, made durable by a journal written before each answer.

moto keeps buckets and objects in memory. This module runs moto's own server (the same
Werkzeug app as `python -m moto.server`) with one addition: a WSGI middleware that, for
every request that may change something (any method but GET/HEAD/OPTIONS), lets moto
handle it and then, before the answer leaves the process, appends the new state of every
object key and bucket the request touched to `journal.bin` and fsyncs it. An acknowledged
write is therefore on disk; a SIGKILL or a power cut loses at most requests that were
never answered.

What is kept: every version of every key (delete markers included) with its version id,
last-modified time, user metadata, content headers, ETag, checksum, storage class, lock
and encryption fields and tags; every bucket with its configuration (versioning,
lifecycle, policy, encryption, public access block, CORS, notifications, ...) and tags.
Bodies go to `blobs/` named by their sha256 (identical bodies are stored once).
Not kept: uploads in progress (multipart parts never completed), object ACLs other than
moto's default, moto's other services.

At start the server loads `snapshot.bin`, replays the journal over it, writes the result
as the new snapshot (compaction), empties the journal and deletes unreferenced blobs;
SIGTERM (`volt-assets stack down`) compacts too. Both files are sequences of framed
records (length, crc32, pickle of plain Python values); a torn last record of a journal
cut by a crash fails its crc and is dropped: its request was never answered.

Run as `python -m volt_assets.devstack.s3_server -H 127.0.0.1 -p PORT --data DIR`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import pickle
import signal
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FRAME = struct.Struct("<II")  # payload length, crc32 of the payload
# Fields of a moto FakeKey kept as they are (plain values), besides body, metadata and dates.
KEY_FIELDS = (
    "_etag",
    "_storage_class",
    "encryption",
    "kms_key_id",
    "bucket_key_enabled",
    "lock_mode",
    "lock_legal_status",
    "lock_until",
    "checksum_algorithm",
    "checksum_value",
    "checksum_type",
    "website_redirect_location",
    "_is_versioned",
)
# FakeBucket attributes not kept with the bucket's configuration: its content.
BUCKET_CONTENT = ("keys", "multiparts")

_touched = threading.local()  # per request thread: what the current write request changed


# --------------------------------------------------------------------------- framed files


def write_record(out: io.BufferedWriter, record: dict[str, Any]) -> None:
    payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(FRAME.pack(len(payload), zlib.crc32(payload)) + payload)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a framed file, stopping at the first torn or corrupt one."""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        while header := f.read(FRAME.size):
            if len(header) < FRAME.size:
                return
            size, crc = FRAME.unpack(header)
            payload = f.read(size)
            if len(payload) < size or zlib.crc32(payload) != crc:
                return
            yield pickle.loads(payload)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the store


class Store:
    """The on-disk state: blobs/, snapshot.bin and journal.bin under one folder."""

    def __init__(self, root: Path, fsync: bool = True):
        self.root = root
        self.blobs = root / "blobs"
        self.snapshot = root / "snapshot.bin"
        self.journal_path = root / "journal.bin"
        self.fsync = fsync
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.journal: io.BufferedWriter | None = None

    def _blob_path(self, digest: str) -> Path:
        return self.blobs / digest[:2] / digest

    def put_blob(self, body: bytes) -> str:
        """Store a body under its sha256 unless it is there; the digest."""
        digest = hashlib.sha256(body).hexdigest()
        path = self._blob_path(digest)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f"{digest}.{threading.get_ident()}.tmp")
            with open(tmp, "wb") as out:
                out.write(body)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            tmp.replace(path)
            if self.fsync:
                _fsync_dir(path.parent)
        return digest

    def read_blob(self, digest: str) -> bytes:
        return self._blob_path(digest).read_bytes()

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append records to the journal; on disk (fsync) when this returns."""
        if self.journal is None:
            self.journal = open(self.journal_path, "ab")
        for record in records:
            write_record(self.journal, record)
        self.journal.flush()
        if self.fsync:
            os.fsync(self.journal.fileno())

    def load(self) -> tuple[dict[str, dict], dict[tuple[str, str], list]]:
        """(buckets, keys): the snapshot with the journal replayed over it, last record wins."""
        buckets: dict[str, dict] = {}
        keys: dict[tuple[str, str], list] = {}
        for path in (self.snapshot, self.journal_path):
            for record in read_records(path):
                if record["op"] == "bucket":
                    buckets[record["bucket"]] = record
                elif record["op"] == "drop-bucket":
                    buckets.pop(record["bucket"], None)
                    for name in [k for k in keys if k[0] == record["bucket"]]:
                        del keys[name]
                elif record["versions"]:
                    keys[(record["bucket"], record["key"])] = record["versions"]
                else:
                    keys.pop((record["bucket"], record["key"]), None)
        return buckets, {k: v for k, v in keys.items() if k[0] in buckets}

    def compact(self, records: Iterable[dict[str, Any]]) -> int:
        """Write `records` as the new snapshot, empty the journal, drop unreferenced blobs."""
        tmp = self.snapshot.with_suffix(".tmp")
        used: set[str] = set()
        count = 0
        with open(tmp, "wb") as out:
            for record in records:
                write_record(out, record)
                for version in record.get("versions", ()):
                    if version.get("blob"):
                        used.add(version["blob"])
                        count += not version.get("marker")
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.snapshot)
        _fsync_dir(self.root)
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        with open(self.journal_path, "wb"):
            pass
        for path in self.blobs.glob("*/*"):
            if path.name not in used:
                path.unlink(missing_ok=True)
        return count


# --------------------------------------------------------------------------- moto state


def _backend():
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else None


def key_versions(store: Store, bucket: Any, name: str) -> list[dict[str, Any]]:
    """Every version of key `name` as plain values, bodies stored as blobs."""
    from moto.s3.models import FakeDeleteMarker

    backend = _backend()
    out = []
    for version in bucket.keys.getlist(name, []) or []:
        if isinstance(version, FakeDeleteMarker):
            out.append(
                {
                    "marker": True,
                    "version_id": version._version_id,
                    "last_modified": _iso(version.last_modified),
                }
            )
            continue
        blob = getattr(version, "_volt_blob", None)
        if blob is None:
            blob = store.put_blob(version.value)
            version._volt_blob = blob
        fields = {f: getattr(version, f, None) for f in KEY_FIELDS}
        version.etag  # noqa: B018 - moto computes and keeps _etag on first use
        fields["_etag"] = version._etag
        out.append(
            {
                "blob": blob,
                "version_id": version._version_id,
                "last_modified": _iso(version.last_modified),
                "metadata": dict(version._metadata),
                "fields": fields,
                "tags": backend.tagger.get_tag_dict_for_resource(version.arn),
            }
        )
    return out


def bucket_record(bucket: Any) -> dict[str, Any]:
    config = {k: v for k, v in bucket.__dict__.items() if k not in BUCKET_CONTENT}
    tags = _backend().tagger.get_tag_dict_for_resource(bucket.arn)
    return {
        "op": "bucket",
        "bucket": bucket.name,
        "region": bucket.region_name,
        "config": pickle.dumps(config),
        "tags": tags,
    }


def _restore_version(bucket: Any, name: str, version: dict[str, Any], blob: bytes | None) -> Any:
    from moto.s3.models import FakeDeleteMarker, FakeKey, LowercaseDict

    modified = (
        dt.datetime.fromisoformat(version["last_modified"]) if version["last_modified"] else None
    )
    key = FakeKey(
        name=name,
        value=blob or b"",
        account_id=bucket.account_id,
        region_name=bucket.region_name,
        bucket_name=bucket.name,
    )
    if version.get("marker"):
        marker = FakeDeleteMarker(key)
        marker._version_id = version["version_id"]
        marker.last_modified = modified or marker.last_modified
        return marker
    for field, value in version["fields"].items():
        setattr(key, field, value)
    key._version_id = version["version_id"]
    key._metadata = LowercaseDict(version["metadata"])
    key.last_modified = modified or key.last_modified
    key._volt_blob = version["blob"]
    if version.get("tags"):
        _backend().tagger.tag_resource(
            key.arn, [{"Key": k, "Value": v} for k, v in version["tags"].items()]
        )
    return key


def restore(store: Store) -> tuple[int, int]:
    """Load the saved buckets and keys into moto's backend; (buckets, objects)."""
    backend = _backend()
    buckets, keys = store.load()
    for name, record in buckets.items():
        bucket = backend.create_bucket(name, record["region"])
        bucket.__dict__.update(pickle.loads(record["config"]))
        if record.get("tags"):
            backend.tagger.tag_resource(
                bucket.arn, [{"Key": k, "Value": v} for k, v in record["tags"].items()]
            )
    objects = 0
    for (bucket_name, name), versions in keys.items():
        bucket = backend.buckets[bucket_name]
        restored = [
            _restore_version(
                bucket, name, v, None if v.get("marker") else store.read_blob(v["blob"])
            )
            for v in versions
        ]
        bucket.keys.setlist(name, restored)
        objects += sum(1 for v in versions if not v.get("marker"))
    return len(buckets), objects


def current_records(store: Store) -> Iterator[dict[str, Any]]:
    """The whole in-memory state as records (for compaction)."""
    for bucket in list(_backend().buckets.values()):
        yield bucket_record(bucket)
        for name in list(bucket.keys.keys()):
            versions = key_versions(store, bucket, name)
            if versions:
                yield {"op": "key", "bucket": bucket.name, "key": name, "versions": versions}


# --------------------------------------------------------------------------- change tracking


def _note(kind: str, *item: Any) -> None:
    changes = getattr(_touched, "changes", None)
    if changes is not None:
        changes[kind].add(item[0] if len(item) == 1 else item)


def _track_key_store(store_class: type, method_name: str) -> None:
    original = getattr(store_class, method_name)

    def tracked(self, key, *args, **kwargs):
        _note("keys", id(self), key)
        return original(self, key, *args, **kwargs)

    setattr(store_class, method_name, tracked)


def _track_backend(backend_class: type, method_name: str, with_key: bool) -> None:
    original = getattr(backend_class, method_name)

    def tracked(self, bucket_name, *args, **kwargs):
        _note("buckets", bucket_name)
        if with_key and args:
            _note("named", bucket_name, args[0])  # in-place changes: tags, ACL, retention
        return original(self, bucket_name, *args, **kwargs)

    setattr(backend_class, method_name, tracked)


def install_tracking() -> None:
    """Patch moto so that a request notes the buckets and keys it reaches (thread-local)."""
    from moto.s3.models import S3Backend
    from moto.s3.utils import _VersionedKeyStore

    for method_name in ("__setitem__", "setlist", "pop", "__delitem__"):
        _track_key_store(_VersionedKeyStore, method_name)
    for method_name in ("get_bucket", "create_bucket", "delete_bucket"):
        _track_backend(S3Backend, method_name, with_key=False)
    _track_backend(S3Backend, "get_object", with_key=True)


class Journaling:
    """WSGI middleware: a write request's changes reach the journal before its answer is sent."""

    def __init__(self, app: Any, store: Store):
        self.app = app
        self.store = store
        self.lock = threading.Lock()  # writes one at a time: the journal's order is moto's
        self.saved_buckets: dict[str, bytes] = {}

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") in READ_METHODS:
            return self.app(environ, start_response)
        _buffer_body(environ)  # read the upload before taking the lock
        statuses: list[str] = []

        def remember(status: str, headers: list, exc_info: Any = None):
            statuses.append(status)
            return start_response(status, headers, exc_info)

        with self.lock:
            _touched.changes = {"keys": set(), "buckets": set(), "named": set()}
            try:
                body = list(self.app(environ, remember))
                changes = _touched.changes
            finally:
                _touched.changes = None
            if statuses and statuses[-1][:1] in "23":
                self.store.append(self.records(changes))
        return body

    def records(self, changes: dict[str, set]) -> list[dict[str, Any]]:
        backend = _backend()
        out: list[dict[str, Any]] = []
        for name in sorted(changes["buckets"]):
            bucket = backend.buckets.get(name)
            if bucket is None:
                if self.saved_buckets.pop(name, None) is not None:
                    out.append({"op": "drop-bucket", "bucket": name})
                continue
            record = bucket_record(bucket)
            fingerprint = pickle.dumps((record["config"], record["tags"]))
            if self.saved_buckets.get(name) != fingerprint:
                self.saved_buckets[name] = fingerprint
                out.append(record)
            stores = {id(bucket.keys)}
            names = {k for store_id, k in changes["keys"] if store_id in stores}
            names |= {k for b, k in changes["named"] if b == name}
            for key in sorted(names):
                out.append(
                    {
                        "op": "key",
                        "bucket": name,
                        "key": key,
                        "versions": key_versions(self.store, bucket, key),
                    }
                )
        return out

    def compact(self) -> int:
        with self.lock:
            count = self.store.compact(current_records(self.store))
            self.saved_buckets = {
                b.name: pickle.dumps((r["config"], r["tags"]))
                for b in _backend().buckets.values()
                for r in [bucket_record(b)]
            }
            return count


def _buffer_body(environ: dict) -> None:
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(int(length)))


# --------------------------------------------------------------------------- the server


def _write_status(store: Store, objects: int) -> None:
    status = {"objects": objects, "at": dt.datetime.now(dt.UTC).isoformat()}
    (store.root / "status.json").write_text(json.dumps(status), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto's S3 server, durable in --data")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder of the saved state")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))

    from moto.moto_server.threaded_moto_server import (
        DomainDispatcherApplication,
        create_backend_app,
    )
    from moto.server import MotoRequestHandler
    from werkzeug.serving import run_simple

    started = time.monotonic()
    store = Store(args.data.resolve(), fsync=os.environ.get("VOLT_S3_FSYNC", "1") != "0")
    buckets, objects = restore(store)
    app = Journaling(DomainDispatcherApplication(create_backend_app), store)
    app.compact()
    _write_status(store, objects)
    print(
        f"loaded {buckets} buckets and {objects} objects from {store.root} "
        f"in {time.monotonic() - started:.1f}s",
        flush=True,
    )
    install_tracking()

    def stop(signum: int, frame: Any) -> None:
        _write_status(store, app.compact())
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
