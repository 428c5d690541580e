"""The Volt source schema (`sql/source/*.sql`): create it where it is missing, drop it to reset.

The DDL files are the shop app's own schema, idempotent (`IF NOT EXISTS`), applied in file
name order. Seeding, the demo and the tests create the schema through here only.
"""

from __future__ import annotations

from pathlib import Path

from psycopg2 import sql

from volt_assets.settings import project_root

SOURCE_TABLES = ("electrical_components", "users", "orders")


def ddl_files() -> list[Path]:
    return sorted((project_root() / "sql" / "source").glob("*.sql"))


def missing_tables(conn) -> list[str]:
    """Source tables that do not exist (in the connection's search path)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NULL",
            (list(SOURCE_TABLES),),
        )
        return [row[0] for row in cur.fetchall()]


def ensure_source_schema(conn, *, commit: bool = True) -> bool:
    """Apply the DDL files when any source table is missing; True if they were applied.

    With commit=False the DDL stays in the caller's transaction (the seed resets and fills
    the tables in one transaction, so a failure leaves the database as it was)."""
    if not missing_tables(conn):
        return False
    files = ddl_files()
    if not files:
        raise FileNotFoundError(f"no DDL in {project_root() / 'sql' / 'source'}")
    with conn.cursor() as cur:
        for path in files:
            cur.execute(path.read_text(encoding="utf-8"))
    if commit:
        conn.commit()
    return True


def drop_source_tables(conn) -> None:
    """Drop the three source tables (and their indexes) if they exist; does not commit."""
    with conn.cursor() as cur:
        for table in SOURCE_TABLES:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
