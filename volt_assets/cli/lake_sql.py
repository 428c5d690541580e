"""`volt-assets lake sql "SELECT ..."`: query the lake with DuckDB, embedded stack or AWS alike.

DuckDB reads `s3://` through the same settings as the pipeline (AWS_ENDPOINT_URL,
AWS_DEFAULT_REGION, the AWS_* credentials, else the AWS SDK's default chain): pyarrow's
S3 filesystem is registered in DuckDB for the `s3://` scheme, path-style for an endpoint of
its own (MinIO, the embedded stack), virtual-hosted on AWS. So it needs no DuckDB extension
download (httpfs), and the README's `read_parquet('s3://...')` works as written.

A query may also name a layer's table as `staging.orders`, `quarantine.users`,
`mart.daily_category_sales`, `raw.orders` (JSON Lines) or `staging.uploads_orders` (the
landing sensor's files): each such name becomes a view over the table's day folders, with
`dt` from the folder names. `volt-assets lake duckdb-setup` prints the statements that give a
DuckDB of the user's own (with httpfs) the same access.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from volt_assets.settings import stack_down_hint

LAYERS = ("raw", "staging", "quarantine", "mart")
# `layer.table` in a query: the views to create (only those named, so a query costs no more).
TABLE_NAME = re.compile(
    r"\b(raw|staging|quarantine|mart)\s*\.\s*([a-z_][a-z0-9_]*)\b", re.IGNORECASE
)
FORMATS = ("table", "csv", "json")


def arrow_s3(env: Mapping[str, str]) -> Any:
    """pyarrow's S3 filesystem on the pipeline's endpoint, region and credentials."""
    from pyarrow.fs import S3FileSystem

    options: dict[str, Any] = {"region": env.get("AWS_DEFAULT_REGION") or None}
    endpoint = env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        # With an endpoint of its own pyarrow addresses buckets path-style, as MinIO needs.
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:  # else the AWS SDK's chain: profile, SSO, instance role
        options.update(
            access_key=key, secret_key=secret, session_token=env.get("AWS_SESSION_TOKEN") or None
        )
    return S3FileSystem(**options)


def connect(env: Mapping[str, str] | None = None) -> Any:
    """A DuckDB connection that reads `s3://` from the configured lake endpoint."""
    import duckdb
    from fsspec.implementations.arrow import ArrowFSWrapper

    class LakeS3(ArrowFSWrapper):
        protocol = "s3"  # DuckDB hands `s3://...` paths to a registered filesystem of this name

    con = duckdb.connect()
    con.register_filesystem(LakeS3(arrow_s3(os.environ if env is None else env)))
    return con


def table_glob(bucket: str, layer: str, table: str) -> str:
    """The day files of one table of a layer (`uploads_x` = the landing sensor's files of x)."""
    folder = f"uploads/{table.removeprefix('uploads_')}" if table.startswith("uploads_") else table
    pattern = "*.jsonl*" if layer == "raw" else "*.parquet"
    return f"s3://{bucket}/{layer}/{folder}/*/{pattern}"


def view_sql(bucket: str, layer: str, table: str) -> str:
    glob = table_glob(bucket, layer, table).replace("'", "''")
    if layer == "raw":
        source = f"read_json('{glob}', format = 'newline_delimited', hive_partitioning = true)"
    else:
        source = f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
    return f'CREATE OR REPLACE VIEW "{layer}"."{table}" AS SELECT * FROM {source}'


def create_views(con: Any, bucket: str, query: str) -> None:
    """A view per `layer.table` the query names (see the module doc)."""
    for layer, table in sorted({(m[0].lower(), m[1].lower()) for m in TABLE_NAME.findall(query)}):
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
        try:
            con.execute(view_sql(bucket, layer, table))
        except Exception as exc:  # duckdb.IOException and friends: no files, no bucket
            raise LakeQueryError(
                f"{layer}.{table}: nothing readable at "
                f"{table_glob(bucket, layer, table)} ({first_line(exc)})"
            ) from None


class LakeQueryError(Exception):
    """A query the lake cannot answer; the message is safe to print."""


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def query_lake(sql: str, env: Mapping[str, str] | None = None) -> tuple[list[str], list[tuple]]:
    """Column names and rows of `sql` run on the lake."""
    env = os.environ if env is None else env
    con = connect(env)
    try:
        create_views(con, env.get("S3_BUCKET_NAME") or "volt-data-lake", sql)
        try:
            cursor = con.execute(sql)
        except Exception as exc:
            raise LakeQueryError(first_line(exc)) from None
        names = [d[0] for d in cursor.description or []]
        return names, cursor.fetchall()
    finally:
        con.close()


def _text(value: Any, null: str = "NULL") -> str:
    """A cell as text: lists and structs as JSON, dates and decimals as DuckDB prints them."""
    if value is None:
        return null
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def align(text: str, width: int, right: bool) -> str:
    return text.rjust(width) if right else text.ljust(width)


def format_rows(names: list[str], rows: Iterable[tuple], fmt: str) -> list[str]:
    """The lines to print: an aligned table, CSV, or one JSON object a row."""
    rows = list(rows)
    if fmt == "json":
        return [json.dumps(dict(zip(names, row)), default=str) for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([_text(v, null="") for v in row] for row in rows)
        return out.getvalue().splitlines()
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    # Numbers right-aligned, as SQL shells print them.
    right = [
        bool(rows) and all(isinstance(r[i], (int, float, Decimal)) or r[i] is None for r in rows)
        for i in range(len(names))
    ]
    lines = [
        "  ".join(align(n, w, r) for n, w, r in zip(names, widths, right)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += [
        "  ".join(align(c, w, r) for c, w, r in zip(row, widths, right)).rstrip() for row in cells
    ]
    lines.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
    return lines


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_setup(env: Mapping[str, str], show_secret: bool = False) -> list[str]:
    """The statements that let a DuckDB with httpfs read this lake (the secret masked unless
    asked for or the embedded stack's public dummy)."""
    from volt_assets.settings import S3_DUMMY_KEY

    options = [f"REGION {sql_literal(env.get('AWS_DEFAULT_REGION') or 'us-east-1')}"]
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        shown = secret if show_secret or secret == S3_DUMMY_KEY else "<AWS_SECRET_ACCESS_KEY>"
        options[:0] = [f"KEY_ID {sql_literal(key)}", f"SECRET {sql_literal(shown)}"]
        if env.get("AWS_SESSION_TOKEN"):
            options.append(
                "SESSION_TOKEN "
                + sql_literal(env["AWS_SESSION_TOKEN"] if show_secret else "<AWS_SESSION_TOKEN>")
            )
    else:
        options.insert(0, "PROVIDER credential_chain")
    endpoint = env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        options += [
            f"ENDPOINT {sql_literal(parts.netloc)}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if parts.scheme == 'https' else 'false'}",
        ]
    return [
        "INSTALL httpfs;",
        "LOAD httpfs;",
        "CREATE OR REPLACE SECRET volt_lake (TYPE s3, " + ", ".join(options) + ");",
    ]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lake_command", required=True, metavar="ACTION")
    sql = sub.add_parser(
        "sql",
        help="run a DuckDB query on the lake and print its rows",
        description=__doc__.split("\n\n")[1],
    )
    sql.add_argument(
        "query",
        metavar="QUERY",
        help="DuckDB SQL; s3:// paths and layer.table names (staging.orders) read the lake",
    )
    sql.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (aligned, default), csv, or json (one object a line)",
    )
    setup = sub.add_parser(
        "duckdb-setup", help="print the statements for a DuckDB of your own (httpfs)"
    )
    setup.add_argument(
        "--show-secret",
        action="store_true",
        help="print AWS_SECRET_ACCESS_KEY itself instead of a placeholder",
    )


def run(args: argparse.Namespace) -> int:
    if args.lake_command == "duckdb-setup":
        print("\n".join(duckdb_setup(os.environ, args.show_secret)))
        return 0
    # At once, not after DuckDB's retries, and not as "nothing readable" (an empty lake).
    down = stack_down_hint(endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    if down:
        print(f"volt-assets lake sql: {down}", file=sys.stderr)
        return 1
    try:
        names, rows = query_lake(args.query)
    except LakeQueryError as exc:
        print(f"volt-assets lake sql: {exc}", file=sys.stderr)
        return 1
    for line in format_rows(names, rows, args.format):
        print(line)
    return 0
