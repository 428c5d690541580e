"""`volt-assets seed`: generate the Volt demo shop into the source database.

A thin command over `volt_assets.seeding` (see there for what is generated). Connects with
POSTGRES_HOST/PORT/DB/USER/PASSWORD; the password is never printed. Exit codes: 0 seeded,
2 refused (tables already hold rows and no --reset, or bad arguments), 1 database error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

from volt_assets.seeding import SeedOptions, SeedReport, SourceNotEmpty, seed_shop
from volt_assets.settings import mask_dsn, read_stack_env, stack_env_path, update_stack_env

DEFAULTS = SeedOptions()


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="same seed, same shop (default %(default)s)"
    )
    parser.add_argument(
        "--components",
        type=int,
        default=DEFAULTS.components,
        help="components ever created; about 2%% are hard-deleted again (default %(default)s)",
    )
    parser.add_argument(
        "--users", type=int, default=DEFAULTS.users, help="customers (default %(default)s)"
    )
    parser.add_argument(
        "--orders",
        type=int,
        default=DEFAULTS.orders,
        help="orders ever placed; about 1.5%% are hard-deleted again (default %(default)s)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=DEFAULTS.days,
        help="length of the window in days (default %(default)s)",
    )
    parser.add_argument(
        "--dirty-rate",
        type=float,
        default=DEFAULTS.dirty_rate,
        help="share of rows with one kind of dirt, 0..1 (default %(default)s)",
    )
    parser.add_argument(
        "--end-date",
        type=_date,
        default=None,
        help="last day of the window, YYYY-MM-DD (default: yesterday, UTC)",
    )
    parser.add_argument(
        "--images",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS.images,
        help="write component pictures to VOLT_IMAGES_DIR (default: on; skipped above 50,000 components)",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="drop and recreate the three source tables first (without it, refuse if they hold rows)",
    )


def connect():
    import psycopg2

    return psycopg2.connect(
        host=os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        port=os.environ.get("POSTGRES_PORT", "5432"),
        dbname=os.environ.get("POSTGRES_DB", "volt"),
        user=os.environ.get("POSTGRES_USER", "postgres"),
        password=os.environ.get("POSTGRES_PASSWORD", ""),
        application_name="volt_assets seed",
        connect_timeout=10,
    )


def where() -> str:
    """The database as a user may see it: no password."""
    return (
        f"postgresql://{os.environ.get('POSTGRES_USER', 'postgres')}@{os.environ.get('POSTGRES_HOST', '127.0.0.1')}"
        f":{os.environ.get('POSTGRES_PORT', '5432')}/{os.environ.get('POSTGRES_DB', 'volt')}"
    )


def _safe(text: str) -> str:
    """An error message with any password masked (and the literal one removed)."""
    text = mask_dsn(text)
    password = os.environ.get("POSTGRES_PASSWORD")
    return text.replace(password, "***") if password else text


def uses_stack() -> bool:
    """Whether this run seeded the embedded stack's database (not a server the user configured)."""
    if os.environ.get("VOLT_USE_STACK", "1") == "0" or not stack_env_path().is_file():
        return False
    stack = read_stack_env()
    return all(
        os.environ.get(k) == stack.get(k) for k in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB")
    )


def summary(report: SeedReport) -> str:
    lines = [
        f"seeded {where()} in {report.seconds:.1f} s",
        f"  window     {report.window_start} .. {report.window_end} (UTC, inclusive)",
    ]
    for table, rows in report.rows.items():
        dirty = report.dirty_rows(table)
        share = f"{dirty / rows:.1%}" if rows else "-"
        lines.append(
            f"  {table:<22} {rows:>9,} rows  {dirty:>7,} dirty ({share})"
            f"  {report.hard_deleted.get(table, 0):>6,} hard-deleted"
        )
    pics = report.pictures
    if pics.skipped_reason:
        lines.append(f"  pictures   {pics.skipped_reason}")
    else:
        lines.append(
            f"  pictures   {pics.written:,} written to {report.images_dir}, {pics.not_images:,} not images, "
            f"{pics.missing:,} missing, {pics.refused:,} unsafe names never written"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    options = SeedOptions(
        seed=args.seed,
        components=args.components,
        users=args.users,
        orders=args.orders,
        days=args.days,
        dirty_rate=args.dirty_rate,
        end_date=args.end_date,
        images=args.images,
        reset=args.reset,
    )
    try:
        options.validate()
    except ValueError as exc:
        print(f"volt-assets seed: {exc}", file=sys.stderr)
        return 2
    import psycopg2

    try:
        conn = connect()
    except psycopg2.Error as exc:
        print(
            f"volt-assets seed: cannot connect to {where()}: {_safe(str(exc).strip())}",
            file=sys.stderr,
        )
        return 1
    print(
        f"seeding {where()}: {options.components:,} components, {options.users:,} users, "
        f"{options.orders:,} orders over {options.days} days",
        flush=True,
    )
    try:
        report = seed_shop(
            conn, options, progress=lambda message: print(f"  {message}", flush=True)
        )
    except SourceNotEmpty as exc:
        print(f"volt-assets seed: refused: {exc}", file=sys.stderr)
        return 2
    except psycopg2.Error as exc:
        print(f"volt-assets seed: database error: {_safe(str(exc).strip())}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if uses_stack():
        # The pipeline's first daily partition follows the seeded window.
        update_stack_env(VOLT_PARTITIONS_START=report.window_start.isoformat())
    print(summary(report))
    return 0
