"""The catalog the Dagster UI shows, read from the loaded definitions and a real run: columns
that are exactly what the files and tables hold, Dagster's row count per day, owners, tags,
code versions that follow the configuration, code links, and lineage from Volt's own data."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from volt_assets.defs.marts.io_manager import ensure_tables
from volt_assets_tests.pipeline import create_source_schema, insert, materialize, read_parquet, ts

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("electrical_components", "users", "orders")
MARTS = ("dim_components", "daily_category_sales", "daily_component_sales", "users_mart")
PII_ASSETS = {"source/users", "raw/users", "staging/users", "marts/users_mart"}
# PostgreSQL's format_type spelling -> the DDL's, for the few types sql/marts/ abbreviates.
PG_SPELLING = {"character(3)": "char(3)", "timestamp with time zone": "timestamptz"}


def definitions():
    from volt_assets.definitions import build_definitions

    return build_definitions()


def specs_by_key(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}


def columns(spec: dg.AssetSpec) -> list[tuple[str, str, bool]]:
    schema = spec.metadata["dagster/column_schema"]
    return [(c.name, c.type, c.constraints.nullable) for c in schema.columns]


def user(id_: int, email: str, at: str) -> dict:
    return {
        "id": id_,
        "email": email,
        "full_name": f"User {id_}",
        "country": "PL",
        "created_at": ts("2026-01-02 08:00"),
        "updated_at": ts(at),
    }


@pytest.fixture
def two_days(volt_env):
    """Users over 2026-01-02..03: three on day 2; on day 3 three new and one updated."""
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(conn, "users", [user(i, f"u{i}@volt.test", "2026-01-02 09:00") for i in (1, 2, 3)])
    insert(
        conn,
        "users",
        [
            user(4, "u4@volt.test", "2026-01-03 09:00"),
            user(5, "u5@volt.test", "2026-01-03 10:00"),
            user(6, "u6@volt.test", "2026-01-03 11:00"),
        ],
    )
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE users SET full_name = 'Renamed', updated_at = %s WHERE id = 1",
            (ts("2026-01-03 12:00"),),
        )
    conn.commit()
    conn.close()
    return volt_env


def row_counts(result, asset: str) -> dict[str, int]:
    return {
        e.partition: e.materialization.metadata["dagster/row_count"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    }


def test_a_range_run_gives_each_day_its_own_row_count(two_days):
    selection = ["raw/users", "staging/users", "raw/orders", "staging/orders", "marts/users_mart"]
    result = materialize(selection, ("2026-01-02", "2026-01-03"))
    assert result.success
    # user 1 was updated on day 3 before the run: the lake only ever saw it on day 3
    assert row_counts(result, "raw/users") == {"2026-01-02": 2, "2026-01-03": 4}
    assert row_counts(result, "staging/users") == {"2026-01-02": 2, "2026-01-03": 4}
    assert row_counts(result, "raw/orders") == {"2026-01-02": 0, "2026-01-03": 0}
    assert row_counts(result, "marts/users_mart") == {
        "2026-01-02": 2,
        "2026-01-03": 6,
    }  # users known by then


def test_staging_and_raw_columns_are_what_their_files_hold(two_days):
    assert materialize(["raw/users", "staging/users"], "2026-01-03").success
    specs = specs_by_key(definitions())

    parquet = read_parquet(two_days, "staging/users/dt=2026-01-03/part-00000.parquet").schema
    assert columns(specs["staging/users"]) == [(f.name, str(f.type), f.nullable) for f in parquet]
    assert [name for name, _, _ in columns(specs["staging/users"])] == [
        "id",
        "email",
        "full_name",
        "country",
        "created_at",
        "updated_at",
        "_deleted",
        "_extracted_at",
    ]

    from volt_assets_tests.integration.lake.test_lake import raw_lines

    members = {name for line in raw_lines(two_days, "users", "2026-01-03") for name in line}
    assert [name for name, _, _ in columns(specs["raw/users"])] == [
        "id",
        "email",
        "full_name",
        "country",
        "created_at",
        "updated_at",
    ]
    assert members == {name for name, _, _ in columns(specs["raw/users"])}
    raw_types = {
        c.name: c.type for c in specs["raw/users"].metadata["dagster/column_schema"].columns
    }
    assert raw_types == {
        "id": "bigint",
        "email": "text",
        "full_name": "text",
        "country": "char(2)",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
    }


def pg_columns(conn, table: str) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """(name, type, nullable) of a table's columns in order, and its primary key, as PostgreSQL
    has them."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT attname, format_type(atttypid, atttypmod), NOT attnotnull FROM pg_attribute
                       WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
                       ORDER BY attnum""",
            (f"marts.{table}",),
        )
        found = [(n, PG_SPELLING.get(t, t), nullable) for n, t, nullable in cur.fetchall()]
        cur.execute(
            """SELECT a.attname FROM pg_constraint c
                       JOIN unnest(c.conkey) WITH ORDINALITY k(num, pos) ON true
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num
                       WHERE c.conrelid = %s::regclass AND c.contype = 'p' ORDER BY k.pos""",
            (f"marts.{table}",),
        )
        return found, [r[0] for r in cur.fetchall()]


def test_mart_columns_are_the_tables_postgresql_creates(volt_env):
    conn = volt_env.connect()
    ensure_tables(conn)
    specs = specs_by_key(definitions())
    for mart in MARTS:
        spec = specs[f"marts/{mart}"]
        found, key = pg_columns(conn, mart)
        assert columns(spec) == found, mart
        schema = spec.metadata["dagster/column_schema"]
        assert f"PRIMARY KEY ({', '.join(key)})" in schema.constraints.other, mart
        assert spec.metadata["dagster/table_name"] == f"marts.{mart}"
        assert all(c.description for c in schema.columns), mart
    conn.close()
    users = {c.name: c for c in specs["marts/users_mart"].metadata["dagster/column_schema"].columns}
    assert users["email"].tags == {"pii": ""} and users["country"].tags == {}
    assert (
        users["total_spent"].type == "numeric(14,2)"
        and not users["total_spent"].constraints.nullable
    )
    current = specs["marts/dim_components"].metadata["dagster/column_schema"].constraints.other
    assert "UNIQUE (component_id) WHERE is_current" in current


def test_every_asset_has_owners_tags_code_version_and_columns(volt_env):
    specs = specs_by_key(definitions())
    for key, spec in specs.items():
        layer = key.split("/")[0]
        assert spec.owners == ["team:data-platform"], key
        assert spec.tags["layer"] == layer, key
        assert ("pii" in spec.tags) == (key in PII_ASSETS), key
        if layer == "source":
            continue
        assert re.fullmatch(r"[0-9a-f]{16}", spec.code_version or ""), key
        if layer != "images":
            assert all(c.description for c in spec.metadata["dagster/column_schema"].columns), key
    for table in TABLES:
        # staging's Athena table, as sql/athena/ creates it
        name = specs[f"staging/{table}"].metadata["dagster/table_name"]
        assert name == f"volt_lake.staging_{table}"
        athena = "\n".join(p.read_text() for p in (ROOT / "sql" / "athena").glob("*.sql"))
        assert f"CREATE EXTERNAL TABLE IF NOT EXISTS {name} (" in athena
    assert len({specs[f"staging/{t}"].code_version for t in TABLES}) == 3


def changed_copy(folder: Path, old: str, new: str) -> Path:
    folder.mkdir()
    copy = folder / "tables.yaml"
    text = (ROOT / "volt_assets" / "tables.yaml").read_text()
    assert text.count(old) == 1
    copy.write_text(text.replace(old, new))
    return copy


def versions(path: Path) -> tuple[str, str]:
    from volt_assets.defs.lake.raw import build_raw_asset
    from volt_assets.defs.lake.staging import build_staging_asset
    from volt_assets.lib.config.table_config import load_tables

    config = load_tables(path)["orders"]
    key = dg.AssetKey(["raw", "orders"])
    return build_raw_asset(config).code_versions_by_key[key], build_staging_asset(
        config
    ).code_versions_by_key[dg.AssetKey(["staging", "orders"])]


def test_code_version_follows_the_configuration(volt_env, tmp_path):
    raw, staging = versions(ROOT / "volt_assets" / "tables.yaml")
    loaded = specs_by_key(definitions())
    assert (loaded["raw/orders"].code_version, loaded["staging/orders"].code_version) == (
        raw,
        staging,
    )

    rule = versions(
        changed_copy(
            tmp_path / "rule", "rule: at_most, value: 100000", "rule: at_most, value: 5000"
        )
    )
    assert rule[0] == raw and rule[1] != staging  # a refuse rule is staging's: raw stays fresh

    typed = versions(
        changed_copy(
            tmp_path / "type",
            "quantity: {type: integer, description: Units ordered.",
            "quantity: {type: bigint, description: Units ordered.",
        )
    )
    assert typed[0] != raw and typed[1] != staging

    described = versions(
        changed_copy(tmp_path / "text", "description: Units ordered.", "description: Units.")
    )
    assert described == (raw, staging)  # a description changes no data


def test_lineage_starts_at_volts_tables_and_pictures(volt_env):
    defs = definitions()
    graph = defs.resolve_asset_graph()
    for table in TABLES:
        source = dg.AssetKey(["source", table])
        assert graph.get(dg.AssetKey(["raw", table])).parent_keys == {source}
        assert not graph.get(source).is_executable  # external: Dagster never runs it
    images = graph.get(dg.AssetKey(["images", "component_images"]))
    assert dg.AssetKey(["source", "pictures"]) in images.parent_keys
    job_keys = defs.resolve_job_def("volt_daily").asset_layer.executable_asset_keys
    assert not any(k.path[0] == "source" for k in job_keys)


def test_code_references_link_to_the_git_repository(volt_env, monkeypatch):
    monkeypatch.setenv("VOLT_GIT_URL", "https://github.com/volt-shop/volt_assets.git")
    monkeypatch.setenv("VOLT_GIT_BRANCH", "release")
    specs = specs_by_key(definitions())
    base = "https://github.com/volt-shop/volt_assets/tree/release/"
    for key, expected in {
        "raw/orders": ("volt_assets/tables.yaml", "volt_assets/defs/lake/raw.py"),
        "marts/users_mart": ("sql/marts/030_users_mart.sql", "volt_assets/defs/marts/users.py"),
    }.items():
        urls = [r.url for r in specs[key].metadata["dagster/code_references"].code_references]
        assert [u.split("#")[0] for u in urls] == [base + path for path in expected], key
        for url, path in zip(urls, expected):
            line = int(url.split("#L")[1])
            text = (ROOT / path).read_text().splitlines()[line - 1]
            assert text.startswith(
                ("  orders:", "    @dg.asset(", "CREATE TABLE", "    @mart_asset")
            ), (url, text)
