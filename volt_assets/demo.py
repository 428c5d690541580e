"""`volt-assets demo` (`make demo`): the whole project in one command.

Starts the embedded stack (unless it already runs), seeds the Volt demo shop, materialises
every asset over the demo window as one run (`dagster asset materialize --partition-range`,
exactly as a user would), prints a summary (asset, partitions, rows, checks) from the run's
event log, and stops the stack again if it started it, so no process is left running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from volt_assets import settings

BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict | None = None, check: bool = True) -> int:
    print(f"$ {' '.join(args)}", flush=True)
    return subprocess.run(args, env=env, check=check).returncode


def _stack_running(env: dict) -> bool:
    return subprocess.run([str(BIN / "volt-assets"), "stack", "status"], env=env,
                          capture_output=True).returncode == 0


def _pipeline_env() -> dict[str, str]:
    """A clean environment for the pipeline: the stack's settings, not this process's copy
    (this process applied its settings before the stack and the seed wrote theirs)."""
    env = dict(os.environ)
    stack = settings.read_stack_env()
    if env.get("VOLT_USE_STACK", "1") != "0":
        for key, value in stack.items():
            env[key] = value
    home = Path(env.get("DAGSTER_HOME") or settings.state_dir() / "dagster_home")
    env["DAGSTER_HOME"] = str(home)
    return env


def summarise(run_id: str, home: Path) -> list[tuple[str, str, int, str]]:
    """(asset, partitions, rows, checks) per asset of a run, read from its event log."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    partitions: dict[str, set] = defaultdict(set)
    rows: dict[str, int] = defaultdict(int)
    checks: dict[str, list[str]] = defaultdict(list)
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            key = mat.asset_key.to_user_string()
            partitions[key].add(mat.partition)
            value = mat.metadata.get("rows")
            if value is not None:
                rows[key] += int(value.value)  # each partition's event carries its own rows
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            verdict = "ok" if ev.passed else ev.severity.value
            checks[ev.asset_key.to_user_string()].append(f"{ev.check_name}:{verdict}")
    table = []
    for key in sorted(set(partitions) | set(checks)):
        days = sorted(p for p in partitions[key] if p)
        span = f"{days[0]}..{days[-1]} ({len(days)})" if days else "-"
        # "-": the asset reports no rows (the pictures count components, in their own metadata)
        table.append((key, span, rows.get(key, "-"), " ".join(checks[key]) or "-"))
    instance.dispose()
    return table


def print_summary(table: list[tuple[str, str, int | str, str]]) -> None:
    headers = ("asset", "partitions", "rows", "checks")
    widths = [max(len(str(r[i])) for r in table + [headers]) for i in range(3)]
    print()
    print(f"{headers[0]:<{widths[0]}}  {headers[1]:<{widths[1]}}  {headers[2]:>{widths[2]}}  {headers[3]}")
    for asset, span, n, checks in table:
        print(f"{asset:<{widths[0]}}  {span:<{widths[1]}}  {n:>{widths[2]}}  {checks}")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=14, help="days of shop life to seed and run (default 14)")
    parser.add_argument("--components", type=int, default=2000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--dirty-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    started_stack = not _stack_running(env)
    if started_stack:
        _run([str(BIN / "volt-assets"), "stack", "up"], env)
    try:
        end = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        start = end - dt.timedelta(days=args.days - 1)
        _run([str(BIN / "volt-assets"), "seed", "--reset", "--seed", str(args.seed),
              "--components", str(args.components), "--users", str(args.users), "--orders", str(args.orders),
              "--days", str(args.days), "--dirty-rate", str(args.dirty_rate), "--end-date", end.isoformat()],
             _pipeline_env())
        env = _pipeline_env()
        env["VOLT_PARTITIONS_START"] = start.isoformat()
        home = Path(env["DAGSTER_HOME"])
        os.environ["DAGSTER_HOME"] = str(home)  # the instance's dagster.yaml reads it
        from volt_assets.instance_config import prepare_dagster_home

        prepare_dagster_home(home)
        code = _run([str(BIN / "dagster"), "asset", "materialize", "-m", "volt_assets", "--select", "*",
                     "--partition-range", f"{start.isoformat()}...{end.isoformat()}"], env, check=False)
        import dagster as dg

        instance = dg.DagsterInstance.from_config(str(home))
        run_id = instance.get_runs(limit=1)[0].run_id
        instance.dispose()
        print_summary(summarise(run_id, home))
        print(f"\nrun {run_id}: {'succeeded' if code == 0 else 'FAILED (see the checks above and the run in `make dev`)'}")
        return code
    finally:
        if started_stack:
            _run([str(BIN / "volt-assets"), "stack", "down"], env, check=False)
