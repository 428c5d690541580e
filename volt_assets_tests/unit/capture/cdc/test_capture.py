"""The cdc capture on the embedded PostgreSQL (wal_level=logical) and the moto S3: the opening
snapshot and the stream give every committed change once, with old rows, exact values and
UTC instants."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal

import pytest

from volt_assets.lib.capture.cdc.source_check import SourceNotReady
from volt_assets_tests.pipeline import insert, ts
from volt_assets_tests.unit.capture.cdc.cdc_lake import (
    cdc_capture,
    make_ready,
    raw_days,
    raw_lines,
    raw_texts,
)


def component(id_: int, **values) -> dict:
    row = {
        "id": id_,
        "sku": f"SKU-{id_}",
        "name": f"Fuse {id_}",
        "category": "fuses",
        "price": "1.50",
        "currency": "EUR",
        "stock_quantity": 0,
        "specs": '{"amps": 10}',
        "created_at": ts("2026-01-02 08:00"),
        "updated_at": ts("2026-01-02 08:00"),
    }
    return {**row, **values}


def execute(conn, statement: str, args=()) -> None:
    with conn.cursor() as cur:
        cur.execute(statement, args)
    conn.commit()


def test_three_updates_between_two_drains_are_three_lines_and_a_delete_keeps_the_old_row(
    volt_env, source, tmp_path
) -> None:
    make_ready(source, ["electrical_components"])
    insert(source, "electrical_components", [component(1)])
    capture = cdc_capture(volt_env, ["electrical_components"])
    first = capture.run(tmp_path / "one")
    assert first.opened["rows"] == {"electrical_components": 1} and first.changes == 0

    for quantity in (1, 2, 3):  # three transactions before the next drain
        execute(source, "UPDATE electrical_components SET stock_quantity = %s", (quantity,))
    execute(source, "DELETE FROM electrical_components WHERE id = 1")
    second = capture.run(tmp_path / "two")
    assert second.changes == 4 and second.opened is None
    assert second.lag_bytes > 0 and second.lag_seconds > 0  # four commits behind, a while ago

    lines = raw_lines(volt_env, "electrical_components")
    assert [(x["op"], x["key"]) for x in lines] == [("snapshot", 1)] + [("update", 1)] * 3 + [
        ("delete", 1)
    ]
    assert [x["after"]["stock_quantity"] for x in lines[1:4]] == [1, 2, 3]
    assert [x["before"]["stock_quantity"] for x in lines[1:4]] == [0, 1, 2]
    deleted = lines[4]
    assert deleted["after"] is None
    assert deleted["before"] == {**lines[3]["after"]}  # every old value, not only the key
    assert deleted["before"]["name"] == "Fuse 1" and deleted["before"]["price"] == Decimal("1.50")
    # each change once, in commit order, with its commit instant and LSN
    places = [(x["commit_lsn"], x["position"]) for x in lines[1:]]
    assert len(set(places)) == 4
    commits = [dt.datetime.fromisoformat(x["commit_at"]) for x in lines[1:]]
    assert commits == sorted(commits) and all(c.tzinfo == dt.UTC for c in commits)
    today = dt.datetime.now(dt.UTC).date()
    assert raw_days(volt_env, "electrical_components") == ["dt=2026-01-01", f"dt={today}"]


class Crash(Exception):
    """The fault: the capture dies after writing raw and its position, before confirming."""


def test_a_crash_before_the_confirmation_replays_and_raw_keeps_each_change_once(
    volt_env, source, tmp_path, monkeypatch
) -> None:
    make_ready(source, ["users"])
    capture = cdc_capture(volt_env, ["users"])
    capture.run(tmp_path / "open")
    user = {"email": "a@b.example", "created_at": ts("2026-01-02 08:00")}
    insert(source, "users", [{"id": 7, **user, "updated_at": ts("2026-01-02 08:00")}])

    def crash(*_):
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(type(capture), "_confirm", crash)
        with pytest.raises(Crash):
            capture.drain(tmp_path / "one")
    assert [x["op"] for x in raw_lines(volt_env, "users")] == ["insert"]  # written, unconfirmed
    insert(source, "users", [{"id": 8, **user, "updated_at": ts("2026-01-02 09:00")}])
    again = capture.drain(tmp_path / "two")
    assert (again.changes, again.replayed) == (1, 1)  # id 7 came again and was dropped
    assert [(x["op"], x["key"]) for x in raw_lines(volt_env, "users")] == [
        ("insert", 7),
        ("insert", 8),
    ]
    quiet = capture.drain(tmp_path / "three")
    assert (quiet.changes, quiet.replayed) == (0, 0)  # confirmed: nothing comes again


def test_a_table_without_replica_identity_full_is_refused_with_the_sql(
    volt_env, source, tmp_path
) -> None:
    execute(source, "CREATE PUBLICATION volt_assets_cdc FOR TABLE orders")
    with pytest.raises(SourceNotReady, match=r'ALTER TABLE "orders" REPLICA IDENTITY FULL;'):
        cdc_capture(volt_env, ["orders"]).run(tmp_path)
    assert volt_env.list_keys("raw/") == []
    with source.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")
        assert cur.fetchone() == (0,)  # refused before any slot holds WAL


def test_a_walsender_in_another_time_zone_still_gives_utc_and_numerics_stay_exact(
    volt_env, source, tmp_path
) -> None:
    """The database's sessions (the walsender's too) in Newfoundland time (-03:30) and a
    day-first DateStyle: raw still holds UTC instants, numeric(12,2) digit for digit."""
    make_ready(source, ["electrical_components"])
    execute(source, f"ALTER DATABASE {volt_env.dbname} SET timezone = 'America/St_Johns'")
    execute(source, f"ALTER DATABASE {volt_env.dbname} SET datestyle = 'SQL, DMY'")
    capture = cdc_capture(volt_env, ["electrical_components"])
    capture.run(tmp_path / "open")
    insert(
        source,
        "electrical_components",
        [
            component(
                1,
                price="9999999999.99",
                voltage_rating="0.10",
                updated_at=ts("2026-01-02 23:59:59.999999"),
            ),
            component(2, price="0.01", deleted_at=ts("2026-07-01 00:00")),
        ],
    )
    capture.drain(tmp_path / "one")
    texts = raw_texts(volt_env, "electrical_components")
    assert '"price":9999999999.99' in texts[0] and '"voltage_rating":0.10' in texts[0]
    lines = raw_lines(volt_env, "electrical_components")
    assert lines[0]["after"]["updated_at"] == "2026-01-02T23:59:59.999999Z"
    assert lines[0]["after"]["created_at"] == "2026-01-02T08:00:00.000000Z"
    assert lines[1]["after"]["deleted_at"] == "2026-07-01T00:00:00.000000Z"  # summer time there
    assert lines[1]["after"]["price"] == Decimal("0.01")
    assert lines[0]["after"]["specs"] == {"amps": 10}
    commit = dt.datetime.fromisoformat(lines[0]["commit_at"])
    assert lines[0]["commit_at"].endswith("Z")
    assert abs(commit - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_an_unchanged_toasted_value_a_key_change_a_truncate_and_a_new_column(
    volt_env, source, tmp_path
) -> None:
    """pgoutput leaves an unchanged TOASTed value out of an update: raw takes it from the old
    row. A primary-key change keeps the old key in `before`; a truncate is one line; a column
    added at the source appears in the rows after it."""
    make_ready(source, ["electrical_components"])
    capture = cdc_capture(volt_env, ["electrical_components"])
    capture.run(tmp_path / "open")
    long_text = random.Random(5).randbytes(20_000).hex()  # 40,000 characters pglz cannot shrink
    insert(source, "electrical_components", [component(1, description=long_text)])
    with source.cursor() as cur:  # the description lives out of line, in the TOAST table
        cur.execute(
            "SELECT reltoastrelid::regclass FROM pg_class WHERE relname = %s",
            ("electrical_components",),
        )
        cur.execute(f"SELECT count(*) FROM {cur.fetchone()[0]}")
        assert cur.fetchone()[0] > 0
    source.commit()
    execute(source, "UPDATE electrical_components SET stock_quantity = 9 WHERE id = 1")
    execute(source, "UPDATE electrical_components SET id = 2 WHERE id = 1")
    execute(source, "ALTER TABLE electrical_components ADD COLUMN warranty_months integer")
    execute(source, "UPDATE electrical_components SET warranty_months = 24")
    execute(source, "TRUNCATE electrical_components")
    capture.drain(tmp_path / "one")

    lines = raw_lines(volt_env, "electrical_components")
    assert [(x["op"], x["key"]) for x in lines] == [
        ("insert", 1),
        ("update", 1),
        ("update", 2),
        ("update", 2),
        ("truncate", None),
    ]
    assert lines[1]["after"]["description"] == long_text  # not null, not left out
    assert lines[1]["after"]["stock_quantity"] == 9
    assert lines[2]["before"]["id"] == 1 and lines[2]["after"]["id"] == 2
    assert "warranty_months" not in lines[2]["after"]
    assert (
        lines[3]["after"]["warranty_months"] == 24 and lines[3]["before"]["warranty_months"] is None
    )
    assert lines[4]["before"] is None and lines[4]["after"] is None
    manifest_columns = json.loads(
        volt_env.read_object(
            f"raw/electrical_components/dt={dt.datetime.now(dt.UTC).date()}/_manifest.json"
        )
    )["columns"]
    assert manifest_columns[-1] == "warranty_months"


def test_a_drain_out_of_time_stops_at_a_transaction_boundary_and_the_next_goes_on(
    volt_env, source, tmp_path
) -> None:
    """A slot far behind is drained in several runs: each writes what it read up to a whole
    transaction and confirms that; no day closes before a heartbeat is read."""
    make_ready(source, ["electrical_components"])
    capture = cdc_capture(volt_env, ["electrical_components"])
    first = capture.run(tmp_path / "open")
    for id_ in (1, 2, 3):
        insert(source, "electrical_components", [component(id_)])
    short = capture.drain(tmp_path / "short", seconds=0)
    assert short.changes == 1 and short.heartbeat_at == first.heartbeat_at
    rest = capture.drain(tmp_path / "rest")
    assert rest.changes == 2 and rest.heartbeat_at > short.heartbeat_at
    keys = [x["key"] for x in raw_lines(volt_env, "electrical_components")]
    assert keys == [1, 2, 3]


def test_a_replica_identity_changed_after_the_opening_is_refused_at_the_next_drain(
    volt_env, source, tmp_path
) -> None:
    make_ready(source, ["users"])
    capture = cdc_capture(volt_env, ["users"])
    capture.run(tmp_path / "open")
    execute(source, "ALTER TABLE users REPLICA IDENTITY DEFAULT")
    with pytest.raises(SourceNotReady, match=r'ALTER TABLE "users" REPLICA IDENTITY FULL;'):
        capture.drain(tmp_path / "drain")
    execute(source, 'ALTER TABLE "users" REPLICA IDENTITY FULL')
    assert capture.drain(tmp_path / "again").changes == 0
