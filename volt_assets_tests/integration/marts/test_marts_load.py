"""The marts IO manager: one transaction per load, the tables from `sql/marts/`, the database
from MARTS_DATABASE_URL, and no password in what a run shows."""

import re
import urllib.parse
import uuid

import dagster as dg
import psycopg2
import pytest
from psycopg2 import sql

from volt_assets.defs.marts.dim_components import SCHEMA as DIM_COMPONENTS
from volt_assets.defs.marts.io_manager import ensure_tables
from volt_assets.defs.marts.sales import CATEGORY_SCHEMA, COMPONENT_SCHEMA
from volt_assets.defs.marts.users import SCHEMA as USERS_MART
from volt_assets.devstack import stack
from volt_assets_tests.pipeline import component, create_source_schema, insert, materialize, ts

LAKE = [
    "raw/electrical_components",
    "raw/users",
    "raw/orders",
    "staging/electrical_components",
    "staging/users",
    "staging/orders",
]


def small_shop(conn) -> None:
    """A user a day with an order each, over 2026-01-01..03."""
    create_source_schema(conn)
    insert(conn, "electrical_components", [component(1, "2026-01-01 08:00")])
    for day in (1, 2, 3):
        at = ts(f"2026-01-0{day} 10:00")
        insert(
            conn,
            "users",
            [
                {
                    "id": day,
                    "email": f"u{day}@volt.test",
                    "country": "PL",
                    "created_at": at,
                    "updated_at": at,
                }
            ],
        )
        insert(
            conn,
            "orders",
            [
                {
                    "id": day,
                    "user_id": day,
                    "component_id": 1,
                    "quantity": day,
                    "unit_price": "2.50",
                    "currency": "EUR",
                    "status": "paid",
                    "ordered_at": at,
                    "updated_at": at,
                }
            ],
        )


def mart_rows(conn, table: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM marts.{} ORDER BY 1, 2").format(sql.Identifier(table)))
        return cur.fetchall()


def events(result, kind: dg.DagsterEventType) -> list:
    return [e for e in result.all_events if e.event_type == kind]


def test_a_failed_load_keeps_the_previous_rows(volt_env):
    conn = volt_env.connect()
    small_shop(conn)
    result = materialize(LAKE + ["marts/users_mart"], ("2026-01-01", "2026-01-03"))
    loaded = [
        e
        for e in events(result, dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.asset_key.path[0] == "marts"
    ]
    assert sorted(e.partition for e in loaded) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    by_day = {e.partition: e.event_specific_data.materialization.metadata for e in loaded}
    assert {d: m["rows"].value for d, m in by_day.items()} == {  # each partition's own rows:
        "2026-01-01": 1,
        "2026-01-02": 2,
        "2026-01-03": 3,
    }  # the users known on that day
    assert {m["run_rows"].value for m in by_day.values()} == {1 + 2 + 3}
    assert by_day["2026-01-02"]["s3_uri"].value.endswith("/mart/users_mart/dt=2026-01-02/")
    metadata = by_day["2026-01-01"]
    assert metadata["table"].value == "marts.users_mart"
    assert {"duration_seconds", "rows_per_second", "database"} <= set(metadata)

    # Mark the loaded rows, then make the third day's COPY fail half-way through the load.
    with conn.cursor() as cur:
        cur.execute("UPDATE marts.users_mart SET email = 'loaded-before@volt.test'")
        cur.execute(
            "ALTER TABLE marts.users_mart ADD CONSTRAINT refuse_d3 CHECK (dt <> '2026-01-03') NOT VALID"
        )
    conn.commit()
    before = mart_rows(conn, "users_mart")
    copies = {k: volt_env.read_object(k) for k in volt_env.list_keys("mart/users_mart/")}

    result = materialize(["marts/users_mart"], ("2026-01-01", "2026-01-03"), raise_on_error=False)
    assert not result.success
    [failure] = events(result, dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.to_string()
    assert "refuse_d3" in message and "previous rows kept" in message
    assert not events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)  # a data error is not retried
    assert mart_rows(conn, "users_mart") == before  # all 3 days as they were, the 2 good ones too
    assert {k: volt_env.read_object(k) for k in volt_env.list_keys("mart/users_mart/")} == copies


@pytest.fixture
def marts_database(volt_env, pg_server, monkeypatch):
    """A second database, named by MARTS_DATABASE_URL (password in the URL, as users write it)."""
    dbname = f"volt_marts_{uuid.uuid4().hex[:8]}"
    stack.ensure_database(pg_server, dbname)
    password = urllib.parse.quote(pg_server.password, safe="")
    monkeypatch.setenv(
        "MARTS_DATABASE_URL",
        f"postgresql://{pg_server.user}:{password}@{pg_server.host}:{pg_server.port}/{dbname}",
    )
    yield pg_server.dsn(dbname)
    stack.drop_database(pg_server, dbname)


def test_marts_go_to_MARTS_DATABASE_URL_and_hide_its_password(volt_env, pg_server, marts_database):
    conn = volt_env.connect()
    small_shop(conn)
    result = materialize(
        ["raw/electrical_components", "staging/electrical_components", "marts/dim_components"],
        "2026-01-01",
    )
    with psycopg2.connect(marts_database) as other, other.cursor() as cur:
        cur.execute("SELECT component_id, is_current FROM marts.dim_components")
        assert cur.fetchall() == [(1, True)]
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('marts.dim_components')")
        assert cur.fetchone() == (None,)
    shown = " ".join(str(e) for e in result.all_events)
    assert (
        pg_server.password not in shown
        and urllib.parse.quote(pg_server.password, safe="") not in shown
    )
    [loaded] = [
        e
        for e in events(result, dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.asset_key.path[0] == "marts"
    ]
    assert ":***@" in loaded.event_specific_data.materialization.metadata["database"].value


# The README's (and sql/marts/'s) tables, written out here: column, PostgreSQL type, NOT NULL.
DDL = {
    "dim_components": [
        ("component_id", "bigint", True),
        ("sku", "text", False),
        ("name", "text", True),
        ("category", "text", False),
        ("manufacturer", "text", False),
        ("price", "numeric(12,2)", True),
        ("currency", "character(3)", True),
        ("valid_from", "timestamp with time zone", True),
        ("valid_to", "timestamp with time zone", False),
        ("is_current", "boolean", True),
    ],
    "daily_category_sales": [
        ("dt", "date", True),
        ("category", "text", True),
        ("orders_count", "bigint", True),
        ("units_sold", "bigint", True),
        ("revenue", "numeric(14,2)", True),
        ("avg_unit_price", "numeric(12,2)", True),
    ],
    "daily_component_sales": [
        ("dt", "date", True),
        ("component_id", "bigint", True),
        ("category", "text", True),
        ("orders_count", "bigint", True),
        ("units_sold", "bigint", True),
        ("revenue", "numeric(14,2)", True),
    ],
    "users_mart": [
        ("dt", "date", True),
        ("user_id", "bigint", True),
        ("email", "text", False),
        ("country", "text", False),
        ("total_orders", "bigint", True),
        ("total_spent", "numeric(14,2)", True),
        ("first_order_at", "timestamp with time zone", False),
        ("last_order_at", "timestamp with time zone", False),
        ("spend_rank", "integer", True),
    ],
}
PRIMARY_KEYS = {
    "dim_components": ["component_id", "valid_from"],
    "daily_category_sales": ["dt", "category"],
    "daily_component_sales": ["dt", "component_id"],
    "users_mart": ["dt", "user_id"],
}
INDEXES = {  # (index name, its definition's column list and predicate) beyond the primary keys
    "dim_components": {
        "dim_components_current_uq": "UNIQUE INDEX ... (component_id) WHERE is_current",
        "dim_components_sku_idx": "INDEX ... (sku)",
    },
    "daily_category_sales": {"daily_category_sales_category_idx": "INDEX ... (category, dt)"},
    "daily_component_sales": {"daily_component_sales_category_idx": "INDEX ... (category, dt)"},
    "users_mart": {
        "users_mart_rank_idx": "INDEX ... (dt, spend_rank)",
        "users_mart_country_idx": "INDEX ... (country, dt)",
    },
}


def arrow_type_for(pg_type: str) -> str:
    """The Arrow type a loaded column must have for COPY to keep it exact, by PostgreSQL type."""
    exact = {
        "bigint": "int64",
        "integer": "int32",
        "text": "string",
        "character(3)": "string",
        "date": "date32[day]",
        "boolean": "bool",
        "timestamp with time zone": "timestamp[us, tz=UTC]",
    }
    if pg_type.startswith("numeric("):
        return "decimal128(" + pg_type[len("numeric(") :].replace(",", ", ")
    return exact[pg_type]


def test_the_ddl_and_the_arrow_schemas_agree(volt_env):
    """The tables come from sql/marts/ with the README's types, keys and indexes; the assets
    cast to Arrow schemas of the same columns and matching types."""
    conn = volt_env.connect()
    ensure_tables(conn)
    ensure_tables(conn)  # idempotent
    marts = {
        "dim_components": DIM_COMPONENTS,
        "daily_category_sales": CATEGORY_SCHEMA,
        "daily_component_sales": COMPONENT_SCHEMA,
        "users_mart": USERS_MART,
    }
    with conn.cursor() as cur:
        for table, schema in marts.items():
            cur.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
                "FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum",
                (f"marts.{table}",),
            )
            assert cur.fetchall() == DDL[table], table
            assert [(f.name, str(f.type)) for f in schema] == [
                (c, arrow_type_for(t)) for c, t, _ in DDL[table]
            ], table
            cur.execute(
                "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i "
                "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = %s::regclass AND i.indisprimary",
                (f"marts.{table}",),
            )
            assert cur.fetchone()[0] == PRIMARY_KEYS[table], table
            cur.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'marts' AND tablename = %s "
                "AND indexname NOT LIKE '%%_pkey'",
                (table,),
            )
            found = {
                name: re.sub(r" \w+ ON marts\.\w+ USING btree ", " ... ", d).replace("CREATE ", "")
                for name, d in cur.fetchall()
            }
            assert found == INDEXES[table], table
