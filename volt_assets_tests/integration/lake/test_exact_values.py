"""Values PostgreSQL holds that a lake of years 1 to 9999 cannot: infinite and BC timestamps
reach raw as text that says what they are, and staging refuses them to quarantine with the
reason, quoting that text (a NOT NULL `created_at = infinity` never becomes a null; a
`deleted_at = -infinity` never makes a row live)."""

from __future__ import annotations

import gzip
import json

from volt_assets_tests.pipeline import (
    component,
    create_source_schema,
    insert,
    materialize,
    read_parquet,
)

LAKE = ["raw/electrical_components", "staging/electrical_components"]
D1 = "2026-01-01"
PREFIX = "electrical_components/dt=2026-01-01/"


def raw_lines(volt_env) -> dict[int, dict]:
    lines = {}
    for key in volt_env.list_keys(f"raw/{PREFIX}part-"):
        for line in gzip.decompress(volt_env.read_object(key)).splitlines():
            row = json.loads(line)
            lines[row["id"]] = row
    return lines


def test_infinite_and_bc_timestamps_are_exact_in_raw_and_refused_by_staging(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(
        conn,
        "electrical_components",
        [
            component(1, "2026-01-01 08:00", created_at="infinity"),
            component(2, "2026-01-01 08:00", deleted_at="-infinity"),
            component(3, "2026-01-01 08:00", created_at="0044-03-15 12:00:00+00 BC"),
            component(4, "2026-01-01 08:00", created_at="0001-01-01 00:00:00+00"),
        ],
    )
    materialize(LAKE, D1, raise_on_error=False)  # 3 of 4 refused: the gate fails the day

    raw = raw_lines(volt_env)
    assert raw[1]["created_at"] == "infinity"
    assert raw[2]["deleted_at"] == "-infinity"
    assert raw[3]["created_at"] == "0044-03-15T12:00:00.000000Z BC"
    assert raw[4]["created_at"] == "0001-01-01T00:00:00.000000Z"
    assert raw[4]["deleted_at"] is None

    staged = read_parquet(volt_env, f"staging/{PREFIX}part-00000.parquet").to_pylist()
    assert [(r["id"], r["_deleted"]) for r in staged] == [(4, False)]
    quarantined = {
        r["id"]: r
        for r in read_parquet(volt_env, f"quarantine/{PREFIX}part-00000.parquet").to_pylist()
    }
    assert sorted(quarantined) == ["1", "2", "3"]
    assert quarantined["1"]["created_at"] == "infinity"
    assert quarantined["1"]["_reasons"] == [
        "created_at: 'infinity' lies outside the years 1 to 9999 the lake holds"
    ]
    assert quarantined["2"]["deleted_at"] == "-infinity"
    assert quarantined["2"]["_reasons"] == [
        "deleted_at: '-infinity' lies outside the years 1 to 9999 the lake holds"
    ]
    assert quarantined["3"]["created_at"] == "0044-03-15T12:00:00.000000Z BC"
    assert quarantined["3"]["_reasons"] == [
        "created_at: '0044-03-15T12:00:00.000000Z BC' lies outside the years 1 to 9999 the lake"
        " holds"
    ]


def test_quarantine_quotes_a_refused_numeric_as_the_source_wrote_it(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(
        conn,
        "electrical_components",
        [
            component(1, "2026-01-01 08:00", price="-1.50"),
            component(2, "2026-01-01 08:00", price="0.00"),
            component(3, "2026-01-01 08:00", price="12.30"),
        ],
    )
    materialize(LAKE, D1, raise_on_error=False)
    assert {r["id"]: r["price"] for r in raw_lines(volt_env).values()} == {
        1: "-1.50",
        2: "0.00",
        3: "12.30",
    }
    quarantined = read_parquet(volt_env, f"quarantine/{PREFIX}part-00000.parquet").to_pylist()
    assert {r["id"]: (r["price"], r["_reasons"]) for r in quarantined} == {
        "1": ("-1.50", ["price: not positive: '-1.50'"]),
        "2": ("0.00", ["price: not positive: '0.00'"]),
    }
    [staged] = read_parquet(volt_env, f"staging/{PREFIX}part-00000.parquet").to_pylist()
    assert str(staged["price"]) == "12.30"
