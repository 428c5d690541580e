"""Shared by the bench driver and its peers: timing a child process and its whole tree,
the source's connection settings, object sizes on S3."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
TABLE = "electrical_components"
SAMPLE_SECONDS = 0.05


@dataclass
class Measure:
    """One timed process: wall seconds, peak RSS of its process tree, what it reported."""

    name: str
    seconds: float
    peak_rss: int  # bytes, the sum over the process and all its descendants at the worst sample
    returncode: int
    peak_process_rss: int = 0  # bytes, the largest single process of the tree
    report: dict = field(default_factory=dict)  # the child's last JSON line, if any
    tail: str = ""  # last lines of its output (for errors)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class TreeSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.peak_by_process = 0  # the largest single process seen
        self._done = threading.Event()

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        total = 0
        for proc in procs:
            try:
                rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            self.peak_by_process = max(self.peak_by_process, rss)
        self.peak = max(self.peak, total)

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_measured(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    log: Path,
    cwd: Path = ROOT,
    timeout: float = 3600,
) -> Measure:
    """Run `cmd` to completion, sampling its tree's RSS; output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            proc.wait(timeout)
        except BaseException:
            _kill_tree(proc)
            raise
        finally:
            sampler.stop()
        seconds = time.perf_counter() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    report: dict = {}
    for line in reversed(text.splitlines()):
        if line.startswith("{") and line.endswith("}"):
            try:
                report = json.loads(line)
                break
            except ValueError:
                continue
    tail = "\n".join(text.splitlines()[-25:])
    return Measure(
        name,
        seconds,
        sampler.peak,
        proc.returncode,
        peak_process_rss=sampler.peak_by_process,
        report=report,
        tail=tail,
    )


def _kill_tree(proc: subprocess.Popen) -> None:
    """Stop a child we started and everything it started (its own session)."""
    try:
        parent = psutil.Process(proc.pid)
        children = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in [parent, *children]:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs([parent, *children], timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def emit(report: dict[str, Any]) -> None:
    """A peer's result: one JSON line on stdout, the last thing it prints."""
    sys.stdout.flush()
    print(json.dumps(report, default=str), flush=True)


# --------------------------------------------------------------------------- source, S3


def pg_params() -> dict[str, Any]:
    env = os.environ
    return {
        "host": env["POSTGRES_HOST"],
        "port": int(env["POSTGRES_PORT"]),
        "dbname": env["POSTGRES_DB"],
        "user": env["POSTGRES_USER"],
        "password": env.get("POSTGRES_PASSWORD", ""),
    }


def pg_url(driver: str = "postgresql") -> str:
    from urllib.parse import quote

    p = pg_params()
    return f"{driver}://{quote(p['user'])}:{quote(p['password'], safe='')}@{p['host']}:{p['port']}/{p['dbname']}"


def window_where(start: str | None, end: str | None) -> str:
    """The partition window as SQL (start/end are ISO timestamps we produce ourselves)."""
    if not start:
        return ""
    return f" WHERE updated_at >= '{start}'::timestamptz AND updated_at < '{end}'::timestamptz"


def s3() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_DEFAULT_REGION"),
        config=Config(s3={"addressing_style": "path"}, read_timeout=300),
    )


def prefix_bytes(client: Any, bucket: str, prefix: str = "") -> tuple[int, int]:
    """(objects, bytes) under a prefix."""
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            count += 1
            size += obj["Size"]
    return count, size


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object version and delete marker (the bucket is versioned, and moto keeps
    them all in memory: free it between repetitions)."""
    # Always list from the start again until nothing is left: moto's version-listing markers
    # skipped entries once pages were being deleted (a "BucketNotEmpty" after a 1M-row run).
    while True:
        page = client.list_object_versions(Bucket=bucket, MaxKeys=1000)
        keys = [
            {"Key": o["Key"], "VersionId": o["VersionId"]}
            for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if not keys:
            return
        for i in range(0, len(keys), 1000):
            client.delete_objects(
                Bucket=bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True}
            )
