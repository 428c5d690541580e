"""A table added to `tables.yaml` (and its DDL at the source) appears in the code location
without code: raw, staging and quarantine assets, the checks its block names, a full-sync
snapshot, and staging typed as declared. The file is a copy of the project's own with one
block added, so the test follows the real configuration."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from volt_assets.lib.config import table_config
from volt_assets_tests.pipeline import create_source_schema, insert, materialize, read_parquet, ts

D = "2026-01-03"
SUPPLIERS = """
  suppliers:
    primary_key: code
    cursor: updated_at
    sync: full
    columns:
      code: text
      name: text
      rating: numeric(12,2)
      updated_at: timestamptz
    refuse:
      - {column: name, rule: not_blank}
    checks:
      - {column: name, rule: unique, severity: WARN}
"""


@pytest.fixture
def suppliers(volt_env, tmp_path, monkeypatch):
    config = tmp_path / "tables.yaml"
    config.write_text(
        table_config.CONFIG_PATH.read_text(encoding="utf-8") + SUPPLIERS, encoding="utf-8"
    )
    monkeypatch.setattr(table_config, "CONFIG_PATH", config)
    conn = volt_env.connect()
    create_source_schema(conn)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE suppliers (code text PRIMARY KEY, name text, rating numeric(12,2), "
            "updated_at timestamptz NOT NULL)"
        )
    conn.commit()
    insert(
        conn,
        "suppliers",
        [
            {
                "code": "A",
                "name": "Alpha",
                "rating": "4.50",
                "updated_at": ts("2025-12-20 10:00"),
            },  # long before D
            {
                "code": "B",
                "name": "  Beta   Ltd ",
                "rating": "3.00",
                "updated_at": ts(f"{D} 10:00"),
            },
            {
                "code": "C",
                "name": "   ",
                "rating": "1.00",
                "updated_at": ts(f"{D} 11:00"),
            },  # refused
            {
                "code": "E",
                "name": "Echo",
                "rating": None,
                "updated_at": ts("2026-01-05 09:00"),
            },  # after D
        ]
        + [
            {
                "code": f"F{i:02d}",
                "name": f"Filler {i}",
                "rating": "2.00",
                "updated_at": ts(f"{D} 12:{i:02d}"),
            }
            for i in range(16)
        ],
    )  # 1 refused of 20: the gate's 5 %, a WARN
    conn.close()
    return volt_env


def test_a_table_added_in_tables_yaml_appears_with_its_checks_and_a_full_snapshot(suppliers):
    from volt_assets.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw/suppliers", "staging/suppliers"} <= keys
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {n for k, n in checks if k == "staging/suppliers"} == {
        "quarantine_share",
        "row_accounting",
        "name_not_blank",
        "name_unique",
        "freshness",
    }
    assert {"schema_drift", "source_reconciliation", "files_present"} <= {
        n for k, n in checks if k == "raw/suppliers"
    }

    assert materialize(["raw/suppliers", "staging/suppliers"], D).success

    # sync: full: partition D is the whole table as it was when D ran, whatever updated_at says
    parts = [k for k in suppliers.list_keys(f"raw/suppliers/dt={D}/") if k.endswith(".jsonl.gz")]
    lines = [
        json.loads(line)
        for k in parts
        for line in gzip.decompress(suppliers.read_object(k)).splitlines()
    ]
    assert sorted(line["code"] for line in lines) == ["A", "B", "C", "E"] + [
        f"F{i:02d}" for i in range(16)
    ]
    staged = read_parquet(suppliers, f"staging/suppliers/dt={D}/part-00000.parquet")
    assert sorted((r["code"], r["name"], r["rating"]) for r in staged.to_pylist())[:3] == [
        ("A", "Alpha", Decimal("4.50")),
        ("B", "Beta Ltd", Decimal("3.00")),
        ("E", "Echo", None),
    ]
    assert staged.num_rows == 19
    assert staged.schema.field("rating").type == pa.decimal128(12, 2)
    assert staged.schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    [refused] = read_parquet(
        suppliers, f"quarantine/suppliers/dt={D}/part-00000.parquet"
    ).to_pylist()
    assert refused["code"] == "C" and refused["_reasons"][0].startswith("name: ")
    report = json.loads(suppliers.read_object(f"quality/suppliers/dt={D}/report.json"))
    assert {"quarantine_share", "name_not_blank", "name_unique"} <= set(report["checks"])
    assert report["checks"]["name_not_blank"]["failing"] == 1
    assert dt.date.fromisoformat(report["dt"]) == dt.date.fromisoformat(D)
