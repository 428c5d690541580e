"""Errors no retry can fix end the run at once, with a message that says what to fix and holds
no secret.

Each case materialises `raw/orders` (extraction from PostgreSQL, then the lake on S3) in a
forked child (`runs.run_in_child`) that reports the first scheduled step retry as a failure:
a permanent error must fail the step on its first attempt, not after the retry policy's
backoff (5 s, 10 s, 20 s ...), and the run must be over within FAIL_FAST_SECONDS.

| case                     | how it is made                                          | the message names  |
| ------------------------ | ------------------------------------------------------- | ------------------ |
| wrong S3 secret key      | an S3 endpoint that checks SigV4 (moto with IAM auth)   | AWS_SECRET_ACCESS_KEY |
| unknown S3 access key    | the same endpoint, a key it never issued                | AWS_ACCESS_KEY_ID  |
| missing bucket           | S3_BUCKET_NAME of a bucket that does not exist          | S3_BUCKET_NAME     |
| missing source table     | a database without the Volt schema                      | POSTGRES_DB, seed  |
| wrong PostgreSQL password| POSTGRES_PASSWORD not the role's                        | POSTGRES_PASSWORD  |
| missing database         | POSTGRES_DB of a database that does not exist           | POSTGRES_DB        |
| renamed cursor column    | the app renames orders.updated_at to changed_at         | updated_at, yaml   |
"""

from __future__ import annotations

import pytest

from volt_assets_tests.faults.env import authenticating_s3
from volt_assets_tests.faults.runs import run_in_child
from volt_assets_tests.pipeline import create_source_schema, insert, ts

DAY = "2026-01-02"
FAIL_FAST_SECONDS = 20
WRONG_SECRET = "wrong-secret-Zq7v9XkP2mLw"  # distinctive: searched for in every message
WRONG_PASSWORD = "wrong-password-Hb4nT8sR1cYe"


@pytest.fixture
def shop(volt_env):
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(
        conn,
        "orders",
        [
            {
                "id": 1,
                "user_id": 1,
                "component_id": 1,
                "quantity": 2,
                "unit_price": "9.99",
                "currency": "EUR",
                "status": "paid",
                "payment_method": "card",
                "ordered_at": ts(f"{DAY} 10:00"),
                "updated_at": ts(f"{DAY} 10:01"),
            },
        ],
    )
    conn.close()
    return volt_env


@pytest.fixture(scope="module")
def auth_s3(tmp_path_factory):
    with authenticating_s3(tmp_path_factory.mktemp("auth-s3") / "s3.log") as auth:
        yield auth


def fails_fast(env: dict[str, str], *hints: str, secrets: tuple[str, ...] = ()) -> str:
    """Run raw/orders for DAY with `env`; assert it failed at once and said what to fix."""
    outcome = run_in_child(["raw/orders"], DAY, env, deadline=FAIL_FAST_SECONDS + 10)
    text = "\n".join(outcome["texts"])
    assert not outcome["success"], outcome
    assert not outcome["timed_out"], f"still running after {outcome['seconds']:.0f}s"
    assert not outcome["retried"], (
        f"a step retry was scheduled for an error no retry can fix: {text}"
    )
    assert outcome["seconds"] < FAIL_FAST_SECONDS, outcome["seconds"]
    for hint in hints:
        assert hint in text, (hint, text)
    for secret in secrets:
        assert secret not in text
    return text


def test_wrong_s3_secret_key(shop, auth_s3):
    env = {
        "AWS_ENDPOINT_URL": auth_s3.url,
        "S3_BUCKET_NAME": auth_s3.bucket,
        "AWS_ACCESS_KEY_ID": auth_s3.key_id,
        "AWS_SECRET_ACCESS_KEY": WRONG_SECRET,
    }
    fails_fast(
        env,
        "AWS_SECRET_ACCESS_KEY",
        "SignatureDoesNotMatch",
        secrets=(WRONG_SECRET, auth_s3.secret),
    )


def test_unknown_s3_access_key(shop, auth_s3):
    env = {
        "AWS_ENDPOINT_URL": auth_s3.url,
        "S3_BUCKET_NAME": auth_s3.bucket,
        "AWS_ACCESS_KEY_ID": "VOLTNOSUCHKEY0000000",
        "AWS_SECRET_ACCESS_KEY": WRONG_SECRET,
    }
    fails_fast(env, "AWS_ACCESS_KEY_ID", "InvalidAccessKeyId", secrets=(WRONG_SECRET,))


def test_the_right_keys_on_the_same_endpoint_work(shop, auth_s3):
    """The endpoint above refuses only wrong credentials (so the two tests prove something)."""
    env = {
        "AWS_ENDPOINT_URL": auth_s3.url,
        "S3_BUCKET_NAME": auth_s3.bucket,
        "AWS_ACCESS_KEY_ID": auth_s3.key_id,
        "AWS_SECRET_ACCESS_KEY": auth_s3.secret,
    }
    outcome = run_in_child(["raw/orders"], DAY, env, deadline=60)
    assert outcome["success"], outcome


def test_missing_bucket(shop):
    fails_fast(
        {"S3_BUCKET_NAME": "volt-no-such-bucket-4711"},
        "S3_BUCKET_NAME",
        "does not exist",
        "volt-no-such-bucket-4711",
    )


def test_missing_source_table(volt_env):
    """A database without the Volt schema (POSTGRES_DB pointing at the wrong database)."""
    fails_fast({}, "'orders' does not exist", "POSTGRES_DB", "volt-assets seed")


def test_wrong_postgres_password(shop, pg_server):
    text = fails_fast(
        {"POSTGRES_PASSWORD": WRONG_PASSWORD},
        "password authentication failed",
        "POSTGRES_PASSWORD",
        secrets=(WRONG_PASSWORD, pg_server.password),
    )
    assert f"postgresql://{pg_server.user}@" in text  # where, without a password


def test_missing_database(shop):
    fails_fast(
        {"POSTGRES_DB": "volt_no_such_db"}, "volt_no_such_db", "does not exist", "POSTGRES_DB"
    )


def test_renamed_cursor_column(shop):
    """The app's migration renamed the cursor: no UndefinedColumn after three retries, but one
    message naming the table, the column, its likely new name and tables.yaml."""
    conn = shop.connect()
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE orders RENAME COLUMN updated_at TO changed_at")
    conn.commit()
    conn.close()
    text = fails_fast(
        {}, "source table 'orders'", "cursor column `updated_at`", "`changed_at`", "tables.yaml"
    )
    assert "UndefinedColumn" not in text
