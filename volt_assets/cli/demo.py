"""`volt-assets demo` (`make demo`): the whole project in one command.

Starts the embedded stack (unless it already runs), seeds the Volt demo shop, materialises
every asset over the demo window as one run (`dagster asset materialize --partition-range`,
exactly as a user would), and stops the stack again if it started it, so no process is left
running. Dagster's own event log goes to a file the demo names; the terminal gets a line per
asset as its step finishes (days, rows, time), a summary (asset, partitions, rows, checks)
from the run's event log, and what to try next: well under 150 lines in all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from volt_assets import settings

BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict | None = None, check: bool = True) -> int:
    print(f"$ {' '.join(args)}", flush=True)
    return subprocess.run(args, env=env, check=check).returncode


def _stack_running(env: dict) -> bool:
    return (
        subprocess.run(
            [str(BIN / "volt-assets"), "stack", "status"], env=env, capture_output=True
        ).returncode
        == 0
    )


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


# Row counts of a materialisation: Dagster's standard key first, the project's own second.
ROW_KEYS = ("dagster/row_count", "rows")


def _rows(metadata: dict) -> int | None:
    for key in ROW_KEYS:
        if key in metadata:
            return int(metadata[key].value)
    return None


def _span(days: list[str]) -> str:
    days = sorted(d for d in days if d)
    if not days:
        return "-"
    return f"{days[0]}..{days[-1]} ({len(days)} day{'s' if len(days) != 1 else ''})"


class Progress:
    """Follows a run's event log and prints a line per asset as its step ends."""

    def __init__(self, instance, run_id: str):
        self.instance, self.run_id, self.cursor = instance, run_id, None
        self.steps: dict[str, dict[str, dict]] = defaultdict(dict)  # step -> asset -> days, rows

    def poll(self) -> None:
        while True:
            page = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, limit=1000)
            self.cursor = page.cursor
            for record in page.records:
                if record.event_log_entry.dagster_event is not None:
                    self.handle(record.event_log_entry.dagster_event)
            if not page.has_more:
                return

    def handle(self, event) -> None:
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            seen = self.steps[event.step_key].setdefault(
                mat.asset_key.to_user_string(), {"days": [], "rows": None}
            )
            seen["days"].append(mat.partition)
            rows = _rows(mat.metadata)
            if rows is not None:
                seen["rows"] = (seen["rows"] or 0) + rows  # each day's event carries its own rows
        elif kind == "STEP_SUCCESS":
            seconds = event.event_specific_data.duration_ms / 1000
            for asset, seen in sorted(self.steps.pop(event.step_key, {}).items()):
                rows = "-" if seen["rows"] is None else f"{seen['rows']:,} rows"
                print(
                    f"  done    {asset:<30} {_span(seen['days']):<32} {rows:>14}  {seconds:6.1f} s",
                    flush=True,
                )
        elif kind == "STEP_FAILURE":
            print(
                f"  FAILED  step {event.step_key} (its error is in the event log named above)",
                flush=True,
            )


def _newest_run(instance, since: dt.datetime) -> str | None:
    """The id of the run created at or after `since`, once it exists."""
    records = instance.get_run_records(limit=1)
    if records and records[0].create_timestamp >= since:
        return records[0].dagster_run.run_id
    return None


def follow_run(process: subprocess.Popen, home: Path, since: dt.datetime) -> str | None:
    """Print progress from the run's event log until `process` exits; the run's id."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    progress, run_id = None, None
    try:
        while True:
            exited = process.poll() is not None
            run_id = run_id or _newest_run(instance, since)
            if run_id and progress is None:
                progress = Progress(instance, run_id)
            if progress:
                progress.poll()
            if exited:
                return run_id
            time.sleep(0.5)
    finally:
        instance.dispose()


def summarise(run_id: str, home: Path) -> list[tuple[str, str, int | str, str]]:
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
            value = _rows(mat.metadata)
            if value is not None:
                rows[key] += value  # each partition's event carries its own rows
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            verdict = "ok" if ev.passed else ev.severity.value
            checks[ev.asset_key.to_user_string()].append(f"{ev.check_name}:{verdict}")
    table = []
    for key in sorted(set(partitions) | set(checks)):
        # "-": the asset reports no rows (the pictures count components, in their own metadata)
        table.append(
            (key, _span(list(partitions[key])), rows.get(key, "-"), " ".join(checks[key]) or "-")
        )
    instance.dispose()
    return table


def print_summary(table: list[tuple[str, str, int | str, str]]) -> None:
    headers = ("asset", "partitions", "rows", "checks")
    widths = [max(len(str(r[i])) for r in table + [headers]) for i in range(3)]
    print()
    print(
        f"{headers[0]:<{widths[0]}}  {headers[1]:<{widths[1]}}  {headers[2]:>{widths[2]}}  {headers[3]}"
    )
    for asset, span, n, checks in table:
        print(f"{asset:<{widths[0]}}  {span:<{widths[1]}}  {n:>{widths[2]}}  {checks}")


def next_steps(stopped_stack: bool) -> list[str]:
    """What to try after the demo: the UI, a query of the lake, a query of the marts."""
    cli = f"{BIN.relative_to(Path.cwd()) if BIN.is_relative_to(Path.cwd()) else BIN}/volt-assets"
    lines = [
        "",
        "What next:",
        "  make dev                 the Dagster UI on http://127.0.0.1:3000: this run, its checks, lineage",
    ]
    if stopped_stack:
        lines.append(
            f"  {cli} stack up   bring the stack back (the lake and the marts are kept) to query them:"
        )
    lines += [
        f'  {cli} lake sql "SELECT dt, count(*) AS orders FROM staging.orders GROUP BY dt ORDER BY dt"',
        f'  {cli} lake sql "SELECT * FROM mart.daily_category_sales ORDER BY dt DESC, revenue DESC LIMIT 5"',
    ]
    stack = settings.read_stack_env()
    if stack.get("POSTGRES_PORT"):
        where = (
            f"postgresql://{stack.get('POSTGRES_USER', 'postgres')}@{stack.get('POSTGRES_HOST', '127.0.0.1')}"
            f":{stack['POSTGRES_PORT']}/{stack.get('POSTGRES_DB', 'volt')}"
        )
        lines.append(
            f"  the marts in PostgreSQL: schema marts of {where} (password in "
            f"{settings.stack_env_path()}), for psql, a BI tool or sql/analytics/*.sql"
        )
    return lines


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--days", type=int, default=14, help="days of shop life to seed and run (default 14)"
    )
    parser.add_argument(
        "--components", type=int, default=2000, help="components to seed (default 2000)"
    )
    parser.add_argument("--users", type=int, default=500, help="customers to seed (default 500)")
    parser.add_argument("--orders", type=int, default=5000, help="orders to seed (default 5000)")
    parser.add_argument(
        "--dirty-rate",
        type=float,
        default=0.01,
        help="share of seeded rows with one kind of dirt, 0..1 (default 0.01)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="random seed: same seed, same shop (default 42)"
    )


def event_log_path() -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.state_dir() / "logs" / f"demo-{stamp}.log"


def materialize(env: dict, start: dt.date, end: dt.date) -> tuple[int, str | None]:
    """The whole pipeline over [start, end] as one run; Dagster's output to a file. (exit code, run id)"""
    home = Path(env["DAGSTER_HOME"])
    args = [
        str(BIN / "dagster"),
        "asset",
        "materialize",
        "-m",
        "volt_assets",
        "--select",
        "*",
        "--partition-range",
        f"{start.isoformat()}...{end.isoformat()}",
    ]
    log = event_log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {' '.join(args)}")
    print(f"  Dagster's event log: {log}", flush=True)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            run_id = follow_run(process, home, since)
        finally:
            code = process.wait()
    return code, run_id


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    started_stack = not _stack_running(env)
    if started_stack:
        _run([str(BIN / "volt-assets"), "stack", "up"], env)
    try:
        end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        start = end - dt.timedelta(days=args.days - 1)
        _run(
            [
                str(BIN / "volt-assets"),
                "seed",
                "--reset",
                "--seed",
                str(args.seed),
                "--components",
                str(args.components),
                "--users",
                str(args.users),
                "--orders",
                str(args.orders),
                "--days",
                str(args.days),
                "--dirty-rate",
                str(args.dirty_rate),
                "--end-date",
                end.isoformat(),
            ],
            _pipeline_env(),
        )
        env = _pipeline_env()
        env["VOLT_PARTITIONS_START"] = start.isoformat()
        home = Path(env["DAGSTER_HOME"])
        os.environ["DAGSTER_HOME"] = str(home)  # the instance's dagster.yaml reads it
        from volt_assets.devstack.instance_config import prepare_dagster_home

        prepare_dagster_home(home)
        code, run_id = materialize(env, start, end)
        if run_id is None:
            print(f"the run did not start (exit {code}): see the event log named above")
            return code or 1
        print_summary(summarise(run_id, home))
        print(
            f"\nrun {run_id}: {'succeeded' if code == 0 else 'FAILED (see the checks above and the run in `make dev`)'}"
        )
    finally:
        if started_stack:
            _run([str(BIN / "volt-assets"), "stack", "down"], env, check=False)
    print("\n".join(next_steps(started_stack)))
    return code
