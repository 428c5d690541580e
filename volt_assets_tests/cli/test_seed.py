"""`volt-assets seed` and `volt_assets.seeding`: the demo shop is deterministic, realistic
in shape, dirty in every announced way, timed inside its window, and safe on disk.

Each test seeds a small shop into the fresh database of `volt_env` and checks outcomes in
the database and the pictures folder, not the generator's internals.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from volt_assets.seeding import SeedOptions, SourceNotEmpty, dirt_catalogue, seed_shop
from volt_assets.seeding.pictures import safe_target
from volt_assets.seeding.source_schema import SOURCE_TABLES, ensure_source_schema, missing_tables
from volt_assets.settings import parse_env_file

END = dt.date(2026, 1, 14)
DAYS = 14
WINDOW_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WINDOW_END = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)  # exclusive
SMALL = dict(components=300, users=200, orders=600, days=DAYS, end_date=END)


def seed(volt_env, **overrides):
    options = SeedOptions(**{**SMALL, "reset": True, **overrides})
    conn = volt_env.connect()
    try:
        return seed_shop(conn, options, images_dir=volt_env.images_dir)
    finally:
        conn.close()


def query(volt_env, text: str, params=None) -> list[tuple]:
    conn = volt_env.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute(text, params)
            return cur.fetchall()
    finally:
        conn.close()


def scalar(volt_env, text: str, params=None):
    return query(volt_env, text, params)[0][0]


def table_digests(volt_env) -> dict[str, str]:
    """md5 of every table's rows in key order: equal digests, equal contents."""
    return {
        t: scalar(volt_env, f"SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM {t} t")
        for t in SOURCE_TABLES
    }


def picture_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# --- determinism and sizes -------------------------------------------------------------------


def test_same_arguments_give_the_same_shop_and_pictures(volt_env):
    seed(volt_env, dirty_rate=0.1)
    first_tables, first_pictures = table_digests(volt_env), picture_digests(volt_env.images_dir)
    seed(volt_env, dirty_rate=0.1)
    assert table_digests(volt_env) == first_tables
    assert picture_digests(volt_env.images_dir) == first_pictures
    assert len(first_pictures) > 250

    seed(volt_env, dirty_rate=0.1, seed=7)
    other = table_digests(volt_env)
    assert all(other[t] != first_tables[t] for t in SOURCE_TABLES), "another seed, another shop"


def test_counts_per_table_match_the_report(volt_env):
    report = seed(volt_env, components=1000, users=150, orders=2000)
    for table in SOURCE_TABLES:
        assert scalar(volt_env, f"SELECT count(*) FROM {table}") == report.rows[table]
    assert report.rows["users"] == 150  # customers are never hard-deleted
    # A share of components and orders was hard-deleted: their ids are gaps.
    for table, asked in (("electrical_components", 1000), ("orders", 2000)):
        deleted = report.hard_deleted[table]
        assert report.rows[table] + deleted == asked
        assert 0.005 * asked < deleted < 0.04 * asked
        assert scalar(volt_env, f"SELECT max(id) - count(*) FROM {table}") > 0


# --- dirt ------------------------------------------------------------------------------------


def test_dirty_share_follows_the_rate_and_every_kind_appears(volt_env):
    report = seed(volt_env, dirty_rate=0.2)
    for table, kinds in dirt_catalogue().items():
        rows = report.rows[table]
        assert abs(report.dirty_rows(table) / rows - 0.2) < 0.03, table
        missing = {k["kind"] for k in kinds} - set(report.dirt[table])
        assert not missing, f"{table}: kinds never generated: {missing}"


def test_the_dirt_is_really_in_the_database(volt_env):
    seed(volt_env, dirty_rate=0.3, components=600, users=300, orders=900)
    c = "SELECT count(*) FROM electrical_components WHERE "
    u = "SELECT count(*) FROM users WHERE "
    o = "SELECT count(*) FROM orders WHERE "
    expected_somewhere = {
        "null price": c + "price IS NULL",
        "negative price": c + "price < 0",
        "zero price": c + "price = 0",
        "null or whitespace-only name": c
        + "name IS NULL OR btrim(name, E' \\t\\n\\u00a0\\u3000') = ''",
        "empty name": c + "name = ''",
        "name with outer or inner whitespace runs": c + "name ~ '^\\s|\\s$|\\s\\s'",
        "lower-case currency": c + "currency ~ '^[a-z]{3}$'",
        "short currency": c + "length(currency) < 3",  # char(3) trims its padding
        "null currency": c + "currency IS NULL",
        "messy category": c + "category <> lower(btrim(category))",
        "emoji": c + "name LIKE %s",
        "Arabic": c + "name ~ '[\\u0600-\\u06FF]'",
        "Hebrew": c + "name ~ '[\\u0590-\\u05FF]'",
        "combining accent": c + "name ~ '\\u0301'",
        "zero-width space": c + "name ~ '\\u200b'",
        "SQL-looking name": c + "name LIKE '%%DROP TABLE%%' OR name LIKE '%%'' OR ''1''=''1%%'",
        "absurd stock": c + "stock_quantity < 0 OR stock_quantity >= 2000000000",
        "path trick": c
        + "image_filename LIKE '%%../%%' OR image_filename LIKE '/%%' OR image_filename LIKE '.%%'",
        "control character in a file name": c + "image_filename ~ '[\\x01-\\x1f]'",
        "email without @": u + "email NOT LIKE '%%@%%'",
        "email with @@": u + "email LIKE '%%@@%%'",
        "email with inner space": u + "btrim(email) LIKE '%% %%'",
        "email with trailing dot": u + "email LIKE '%%.'",
        "null email": u + "email IS NULL",
        "upper-case email with spaces, valid once cleaned": u
        + "email <> lower(btrim(email, E' \\t')) AND lower(btrim(email, E' \\t')) ~ '^[a-z0-9._]+@[a-z0-9.-]+\\.[a-z]+$'",
        "right-to-left user name": u + "full_name ~ '[\\u0590-\\u06FF]'",
        "SQL-looking user name": u
        + "full_name LIKE '%%DROP TABLE%%' OR full_name LIKE '%%DELETE FROM%%' OR full_name LIKE '%%UNION SELECT%%' OR full_name LIKE '%%pg_sleep%%' OR full_name LIKE '%%''1''=''1%%'",
        "odd country": u + "country IS NULL OR country !~ '^[A-Z]{2}$'",
        "zero quantity": o + "quantity = 0",
        "negative quantity": o + "quantity < 0",
        "absurd quantity": o + "quantity = 2000000000",
        "null quantity": o + "quantity IS NULL",
        "null unit price": o + "unit_price IS NULL",
        "negative unit price": o + "unit_price < 0",
        "zero unit price": o + "unit_price = 0",
        "order with lower-case currency": o + "currency ~ '^[a-z]{3}$'",
        "order without user": o + "user_id IS NULL",
        "order of an unknown component": o
        + "NOT EXISTS (SELECT 1 FROM electrical_components c WHERE c.id = component_id)",
    }
    absent = [
        what
        for what, sql in expected_somewhere.items()
        if scalar(volt_env, sql, ("%🔌%",) if "%s" in sql else None) == 0
    ]
    assert not absent, f"dirt never found in the database: {absent}"
    names = [
        r[0] for r in query(volt_env, "SELECT full_name FROM users WHERE full_name IS NOT NULL")
    ]
    assert any(unicodedata.combining(ch) for n in names for ch in n), (
        "combining characters in user names"
    )


def test_a_clean_shop_is_clean_but_still_has_boundary_instants(volt_env):
    report = seed(volt_env, dirty_rate=0.0)
    assert all(not kinds for kinds in report.dirt.values())
    assert (
        scalar(
            volt_env,
            "SELECT count(*) FROM electrical_components WHERE price IS NULL OR price <= 0 "
            "OR currency !~ '^[A-Z]{3}$' OR currency IS NULL OR btrim(name) = '' OR name IS NULL "
            "OR name ~ '\\s\\s|^\\s|\\s$' OR category !~ '^[a-z-]+$'",
        )
        == 0
    )
    assert (
        scalar(
            volt_env,
            "SELECT count(*) FROM users WHERE email IS NULL "
            "OR email !~ '^[a-z0-9._]+@[a-z0-9.-]+\\.[a-z]+$' OR country !~ '^[A-Z]{2}$'",
        )
        == 0
    )
    assert (
        scalar(
            volt_env,
            "SELECT count(*) FROM orders WHERE quantity IS NULL OR quantity <= 0 "
            "OR unit_price IS NULL OR unit_price <= 0 OR currency !~ '^[A-Z]{3}$'",
        )
        == 0
    )
    for table in SOURCE_TABLES:
        midnight = scalar(
            volt_env, f"SELECT count(*) FROM {table} WHERE updated_at::time = '00:00:00'"
        )
        last_us = scalar(
            volt_env, f"SELECT count(*) FROM {table} WHERE updated_at::time = '23:59:59.999999'"
        )
        assert midnight > 0 and last_us > 0, table
        # The window's very first and very last microsecond are both taken.
        assert scalar(volt_env, f"SELECT min(updated_at) FROM {table}") == WINDOW_START
        assert scalar(
            volt_env, f"SELECT max(updated_at) FROM {table}"
        ) == WINDOW_END - dt.timedelta(microseconds=1)


# --- time and the shop's life ----------------------------------------------------------------


def test_every_instant_lies_in_the_window_and_changes_come_after_creation(volt_env):
    seed(volt_env, dirty_rate=0.1)
    window = (WINDOW_START, WINDOW_END)
    for table, created in (
        ("electrical_components", "created_at"),
        ("users", "created_at"),
        ("orders", "ordered_at"),
    ):
        assert (
            scalar(volt_env, f"SELECT count(*) FROM {table} WHERE updated_at < {created}") == 0
        ), table
        assert (
            scalar(
                volt_env,
                f"SELECT count(*) FROM {table} WHERE {created} < %s OR updated_at >= %s",
                window,
            )
            == 0
        )
    # Soft deletes are the row's last change; cancellations come after the order.
    assert (
        scalar(
            volt_env, "SELECT count(*) FROM electrical_components WHERE deleted_at <> updated_at"
        )
        == 0
    )
    assert (
        scalar(
            volt_env,
            "SELECT count(*) FROM orders WHERE status = 'cancelled' AND updated_at <= ordered_at",
        )
        == 0
    )
    # Orders are placed by users and of components that existed then.
    assert (
        scalar(
            volt_env,
            "SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id "
            "WHERE o.ordered_at < u.created_at",
        )
        == 0
    )
    assert (
        scalar(
            volt_env,
            "SELECT count(*) FROM orders o JOIN electrical_components c ON c.id = o.component_id "
            "WHERE o.ordered_at < c.created_at",
        )
        == 0
    )


def test_the_final_state_shows_the_shops_life(volt_env):
    seed(volt_env, components=1000, orders=1500, dirty_rate=0.0)
    changed, soft, renamed = query(
        volt_env,
        """
        SELECT count(*) FILTER (WHERE updated_at > created_at),
               count(*) FILTER (WHERE deleted_at IS NOT NULL),
               count(*) FILTER (WHERE name ~ '\\(Rev\\. B\\)|new version|bestseller|replaces|2nd gen')
        FROM electrical_components""",
    )[0]
    assert changed > 300 and soft > 10 and renamed > 30
    statuses = dict(query(volt_env, "SELECT status, count(*) FROM orders GROUP BY status"))
    assert set(statuses) == {"pending", "paid", "shipped", "delivered", "cancelled"}
    assert set(r[0] for r in query(volt_env, "SELECT DISTINCT payment_method FROM orders")) == {
        "card",
        "blik",
        "transfer",
        "paypal",
    }
    # A few orders point at components that were hard-deleted since.
    assert (
        scalar(
            volt_env,
            "SELECT count(*) FROM orders o WHERE NOT EXISTS "
            "(SELECT 1 FROM electrical_components c WHERE c.id = o.component_id)",
        )
        > 0
    )
    # Unit prices sit near the component's price when it was never changed.
    far = scalar(
        volt_env,
        """SELECT count(*) FROM orders o JOIN electrical_components c ON c.id = o.component_id
                              WHERE c.updated_at = c.created_at AND abs(o.unit_price / c.price - 1) > 0.05""",
    )
    assert far == 0
    # Realistic catalogue: SKU pattern, names, specs per category, plausible manufacturers.
    assert (
        scalar(
            volt_env,
            "SELECT count(*) FROM electrical_components WHERE sku !~ '^[A-Z]{3}-[A-Z]{2,3}-[0-9]{6,}$'",
        )
        == 0
    )
    cb = query(
        volt_env,
        "SELECT specs FROM electrical_components WHERE category = 'circuit-breakers' LIMIT 20",
    )
    assert all({"poles", "current_a"} <= set(row[0]) for row in cb)
    assert scalar(volt_env, "SELECT count(DISTINCT manufacturer) FROM electrical_components") > 20
    assert scalar(volt_env, "SELECT count(*) FROM users WHERE full_name ~ '[ąćęłńóśźżŁŚŻ]'") > 0


# --- pictures --------------------------------------------------------------------------------


def test_pictures_are_images_matching_their_names_and_never_leave_the_folder(volt_env, tmp_path):
    before = {p for p in tmp_path.rglob("*")}
    report = seed(volt_env, dirty_rate=0.3)
    assert report.pictures.written > 150 and report.pictures.not_images > 0
    assert report.pictures.missing > 0 and report.pictures.refused > 0
    # Nothing new anywhere under the test's folder except plain files inside images/.
    new = {p for p in tmp_path.rglob("*")} - before
    assert all(p.parent == volt_env.images_dir and p.is_file() for p in new)
    for path in volt_env.images_dir.iterdir():
        assert re.fullmatch(r"component_\d{6}\.(png|jpg)", path.name)
        data = path.read_bytes()
        if data.startswith(b"<html>"):
            continue  # a "picture" that is not an image, on purpose
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == ("PNG" if path.suffix == ".png" else "JPEG")
            assert image.size == (320, 240)
    # Rows naming a picture that was never written.
    names = {r[0] for r in query(volt_env, "SELECT image_filename FROM electrical_components")}
    on_disk = {p.name for p in volt_env.images_dir.iterdir()}
    assert {n for n in names if n and re.fullmatch(r"component_\d+\.(png|jpg)", n)} - on_disk


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/hosts",
        ".hidden.png",
        "component_\x07bell.png",
        "..\\..\\x.ini",
        "pictures/../../escape.png",
        "component_\n.png",
        "",
        " component_1.png",
        "..",
    ],
)
def test_unsafe_file_names_are_refused(tmp_path, name):
    assert safe_target(tmp_path, name) is None


def test_plain_file_names_are_accepted(tmp_path):
    assert (
        safe_target(tmp_path, "component_000123.png") == tmp_path.resolve() / "component_000123.png"
    )


def test_no_pictures_when_not_asked(volt_env):
    report = seed(volt_env, images=False)
    assert report.pictures.skipped_reason and not list(volt_env.images_dir.iterdir())


# --- schema and reset ------------------------------------------------------------------------


def test_schema_is_created_when_missing(volt_env):
    conn = volt_env.connect()
    try:
        assert missing_tables(conn) == list(SOURCE_TABLES)
        assert ensure_source_schema(conn) is True
        assert ensure_source_schema(conn) is False
        assert missing_tables(conn) == []
    finally:
        conn.close()


def test_without_reset_a_filled_source_is_refused_and_left_alone(volt_env):
    conn = volt_env.connect()
    try:
        ensure_source_schema(conn)
        # Existing but empty tables are filled without --reset.
        seed_shop(conn, SeedOptions(**SMALL, images=False), images_dir=volt_env.images_dir)
    finally:
        conn.close()
    digests = table_digests(volt_env)
    with pytest.raises(SourceNotEmpty, match="--reset"):
        seed(volt_env, reset=False, seed=1)
    assert table_digests(volt_env) == digests
    # --reset drops and recreates: a different seed replaces the shop entirely.
    seed(volt_env, reset=True, seed=1)
    assert table_digests(volt_env) != digests


# --- the command -----------------------------------------------------------------------------


def run_cli(volt_env, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **volt_env.env, **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "volt_assets.cli.main", "seed", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_seeds_prints_a_summary_and_never_the_password(volt_env, tmp_path):
    password = volt_env.env["POSTGRES_PASSWORD"]
    assert password
    # Pretend the embedded stack configured this database: the seed records the window start.
    state = Path(volt_env.env["VOLT_STATE_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    (state / "stack.env").write_text(
        "".join(
            f"{k}={volt_env.env[k]}\n" for k in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB")
        ),
        encoding="utf-8",
    )

    args = [
        "--components",
        "120",
        "--users",
        "40",
        "--orders",
        "200",
        "--days",
        "3",
        "--end-date",
        "2026-01-14",
    ]
    done = run_cli(volt_env, *args, extra_env={"VOLT_USE_STACK": "1"})
    assert done.returncode == 0, done.stderr
    for table in SOURCE_TABLES:
        assert table in done.stdout
    assert "2026-01-12" in done.stdout and "pictures" in done.stdout
    assert parse_env_file(state / "stack.env")["VOLT_PARTITIONS_START"] == "2026-01-12"
    assert scalar(volt_env, "SELECT count(*) FROM users") == 40

    again = run_cli(volt_env, *args)
    assert again.returncode == 2 and "--reset" in again.stderr
    for result in (done, again):
        assert password not in result.stdout + result.stderr


def test_cli_refuses_bad_arguments_and_hides_the_password_in_errors(volt_env, capsys, monkeypatch):
    # In process (the subprocess path is covered above): exit codes and messages only.
    from volt_assets.cli.main import main

    assert main(["seed", "--dirty-rate", "1.5"]) == 2
    assert "dirty rate" in capsys.readouterr().err
    monkeypatch.setenv("POSTGRES_DB", "no_such_database")
    assert main(["seed", "--components", "10"]) == 1
    printed = capsys.readouterr()
    assert "no_such_database" in printed.err
    assert volt_env.env["POSTGRES_PASSWORD"] not in printed.out + printed.err


@pytest.mark.skipif(
    not os.environ.get("VOLT_SEED_BENCH"),
    reason="set VOLT_SEED_BENCH=1 to time a 1M-component seed",
)
def test_a_million_components_seed_in_under_a_minute(volt_env):
    report = seed(volt_env, components=1_000_000, users=1000, orders=1000, images=False)
    assert report.rows["electrical_components"] > 950_000
    assert report.seconds < 60
