"""The lake's performance targets, judged on one bench run's results (bench/out/results.json).

Each target compares the project with a floor measured in the same run: Dagster alone
(bench/floor.py: the same assets, partitions, executor and instance, doing nothing) and
PostgreSQL rendering raw's JSON (psql running the project's own row_to_json COPY to /dev/null).
Times are medians of the repetitions; peaks are the median over repetitions of each run's peak
RSS (process tree). `rows()` gives the Markdown rows `| target | measured | verdict |`.
"""

from __future__ import annotations

import math

MB = 2**20
SPEED_OVER_FLOOR = 1.6  # the backfill and the heavy day: x (Dagster alone + JSON rendering)
PANDAS_SPEEDUP = 2.0  # the backfill: at least this many times faster than the pandas way
FIXED_MS = 15.0  # fixed cost of a partition beyond Dagster alone, ms per day and asset
LATENCY_RATIO = 1.3  # the backfill with 25 ms per S3 request vs without
MEMORY_OVER_IDLE = 150 * MB  # the heavy day and the opening snapshot over the idle peak
BIG_BACKFILL_RATIO = 1.1  # the 5x table's backfill peak vs the table's
FLAT_RATIO = 1.3  # a partition of the 5x table vs the same partition
RUNS_SPEEDUP = 20.0  # one 365-day run vs 365 runs
ASSETS = 2  # raw and staging
AGE_TIME_RATIO = 1.15  # the daily job on a 730-day lake vs a 60-day one
AGE_REQUESTS_RATIO = 1.1  # its S3 requests, same comparison
AGE_MEMORY_OVER = 50 * MB  # its peak RSS over the 60-day lake's
MARTS_LINEAR_RATIO = 2.2  # the marts' 365-day one-run backfill vs a 180-day one


def f(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def mb(value) -> str:
    return "—" if not value else f"{value / MB:,.0f}"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "**missed**")


def entry(results: dict, section: str, tool: str) -> dict:
    return (results.get(section) or {}).get(tool) or {}


def seconds(results: dict, section: str, tool: str) -> float | None:
    return entry(results, section, tool).get("seconds")


def peak(results: dict, section: str, tool: str) -> float | None:
    return entry(results, section, tool).get("peak_rss_median")


def row(target: str, measured: str, ok: bool | None) -> str:
    return f"| {target} | {measured} | {verdict(ok)} |"


def over_floor(results: dict, section: str, name: str) -> list[str]:
    """The project against Dagster alone + the server's JSON rendering, same section."""
    project = seconds(results, section, "project")
    dagster = seconds(results, section, "dagster_floor")
    json_ = seconds(results, section, "psql_copy_json")
    target = f"{name}: ≤ {SPEED_OVER_FLOOR}x (Dagster alone + PostgreSQL's JSON rendering)"
    if not (project and dagster and json_):
        return [row(target, "not measured in this run", None)]
    floor = dagster + json_
    return [
        row(
            target,
            f"project {f(project, 2)} s; floor {f(dagster, 2)} + {f(json_, 2)} = {f(floor, 2)} s; "
            f"**{f(project / floor, 2)}x** (allows {f(SPEED_OVER_FLOOR * floor, 2)} s)",
            project <= SPEED_OVER_FLOOR * floor,
        )
    ]


def against_pandas(results: dict) -> list[str]:
    project = seconds(results, "backfill", "project")
    pandas = seconds(results, "backfill", "pandas")
    target = f"backfill: ≥ {f(PANDAS_SPEEDUP, 0)}x faster than the seeds' pandas way"
    if not (project and pandas):
        return [row(target, "not measured in this run", None)]
    ratio = pandas / project
    return [
        row(
            target,
            f"pandas {f(pandas, 2)} s / project {f(project, 2)} s = **{f(ratio, 2)}x**",
            ratio >= PANDAS_SPEEDUP,
        )
    ]


def fixed_cost_ms(results: dict) -> tuple[float, int] | None:
    """(ms per day and asset, days) of the small table's one run beyond Dagster alone's run of
    the same range (the backfill section's floor: same command, partitions and instance)."""
    one = entry(results, "runs", "one_run")
    dagster = seconds(results, "backfill", "dagster_floor")
    if not (one.get("seconds") and dagster):
        return None
    days = next((r.get("days") for r in one.get("reps", []) if r.get("days")), 365)
    return 1000 * (one["seconds"] - dagster) / (days * ASSETS), days


def fixed_cost(results: dict) -> list[str]:
    target = (
        f"fixed cost of a partition: ≤ {f(FIXED_MS, 0)} ms per day and asset beyond Dagster alone"
    )
    cost = fixed_cost_ms(results)
    if cost is None:
        return [row(target, "not measured in this run", None)]
    ms, days = cost
    one = seconds(results, "runs", "one_run")
    dagster = seconds(results, "backfill", "dagster_floor")
    return [
        row(
            target,
            f"small table's one run {f(one, 2)} s − Dagster alone {f(dagster, 2)} s, over {days} days "
            f"x {ASSETS} assets = **{f(ms, 1)} ms**",
            ms <= FIXED_MS,
        )
    ]


def latency(results: dict) -> list[str]:
    delayed = seconds(results, "latency", "delayed")
    plain = seconds(results, "latency", "direct_proxy")
    setup = results.get("latency_setup") or {}
    ms, days = setup.get("delay_ms", 25), setup.get("days", 365)
    target = f"real S3: backfill with {f(ms, 0)} ms added per request ≤ {LATENCY_RATIO}x without"
    if not (delayed and plain):
        return [row(target, "not measured in this run", None)]
    direct = seconds(results, "backfill", "project")
    extra = f"; the backfill without the proxy {f(direct, 2)} s" if direct and days == 365 else ""
    return [
        row(
            target,
            f"{days} days through the proxy: {f(delayed, 2)} s at {f(ms, 0)} ms vs {f(plain, 2)} s "
            f"at 0 ms = **{f(delayed / plain, 2)}x**{extra}",
            delayed <= LATENCY_RATIO * plain,
        )
    ]


def over_idle(results: dict, section: str, name: str) -> list[str]:
    idle = peak(results, "heavy_day", "idle")
    used = peak(results, section, "project")
    target = f"memory: {name} peak RSS ≤ idle peak + {mb(MEMORY_OVER_IDLE)} MB"
    if not (idle and used):
        return [row(target, "not measured in this run", None)]
    timing = ""
    if section == "opening":
        timing = f" in {f(seconds(results, section, 'project'), 1)} s"
    return [
        row(
            target,
            f"{mb(used)} MB{timing} vs idle {mb(idle)} MB: **+{mb(used - idle)} MB**"
            if used >= idle
            else f"{mb(used)} MB{timing} vs idle {mb(idle)} MB: below it",
            used <= idle + MEMORY_OVER_IDLE,
        )
    ]


def big_backfill(results: dict) -> list[str]:
    one = peak(results, "backfill", "project")
    big = entry(results, "big_backfill", "project").get("peak_rss")
    target = f"memory: 5x table's backfill peak ≤ {BIG_BACKFILL_RATIO}x the table's"
    if not (one and big):
        return [row(target, "not measured in this run", None)]
    ratio = big / one
    return [
        row(
            target,
            f"{mb(big)} MB vs {mb(one)} MB = **{f(ratio, 2)}x**",
            ratio <= BIG_BACKFILL_RATIO,
        )
    ]


def flat_partition(results: dict) -> list[str]:
    heavy = entry(results, "heavy_day", "project")
    big = entry(results, "big_heavy_day", "project")
    target = f"keep: a partition of the 5x table ≤ {FLAT_RATIO}x the same partition"
    if not (heavy.get("step_seconds") and big.get("step_seconds")):
        return [row(target, "not measured in this run", None)]
    steps = big["step_seconds"] / heavy["step_seconds"]
    wall = big["seconds"] / heavy["seconds"]
    return [
        row(
            target,
            f"in-run steps **{f(steps, 2)}x**, whole process {f(wall, 2)}x",
            steps <= FLAT_RATIO,
        )
    ]


def runs_ratios(results: dict) -> dict[str, float]:
    """365 runs (extrapolated from the samples) over one run, by way of running them."""
    runs = results.get("runs") or {}
    one = (runs.get("one_run") or {}).get("seconds")
    if not one:
        return {}
    out = {}
    sep = (runs.get("separate_process") or {}).get("seconds")
    if sep:
        out["processes"] = 365 * sep / one
    inp = runs.get("in_process") or {}
    per = [s for r in inp.get("reps", []) if r.get("ok") for s in (r.get("run_seconds") or [])]
    if per:
        out["in_process"] = 365 * sorted(per)[len(per) // 2] / one
    return out


def one_run(results: dict) -> list[str]:
    ratios = runs_ratios(results)
    target = f"keep: one 365-day run ≥ {f(RUNS_SPEEDUP, 0)}x faster than 365 runs"
    if "processes" not in ratios:
        return [row(target, "not measured in this run", None)]
    measured = f"**{f(ratios['processes'], 1)}x** against 365 `dagster asset materialize` processes"
    if "in_process" in ratios:
        measured += (
            f"; {f(ratios['in_process'], 1)}x against 365 `materialize()` runs in one process"
        )
    return [row(target, measured, ratios["processes"] >= RUNS_SPEEDUP)]


def daily_job(results: dict) -> list[str]:
    job = entry(results, "daily", "job")
    target = "keep: the daily schedule's job (every layer, [D-1, D]) timed end to end"
    if not job.get("reps"):
        return [row(target, "not measured in this run", None)]
    rep = job["reps"][-1]
    return [
        row(
            target,
            f"{f(rep.get('seconds'), 1)} s, peak RSS {mb(rep.get('peak_rss'))} MB, "
            f"run {rep.get('status', '?')}",
            bool(rep.get("ok")),
        )
    ]


def requests_total(results: dict, tool: str) -> int | None:
    """The median over repetitions of a run's S3 requests, every kind summed."""
    reps = [r for r in entry(results, "age", tool).get("reps", []) if r.get("ok")]
    totals = sorted(sum((r.get("requests") or {}).values()) for r in reps)
    return totals[len(totals) // 2] if totals else None


def lake_age(results: dict) -> list[str]:
    """The daily job at 730 days against 60 days: time, S3 requests, peak RSS."""
    young, old = seconds(results, "age", "daily_60"), seconds(results, "age", "daily_730")
    target = f"the daily job on a 730-day lake ≤ {f(AGE_TIME_RATIO, 2)}x the job on a 60-day one"
    if young is None or old is None:
        return [row(target, "not measured in this run", None)]
    req_young, req_old = requests_total(results, "daily_60"), requests_total(results, "daily_730")
    peak_young, peak_old = peak(results, "age", "daily_60"), peak(results, "age", "daily_730")
    return [
        row(
            target,
            f"{f(old)} s vs {f(young)} s = **{f(old / young, 2)}x**",
            old <= AGE_TIME_RATIO * young,
        ),
        row(
            f"its S3 requests ≤ {f(AGE_REQUESTS_RATIO, 2)}x",
            f"{req_old:,} vs {req_young:,} = **{f(req_old / req_young, 2)}x**",
            req_old <= AGE_REQUESTS_RATIO * req_young,
        ),
        row(
            f"its peak RSS ≤ the 60-day lake's + {mb(AGE_MEMORY_OVER)} MB",
            f"{mb(peak_old)} MB vs {mb(peak_young)} MB = **{mb(peak_old - peak_young)} MB** more",
            peak_old <= peak_young + AGE_MEMORY_OVER,
        ),
    ]


def marts_linear(results: dict) -> list[str]:
    short, long = (
        seconds(results, "age", "marts_180_days"),
        seconds(results, "age", "marts_365_days"),
    )
    target = f"the marts' 365-day one-run backfill ≤ {f(MARTS_LINEAR_RATIO, 1)}x a 180-day one"
    if short is None or long is None:
        return [row(target, "not measured in this run", None)]
    ratio = long / short
    return [
        row(
            target, f"{f(long)} s vs {f(short)} s = **{f(ratio, 2)}x**", ratio <= MARTS_LINEAR_RATIO
        )
    ]


def rows(results: dict) -> list[str]:
    return [
        *over_floor(results, "backfill", "365-day backfill (one run)"),
        *against_pandas(results),
        *fixed_cost(results),
        *over_floor(results, "heavy_day", "heavy day"),
        *latency(results),
        *over_idle(results, "heavy_day", "heavy day's"),
        *big_backfill(results),
        *over_idle(results, "opening", "opening snapshot's (all rows in the first partition)"),
        *flat_partition(results),
        *one_run(results),
        *daily_job(results),
        *lake_age(results),
        *marts_linear(results),
    ]
