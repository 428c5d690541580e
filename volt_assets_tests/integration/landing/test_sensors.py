"""The landing-file sensor and job on the real S3 endpoint, and the run-failure alert posted to
a real HTTP receiver."""

import codecs
import csv
import datetime as dt
import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pyarrow.parquet as pq
import pytest

from volt_assets.defs.landing.sensors import (
    LOOKBACK,
    LandingCursor,
    LandingObject,
    landing_file_job,
    landing_files_sensor,
)
from volt_assets.defs.operations.alerts import run_failure_alert
from volt_assets.defs.resources import shared_resources
from volt_assets.devstack import stack
from volt_assets.lib.config.table_config import table

COMPONENTS = list(table("electrical_components").columns)
USERS = list(table("users").columns)
UTC = dt.UTC


def component_row(id_: int, **values) -> dict:
    row = {c: "" for c in COMPONENTS}
    row.update(
        id=str(id_),
        sku=f"SKU-{id_}",
        name=f" Fuse  {id_} ",
        category="Fuses",
        price="12.50",
        currency="eur",
        stock_quantity="5",
        voltage_rating="230",
        specs='{"amps": 16}',
        image_filename=f"c{id_}.png",
        created_at="2026-01-01T00:00:00+00:00",
        updated_at="2026-01-02 10:00:00+00",
    )
    row.update(values)
    return row


def csv_bytes(rows: list[dict], columns: list[str] = COMPONENTS, delimiter: str = ",") -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([[r.get(c, "") for c in columns] for r in rows])
    return out.getvalue().encode("utf-8")


@pytest.fixture
def lake(volt_env):
    return shared_resources()["lake"]


def tick(lake, cursor=None, instance=None):
    with dg.build_sensor_context(
        instance=instance or dg.DagsterInstance.ephemeral(), cursor=cursor, resources={"lake": lake}
    ) as context:
        return landing_files_sensor(context)


def run(request, lake, instance=None):
    return landing_file_job.execute_in_process(
        run_config=request.run_config,
        resources={"lake": lake},
        instance=instance or dg.DagsterInstance.ephemeral(),
    )


def summary_of(result) -> dict:
    """The landing op's output metadata, as plain values."""
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: getattr(v, "value", v) for k, v in event.step_output_data.metadata.items()}


def warnings_of(instance, result) -> list[str]:
    return [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if e.level == logging.WARNING and not e.is_dagster_event
    ]


def uploads(volt_env, layer: str, table: str, day: str) -> dict[str, list[dict]]:
    """File name -> rows of every upload file of the table and day in `layer`."""
    prefix = f"{layer}/uploads/{table}/dt={day}/"
    return {
        k.removeprefix(prefix): parquet(volt_env, k).to_pylist() for k in volt_env.list_keys(prefix)
    }


def put(volt_env, key: str, body: bytes) -> str:
    """Upload and return the day it was received (its LastModified, UTC)."""
    volt_env.s3.put_object(Bucket=volt_env.bucket, Key=key, Body=body)
    head = volt_env.s3.head_object(Bucket=volt_env.bucket, Key=key)
    return head["LastModified"].astimezone(UTC).date().isoformat()


def parquet(volt_env, key: str):
    return pq.read_table(io.BytesIO(volt_env.read_object(key)))


def test_one_run_per_file_version_and_the_run_writes_staging_and_quarantine(volt_env, lake):
    good = [
        component_row(1),
        component_row(2),
        component_row(2, name="Fuse 2b", updated_at="2026-01-02 11:00:00+00"),
        component_row(3, deleted_at="2026-01-02T12:00:00Z"),
    ]
    bad = [component_row(4, price="-1"), component_row(5, name="  ", currency="euro")]
    body = csv_bytes(good + bad) + b"6,only-three-fields,x\r\n"
    key = "landing/electrical_components/batch 1.csv"
    day = put(volt_env, key, body)
    users = codecs.BOM_UTF8 + csv_bytes(
        [
            {
                "id": "7",
                "email": " Ann@Example.COM ",
                "full_name": "Ann",
                "country": "de",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-02T00:00:00Z",
            }
        ],
        USERS,
    )
    put(volt_env, "landing/users/users.csv", users)

    first = tick(lake)
    assert sorted(r.tags["volt/landing_key"] for r in first.run_requests) == [
        key,
        "landing/users/users.csv",
    ]
    assert len({r.run_key for r in first.run_requests}) == 2
    second = tick(lake, first.cursor)
    assert second.run_requests == [] and second.cursor == first.cursor

    [request] = [r for r in first.run_requests if r.tags["volt/landing_key"] == key]
    result = run(request, lake)
    assert result.success
    [staged_name] = uploads(volt_env, "staging", "electrical_components", day)
    assert staged_name.startswith("batch 1-") and staged_name.endswith(".parquet")
    staged = parquet(volt_env, f"staging/uploads/electrical_components/dt={day}/{staged_name}")
    assert staged.schema == table("electrical_components").staging_schema()
    rows = {r["id"]: r for r in staged.to_pylist()}
    assert sorted(rows) == [1, 2, 3]
    assert (
        rows[1]["name"] == "Fuse 1"
        and rows[1]["category"] == "fuses"
        and rows[1]["currency"] == "EUR"
    )
    assert rows[2]["name"] == "Fuse 2b"  # the latest version of a key in the file
    assert rows[3]["_deleted"] is True and rows[1]["_deleted"] is False
    [quarantined] = uploads(volt_env, "quarantine", "electrical_components", day).values()
    refused = {r["_line"]: r for r in quarantined}
    assert sorted(refused) == [6, 7, 8]
    assert refused[6]["_reasons"][0].startswith("price: not positive")
    assert set(refused[7]["_reasons"]) == {
        "name: blank",
        "currency: not a three-letter currency code: 'EURO'",
    }
    assert refused[8]["_reasons"] == [f"line 8: 3 fields, the header has {len(COMPONENTS)}"]
    assert {r["_source_key"] for r in refused.values()} == {key}
    assert volt_env.list_keys("landing/electrical_components/") == []
    processed = f"landing/processed/electrical_components/dt={day}/"
    assert volt_env.list_keys(processed) == [processed + staged_name.replace(".parquet", ".csv")]
    assert volt_env.read_object(processed + staged_name.replace(".parquet", ".csv")) == body

    [users_request] = [r for r in first.run_requests if r.tags["volt/table"] == "users"]
    assert run(users_request, lake).success  # a UTF-8 byte order mark is accepted
    [[user]] = uploads(volt_env, "staging", "users", day).values()
    assert (user["id"], user["email"], user["country"]) == (7, "ann@example.com", "DE")

    assert run(request, lake).success  # the same version again: already processed, nothing to do

    put(volt_env, key, csv_bytes([component_row(9)]))  # the same key again: a new version
    third = tick(lake, second.cursor)
    [again] = third.run_requests
    assert again.tags["volt/landing_key"] == key and again.run_key != request.run_key
    assert tick(lake, third.cursor).run_requests == []
    assert run(again, lake).success
    staged_again = uploads(volt_env, "staging", "electrical_components", day)
    assert sorted([r["id"] for r in rows] for rows in staged_again.values()) == [[1, 2, 3], [9]]
    assert len(uploads(volt_env, "quarantine", "electrical_components", day)) == 1


def test_files_of_one_stem_on_one_day_keep_every_version_and_shared_keys_are_named(volt_env, lake):
    """`batch.csv` uploaded twice with other rows, then `report.CSV` and `report.csv` in one
    tick: each version's staged and refused rows, and its processed CSV, survive side by side."""
    table_ = "electrical_components"
    key = f"landing/{table_}/batch.csv"
    first_body = csv_bytes([component_row(1), component_row(2), component_row(3, price="-1")])
    day = put(volt_env, key, first_body)
    first = tick(lake)
    assert run(first.run_requests[0], lake).success
    second_body = csv_bytes(
        [component_row(2, name="Fuse 2b"), component_row(4), component_row(5, price="0")]
    )
    put(volt_env, key, second_body)
    second = tick(lake, first.cursor)
    instance = dg.DagsterInstance.ephemeral()
    result = run(second.run_requests[0], lake, instance)
    assert result.success
    staged = uploads(volt_env, "staging", table_, day)
    assert len(staged) == 2 and all(n.startswith("batch-") for n in staged)
    assert sorted([r["id"] for r in rows] for rows in staged.values()) == [[1, 2], [2, 4]]
    refused = uploads(volt_env, "quarantine", table_, day)
    assert sorted(r["id"] for rows in refused.values() for r in rows) == ["3", "5"]
    processed = {
        k: volt_env.read_object(k) for k in volt_env.list_keys(f"landing/processed/{table_}/")
    }
    assert sorted(processed.values()) == sorted([first_body, second_body])
    [(other, shared)] = summary_of(result)["keys_in_other_uploads"].items()
    first_name = next(n for n, rows in staged.items() if [r["id"] for r in rows] == [1, 2])
    assert other == f"staging/uploads/{table_}/dt={day}/{first_name}"
    assert shared == {"keys": 1, "sample": [2]}
    [warning] = warnings_of(instance, result)
    assert "1 key(s) also staged from another landing file" in warning and other in warning

    upper, lower = f"landing/{table_}/report.CSV", f"landing/{table_}/report.csv"
    put(volt_env, upper, csv_bytes([component_row(6)]))
    put(volt_env, lower, csv_bytes([component_row(7), component_row(8, currency="euro")]))
    third = tick(lake, second.cursor)
    assert sorted(r.tags["volt/landing_key"] for r in third.run_requests) == [upper, lower]
    for request in third.run_requests:
        assert run(request, lake).success
    reports = {
        n: [r["id"] for r in rows]
        for n, rows in uploads(volt_env, "staging", table_, day).items()
        if n.startswith("report-")
    }
    assert sorted(reports.values()) == [[6], [7]]
    [[refused_8]] = [
        rows
        for n, rows in uploads(volt_env, "quarantine", table_, day).items()
        if n.startswith("report-")
    ]
    assert refused_8["id"] == "8" and refused_8["_source_key"] == lower
    kept = [k.rsplit("/", 1)[-1] for k in volt_env.list_keys(f"landing/processed/{table_}/")]
    assert sorted(k.rsplit(".", 1)[-1] for k in kept if k.startswith("report-")) == ["CSV", "csv"]
    assert volt_env.list_keys(f"landing/{table_}/") == []


OUTSIDE = {
    "landing/electrical_components/sub/x.csv": "in a sub-folder: landing files lie directly in "
    "landing/electrical_components/",
    "landing/unknown_table/x.csv": "`unknown_table` is not a configured table (",
    "landing/users/../orders/x.csv": "an unsafe key (an empty, `.` or `..` path segment",
    "landing/../landing/users/evil.csv": "an unsafe key",
    "landing/electrical_components/readme.txt": "not a .csv file",
    "landing/loose.csv": "not in a table's folder: landing files go in landing/{table}/",
}
OURS = ["landing/processed/users/dt=2026-01-01/users.csv", "landing/rejected/dt=2026-01-01/a.csv"]


def test_objects_outside_the_pattern_are_reported_once_and_moved_aside(volt_env, lake):
    bodies = {key: f"id\n{i}\n".encode() for i, key in enumerate([*OUTSIDE, *OURS])}
    days = {key: put(volt_env, key, body) for key, body in bodies.items()}
    put(volt_env, "landing/users/", b"")  # a folder made in a console
    recorded = Recorded()
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"lake": lake}
    ) as context:
        context.log.addHandler(recorded)
        first = landing_files_sensor(context)
    requested = {r.tags["volt/landing_key"]: r for r in first.run_requests}
    assert sorted(requested) == sorted(OUTSIDE)
    sensor_warnings = [t for lv, t in recorded.lines if lv == logging.WARNING]
    assert len(sensor_warnings) == len(OUTSIDE)
    for key, reason in OUTSIDE.items():
        [line] = [t for t in sensor_warnings if t.startswith(repr(key))]
        assert reason in line and "landing/rejected/" in line
        assert requested[key].tags["volt/landing_rejected"] == "true"

    for key, reason in OUTSIDE.items():
        instance = dg.DagsterInstance.ephemeral()
        result = run(requested[key], lake, instance)
        assert result.success
        summary = summary_of(result)
        assert summary["outcome"] == "rejected" and summary["reason"].startswith(reason)
        moved = summary["rejected_key"]
        assert moved.startswith(f"landing/rejected/dt={days[key]}/") and "/.." not in moved
        assert moved.rsplit("/", 1)[-1].endswith(key.rsplit("/", 1)[-1])
        assert volt_env.read_object(moved) == bodies[key]
        head = volt_env.s3.head_object(Bucket=volt_env.bucket, Key=moved)
        assert head["Metadata"] == {"rejected-reason": summary["reason"], "original-key": key}
        [warning] = warnings_of(instance, result)
        assert warning.startswith(repr(key)) and reason in warning and moved in warning
    left = volt_env.list_keys("landing/")
    assert [k for k in left if not k.startswith("landing/rejected/dt=20")] == [
        OURS[0],
        "landing/users/",
    ]
    assert OURS[1] in left and len(left) == 2 + 1 + len(OUTSIDE)
    assert tick(lake, first.cursor).run_requests == []  # reported once each
    assert staged_nothing(volt_env)


def staged_nothing(volt_env) -> bool:
    return volt_env.list_keys("staging/") == volt_env.list_keys("quarantine/") == []


BAD_FILES = {
    "bom-semicolons.csv": (
        codecs.BOM_UTF8 + csv_bytes([component_row(1)], delimiter=";"),
        "file: the delimiter is not a comma (the header is ';'-separated)",
    ),
    "tabs.csv": (
        csv_bytes([component_row(1)], delimiter="\t"),
        "file: the delimiter is not a comma",
    ),
    "picture.csv": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        "file: binary content (NUL bytes)",
    ),
    "empty.csv": (b"", "file: empty"),
    "blank.csv": (b"\r\n \r\n", "file: empty"),
    "duplicated.csv": (csv_bytes([], COMPONENTS + ["name"]), "file: duplicated columns: name"),
    "missing.csv": (
        csv_bytes([], COMPONENTS[:-1] + ["colour"]),
        "file: missing columns: deleted_at",
    ),
    "latin1.csv": (
        csv_bytes([component_row(1, name="Schütz")]).decode().encode("latin-1"),
        "file: not UTF-8",
    ),
    "utf16.csv": (csv_bytes([component_row(1)]).decode().encode("utf-16"), "file: UTF-16 text"),
    "quotes.csv": (csv_bytes([]) + b'1,"SKU"x,a\r\n', "file: malformed CSV at line 2"),
}


def test_bad_files_are_quarantined_whole_and_the_run_succeeds(volt_env, lake):
    days = {
        name: put(volt_env, f"landing/electrical_components/{name}", body)
        for name, (body, _) in BAD_FILES.items()
    }
    requests = tick(lake).run_requests
    assert len(requests) == len(BAD_FILES)
    for request in requests:
        assert run(request, lake).success
    refused = {
        record["_source_key"].rsplit("/", 1)[-1]: (name, record)
        for day in set(days.values())
        for name, [record] in uploads(volt_env, "quarantine", "electrical_components", day).items()
    }
    assert sorted(refused) == sorted(BAD_FILES)
    for name, (_, reason) in BAD_FILES.items():
        file_name, record = refused[name]
        assert file_name.startswith(name.removesuffix(".csv") + "-")
        assert any(r.startswith(reason) for r in record["_reasons"]), (name, record["_reasons"])
        assert record["_line"] is None and record["id"] is None
    assert volt_env.list_keys("staging/uploads/") == []
    assert volt_env.list_keys("landing/electrical_components/") == []
    missing = refused["missing.csv"][1]
    assert "file: unexpected columns: colour" in missing["_reasons"]


def test_at_most_twenty_runs_a_tick(volt_env, lake):
    for i in range(25):
        put(volt_env, f"landing/users/u{i:02}.csv", csv_bytes([], USERS))
    first = tick(lake)
    second = tick(lake, first.cursor)
    third = tick(lake, second.cursor)
    assert (len(first.run_requests), len(second.run_requests), len(third.run_requests)) == (
        20,
        5,
        0,
    )
    keys = [r.tags["volt/landing_key"] for r in first.run_requests + second.run_requests]
    assert sorted(keys) == [f"landing/users/u{i:02}.csv" for i in range(25)]


def test_cursor_takes_a_late_multipart_upload_within_the_lookback():
    noon = dt.datetime(2026, 1, 2, 12, tzinfo=UTC)
    seen_one = LandingObject("users", "landing/users/a.csv", '"e1"', noon)
    _, cursor = LandingCursor().take([seen_one], 20)
    late = LandingObject(
        "users", "landing/users/big.csv", '"e2"', noon - LOOKBACK / 2
    )  # started before noon
    ancient = LandingObject("users", "landing/users/old.csv", '"e3"', noon - 2 * LOOKBACK)
    taken, cursor = cursor.take([seen_one, late, ancient], 20)
    assert taken == [late]
    assert cursor.watermark == noon
    assert LandingCursor.parse(cursor.dump()) == cursor
    later = LandingObject("users", "landing/users/b.csv", '"e4"', noon + 2 * LOOKBACK)
    _, cursor = cursor.take([later], 20)
    assert list(cursor.seen) == [later.version]  # memory stays within the lookback


# --- the run-failure alert --------------------------------------------------------------------
class Receiver:
    """A webhook on 127.0.0.1 that records what it is sent and answers `status`."""

    def __init__(self, status: int = 200):
        received, answer = [], status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers["Content-Type"], json.loads(body)))
                self.send_response(answer)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/volt"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


PASSWORD = "hunter2-not-for-alerts"


@dg.op
def explode():
    raise RuntimeError(
        f"cannot connect to postgresql://volt:{PASSWORD}@db:5432/volt (password={PASSWORD})"
    )


@dg.job
def exploding_job():
    explode()


def failure_context():
    instance = dg.DagsterInstance.ephemeral()
    result = exploding_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    return context, result.dagster_run.run_id


def test_failed_run_is_posted_to_the_webhook_without_secrets(monkeypatch):
    monkeypatch.setenv("POSTGRES_PASSWORD", PASSWORD)
    monkeypatch.setenv("VOLT_DAGSTER_URL", "http://dagster.example:3000/")
    context, run_id = failure_context()
    with Receiver() as receiver:
        monkeypatch.setenv("VOLT_ALERT_WEBHOOK_URL", receiver.url)
        run_failure_alert(context)
    [(content_type, alert)] = receiver.received
    assert content_type == "application/json"
    assert alert["run_id"] == run_id and alert["job"] == "exploding_job"
    assert alert["failed_steps"] == ["explode"]
    assert alert["url"] == f"http://dagster.example:3000/runs/{run_id}"
    assert "RuntimeError" in alert["error"] and "cannot connect" in alert["error"]
    assert PASSWORD not in json.dumps(alert)


class Recorded(logging.Handler):
    """What the sensor logs through its context's logger (Dagster's sensor log)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


def logged_alert(context) -> Recorded:
    recorded = Recorded()
    context.log.addHandler(recorded)
    run_failure_alert(context)
    context.log.removeHandler(recorded)
    return recorded


def test_every_failed_run_is_logged_without_a_webhook(monkeypatch):
    monkeypatch.setenv("POSTGRES_PASSWORD", PASSWORD)
    monkeypatch.delenv("VOLT_ALERT_WEBHOOK_URL", raising=False)
    context, run_id = failure_context()
    recorded = logged_alert(context)
    [(level, text)] = [(lv, t) for lv, t in recorded.lines if run_id in t]
    assert level == logging.ERROR and "exploding_job" in text and "cannot connect" in text
    assert PASSWORD not in json.dumps(recorded.lines)


@pytest.mark.parametrize("status", [500, None])
def test_a_webhook_that_fails_or_is_down_never_fails_the_sensor(monkeypatch, status):
    """The run is logged and the undelivered alert is a warning naming the run, never an error
    of the sensor."""
    context, run_id = failure_context()
    if status is None:
        monkeypatch.setenv("VOLT_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{stack.free_port()}/down")
        recorded = logged_alert(context)
    else:
        with Receiver(status) as receiver:
            monkeypatch.setenv("VOLT_ALERT_WEBHOOK_URL", receiver.url)
            recorded = logged_alert(context)
        assert len(receiver.received) == 1
    logged = [(lv, t) for lv, t in recorded.lines if run_id in t]
    assert [lv for lv, _ in logged] == [logging.ERROR, logging.WARNING], logged
    assert f"alert of run {run_id} not delivered" in logged[1][1]
    if status is not None:
        assert "500" in logged[1][1]
