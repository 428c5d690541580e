"""bench/RESULTS.md from bench/out/results.json: machine, versions, tables, ratios, targets.

    python -m bench.report            # re-render from bench/out/results.json

The hand-written analysis lives in bench/ANALYSIS.md and is appended as it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.common import OUT, ROOT

MB = 2**20
TOOLS = {
    "project": "**volt_assets** (`dagster asset materialize`, raw + staging)",
    "project_multiprocess": "volt_assets, same command with a process per step (`--config-json` multiprocess)",
    "project_planned_subset": "volt_assets, same command with `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1`",
    "dagster_floor": "floor: Dagster alone (bench/floor.py: same assets, partitions, instance; bodies do nothing)",
    "dagster_floor_planned_subset": "floor: Dagster alone with `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=1`",
    "pandas": "seeds' way: pandas.read_sql → JSON + Parquet → put_object",
    "dlt_pyarrow": "dlt sql_table backend=pyarrow → filesystem (S3, Parquet)",
    "dlt_connectorx": "dlt sql_table backend=connectorx → filesystem (S3, Parquet)",
    "psql_copy": "limit: psql `\\copy (SELECT *) TO '/dev/null'`",
    "psql_copy_json": "psql `\\copy` of the project's row_to_json query → /dev/null",
    "pyarrow_parquet": "limit: pyarrow zstd Parquet in memory (write only)",
}


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
        "| tool | wall s (median) | rows/s | peak RSS MB: tree (largest process) | bytes written | reps | tool s / project s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for tool, label in TOOLS.items():
        entry = section.get(tool)
        if not entry:
            continue
        secs = seconds_of(entry, tool)
        # the project's metadata `rows` of a range is one partition's: every tool read rows_hint rows
        rows = rows_hint if tool.startswith("project") else (entry.get("rows") or rows_hint)
        if tool.startswith("dagster_floor"):
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
            f"{_mb(entry.get('peak_rss'))} ({_mb(entry.get('peak_process_rss'))}) | {bytes_} | {reps} | {ratio} |"
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


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "**missed**")


def extraction_targets(name: str, section: dict) -> list[str]:
    p = seconds_of(section.get("project"), "project")
    step = (section.get("project") or {}).get("step_seconds")
    dlt = [
        s
        for s in (
            seconds_of(section.get("dlt_pyarrow"), "x"),
            seconds_of(section.get("dlt_connectorx"), "x"),
        )
        if s
    ]
    pandas = seconds_of(section.get("pandas"), "pandas")
    copy = seconds_of(section.get("psql_copy"), "psql_copy")
    write = seconds_of(section.get("pyarrow_parquet"), "pyarrow_parquet")
    dagster = seconds_of(section.get("dagster_floor"), "dagster_floor")
    flagged = seconds_of(section.get("dagster_floor_planned_subset"), "dagster_floor")
    out = []

    def against_dagster(limit: float) -> str:
        """What Dagster alone costs against the time a target allows."""
        if not dagster:
            return ""
        text = f"; Dagster alone (no rows) {_f(dagster, 2)} s = {_f(dagster / limit, 2)}x what it allows"
        if flagged:
            text += (
                f" ({_f(flagged, 2)} s = {_f(flagged / limit, 2)}x with planned events per asset)"
            )
        return text

    if p and dlt:
        best = min(dlt)
        out.append(
            f"| {name}: at least as fast as dlt's fastest backend | project {_f(p, 2)} s vs dlt {_f(best, 2)} s: "
            f"{_f(p / best, 2)}x its time{against_dagster(best)} | {verdict(p <= best)} |"
        )
    if p and pandas:
        out.append(
            f"| {name}: ≥ 5x faster than the seeds' pandas way | pandas {_f(pandas, 2)} s / project {_f(p, 2)} s "
            f"= {_f(pandas / p, 2)}x{against_dagster(pandas / 5)} | {verdict(pandas / p >= 5)} |"
        )
    if p and copy and write:
        floor = copy + write
        extra = f"; in-run steps {_f(step, 2)} s = {_f(step / floor, 2)}x" if step else ""
        out.append(
            f"| {name}: within 2x of COPY + Parquet write | floor {_f(copy, 2)} + {_f(write, 2)} = {_f(floor, 2)} s; "
            f"project {_f(p, 2)} s = {_f(p / floor, 2)}x{extra}{against_dagster(2 * floor)} | {verdict(p <= 2 * floor)} |"
        )
    return out


def write(results: dict, path: Path) -> None:
    m = results.get("machine", {})
    args = results.get("args", {})
    v = m.get("versions", {})
    lines = [
        "# Benchmark results (`make bench`)",
        "",
        "Generated by `python -m bench.run` (bench/report.py); numbers from bench/out/results.json of that run.",
        f"Run started {results.get('started_at')}, "
        + (
            f"finished {results['finished_at']}"
            if results.get("finished_at")
            else "**not finished (partial results)**"
        )
        + f", {results.get('elapsed_minutes')} min.",
        "",
        "## Machine and versions",
        "",
        f"- {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gb')} GB RAM, {m.get('os')}; shared and noisy "
        "(other engineers' test suites ran at the same time).",
        f"- Python {m.get('python')}, PostgreSQL {m.get('postgres')}, S3: moto {v.get('moto')} server on 127.0.0.1 "
        "(in-memory, single process: every tool pays its cost alike).",
        "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
        f"- Code: commit {results.get('commit', '?')}"
        + (
            " plus uncommitted changes of other engineers (the checkout is shared)"
            if results.get("dirty")
            else ""
        )
        + ".",
        f"- Dagster instance of the runs: {results.get('dagster_storage', 'postgres')} storage "
        + (
            "(deploy/dagster.postgres.yaml, a deployed instance's, in the bench's own PostgreSQL)."
            if results.get("dagster_storage", "postgres") == "postgres"
            else "(SQLite files, `make dev`'s)."
        ),
        f"- Arguments: rows {args.get('rows'):,}, heavy day {args.get('heavy_rows'):,} rows, big table "
        f"{args.get('big_rows'):,} rows, small table {args.get('small_rows'):,} rows, {args.get('reps')} repetition(s)"
        + (" (--quick)" if args.get("quick") else "")
        + ".",
        "",
        "Every tool runs as its own process; wall seconds are the whole process (start-up included), peak RSS",
        "is the largest sum over the process and all its descendants (psutil, every 50 ms); PostgreSQL and",
        "S3 servers are not counted. Medians over the repetitions; repetitions are interleaved (rep 1 of every",
        "tool, then rep 2, ...). `pyarrow_parquet` is judged by its write alone (rows loaded untimed first).",
        "",
    ]
    seeds = results.get("seeds", {})
    if seeds:
        lines += [
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
        lines.append("")
    targets: list[str] = []
    for key, title in (
        ("backfill", "365-day backfill (the whole table, one run)"),
        ("heavy_day", "The heavy day alone"),
    ):
        section = results.get(key) or {}
        if not section:
            continue
        hint = args.get("rows") if key == "backfill" else args.get("heavy_rows")
        lines += [f"## {title}", ""] + comparison_table(section, hint) + [""]
        targets += extraction_targets(
            "full backfill" if key == "backfill" else "heavy day", section
        )
    # memory
    bf = (results.get("backfill") or {}).get("project") or {}
    big_bf = (results.get("big_backfill") or {}).get("project") or {}
    if bf.get("peak_rss"):
        lines_rss = [r["peak_rss"] for r in bf["reps"] if r.get("ok")]
        floor = ((results.get("backfill") or {}).get("dagster_floor") or {}).get("peak_rss")
        targets.append(
            f"| memory: 1M-row backfill peak RSS < 400 MB | {_mb(max(lines_rss))} MB (max of reps; "
            f"median {_mb(bf.get('peak_rss_median'))})"
            + (f"; Dagster alone {_mb(floor)} MB" if floor else "")
            + f" | {verdict(max(lines_rss) < 400 * MB)} |"
        )
    if bf.get("peak_rss") and big_bf.get("peak_rss"):
        ratio = big_bf["peak_rss"] / bf["peak_rss_median"]
        targets.append(
            f"| memory: 5x table backfill ≤ 1.2x the peak | {_mb(big_bf['peak_rss'])} MB vs "
            f"{_mb(bf['peak_rss_median'])} MB = {_f(ratio, 2)}x | {verdict(ratio <= 1.2)} |"
        )
    # partition cost
    heavy = (results.get("heavy_day") or {}).get("project") or {}
    big = (results.get("big_heavy_day") or {}).get("project") or {}
    if heavy.get("seconds") and big.get("seconds"):
        lines += [
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
        lines.append("")
        step_ratio = (
            big["step_seconds"] / heavy["step_seconds"]
            if heavy.get("step_seconds") and big.get("step_seconds")
            else None
        )
        wall_ratio = big["seconds"] / heavy["seconds"]
        targets.append(
            f"| a partition of the 5x table ≤ 1.3x the same partition | in-run steps {_f(step_ratio, 2)}x, "
            f"whole process {_f(wall_ratio, 2)}x | {verdict(step_ratio is not None and step_ratio <= 1.3)} |"
        )
    explain = results.get("explain") or {}
    if explain:
        lines += ["### EXPLAIN (ANALYZE, BUFFERS) of the project's extraction query", ""]
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
    runs = results.get("runs") or {}
    if runs.get("one_run") and (runs.get("separate_process") or runs.get("in_process")):
        one = runs["one_run"]["seconds"]
        small = seeds.get("bench_small", {}).get("rows")
        lines += [
            "## A 365-day backfill as one run vs 365 runs (small table)",
            "",
            f"Table of {small:,} rows. One run: `dagster asset materialize --partition-range` over the 365 days. "
            "365 runs: not run in full (it would take the bench's whole budget); a sample of consecutive days is "
            "run one partition per run, and the median run is multiplied by 365.",
            "",
            "| way | runs measured | median s per run | 365 days, s | vs one run |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| one run (`--partition-range`), whole process | {len(runs['one_run']['reps'])} | — | {_f(one, 1)} | 1x |",
        ]
        ratios = []
        sep = runs.get("separate_process")
        if sep and sep.get("seconds"):
            total = 365 * sep["seconds"]
            ratios.append(total / one)
            lines.append(
                f"| 365 `dagster asset materialize --partition D` processes (extrapolated) | {len(sep['reps'])} | "
                f"{_f(sep['seconds'], 2)} | {_f(total, 0)} | {_f(total / one, 1)}x |"
            )
        inp = runs.get("in_process")
        if inp:
            secs = [s for r in inp["reps"] if r.get("ok") for s in (r.get("run_seconds") or [])]
            per = sorted(secs)[len(secs) // 2] if secs else None
            if per:
                total = 365 * per
                lines.append(
                    f"| 365 in-process `materialize()` runs, one process (extrapolated) | {len(secs)} | {_f(per, 2)} | "
                    f"{_f(total, 0)} | {_f(total / one, 1)}x |"
                )
                ratios.append(total / one)
        lines.append("")
        if len(ratios) == 2:
            targets.append(
                f"| one 365-day run ≥ 20x faster than 365 runs | {_f(ratios[0], 1)}x against 365 separate "
                f"`dagster asset materialize` processes; {_f(ratios[1], 1)}x against 365 `materialize()` runs "
                f"in one warm Python process | {verdict(ratios[0] >= 20)} against processes, "
                f"{verdict(ratios[1] >= 20)} against in-process runs |"
            )
        elif ratios:
            targets.append(
                f"| one 365-day run ≥ 20x faster than 365 runs | {_f(ratios[0], 1)}x | {verdict(ratios[0] >= 20)} |"
            )
    marts = results.get("marts") or {}
    if marts.get("marts"):
        mm = marts["marts"]
        rep = mm["reps"][-1]
        lines += [
            "## Marts over 365 days",
            "",
            f"`dagster asset materialize --select '{args.get('marts')}' --partition-range` over the 365 days on the lake "
            + (
                "of the small table's one-run backfill ({:,} components)".format(
                    seeds.get("bench_small", {}).get("rows", 0)
                )
                if args.get("marts_table", "main") == "small"
                else "of the main table's last backfill"
            )
            + (
                f" (plus users {seeds['bench']['users_orders']['users']:,} and orders "
                f"{seeds['bench']['users_orders']['orders']:,} rows, extracted first)"
                if seeds.get("bench", {}).get("users_orders")
                else ""
            )
            + ": "
            f"{_f(mm.get('seconds'), 1)} s wall, steps {_f(rep.get('step_seconds'), 1)} s, peak RSS "
            f"{_mb(mm.get('peak_rss'))} MB, status {rep.get('status')}.",
            "",
        ]
        steps = rep.get("steps") or {}
        if steps:
            lines += (
                ["| step | s |", "| --- | ---: |"]
                + [f"| {k} | {_f(s, 1)} |" for k, s in sorted(steps.items())]
                + [""]
            )
    if targets:
        lines += (
            ["## Targets", "", "| target | measured | verdict |", "| --- | --- | --- |"]
            + targets
            + [""]
        )
    errors = results.get("errors") or []
    failed = [
        (sec, tool)
        for sec in ("backfill", "heavy_day", "big_heavy_day", "big_backfill", "runs", "marts")
        for tool, e in (results.get(sec) or {}).items()
        if any(not r.get("ok") for r in e.get("reps", []))
    ]
    if errors or failed:
        lines += ["## Failures in this run", ""]
        lines += [
            f"- {sec}/{tool}: at least one repetition failed (bench/out/logs/)"
            for sec, tool in failed
        ]
        lines += [f"- {e.splitlines()[0]}" for e in errors]
        lines.append("")
    analysis = ROOT / "bench" / "ANALYSIS.md"
    if analysis.is_file():
        lines += [analysis.read_text(encoding="utf-8").rstrip(), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    results = json.loads((OUT / "results.json").read_text(encoding="utf-8"))
    write(results, ROOT / "bench" / "RESULTS.md")


if __name__ == "__main__":
    main()
