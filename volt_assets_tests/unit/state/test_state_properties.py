"""The state built day by day equals a plain computation over the whole staging history.

Random sequences of staging days of `electrical_components` (versions, soft deletes, hard
deletes, days a blocking check stops), written to a real S3 endpoint; then a past day is
re-run with other rows (a late commit) or its gate changes. After each step, the latest state
and the type 2 history of every day must equal the reference below, written from the rules'
statement, not from the code: for the latest state, each key's row of the latest non-gated day
<= D (a tombstone keeps the values before it); for the history, a version opens on a key's
first live row, on a row after a deleted one, or when a tracked column changes, and the next
event (a version or a delete) closes it.
"""

import datetime as dt
import uuid
from contextlib import nullcontext
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volt_assets.defs.lake.state import TYPE2
from volt_assets.devstack import stack
from volt_assets.lib.config.partitions import UTC
from volt_assets.lib.config.table_config import table
from volt_assets.lib.staging.transform import parquet_bytes
from volt_assets.lib.state.table_state import TableState
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import partition_prefix

CONFIG = table("electrical_components")
SPEC = TYPE2["electrical_components"]
DAY0 = dt.date(2026, 3, 1)

row_kind = st.sampled_from(["live", "live", "live", "soft", "tomb"])
version = st.fixed_dictionaries(
    {
        "kind": row_kind,
        "name": st.sampled_from(["A", "B"]),
        "category": st.sampled_from(["fuses", "cables", None]),
        "price": st.sampled_from([Decimal("1.00"), Decimal("2.50")]),
        "sku": st.sampled_from(["S1", "S2", None]),
        "minute": st.integers(0, 1439),
    }
)
day_rows = st.dictionaries(st.integers(1, 4), version, max_size=4)  # key -> its version that day
timeline = st.lists(st.tuples(day_rows, st.booleans()), min_size=1, max_size=5)  # (rows, gated)


def staging_table(day: dt.date, rows: dict) -> pa.Table:
    schema = CONFIG.staging_schema()
    out = []
    for key, v in sorted(rows.items()):
        at = dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(minutes=v["minute"])
        row = {f.name: None for f in schema}
        row.update(id=key, _deleted=v["kind"] != "live", _extracted_at=at)
        if v["kind"] != "tomb":
            row.update(name=v["name"], category=v["category"], price=v["price"], sku=v["sku"])
            row.update(manufacturer="ABB", currency="EUR", updated_at=at)
            row["deleted_at"] = at if v["kind"] == "soft" else None
        out.append(row)
    return pa.Table.from_pylist(out, schema=schema)


def write_day(store: LakeStore, day: dt.date, rows: dict) -> None:
    store.write_folder(
        partition_prefix("staging", CONFIG.name, day),
        {"part-00000.parquet": parquet_bytes(staging_table(day, rows))},
        {"table": CONFIG.name, "dt": day.isoformat(), "rows": len(rows)},
    )


def reference_latest(days: list[tuple[dict, bool]], upto: int) -> dict:
    """key -> (values of its latest real version or None, deleted)."""
    state: dict = {}
    for rows, gated in days[: upto + 1]:
        if gated:
            continue
        for key, v in rows.items():
            before = state.get(key)
            if v["kind"] == "tomb":
                values = before[0] if before else None
                state[key] = (values, True)
            else:
                sku = (
                    v["sku"]
                    if v["sku"] is not None
                    else (before[0]["sku"] if before and before[0] else None)
                )
                state[key] = (
                    {"name": v["name"], "category": v["category"], "price": v["price"], "sku": sku},
                    v["kind"] == "soft",
                )
    return state


def reference_history(days: list[tuple[dict, bool]], upto: int) -> list[tuple]:
    """(id, name, category, price, valid_from, valid_to) of every version as of day `upto`."""
    versions: list[list] = []
    last: dict = {}  # key -> (previous row's values or None, was_deleted)
    for i, (rows, gated) in enumerate(days[: upto + 1]):
        if gated:
            continue
        day = DAY0 + dt.timedelta(days=i)
        for key, v in sorted(rows.items()):
            deleted = v["kind"] != "live"
            at = (
                dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), UTC)
                if v["kind"] == "tomb"
                else dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(minutes=v["minute"])
            )
            values = None if v["kind"] == "tomb" else (v["name"], v["category"], v["price"])
            prev, was_deleted = last.get(key, (None, None))
            opens = not deleted and (was_deleted is None or was_deleted or values != prev)
            closes = deleted and was_deleted is False
            if opens or closes:
                for open_ in versions:
                    if open_[0] == key and open_[5] is None:
                        open_[5] = at
            if opens:
                versions.append([key, *values, at, None])
            last[key] = (values, deleted)
    return sorted((tuple(v) for v in versions), key=repr)


def check(state: TableState, days: list[tuple[dict, bool]]) -> None:
    all_days = [DAY0 + dt.timedelta(days=i) for i in range(len(days))]
    files = state.files(all_days)
    for i, day in enumerate(all_days):
        want = reference_latest(days, i)
        found = files[day]
        got = (
            {}
            if found is None
            else {r["id"]: r for r in pq.read_table(found["latest"]).to_pylist()}
        )
        assert set(got) == set(want), day
        for key, (values, deleted) in want.items():
            row = got[key]
            assert row["_deleted"] == deleted, (day, key)
            for column in ("name", "category", "price", "sku"):
                assert row[column] == (values or {}).get(column), (day, key, column)
        history = [] if found is None else pq.read_table(found["type2"]).to_pylist()
        columns = ("component_id", "name", "category", "price", "valid_from", "valid_to")
        got_history = sorted((tuple(r[c] for c in columns) for r in history), key=repr)
        assert got_history == reference_history(days, i), day


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(days=timeline, rerun=st.tuples(st.integers(0, 4), day_rows, st.booleans()))
def test_the_state_equals_the_whole_history_after_days_re_runs_and_gate_changes(
    s3_endpoint, tmp_path, days, rerun
):
    s3 = stack.s3_client(s3_endpoint)
    bucket = f"volt-state-{uuid.uuid4().hex[:8]}"
    stack.ensure_bucket(s3, bucket)
    store = LakeStore(s3, bucket)
    gated = {i for i, (_, g) in enumerate(days) if g}

    def gate(day, manifest):
        return ["quarantine_share"] if (day - DAY0).days in gated else []

    workdir = tmp_path / uuid.uuid4().hex
    workdir.mkdir()
    state = TableState(
        store, CONFIG, gate, lambda: nullcontext(), workdir, type2=SPEC, log=lambda _: None
    )
    for i, (rows, _) in enumerate(days):
        write_day(store, DAY0 + dt.timedelta(days=i), rows)
    check(state, days)

    # a past day re-run with other rows, its gate flipped (a new quality report)
    index, rows, flip = rerun
    index = index % len(days)
    day = DAY0 + dt.timedelta(days=index)
    write_day(store, day, rows)
    if flip:
        gated ^= {index}
        s3.put_object(
            Bucket=bucket,
            Key=f"quality/{CONFIG.name}/dt={day}/report.json",
            Body=uuid.uuid4().bytes,
        )
    days = [*days[:index], (rows, index in gated), *days[index + 1 :]]
    check(state, days)
