"""The source check of `sync: cdc` tables on the real embedded PostgreSQL: each thing missing
is refused with the exact SQL that fixes it, and running that SQL makes the source ready."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from volt_assets.devstack import stack
from volt_assets.lib.capture.cdc.source_check import SourceNotReady, check_source

TABLES = ["orders", "users"]


def refusal(conn, tables=TABLES, publication="volt_assets_cdc") -> str:
    with pytest.raises(SourceNotReady) as caught:
        check_source(conn, tables, publication)
    return str(caught.value)


def fix_lines(message: str) -> list[str]:
    """The SQL statements a refusal names (its indented lines)."""
    return [line.strip() for line in message.splitlines() if line.startswith("    ")]


def run(conn, statements: list[str]) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.commit()


def test_a_ready_source_passes(source) -> None:
    run(
        source,
        [
            "ALTER TABLE orders REPLICA IDENTITY FULL",
            "ALTER TABLE users REPLICA IDENTITY FULL",
            "CREATE PUBLICATION volt_assets_cdc FOR TABLE orders, users",
        ],
    )
    check_source(source, TABLES)  # no refusal


def test_a_fresh_source_is_refused_with_every_fix_and_the_fixes_make_it_ready(source) -> None:
    message = refusal(source)
    assert fix_lines(message) == [
        'ALTER TABLE "orders" REPLICA IDENTITY FULL;',
        'ALTER TABLE "users" REPLICA IDENTITY FULL;',
        'CREATE PUBLICATION "volt_assets_cdc" FOR TABLE "orders", "users";',
    ]
    assert "table 'orders' has REPLICA IDENTITY DEFAULT" in message
    run(source, fix_lines(message))
    check_source(source, TABLES)


def test_a_table_without_replica_identity_full_is_refused_with_the_sql(source) -> None:
    run(
        source,
        [
            "ALTER TABLE users REPLICA IDENTITY FULL",
            "CREATE PUBLICATION volt_assets_cdc FOR TABLE orders, users",
        ],
    )
    assert fix_lines(refusal(source)) == ['ALTER TABLE "orders" REPLICA IDENTITY FULL;']


def test_a_publication_without_a_table_or_a_kind_of_change_is_refused(source) -> None:
    run(
        source,
        [
            "ALTER TABLE orders REPLICA IDENTITY FULL",
            "ALTER TABLE users REPLICA IDENTITY FULL",
            "CREATE PUBLICATION volt_assets_cdc FOR TABLE orders WITH (publish = 'insert, update')",
        ],
    )
    message = refusal(source)
    assert fix_lines(message) == [
        "ALTER PUBLICATION \"volt_assets_cdc\" SET (publish = 'insert, update, delete, truncate');",
        'ALTER PUBLICATION "volt_assets_cdc" ADD TABLE "users";',
    ]
    run(source, fix_lines(message))
    check_source(source, TABLES)


def test_a_missing_table_is_named(source) -> None:
    assert "table 'suppliers' does not exist at the source" in refusal(source, ["suppliers"])


@pytest.fixture
def plain_role(pg_server, volt_env, source):
    """A login role without REPLICATION that owns nothing but may read the tables."""
    role, password = f"volt_cdc_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with pg_server.admin_cursor(volt_env.dbname) as cur:
        cur.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        cur.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                sql.Identifier(role)
            )
        )
        for statement in (
            "ALTER TABLE orders REPLICA IDENTITY FULL",
            "CREATE PUBLICATION volt_assets_cdc FOR TABLE orders",
        ):
            cur.execute(statement)
    conn = psycopg2.connect(
        host=pg_server.host,
        port=pg_server.port,
        dbname=volt_env.dbname,
        user=role,
        password=password,
    )
    yield role, conn
    conn.close()
    stack.drop_database(pg_server, volt_env.dbname)
    with pg_server.admin_cursor() as cur:
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_role_without_the_replication_privilege_is_refused_with_the_grant(
    plain_role, pg_server
) -> None:
    role, conn = plain_role
    message = refusal(conn, ["orders"])
    assert fix_lines(message) == [f'ALTER ROLE "{role}" WITH REPLICATION;']
    assert f'GRANT rds_replication TO "{role}";' in message  # what Amazon RDS takes instead
    with pg_server.admin_cursor() as cur:
        cur.execute(fix_lines(message)[0])
    check_source(conn, ["orders"])


def test_a_server_without_logical_wal_is_refused_with_the_setting() -> None:
    """A server of its own, started with wal_level=replica (a default PostgreSQL)."""
    root = Path(tempfile.mkdtemp(prefix="volt-test-pg-replica-"))
    try:
        pg = stack.start_postgres(root / "pg", server_settings={"wal_level": "replica"})
        conn = pg.connect()
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE orders (id bigint PRIMARY KEY)")
            cur.execute("ALTER TABLE orders REPLICA IDENTITY FULL")
            cur.execute("CREATE PUBLICATION volt_assets_cdc FOR TABLE orders")
        conn.commit()
        message = refusal(conn, ["orders"])
        conn.close()
        assert fix_lines(message) == ["ALTER SYSTEM SET wal_level = logical;"]
        assert "wal_level is 'replica'" in message and "rds.logical_replication = 1" in message
    finally:
        stack.stop_postgres(root / "pg")
        shutil.rmtree(root, ignore_errors=True)
