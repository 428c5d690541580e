"""`volt-assets lake sql`: the lake queried with DuckDB on the embedded stack's S3 endpoint
(the suite's moto server over HTTP), the query of docs/lake.md as written."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from volt_assets.cli import main as cli
from volt_assets.cli.lake_sql import duckdb_setup
from volt_assets_tests.pipeline import insert, materialize, root, ts

VOLT_ASSETS = str(Path(sys.executable).parent / "volt-assets")


def order(id_: int, updated: str, quantity: int = 2) -> dict:
    return {
        "id": id_,
        "user_id": 1,
        "component_id": 1,
        "quantity": quantity,
        "unit_price": "5.00",
        "currency": "EUR",
        "status": "paid",
        "payment_method": "card",
        "ordered_at": ts(updated),
        "updated_at": ts(updated),
    }


def readme_duckdb_query() -> str:
    text = (root() / "docs" / "lake.md").read_text(encoding="utf-8")
    block = re.search(r"```sql\n-- DuckDB\n(SELECT .*?)\n```", text, re.DOTALL)
    assert block, "docs/lake.md lost its DuckDB query"
    return block.group(1)


def lake_sql(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VOLT_ASSETS, "lake", "sql", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_lake_answers_the_readmes_query_and_layer_views(source, volt_env, capsys):
    # 20 valid orders and one refused on 2026-01-02 (under the 5 % gate), 3 on 2026-01-03.
    insert(
        source,
        "orders",
        [order(i, "2026-01-02 08:00") for i in range(1, 21)]
        + [order(21, "2026-01-02 09:00", quantity=0)]
        + [order(i, "2026-01-03 10:00") for i in (22, 23, 24)],
    )
    assert materialize(["raw/orders", "staging/orders"], ("2026-01-02", "2026-01-03")).success

    query = readme_duckdb_query()
    assert "read_parquet('s3://volt-data-lake/staging/orders/*/*.parquet'" in query
    done = lake_sql(query.replace("volt-data-lake", volt_env.bucket).rstrip(";"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "dt          count_star()",
        "----------  ------------",
        "2026-01-02            20",
        "2026-01-03             3",
        "(2 rows)",
    ]

    assert (
        cli.main(
            [
                "lake",
                "sql",
                "--format",
                "json",
                "SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM staging.orders",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"n": 23, "lo": 1, "hi": 24}
    assert (
        cli.main(
            ["lake", "sql", "--format", "csv", "SELECT id, _reasons, dt FROM quarantine.orders"]
        )
        == 0
    )
    assert list(csv.reader(capsys.readouterr().out.splitlines())) == [
        ["id", "_reasons", "dt"],
        ["21", "[\"quantity: not positive: '0'\"]", "2026-01-02"],
    ]
    assert (
        cli.main(
            [
                "lake",
                "sql",
                "--format",
                "json",
                "SELECT dt, count(*) AS n FROM raw.orders GROUP BY dt ORDER BY dt",
            ]
        )
        == 0
    )
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [
        {"dt": "2026-01-02", "n": 21},
        {"dt": "2026-01-03", "n": 3},
    ]


def test_a_table_the_lake_lacks_is_named_in_the_error(volt_env):
    done = lake_sql("SELECT * FROM staging.nothing_here")
    assert done.returncode == 1
    assert done.stdout == ""
    assert (
        f"staging.nothing_here: nothing readable at s3://{volt_env.bucket}/staging/nothing_here/*/*.parquet"
        in done.stderr
    )


def test_duckdb_setup_for_the_embedded_stack_and_for_aws(volt_env):
    endpoint = volt_env.env["AWS_ENDPOINT_URL"].removeprefix("http://")
    assert duckdb_setup(volt_env.env) == [
        "INSTALL httpfs;",
        "LOAD httpfs;",
        "CREATE OR REPLACE SECRET volt_lake (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
        f"REGION 'eu-central-1', ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false);",
    ]
    real = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-for-tests",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    assert duckdb_setup(real)[2] == (
        "CREATE OR REPLACE SECRET volt_lake (TYPE s3, KEY_ID 'AKIAEXAMPLE', "
        "SECRET '<AWS_SECRET_ACCESS_KEY>', REGION 'eu-west-1');"
    )
    assert "SECRET 's3cr3t-for-tests'" in duckdb_setup(real, show_secret=True)[2]
    assert duckdb_setup({"AWS_DEFAULT_REGION": "eu-west-1"})[2] == (
        "CREATE OR REPLACE SECRET volt_lake (TYPE s3, PROVIDER credential_chain, REGION 'eu-west-1');"
    )
