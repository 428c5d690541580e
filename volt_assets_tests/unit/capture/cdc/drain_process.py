"""A cdc capture in a process of its own, for the tests that SIGKILL it or measure its memory:

    python -m volt_assets_tests.unit.capture.cdc.drain_process DSN ENDPOINT BUCKET SLOT TABLE WORKDIR

runs `CdcCapture.run` for TABLE (as a `sync: cdc` table) and prints one JSON object: the
changes it added, the replays it dropped, and the process's peak RSS in MB."""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
from pathlib import Path

from volt_assets.devstack import stack
from volt_assets.lib.capture.cdc.capture import CdcCapture
from volt_assets.lib.config import table_config
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets_tests.unit.capture.cdc.cdc_lake import OPENING_DAY


def command(volt_env, endpoint: str, slot: str, table: str, workdir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        __name__,
        volt_env.dsn,
        endpoint,
        volt_env.bucket,
        slot,
        table,
        str(workdir),
    ]


def run(volt_env, endpoint: str, slot: str, table: str, workdir: Path) -> dict:
    """The capture run to its end in a child process: what it printed."""
    done = subprocess.run(
        command(volt_env, endpoint, slot, table, workdir),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    dsn, endpoint, bucket, slot, table, workdir = argv
    configs = [dataclasses.replace(table_config.table(table), sync="cdc")]
    store = LakeStore(stack.s3_client(endpoint), bucket)
    result = CdcCapture(configs, dsn, store, OPENING_DAY, slot=slot).run(Path(workdir))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    print(json.dumps({"changes": result.changes, "replayed": result.replayed, "peak_mb": peak}))


if __name__ == "__main__":
    main(sys.argv[1:])
