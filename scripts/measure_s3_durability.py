"""How the embedded S3 endpoint's durability costs: writes, restart time and disk use at scale.

    .venv/bin/python scripts/measure_s3_durability.py [--objects 100000] [--recorder 2000]

Writes N small objects (1 KiB, lake-like keys, a versioned bucket) through the durable server
(`volt_assets.devstack.s3_server`), SIGKILLs it, starts it again and times until it answers with every
object (what `volt-assets stack up` waits for), then reports disk use. With --recorder M it
also measures moto's own request recorder (MOTO_ENABLE_RECORDING) on M objects: its log size
and the time to replay it into a fresh server, the alternative the README compares.
With --restart-only the objects are made in-process in the server's format (HTTP writes on a
shared 2-core machine run at ~60/s) and only `stack up`'s restart and the disk are measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from volt_assets.devstack import stack

BUCKET = "volt-measure-lake"


def du(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def write_objects(url: str, count: int) -> float:
    client = stack.s3_client(url)
    stack.ensure_bucket(client, BUCKET)
    body = os.urandom(1024)

    def put(i: int) -> None:
        client.put_object(
            Bucket=BUCKET,
            Key=f"raw/orders/dt=2026-01-{i % 28 + 1:02d}/part-{i:07d}.jsonl",
            Body=b"%07d" % i + body[: 512 + i % 512],
            Metadata={"n": str(i)},
        )

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(count)))
    return time.monotonic() - started


def count_objects(url: str) -> int:
    client = stack.s3_client(url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return sum(page.get("KeyCount", 0) for page in pages)


def fill_directly(data: Path, count: int) -> None:
    """The state `count` HTTP writes would leave, made in-process through moto's backend and the
    server's own journal format (a shared machine writes ~60 objects/s over HTTP)."""
    from volt_assets.devstack import s3_server

    backend = s3_server._backend()
    bucket = backend.create_bucket(BUCKET, stack.S3_REGION)
    bucket.versioning_status = "Enabled"
    body = os.urandom(1024)
    started = time.monotonic()
    for i in range(count):
        key = backend.put_object(
            BUCKET,
            f"raw/orders/dt=2026-01-{i % 28 + 1:02d}/part-{i:07d}.jsonl",
            b"%07d" % i + body[: 512 + i % 512],
        )  # distinct bodies, as a lake's
        key.set_metadata({"n": str(i)})
    store = s3_server.Store(data)
    store.compact(s3_server.current_records(store))
    print(f"made {count} objects in-process in {time.monotonic() - started:.1f}s")


def measure_restart(root: Path, count: int) -> None:
    data = root / "s3"
    fill_directly(data, count)
    print(
        f"  disk: {du(data) / 2**20:.1f} MiB "
        f"(snapshot {(data / 'snapshot.bin').stat().st_size / 2**20:.1f} MiB)"
    )
    started = time.monotonic()
    s3 = stack.start_s3(None, root / "s3.log", data_dir=data, timeout=1800)
    up = time.monotonic() - started
    print(f"  server start until it answers: {up:.1f}s; it lists {count_objects(s3.url)} objects")
    started = time.monotonic()
    stack.stop_s3(s3, timeout=600)
    print(f"  stop (SIGTERM, compacts): {time.monotonic() - started:.1f}s")


def measure_durable(root: Path, count: int) -> None:
    data = root / "s3"
    s3 = stack.start_s3(None, root / "s3.log", data_dir=data)
    seconds = write_objects(s3.url, count)
    print(f"durable server: wrote {count} objects in {seconds:.1f}s ({count / seconds:.0f}/s)")
    print(f"  disk before restart (journal not compacted): {du(data) / 2**20:.1f} MiB")
    os.kill(s3.pid, signal.SIGKILL)
    s3.process.wait()
    started = time.monotonic()
    s3 = stack.start_s3(None, root / "s3.log", data_dir=data, timeout=1800)
    up = time.monotonic() - started
    found = count_objects(s3.url)
    print(f"  after SIGKILL: answering again in {up:.1f}s with {found} objects")
    print(
        f"  disk after compaction: {du(data) / 2**20:.1f} MiB "
        f"(snapshot {(data / 'snapshot.bin').stat().st_size / 2**20:.1f} MiB)"
    )
    started = time.monotonic()
    stack.stop_s3(s3)
    print(f"  stop (SIGTERM, compacts): {time.monotonic() - started:.1f}s")


def measure_recorder(root: Path, count: int) -> None:
    import requests

    log = root / "recording.jsonl"
    env = {**os.environ, "MOTO_ENABLE_RECORDING": "1", "MOTO_RECORDER_FILEPATH": str(log)}
    port = stack.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    handle = stack.S3Handle(port=port, pid=proc.pid, log_path=root / "x.log", process=proc)
    stack._wait_for_s3(handle, time.monotonic() + 60)
    seconds = write_objects(url, count)
    print(
        f"moto recorder: wrote {count} objects in {seconds:.1f}s; "
        f"log {log.stat().st_size / 2**20:.1f} MiB"
    )
    proc.kill()
    proc.wait()
    port = stack.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    handle = stack.S3Handle(port=port, pid=proc.pid, log_path=root / "x.log", process=proc)
    stack._wait_for_s3(handle, time.monotonic() + 60)
    started = time.monotonic()
    requests.post(f"{url}/moto-api/recorder/replay-recording", timeout=3600)
    replay = time.monotonic() - started
    print(
        f"  replay into a fresh server: {replay:.1f}s, {count_objects(url)} objects "
        f"(new version ids: the manifests would need rewriting)"
    )
    proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument(
        "--recorder", type=int, default=0, help="objects for moto's recorder (0: skip)"
    )
    parser.add_argument(
        "--restart-only",
        action="store_true",
        help="make the objects in-process, measure only the restart and disk use",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="volt-s3-measure-") as tmp:
        if args.restart_only:
            measure_restart(Path(tmp), args.objects)
        else:
            measure_durable(Path(tmp), args.objects)
        if args.recorder:
            measure_recorder(Path(tmp), args.recorder)


if __name__ == "__main__":
    main()
