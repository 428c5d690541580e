"""Seed the Volt demo shop: `seed_shop(conn, options)` fills the three source tables (and the
pictures folder) with a deterministic, realistic and deliberately dirty shop.

One transaction: reset (or refuse a non-empty source), create the schema when missing, load
the catalogue into a temporary table, one INSERT ... SELECT per table (see generate.py), count
the dirt, commit. Pictures are written after the commit, from rows read in the transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from psycopg2 import sql

from volt_assets.seeding import dirt, generate, pictures
from volt_assets.seeding.catalogue import build_catalogue
from volt_assets.seeding.people import build_people
from volt_assets.seeding.source_schema import (
    SOURCE_TABLES,
    drop_source_tables,
    ensure_source_schema,
)
from volt_assets.settings import state_dir

UTC = dt.UTC
MAX_SEED = 2**40  # seeds are multiplied by the salt space inside a bigint


class SourceNotEmpty(RuntimeError):
    """The source tables already hold rows and no reset was asked for."""


@dataclass(frozen=True)
class SeedOptions:
    seed: int = 42
    components: int = 2000  # components ever created (about 2% are hard-deleted again)
    users: int = 500
    orders: int = 5000  # orders ever placed (about 1.5% are hard-deleted again)
    days: int = 14
    dirty_rate: float = 0.02
    end_date: dt.date | None = None  # last day of the window; None: yesterday (UTC)
    images: bool = True
    reset: bool = False

    def window(self) -> tuple[dt.date, dt.date]:
        """First and last day (inclusive) of the seeded window."""
        end = self.end_date or (dt.datetime.now(UTC).date() - dt.timedelta(days=1))
        return end - dt.timedelta(days=self.days - 1), end

    def validate(self) -> None:
        problems = []
        if not -MAX_SEED < self.seed < MAX_SEED:
            problems.append(f"seed must lie within ±2**40, got {self.seed}")
        if self.components < 1 or self.users < 1 or self.orders < 0:
            problems.append("need at least 1 component and 1 user, and orders >= 0")
        if self.days < 1:
            problems.append("days must be at least 1")
        if not 0.0 <= self.dirty_rate <= 1.0:
            problems.append("dirty rate must lie in [0, 1]")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class SeedReport:
    window_start: dt.date
    window_end: dt.date
    rows: dict[str, int] = field(default_factory=dict)  # rows now in each table
    hard_deleted: dict[str, int] = field(default_factory=dict)
    dirt: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> kind -> rows
    pictures: pictures.PictureReport = field(default_factory=pictures.PictureReport)
    images_dir: Path | None = None
    seconds: float = 0.0

    def dirty_rows(self, table: str) -> int:
        return sum(self.dirt.get(table, {}).values())


def default_images_dir() -> Path:
    """VOLT_IMAGES_DIR, else `<state dir>/images`."""
    configured = os.environ.get("VOLT_IMAGES_DIR")
    return Path(configured) if configured else state_dir() / "images"


def window_params(options: SeedOptions) -> dict:
    first, _ = options.window()
    return {
        "start": dt.datetime.combine(first, dt.time(), tzinfo=UTC),
        "days": options.days,
        "window_us": options.days * generate.DAY_US,
    }


def build_params(options: SeedOptions) -> dict:
    """Every parameter the generator's SQL references."""
    catalogue = build_catalogue(options.seed)
    people = build_people()
    params = {
        "seed": options.seed,
        "components": options.components,
        "users": options.users,
        "orders": options.orders,
        "dirty_rate": options.dirty_rate,
        "slot_first": catalogue.slot_first,
        "slot_count": catalogue.slot_count,
        "people_slots": people.slots,
        "people_countries": people.countries,
        "people_given": people.given,
        "people_given_ascii": people.given_ascii,
        "people_family": people.family,
        "people_family_ascii": people.family_ascii,
        "people_domains": people.domains,
        "people_width": len(people.given[0]),
        **window_params(options),
        **generate.params(),
    }
    for table in SOURCE_TABLES:
        # Where each table's low-discrepancy dirt sequence starts (see dirt.py).
        params[f"dirt_offset_{table}"] = random.Random(f"volt-dirt-{table}-{options.seed}").random()
    return params


def _load_catalogue(cur, seed: int) -> None:
    variants = [{"idx": i, **v} for i, v in enumerate(build_catalogue(seed).variants)]
    cur.execute(
        """
        CREATE TEMP TABLE volt_variant ON COMMIT DROP AS
        SELECT * FROM jsonb_to_recordset(%s::jsonb) AS v(
            idx int, category text, category_code text, manufacturer text, manufacturer_code text,
            name text, description text, specs jsonb, price_pln numeric, voltage_rating numeric)""",
        (json.dumps(variants, ensure_ascii=False),),
    )
    cur.execute("ALTER TABLE volt_variant ADD PRIMARY KEY (idx)")
    cur.execute("ANALYZE volt_variant")


def _prepare_tables(conn, cur, reset: bool) -> None:
    if reset:
        drop_source_tables(conn)
    ensure_source_schema(conn, commit=False)
    if not reset:
        full = []
        for table in SOURCE_TABLES:
            cur.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")')  # our own table names
            if cur.fetchone()[0]:
                full.append(table)
        if full:
            raise SourceNotEmpty(
                f"the source tables already hold rows ({', '.join(full)}); use --reset to drop and recreate them"
            )


@contextmanager
def _indexes_built_after(cur, table: str):
    """Bulk-load pattern: drop the (empty) table's indexes and constraints, re-create them
    from their own definitions after the load; building an index once is about 3x faster
    than maintaining it row by row (the unique SKU index above all)."""
    cur.execute(
        """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
                   WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY conname""",
        (table,),
    )
    constraints = cur.fetchall()
    cur.execute(
        """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
                   WHERE i.indrelid = %s::regclass
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                   ORDER BY 1""",
        (table,),
    )
    indexes = cur.fetchall()
    table_id = sql.Identifier(table)
    for name, _ in constraints:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table_id, sql.Identifier(name))
        )
    for name, _ in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))  # regclass text: already quoted
    yield
    for name, definition in constraints:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(table_id, sql.Identifier(name))
            + sql.SQL(definition)
        )
    for _, definition in indexes:
        cur.execute(definition)


def _quiet(message: str) -> None:
    """The default progress report: none."""


def _insert_tables(cur, params: dict, report: SeedReport, progress: Callable[[str], None]) -> None:
    """One INSERT ... SELECT per table, then its dirt and hard deletes counted into `report`."""
    for table, select in generate.SELECTS.items():
        began = time.monotonic()
        columns = ", ".join(generate.COLUMNS[table])
        with _indexes_built_after(cur, table):
            cur.execute(
                f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM ({select()}) q '
                "WHERE NOT hard_deleted",
                params,
            )
            report.rows[table] = cur.rowcount
        cur.execute(
            f"SELECT dirt, count(*) FILTER (WHERE NOT hard_deleted), count(*) FILTER (WHERE hard_deleted) "
            f"FROM ({select()}) q GROUP BY dirt",
            params,
        )
        report.dirt[table] = {}
        report.hard_deleted[table] = 0
        for kind, alive, deleted in cur.fetchall():
            report.hard_deleted[table] += deleted
            if kind is not None and alive:
                report.dirt[table][kind] = alive
        progress(f"{table}: {report.rows[table]:,} rows in {time.monotonic() - began:.1f} s")


def seed_shop(
    conn,
    options: SeedOptions,
    images_dir: Path | None = None,
    progress: Callable[[str], None] = _quiet,
) -> SeedReport:
    """Fill the source database (and `images_dir`, default VOLT_IMAGES_DIR) with the shop,
    telling `progress` as each table and the pictures are done.

    Raises SourceNotEmpty when a table holds rows and `options.reset` is false; the
    connection's transaction is rolled back on any error."""
    options.validate()
    began = time.monotonic()
    first, last = options.window()
    report = SeedReport(window_start=first, window_end=last)
    params = build_params(options)
    picture_rows = None
    try:
        with conn.cursor() as cur:
            # UTC so day boundaries are UTC midnights; no fsync wait for a bulk demo load.
            cur.execute("SET LOCAL TimeZone = 'UTC'")
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute("SET LOCAL work_mem = '64MB'")
            _prepare_tables(conn, cur, options.reset)
            _load_catalogue(cur, options.seed)
            _insert_tables(cur, params, report, progress)
            if options.images and options.components <= pictures.MAX_PICTURES:
                # Every component ever created has its picture: a hard delete leaves the file.
                cur.execute(
                    f"SELECT category_code, sku, image_filename, dirt "
                    f"FROM ({generate.components_select()}) q ORDER BY id",
                    params,
                )
                picture_rows = cur.fetchall()
            for table in SOURCE_TABLES:
                cur.execute(f'ANALYZE "{table}"')
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    if picture_rows is not None:
        report.images_dir = images_dir or default_images_dir()
        progress(f"pictures: writing {len(picture_rows):,} to {report.images_dir}")
        pictures.clear_own_files(report.images_dir)
        report.pictures = pictures.write_pictures(picture_rows, report.images_dir)
    elif options.images:
        report.pictures.skipped_reason = (
            f"{options.components:,} components is above {pictures.MAX_PICTURES:,}: pictures skipped "
            "(writing them would take longer than seeding)"
        )
    else:
        report.pictures.skipped_reason = "pictures not asked for (--no-images)"
    report.seconds = time.monotonic() - began
    return report


def dirt_catalogue() -> dict[str, list[dict]]:
    """The kinds of dirt per table, for documentation and tests."""
    return {
        table: [{"kind": d.kind, "refused": d.refused, "about": d.about} for d in kinds]
        for table, kinds in dirt.DIRT.items()
    }
