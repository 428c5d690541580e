"""What a source needs before its `sync: cdc` tables can be read from logical replication, and
the exact SQL that gives it: `wal_level = logical`, the replication privilege, each table's
`REPLICA IDENTITY FULL` (updates and deletes carry the whole old row) and the publication
that names the tables and publishes every kind of change."""

from __future__ import annotations

from psycopg2 import sql

PUBLICATION = "volt_assets_cdc"  # the publication the code location's cdc slot reads
PUBLISHED = ("insert", "update", "delete", "truncate")


class SourceNotReady(RuntimeError):
    """The source lacks something logical replication needs; the message lists the SQL."""


def _wal_level(cur) -> list[str]:
    cur.execute("SHOW wal_level")
    level = cur.fetchone()[0]
    if level == "logical":
        return []
    return [
        f"wal_level is {level!r}; logical decoding needs 'logical' (then restart PostgreSQL; "
        "on Amazon RDS or Aurora set rds.logical_replication = 1 in the parameter group and "
        "reboot instead):\n    ALTER SYSTEM SET wal_level = logical;"
    ]


def _privilege(cur) -> list[str]:
    cur.execute(
        "SELECT current_user, rolsuper OR rolreplication OR EXISTS (SELECT 1 FROM pg_roles g "
        "WHERE g.rolname = 'rds_replication' AND pg_has_role(current_user, g.oid, 'MEMBER')) "
        "FROM pg_roles WHERE rolname = current_user"
    )
    user, allowed = cur.fetchone()
    if allowed:
        return []
    role = sql.Identifier(user).as_string(cur)
    return [
        f"the role {user!r} may not open a replication connection (on Amazon RDS: "
        f"GRANT rds_replication TO {role};):\n    ALTER ROLE {role} WITH REPLICATION;"
    ]


def _replica_identity(cur, tables: list[str]) -> list[str]:
    missing = []
    for name in tables:
        cur.execute(
            "SELECT relreplident FROM pg_class WHERE oid = to_regclass(quote_ident(%s))", (name,)
        )
        row = cur.fetchone()
        if row is None:
            missing.append(f"table {name!r} does not exist at the source")
        elif row[0] != "f":
            table = sql.Identifier(name).as_string(cur)
            missing.append(
                f"table {name!r} has REPLICA IDENTITY {_IDENTITY.get(row[0], row[0])}; updates "
                "and deletes must carry the whole old row:\n"
                f"    ALTER TABLE {table} REPLICA IDENTITY FULL;"
            )
    return missing


_IDENTITY = {"d": "DEFAULT", "n": "NOTHING", "i": "USING INDEX", "f": "FULL"}


def _publication(cur, tables: list[str], publication: str) -> list[str]:
    pub = sql.Identifier(publication).as_string(cur)
    cur.execute(
        "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication "
        "WHERE pubname = %s",
        (publication,),
    )
    row = cur.fetchone()
    names = ", ".join(sql.Identifier(t).as_string(cur) for t in tables)
    if row is None:
        return [
            f"the publication {publication!r} does not exist:\n"
            f"    CREATE PUBLICATION {pub} FOR TABLE {names};"
        ]
    missing = []
    if not all(row):
        missing.append(
            f"the publication {publication!r} does not publish every kind of change:\n"
            f"    ALTER PUBLICATION {pub} SET (publish = '{', '.join(PUBLISHED)}');"
        )
    cur.execute(
        "SELECT tablename FROM pg_publication_tables "
        "WHERE pubname = %s AND schemaname = current_schema()",
        (publication,),
    )
    published = {r[0] for r in cur.fetchall()}
    absent = [t for t in tables if t not in published]
    if absent:
        listed = ", ".join(sql.Identifier(t).as_string(cur) for t in absent)
        missing.append(
            f"the publication {publication!r} does not hold {', '.join(map(repr, absent))}:\n"
            f"    ALTER PUBLICATION {pub} ADD TABLE {listed};"
        )
    return missing


def missing_setup(conn, tables: list[str], publication: str = PUBLICATION) -> list[str]:
    """Everything the source lacks for these tables, each with the SQL that fixes it."""
    with conn.cursor() as cur:
        return (
            _wal_level(cur)
            + _privilege(cur)
            + _replica_identity(cur, tables)
            + _publication(cur, tables, publication)
        )


def check_source(conn, tables: list[str], publication: str = PUBLICATION) -> None:
    """Raise `SourceNotReady` listing what is missing, each with its SQL (run it as the
    tables' owner or a superuser, then start the capture again)."""
    missing = missing_setup(conn, tables, publication)
    if missing:
        raise SourceNotReady(
            "the source is not ready for change data capture (sync: cdc); run this SQL as a "
            "superuser or the tables' owner, then start the capture again:\n- "
            + "\n- ".join(missing)
        )
