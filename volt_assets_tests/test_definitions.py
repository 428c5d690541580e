"""The code location as users meet it: it loads, validates and names what the contract names."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

CONTRACT_KEYS = {
    "raw/electrical_components", "raw/users", "raw/orders",
    "staging/electrical_components", "staging/users", "staging/orders",
}


def test_dagster_definitions_validate_passes(volt_env):
    dagster = str(Path(sys.executable).with_name("dagster"))
    done = subprocess.run([dagster, "definitions", "validate", "-m", "volt_assets"],
                          env={**os.environ, **volt_env.env}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "passed validation" in done.stderr + done.stdout


def test_contract_asset_keys_and_single_run_backfills(volt_env):
    from volt_assets.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert CONTRACT_KEYS <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.partitions_def is not None:
            # --partition-range and UI backfills need every selected asset to run as one run
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
            assert node.partitions_def.start.date().isoformat() == "2026-01-01"
