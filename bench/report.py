"""bench/RESULTS.md from bench/out/results.json: machine, versions, tables, ratios, targets.

    python -m bench.report            # re-render from bench/out/results.json

The hand-written analysis lives in bench/ANALYSIS.md and is appended as it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench import targets
from bench.common import OUT, ROOT

MB = 2**20
TOOLS = {
    "project": "**volt_assets** (`dagster asset materialize`, raw + staging)",
    "idle": "the same command for a day with no rows (the idle peak)",
    "project_multiprocess": "volt_assets, same command with a process per step (`--config-json` multiprocess)",
    "project_planned_subset": "volt_assets, same command with `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1`",
    "dagster_floor": "floor: Dagster alone (bench/floor.py: same assets, partitions, instance; bodies do nothing)",
    "dagster_floor_planned_subset": "floor: Dagster alone with `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1`",
    "pandas": "seeds' way: pandas.read_sql → JSON + Parquet → put_object",
    "dlt_pyarrow": "dlt sql_table backend=pyarrow → filesystem (S3, Parquet)",
    "dlt_connectorx": "dlt sql_table backend=connectorx → filesystem (S3, Parquet)",
    "psql_copy": "limit: psql `\\copy (SELECT *) TO '/dev/null'`",
    "psql_copy_json": "floor: PostgreSQL's JSON rendering (psql `\\copy` of the project's row_to_json query → /dev/null)",
    "pyarrow_parquet": "limit: pyarrow zstd Parquet in memory (write only)",
}


def load_text(start, end) -> str:
    """The machine's load average around the run: other work on its cores shows here."""
    if not start:
        return "load average not recorded."
    text = f"load average (1 min) {start[0]:.2f} when the run started"
    return text + (f", {end[0]:.2f} when it finished." if end else ".")


def _f(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _mb(value) -> str:
    return "—" if not value else f"{value / MB:,.0f}"


def seconds_of(entry: dict | None, tool: str) -> float | None:
    """The seconds a tool is judged by: whole process, except the Parquet limit (write only)."""
    if not entry or entry.get("seconds") is None:
        return None
    if tool == "pyarrow_parquet":
        writes = [
            r.get("write_seconds")
            for r in entry["reps"]
            if r.get("ok") and r.get("write_seconds") is not None
        ]
        return sorted(writes)[len(writes) // 2] if writes else None
    return entry["seconds"]


def comparison_table(section: dict, rows_hint: int | None) -> list[str]:
    project = seconds_of(section.get("project"), "project")
    lines = [
        "| tool | wall s (median) | rows/s | peak RSS MB, tree: median / max (largest process) | bytes written | reps | tool s / project s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for tool, label in TOOLS.items():
        entry = section.get(tool)
        if not entry:
            continue
        secs = seconds_of(entry, tool)
        # the project's metadata `rows` of a range is one partition's: every tool read rows_hint rows
        rows = rows_hint if tool.startswith("project") else (entry.get("rows") or rows_hint)
        if tool.startswith("dagster_floor") or tool == "idle":
            rows = None  # it reads no rows
        oks = sum(1 for r in entry["reps"] if r.get("ok"))
        reps = f"{oks}/{len(entry['reps'])}"
        ratio = _f(secs / project, 2) if secs and project else "—"
        bytes_ = (
            "—"
            if tool.startswith("psql")
            else (f"{entry['bytes']:,}" if entry.get("bytes") else "—")
        )
        lines.append(
            f"| {label} | {_f(secs, 2)} | {_f(rows / secs if rows and secs else None, 0)} | "
            f"{_mb(entry.get('peak_rss_median'))} / {_mb(entry.get('peak_rss'))} "
            f"({_mb(entry.get('peak_process_rss'))}) | {bytes_} | {reps} | {ratio} |"
        )
    p = section.get("project")
    if p and p.get("step_seconds") is not None:
        lines.append("")
        lines.append(
            f"Inside the project's run (event log): steps {_f(p.get('step_seconds'), 2)} s "
            f"(raw + staging steps, checks and their events included), the IO manager's "
            f"`duration_seconds` metadata {_f(p.get('asset_seconds'), 2)} s (extract/transform/upload "
            f"of the outputs); the rest of the wall time is the `dagster` process starting, loading the "
            f"code location and creating the run (one planned-materialisation event per partition)."
        )
    return lines


def header(results: dict) -> list[str]:
    m = results.get("machine", {})
    args = results.get("args", {})
    v = m.get("versions", {})
    finished = (
        f"finished {results['finished_at']}"
        if results.get("finished_at")
        else "**not finished (partial results)**"
    )
    storage = results.get("dagster_storage", "postgres")
    return [
        "# Benchmark results (`make bench`)",
        "",
        "Generated by `python -m bench.run` (bench/report.py, targets in bench/targets.py); numbers "
        "from bench/out/results.json of that run.",
        f"Run started {results.get('started_at')}, {finished}, {results.get('elapsed_minutes')} min.",
        "",
        "## Machine and versions",
        "",
        f"- {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB RAM, {m.get('os')}; "
        + load_text(m.get("load_at_start"), results.get("load_at_end")),
        f"- Python {m.get('python')}, PostgreSQL {m.get('postgres')}, S3: moto {v.get('moto')} "
        "server on 127.0.0.1 (in-memory, single process: every tool pays its cost alike).",
        "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- Code: commit {results.get('commit', '?')}"
        + (" plus uncommitted changes" if results.get("dirty") else "")
        + ".",
        f"- Dagster instance of the runs: {storage} storage "
        + (
            "(deploy/dagster.postgres.yaml, a deployed instance's, in the bench's own PostgreSQL)."
            if storage == "postgres"
            else "(SQLite files, `make dev`'s)."
        ),
        f"- Arguments: rows {args.get('rows'):,}, heavy day {args.get('heavy_rows'):,} rows, big "
        f"table {args.get('big_rows'):,} rows, small table {args.get('small_rows'):,} rows, "
        f"{args.get('reps')} repetition(s)" + (" (--quick)" if args.get("quick") else "") + ".",
        "",
        "Every tool runs as its own process; wall seconds are the whole process (start-up "
        "included), peak RSS is the largest sum over the process and all its descendants "
        "(psutil, every 50 ms); PostgreSQL and S3 servers are not counted. Times are medians "
        "over the repetitions, peaks the median of each repetition's peak (the tables also show "
        "the largest); repetitions are interleaved (rep 1 of every tool, then rep 2, ...). The "
        "opening snapshot, the runs through the S3 proxy, the 5x table's backfill and the daily "
        "job run once each.",
        "",
    ]


def data_section(results: dict) -> list[str]:
    seeds = results.get("seeds", {})
    if not seeds:
        return []
    lines = [
        "## Data",
        "",
        "| database | rows | heavy day | heavy rows | seeded in s | table + indexes MB |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for db, s in seeds.items():
        lines.append(
            f"| {db} | {s['rows']:,} | {s['heavy_day']} | {s['heavy_rows']:,} | {s['seconds']} | "
            f"{_mb(s['table_bytes'])} |"
        )
    return lines + [""]


def targets_section(results: dict) -> list[str]:
    idle_day = results.get("idle_day", "a day after the table's last")
    return [
        "## Targets",
        "",
        "Floors measured in this run: **Dagster alone** is bench/floor.py (the project's two lake "
        "asset keys, partitions, backfill policy, executor and instance, bodies and IO manager "
        "doing nothing) run with the same command on the same partitions; **PostgreSQL's JSON "
        "rendering** is psql running the project's own row_to_json COPY to /dev/null"
        + (f" ({results['json_query']})" if results.get("json_query") else "")
        + ". The **idle peak** is the peak RSS of the same `dagster asset materialize` command "
        f"(raw + staging, one partition) for {idle_day}, a day on which the table has no rows, "
        "in the same run: the code location loading and running its assets on nothing.",
        "",
        "| target | measured | verdict |",
        "| --- | --- | --- |",
        *targets.rows(results),
        "",
    ]


def opening_section(results: dict) -> list[str]:
    op = (results.get("opening") or {}).get("project")
    if not op:
        return []
    rep = op["reps"][-1]
    rows = results.get("args", {}).get("rows")
    return [
        "## The opening snapshot (all rows in the first partition)",
        "",
        f"`VOLT_PARTITIONS_START` = the table's last day, raw + staging of that one partition on a "
        f"fresh bucket: it captures every row whose cursor lies before the day's end "
        f"({_f(rep.get('rows'), 0)} rows captured of {_f(rows, 0)}). One run: {_f(rep['seconds'], 2)} s, "
        f"peak RSS {_mb(rep['peak_rss'])} MB (largest process {_mb(rep.get('peak_process_rss'))} MB), "
        f"{_f(rep.get('bytes'), 0)} bytes written in {rep.get('objects')} objects, status "
        f"{rep.get('status')}.",
        "",
    ]


LATENCY_RUNS = {
    "direct_proxy": "backfill",
    "delayed": "backfill, delayed",
    "heavy_day": "heavy day",
}


def request_table(results: dict) -> list[str]:
    """S3 requests by kind, per day and asset, as the proxy counted them."""
    lat = results.get("latency") or {}
    runs = [(t, e["reps"][-1]) for t, e in lat.items() if e.get("reps")]
    runs = [(t, r) for t, r in runs if r.get("requests")]
    if not runs:
        return []
    kinds = sorted({k for _, r in runs for k in r["requests"]})
    lines = [
        "S3 requests per day and asset (counted by the proxy; raw and staging, "
        f"{targets.ASSETS} assets):",
        "",
        "| run | delay ms | days | " + " | ".join(kinds) + " | all | all requests |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in kinds) + " | ---: | ---: |",
    ]
    for tool, rep in runs:
        per = rep.get("days", 1) * targets.ASSETS
        counts = rep["requests"]
        total = sum(counts.values())
        cells = " | ".join(_f(counts.get(k, 0) / per, 2) for k in kinds)
        name = LATENCY_RUNS.get(tool, tool)
        lines.append(
            f"| {name} | {_f(rep.get('delay_ms'), 0)} | {rep.get('days')} | {cells} | "
            f"{_f(total / per, 2)} | {total:,} |"
        )
    return lines + [""]


def latency_section(results: dict) -> list[str]:
    lat = results.get("latency") or {}
    if not lat:
        return []
    setup = results.get("latency_setup") or {}
    lines = [
        "## S3 latency: the backfill through a delaying proxy",
        "",
        f"bench/s3_proxy.py sits between the project and the S3 endpoint (AWS_ENDPOINT_URL points "
        f"at it), forwards every request and header unchanged and streams the bodies; it waits "
        f"{_f(setup.get('delay_ms'), 0)} ms before forwarding each request in the delayed run, "
        f"0 ms in the other. {setup.get('days')} days, raw + staging, one run each.",
        "",
        "| run | delay per request, ms | wall s | in-run steps s | peak RSS MB | requests |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for tool, e in lat.items():
        rep = e["reps"][-1]
        lines.append(
            f"| {LATENCY_RUNS.get(tool, tool)} | {_f(rep.get('delay_ms'), 0)} | {_f(rep['seconds'], 2)} | "
            f"{_f(rep.get('step_seconds'), 2)} | {_mb(rep['peak_rss'])} | "
            f"{sum((rep.get('requests') or {}).values()):,} |"
        )
    return lines + [""] + request_table(results)


def partition_section(results: dict) -> list[str]:
    heavy = (results.get("heavy_day") or {}).get("project") or {}
    big = (results.get("big_heavy_day") or {}).get("project") or {}
    if not (heavy.get("seconds") and big.get("seconds")):
        return []
    seeds = results.get("seeds", {})
    lines = [
        "## One partition of the table vs the same partition of a 5x table",
        "",
        "| | rows in table | project wall s | in-run steps s | IO manager s | psql COPY s | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, sec, db in (
        ("table", results.get("heavy_day"), "bench"),
        ("5x table", results.get("big_heavy_day"), "bench_big"),
    ):
        pr = sec.get("project", {})
        lines.append(
            f"| {label} | {seeds.get(db, {}).get('rows', 0):,} | {_f(pr.get('seconds'), 2)} | "
            f"{_f(pr.get('step_seconds'), 2)} | {_f(pr.get('asset_seconds'), 2)} | "
            f"{_f(seconds_of(sec.get('psql_copy'), 'psql_copy'), 2)} | {_mb(pr.get('peak_rss'))} |"
        )
    big_bf = (results.get("big_backfill") or {}).get("project")
    if big_bf:
        lines += [
            "",
            f"The 5x table's 365-day backfill (once): {_f(big_bf['seconds'], 1)} s, peak RSS "
            f"{_mb(big_bf['peak_rss'])} MB.",
        ]
    return lines + [""]


def explain_section(results: dict) -> list[str]:
    explain = results.get("explain") or {}
    if not explain:
        return []
    lines = ["### EXPLAIN (ANALYZE, BUFFERS) of the project's extraction query", ""]
    for db, days in explain.items():
        for label, e in days.items():
            lines += [
                f"`{db}`, {label} day {e['day']} ({e['rows']:,} rows):",
                "",
                "```",
                e["plan"],
                "```",
                "",
            ]
    return lines


def runs_section(results: dict) -> list[str]:
    runs = results.get("runs") or {}
    if not runs.get("one_run"):
        return []
    one = runs["one_run"]["seconds"]
    small = results.get("seeds", {}).get("bench_small", {}).get("rows", 0)
    lines = [
        "## A 365-day backfill as one run vs 365 runs (small table)",
        "",
        f"Table of {small:,} rows. One run: `dagster asset materialize --partition-range` over the "
        "365 days. 365 runs: not run in full (it would take the bench's whole budget); a sample of "
        "consecutive days is run one partition per run, and the median run is multiplied by 365.",
        "",
        "| way | runs measured | median s per run | 365 days, s | vs one run |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| one run (`--partition-range`), whole process | {len(runs['one_run']['reps'])} | — | "
        f"{_f(one, 1)} | 1x |",
    ]
    ratios = targets.runs_ratios(results)
    sep = runs.get("separate_process")
    if "processes" in ratios:
        lines.append(
            f"| 365 `dagster asset materialize --partition D` processes (extrapolated) | "
            f"{len(sep['reps'])} | {_f(sep['seconds'], 2)} | {_f(365 * sep['seconds'], 0)} | "
            f"{_f(ratios['processes'], 1)}x |"
        )
    if "in_process" in ratios:
        n = sum(len(r.get("run_seconds") or []) for r in runs["in_process"]["reps"])
        per = ratios["in_process"] * one / 365
        lines.append(
            f"| 365 in-process `materialize()` runs, one process (extrapolated) | {n} | "
            f"{_f(per, 2)} | {_f(365 * per, 0)} | {_f(ratios['in_process'], 1)}x |"
        )
    cost = targets.fixed_cost_ms(results)
    if cost:
        lines += [
            "",
            f"Fixed cost of a partition: the one run minus Dagster alone's run of the same 365 days "
            f"({_f((results.get('backfill') or {}).get('dagster_floor', {}).get('seconds'), 2)} s), "
            f"over {cost[1]} days x {targets.ASSETS} assets: {_f(cost[0], 1)} ms per day and asset.",
        ]
    return lines + [""]


def steps_table(rep: dict) -> list[str]:
    steps = rep.get("steps") or {}
    if not steps:
        return []
    return (
        ["| step | s |", "| --- | ---: |"]
        + [f"| {k} | {_f(s, 2)} |" for k, s in sorted(steps.items())]
        + [""]
    )


def daily_section(results: dict) -> list[str]:
    daily = results.get("daily") or {}
    job = daily.get("job")
    if not job:
        return []
    rep = job["reps"][-1]
    setup = (daily.get("setup_users_orders") or {}).get("reps", [{}])[-1]
    seeds = results.get("seeds", {}).get("bench_small", {})
    uo = seeds.get("users_orders") or {}
    return [
        "## The daily schedule's job (every layer, [D-1, D])",
        "",
        f"`dagster job execute -j volt_daily` tagged with the partition range [D-1, D] as the "
        f"schedule's tick tags it, D the last day of the small table's 365-day lake "
        f"({seeds.get('rows', 0):,} components, {uo.get('users', 0):,} users, "
        f"{uo.get('orders', 0):,} orders; users and orders extracted over the 365 days first, in "
        f"{_f(setup.get('seconds'), 1)} s). One run: **{_f(rep['seconds'], 2)} s** end to end "
        f"(process start to exit), steps {_f(rep.get('step_seconds'), 2)} s, peak RSS "
        f"{_mb(rep['peak_rss'])} MB, status {rep.get('status')}. The pictures folder holds a JPEG "
        f"for each of the {results.get('daily_pictures', 0):,} components changed on those days "
        "(uploaded with a thumbnail each).",
        "",
        *steps_table(rep),
    ]


def marts_section(results: dict) -> list[str]:
    mm = (results.get("marts") or {}).get("marts")
    if not mm:
        return []
    rep = mm["reps"][-1]
    return [
        "## Marts over 365 days",
        "",
        f"`dagster asset materialize --select '{results.get('args', {}).get('marts')}' "
        f"--partition-range` over the 365 days on the small table's lake: {_f(mm.get('seconds'), 1)} s "
        f"wall, steps {_f(rep.get('step_seconds'), 1)} s, peak RSS {_mb(mm.get('peak_rss'))} MB, "
        f"status {rep.get('status')}.",
        "",
        *steps_table(rep),
    ]


SECTIONS = (
    "backfill",
    "heavy_day",
    "big_heavy_day",
    "big_backfill",
    "opening",
    "latency",
    "runs",
    "daily",
    "marts",
)


def failures_section(results: dict) -> list[str]:
    errors = results.get("errors") or []
    failed = [
        (sec, tool)
        for sec in SECTIONS
        for tool, e in (results.get(sec) or {}).items()
        if any(not r.get("ok") for r in e.get("reps", []))
    ]
    if not (errors or failed):
        return []
    lines = ["## Failures in this run", ""]
    lines += [
        f"- {sec}/{tool}: at least one repetition failed (bench/out/logs/)" for sec, tool in failed
    ]
    lines += [f"- {e.splitlines()[0]}" for e in errors]
    return lines + [""]


def comparison_section(results: dict, key: str, title: str) -> list[str]:
    section = results.get(key) or {}
    if not section:
        return []
    args = results.get("args", {})
    hint = args.get("rows") if key == "backfill" else args.get("heavy_rows")
    return [f"## {title}", "", *comparison_table(section, hint), ""]


def write(results: dict, path: Path) -> None:
    lines = [
        *header(results),
        *data_section(results),
        *targets_section(results),
        *comparison_section(results, "heavy_day", "The heavy day alone (and the idle day)"),
        *opening_section(results),
        *comparison_section(results, "backfill", "365-day backfill (the whole table, one run)"),
        *latency_section(results),
        *partition_section(results),
        *explain_section(results),
        *runs_section(results),
        *daily_section(results),
        *marts_section(results),
        *failures_section(results),
    ]
    analysis = ROOT / "bench" / "ANALYSIS.md"
    if analysis.is_file():
        lines += [analysis.read_text(encoding="utf-8").rstrip(), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    results = json.loads((OUT / "results.json").read_text(encoding="utf-8"))
    write(results, ROOT / "bench" / "RESULTS.md")


if __name__ == "__main__":
    main()
