"""Quality checks, on real PostgreSQL + S3 and real Dagster runs.

Each test materialises the lake (and the marts, when the marts package is there) through the
code location's own definitions, plus a small test asset downstream of staging, and reads the
check results back from the run's event log and the lake's quality report.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from volt_assets.definitions import build_definitions
from volt_assets.defs.policies import SINGLE_RUN, partitions
from volt_assets.defs.quality.marts import MART, reconcile_day
from volt_assets.defs.quality.raw_checks import RawQuality
from volt_assets.defs.quality.report import blocking_errors, read_report
from volt_assets.defs.resources import PostgresResource
from volt_assets.lib.capture.extract import SourceSession
from volt_assets.lib.config.table_config import table
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets_tests.pipeline import RANGE_END, RANGE_START, component, insert, ts

D = "2026-01-02"
COMPONENTS = ["raw/electrical_components", "staging/electrical_components"]
ORDERS = ["raw/orders", "staging/orders"]
USERS = ["raw/users", "staging/users"]
MART_KEY = "marts/daily_category_sales"
DOWNSTREAM = "test/after_staging"


def after_staging() -> dg.AssetsDefinition:
    """Stands for anything downstream of staging (the marts); built per test, once the
    fixture has set VOLT_PARTITIONS_START."""

    @dg.asset(
        key=DOWNSTREAM.split("/"),
        deps=[dg.AssetKey(["staging", "electrical_components"])],
        partitions_def=partitions(),
        backfill_policy=SINGLE_RUN,
    )
    def downstream() -> None:
        pass

    return downstream


def run(
    selection: list[str], partition: str | tuple[str, str], instance=None, downstream: bool = True
):
    """One run of the code location's assets (plus the test asset) for a day or an inclusive range."""
    defs = dg.Definitions.merge(build_definitions(), dg.Definitions(assets=[after_staging()]))
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(s.split("/")) for s in selection + ([DOWNSTREAM] if downstream else [])]
    instance = instance or dg.DagsterInstance.ephemeral()
    if isinstance(partition, tuple):
        tags = {RANGE_START: partition[0], RANGE_END: partition[1]}
        return job.execute_in_process(
            instance=instance, asset_selection=keys, tags=tags, raise_on_error=False
        )
    return job.execute_in_process(
        instance=instance, asset_selection=keys, partition_key=partition, raise_on_error=False
    )


def evaluations(result, asset: str) -> dict[str, dg.AssetCheckEvaluation]:
    key = dg.AssetKey(asset.split("/"))
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == key}


def meta(evaluation: dg.AssetCheckEvaluation, name: str):
    return evaluation.metadata[name].value


def lake(volt_env) -> LakeStore:
    return LakeStore(volt_env.s3, volt_env.bucket)


def components(n: int, day: str, start: int = 1) -> list[dict]:
    return [component(start + i, f"{day} {i % 24:02d}:{i % 60:02d}:00") for i in range(n)]


def order(id_: int, component_id: int, day: str, **values) -> dict:
    row = {
        "id": id_,
        "user_id": None,
        "component_id": component_id,
        "quantity": 2,
        "unit_price": "5.50",
        "currency": "EUR",
        "status": "paid",
        "payment_method": "card",
        "ordered_at": ts(f"{day} 09:00"),
        "updated_at": ts(f"{day} 09:00"),
    }
    row.update(values)
    return row


def with_marts(selection: list[str]) -> list[str]:
    return selection + [MART_KEY]  # the marts are part of the code location: never skipped


def test_more_than_five_percent_bad_blocks_downstream(volt_env, source):
    rows = components(18, D)
    rows += [component(101, f"{D} 12:00", price="-1.00"), component(102, f"{D} 13:00", name="   ")]
    insert(source, "electrical_components", rows)  # 2 of 20 refused: 10 % > 5 %
    insert(source, "orders", [order(1, 1, D)])
    instance = dg.DagsterInstance.ephemeral()

    result = run(with_marts(COMPONENTS + ORDERS), D, instance)

    assert not result.success
    checks = evaluations(result, "staging/electrical_components")
    gate = checks["quarantine_share"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR and gate.blocking
    assert meta(gate, "failing_rows") == 2 and meta(gate, "error_days") == [D]
    assert meta(gate, "totals") == {"refused_by_price_positive": 1, "refused_by_name_not_blank": 1}
    price = checks["price_positive"]  # 1 of 20 = 5 %: a WARN on its own, the gate decides
    assert not price.passed and price.severity == dg.AssetCheckSeverity.WARN
    assert meta(price, "failing_rows") == 1 and meta(price, "sample_keys") == ["101"]
    assert meta(price, "samples") == [
        {"dt": D, "key": "101", "reason": "price: not positive: '-1.00'"}
    ]
    assert meta(checks["name_not_blank"], "sample_keys") == ["102"]
    assert checks["row_accounting"].passed and checks["id_unique"].passed

    # the staging day landed (a blocking check does not undo it), nothing downstream ran
    assert instance.get_latest_materialization_event(
        dg.AssetKey(["staging", "electrical_components"])
    )
    assert instance.get_latest_materialization_event(dg.AssetKey(DOWNSTREAM.split("/"))) is None
    assert not volt_env.list_keys(f"mart/{MART}/dt={D}/")
    assert instance.get_latest_materialization_event(dg.AssetKey(MART_KEY.split("/"))) is None

    # the quality report, readable without the UI, at the path the README gives
    report = json.loads(volt_env.read_object(f"quality/electrical_components/dt={D}/report.json"))
    assert volt_env.list_keys(f"quarantine/electrical_components/dt={D}/")  # next to its quarantine
    assert report["verdict"] == "ERROR"
    assert report["checks"]["price_positive"]["samples"] == [
        {"key": "101", "reason": "price: not positive: '-1.00'"}
    ]
    assert report["checks"]["schema_drift"]["verdict"] == "PASS"
    assert blocking_errors(lake(volt_env), "electrical_components", dt.date.fromisoformat(D)) == [
        "quarantine_share"
    ]


def test_one_percent_bad_warns_and_downstream_runs(volt_env, source):
    rows = components(99, D) + [component(500, f"{D} 12:00", currency="EU")]
    insert(source, "electrical_components", rows)  # 1 of 100 refused: WARN
    insert(
        source,
        "orders",
        [
            order(1, 1, D),
            order(2, 2, D, quantity=3, unit_price="10.00"),
            order(3, 3, D, status="cancelled"),
        ],
    )
    instance = dg.DagsterInstance.ephemeral()

    result = run(with_marts(COMPONENTS + ORDERS), D, instance)

    assert result.success
    checks = evaluations(result, "staging/electrical_components")
    for name in ("quarantine_share", "currency_currency_code"):
        assert not checks[name].passed and checks[name].severity == dg.AssetCheckSeverity.WARN, name
    assert meta(checks["currency_currency_code"], "sample_keys") == ["500"]
    assert meta(checks["quarantine_share"], "share") == 0.01
    assert instance.get_latest_materialization_event(dg.AssetKey(DOWNSTREAM.split("/")))
    raw = evaluations(result, "raw/electrical_components")
    assert raw["source_reconciliation"].passed and raw["files_present"].passed
    assert meta(raw["source_reconciliation"], "rows_checked") == 100
    mart = evaluations(result, MART_KEY)["matches_staging"]
    assert mart.passed, mart.description
    totals = meta(mart, "per_day_totals")[D]
    assert (
        totals["staging_revenue"] == totals["mart_revenue"] == "41.00"
    )  # 2*5.50 + 3*10.00, not the cancelled
    assert totals["staging_units"] == totals["mart_units"] == 5
    # a mart copy that disagrees with staging is an ERROR (written with its manifest: a
    # reader follows the manifest to the version it lists, not to whatever the key holds)
    prefix = f"mart/{MART}/dt={D}/"
    key = prefix + "part-00000.parquet"
    copy = pq.read_table(pa.BufferReader(volt_env.read_object(key)))
    revenue = pa.array([v.as_py() + 1 for v in copy["revenue"]], copy.schema.field("revenue").type)
    changed = copy.set_column(copy.schema.get_field_index("revenue"), "revenue", revenue)
    sink = pa.BufferOutputStream()
    pq.write_table(changed, sink)
    store = lake(volt_env)
    store.write_folder(
        prefix, {"part-00000.parquet": sink.getvalue().to_pybytes()}, store.read_manifest(prefix)
    )
    outcome = reconcile_day(store, dt.date.fromisoformat(D))
    assert outcome.verdict == "ERROR" and outcome.samples[0].key == "revenue"


def test_added_and_retyped_source_columns_are_reported_and_extraction_continues(volt_env, source):
    with source.cursor() as cur:
        cur.execute("ALTER TABLE electrical_components ADD COLUMN warranty_months integer")
        cur.execute("ALTER TABLE electrical_components ALTER COLUMN price TYPE text")
    source.commit()
    insert(
        source,
        "electrical_components",
        [component(i, f"{D} 10:0{i}", warranty_months=24) for i in range(1, 4)],
    )

    result = run(COMPONENTS, D, downstream=False)

    assert result.success  # drift is reported, never a reason to stop capturing
    drift = evaluations(result, "raw/electrical_components")["schema_drift"]
    assert not drift.passed
    assert meta(drift, "added") == {"warranty_months": "integer"}
    assert meta(drift, "retyped") == {"price": ["numeric(12,2)", "text"]}
    assert (
        "column added: warranty_months" in drift.description
        and "column retyped: price" in drift.description
    )
    part = next(
        k
        for k in volt_env.list_keys(f"raw/electrical_components/dt={D}/")
        if k.endswith(".jsonl.gz")
    )
    line = json.loads(gzip.decompress(volt_env.read_object(part)).splitlines()[0])
    assert (
        line["warranty_months"] == 24 and line["price"] == "10.00"
    )  # new column kept, text price captured
    staging = pq.read_table(
        pa.BufferReader(
            volt_env.read_object(f"staging/electrical_components/dt={D}/part-00000.parquet")
        )
    )
    assert staging.num_rows == 3 and str(staging["price"][0].as_py()) == "10.00"
    report = read_report(lake(volt_env), "electrical_components", dt.date.fromisoformat(D))
    assert {s["key"] for s in report["checks"]["schema_drift"]["samples"]} == {
        "warranty_months",
        "price",
    }


def test_reconciliation_fails_when_a_raw_file_is_removed_or_rows_are_missing(volt_env, source):
    insert(source, "electrical_components", components(5, D))
    first = run(COMPONENTS, D, downstream=False)
    assert first.success
    prefix = f"raw/electrical_components/dt={D}/"
    part = next(k for k in volt_env.list_keys(prefix) if k.endswith(".jsonl.gz"))
    volt_env.s3.delete_object(Bucket=volt_env.bucket, Key=part)  # removed by hand

    again = run(COMPONENTS, D, downstream=False)

    assert not again.success
    files = evaluations(again, "raw/electrical_components")["files_present"]
    assert not files.passed and files.blocking and files.severity == dg.AssetCheckSeverity.ERROR
    assert meta(files, "sample_keys") == [part.rsplit("/", 1)[1]]
    assert "missing" in meta(files, "samples")[0]["reason"]
    assert "staging/electrical_components" not in {
        e.asset_key.to_user_string() for e in again.get_asset_check_evaluations()
    }  # staging never ran

    # a late commit: stamped on D before the capture, committed after it -> missing from raw
    insert(source, "electrical_components", [component(77, f"{D} 18:00")])
    env = volt_env.env
    database = PostgresResource(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        dbname=env["POSTGRES_DB"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
    )
    with SourceSession(database) as session:
        checks = list(
            RawQuality(table("electrical_components"), session, lake(volt_env)).results(
                [dt.date.fromisoformat(D)]
            )
        )
    results = {r.check_name: r for r in checks}
    reconciliation = results["source_reconciliation"]
    assert not reconciliation.passed
    assert reconciliation.metadata["sample_keys"].value == ["77"]
    assert reconciliation.metadata["failing_rows"].value == 1


def test_range_run_gives_one_result_per_check_with_days_and_references(
    volt_env, source, monkeypatch
):
    days = ["2026-01-01", "2026-01-02", "2026-01-03"]
    for n, day in enumerate(days):
        insert(source, "electrical_components", components(10, day, start=100 * n + 1))
        insert(
            source,
            "users",
            [
                {
                    "id": n + 1,
                    "email": f"u{n}@volt.example",
                    "full_name": "U",
                    "country": "PL",
                    "created_at": ts(f"{day} 08:00"),
                    "updated_at": ts(f"{day} 08:00"),
                }
            ],
        )
    insert(
        source,
        "orders",
        [
            order(1, 1, days[0], user_id=1),
            order(2, 101, days[1], user_id=2),  # component 101 appears on day 2, the order too
            order(3, 999, days[1], user_id=2),  # unknown component
            order(4, 205, days[2], user_id=7),  # unknown user
        ],
    )
    instance = dg.DagsterInstance.ephemeral()

    result = run(with_marts(COMPONENTS + ORDERS + USERS), (days[0], days[-1]), instance)

    assert result.success  # references are WARN
    orders = evaluations(result, "staging/orders")
    assert (
        len([e for e in result.get_asset_check_evaluations() if e.check_name == "quarantine_share"])
        == 3
    )
    component_ref = orders["component_id_references"]
    assert not component_ref.passed and component_ref.severity == dg.AssetCheckSeverity.WARN
    assert meta(component_ref, "days_checked") == 3 and meta(component_ref, "sample_keys") == ["3"]
    assert meta(component_ref, "days") == {
        days[1]: {"verdict": "WARN", "failing": 1, "rows": 2, "share": 0.5}
    }
    assert meta(orders["user_id_references"], "sample_keys") == ["4"]
    assert meta(orders["quarantine_share"], "days_checked") == 3
    store = lake(volt_env)
    report = read_report(store, "orders", dt.date.fromisoformat(days[1]))
    assert report["checks"]["component_id_references"]["samples"][0]["key"] == "3"
    assert {"quarantine_share", "row_accounting", "source_reconciliation"} <= set(report["checks"])

    # freshness: the run's days are months old -> stale; with a lag that covers them -> fresh
    stale = evaluations(result, "staging/orders")["freshness"]
    assert not stale.passed and meta(stale, "latest_partition") == days[-1]
    monkeypatch.setenv("VOLT_FRESHNESS_LAG_HOURS", str(24 * 3650))
    job = build_definitions().resolve_job_def("volt_freshness")
    fresh = job.execute_in_process(instance=instance)
    results = {e.asset_key.to_user_string(): e for e in fresh.get_asset_check_evaluations()}
    assert results["staging/orders"].passed and results["raw/users"].passed


def test_the_gate_lets_five_percent_pass_and_stops_above(volt_env, source):
    """error_above 0.05 pinned on both sides: 49 and 50 of 1000 refused WARN, 51 is an ERROR."""
    days = {"2026-01-01": 49, "2026-01-02": 50, "2026-01-03": 51}
    for n, (day, bad) in enumerate(days.items()):
        rows = components(1000, day, start=10_000 * (n + 1))
        for row in rows[:bad]:
            row["price"] = "0.00"
        insert(source, "electrical_components", rows)
    instance = dg.DagsterInstance.ephemeral()

    result = run(COMPONENTS, ("2026-01-01", "2026-01-03"), instance)

    assert not result.success
    gate = evaluations(result, "staging/electrical_components")["quarantine_share"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert meta(gate, "error_days") == ["2026-01-03"]
    verdicts = {
        day: read_report(lake(volt_env), "electrical_components", dt.date.fromisoformat(day))[
            "checks"
        ]["quarantine_share"]["verdict"]
        for day in days
    }
    assert verdicts == {"2026-01-01": "WARN", "2026-01-02": "WARN", "2026-01-03": "ERROR"}
    assert instance.get_latest_materialization_event(dg.AssetKey(DOWNSTREAM.split("/"))) is None


def test_row_accounting_fails_when_raw_and_staging_disagree(volt_env, source):
    insert(source, "electrical_components", components(5, D))
    assert run(COMPONENTS, D, downstream=False).success
    # the raw manifest claims a row the part files do not hold
    key = f"raw/electrical_components/dt={D}/_manifest.json"
    manifest = json.loads(volt_env.read_object(key))
    assert manifest["row_count"] == 5
    manifest["row_count"] = 6
    volt_env.s3.put_object(Bucket=volt_env.bucket, Key=key, Body=json.dumps(manifest).encode())
    instance = dg.DagsterInstance.ephemeral()

    result = run(["staging/electrical_components"], D, instance)

    assert not result.success
    accounting = evaluations(result, "staging/electrical_components")["row_accounting"]
    assert not accounting.passed and accounting.blocking
    assert accounting.severity == dg.AssetCheckSeverity.ERROR
    assert "raw manifest row_count 6 but staging read 5 rows" in json.dumps(
        meta(accounting, "samples")
    )
    assert instance.get_latest_materialization_event(dg.AssetKey(DOWNSTREAM.split("/"))) is None


def test_freshness_allows_26_hours_by_default(volt_env, monkeypatch):
    """With VOLT_FRESHNESS_LAG_HOURS unset, partition D (data until D+1 00:00) is fresh 26 h
    after D+1 00:00 and stale a minute later."""
    from volt_assets.defs.quality.freshness import LAG_VARIABLE, judge, lag

    monkeypatch.delenv(LAG_VARIABLE, raising=False)
    instance = dg.DagsterInstance.ephemeral()
    key = dg.AssetKey(["staging", "orders"])
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=key, partition="2026-01-02")
    )
    data_until = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    fresh = judge(key, instance, data_until + dt.timedelta(hours=26), lag())
    stale = judge(key, instance, data_until + dt.timedelta(hours=26, minutes=1), lag())
    assert fresh.passed and not stale.passed
    assert fresh.metadata["latest_partition"].value == "2026-01-02"
    assert stale.metadata["overdue_hours"].value == 0.02  # one minute, in hours


def test_drift_is_named_before_extraction(volt_env, source, monkeypatch):
    """The source lost the cursor column: the extraction cannot run, and the run has already
    said, column by column, what drifted."""
    insert(source, "electrical_components", components(3, D))
    with source.cursor() as cur:
        cur.execute("ALTER TABLE electrical_components DROP COLUMN updated_at")
        cur.execute("ALTER TABLE electrical_components ADD COLUMN changed_at timestamptz")
    source.commit()

    instance = dg.DagsterInstance.ephemeral()
    result = run(["raw/electrical_components"], D, instance, downstream=False)

    assert not result.success
    entries = instance.all_logs(result.run_id)
    texts = [
        (e.dagster_event.event_type_value if e.dagster_event else "LOG", e.user_message or "")
        for e in entries
    ]
    warned = [i for i, (_, m) in enumerate(texts) if "schema drift in electrical_components" in m]
    failed = [
        i for i, (kind, _) in enumerate(texts) if kind in ("STEP_FAILURE", "STEP_UP_FOR_RETRY")
    ]
    assert warned and failed and warned[0] < failed[0], texts
    said = texts[warned[0]][1]
    assert "column dropped: updated_at" in said and "column added: changed_at" in said, said


def test_a_days_report_takes_one_put_per_step_and_keeps_a_concurrent_runs_checks(volt_env):
    """A run's raw and staging steps write each day's report with one PUT and no read (the
    run's days listed once). A step of another run that writes the same report between this
    step's read and its write is not overwritten: the conditional PUT loses, is read again and
    merged, and both runs' checks are in the report."""
    from volt_assets.defs.quality.outcome import DayOutcome
    from volt_assets.defs.quality.report import ReportWriter, write_report
    from volt_assets.devstack import stack

    s3, bucket = volt_env.s3, volt_env.bucket
    calls: list[tuple[str, str]] = []  # (operation, key or error code)
    s3.meta.events.register(
        "before-parameter-build.s3",
        lambda params, model, **_: calls.append((model.name, params.get("Key", ""))),
    )
    s3.meta.events.register(
        "after-call.s3.PutObject",
        lambda parsed, **_: calls.append(("PutObject!", parsed.get("Error", {}).get("Code", ""))),
    )
    days = [dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
    passed = DayOutcome(failing=0, rows=10, verdict=None)
    for layer in ("raw", "staging"):
        writer = ReportWriter(LakeStore(s3, bucket), "electrical_components", days)
        for day in days:
            writer.submit("electrical_components", day, layer, {f"{layer}_check": passed})
        writer.uris()
    reads = [c for c in calls if c[0] in ("GetObject", "HeadObject")]
    puts = [c for c in calls if c[0] == "PutObject"]
    assert reads == [] and len(puts) == 4
    assert [c[0] for c in calls].count("ListObjectsV2") == 2

    # Another run's step (its own client) writes day 1's report just after this step took
    # the version it merges into.
    other = LakeStore(stack.s3_client(volt_env.env["AWS_ENDPOINT_URL"]), bucket)
    cut_in: list[str] = []

    def other_run_writes_first(params, **_):
        if not cut_in and params["Key"].endswith("report.json"):
            late = {"late": passed}
            cut_in.append(write_report(other, "electrical_components", days[0], "raw", late))

    s3.meta.events.register("before-parameter-build.s3.PutObject", other_run_writes_first)
    calls.clear()
    write_report(
        LakeStore(s3, bucket), "electrical_components", days[0], "staging", {"mine": passed}
    )
    assert cut_in and ("PutObject!", "PreconditionFailed") in calls  # the write did collide
    report = read_report(LakeStore(s3, bucket), "electrical_components", days[0])
    assert sorted(report["checks"]) == ["late", "mine", "raw_check", "staging_check"]
    assert (
        report["checks"]["late"]["layer"] == "raw"
        and report["checks"]["mine"]["layer"] == "staging"
    )
