"""Secrets stay secret: the pipeline runs with known, distinctive secret values and nothing it
leaves behind holds them; and the repository holds no credentials.

Searched for the secrets (a PostgreSQL role's password, AWS_SECRET_ACCESS_KEY, VOLT_API_TOKEN,
and the wrong password of a failing run):
- every file the Dagster instance wrote (event log and run storage, captured stdout/stderr of
  the steps), and every entry of `instance.all_logs` serialised, with its run (config, tags);
- what the process printed (Dagster's console log) and the `dagster` CLI's stdout/stderr;
- the failure texts of deliberately failing runs (wrong password; a MARTS_DATABASE_URL with a
  password in it) and the run-failure alert built for them;
- every object of the lake bucket.
DSNs shown anywhere have no password (`postgresql://user@host:port/db` or `user:***@`).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import dagster as dg
import pytest
from psycopg2 import sql

from volt_assets.defs.operations.alerts import failure_alert
from volt_assets.devstack import stack
from volt_assets_tests.faults.runs import CliRun, error_texts
from volt_assets_tests.pipeline import create_source_schema, insert, materialize, ts

DAY = "2026-01-02"
ROLE = "volt_secret_role"
PG_PASSWORD = "Pg-pass-for-tests-Qx81vLz"  # distinctive, so a hit is never a coincidence
AWS_SECRET = "aws-secret-for-tests-7TfR2kWq9mN3"
API_TOKEN = "api-token-for-tests-Jd62hPs0"
WRONG_PASSWORD = "wrong-pass-for-tests-Vc40eRu5"
SECRETS = (PG_PASSWORD, AWS_SECRET, API_TOKEN, WRONG_PASSWORD)
# a DSN or URL with a password in it: scheme://user:password@ (a masked one shows `***`)
DSN_WITH_PASSWORD = re.compile(
    r"[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:(?!\*\*\*@)[^\s@'\"]+@", re.IGNORECASE
)


def leaks(text: str) -> list[str]:
    found = [f"secret {s[:8]}..." for s in SECRETS if s in text]
    found += [f"DSN with a password: {m.group(0)[:40]}" for m in DSN_WITH_PASSWORD.finditer(text)]
    return found


@pytest.fixture
def secret_env(volt_env, pg_server, monkeypatch):
    """The test database owned by a role with a distinctive password; the pipeline uses that
    role, a distinctive AWS secret (moto accepts any) and an API token."""
    with pg_server.admin_cursor() as cur:
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        cur.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PG_PASSWORD)
            )
        )
        cur.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(volt_env.dbname), sql.Identifier(ROLE)
            )
        )
    values = {
        "POSTGRES_USER": ROLE,
        "POSTGRES_PASSWORD": PG_PASSWORD,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "VOLT_API_TOKEN": API_TOKEN,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    import psycopg2

    conn = psycopg2.connect(
        host=pg_server.host,
        port=pg_server.port,
        dbname=volt_env.dbname,
        user=ROLE,
        password=PG_PASSWORD,
    )
    create_source_schema(conn)
    insert(
        conn,
        "electrical_components",
        [
            {
                "id": 1,
                "sku": "S-1",
                "name": "Fuse",
                "category": "fuses",
                "price": "2.00",
                "currency": "EUR",
                "created_at": ts("2026-01-01 00:00"),
                "updated_at": ts(f"{DAY} 10:00"),
            }
        ],
    )
    insert(
        conn,
        "users",
        [
            {
                "id": 1,
                "email": "a@example.com",
                "created_at": ts("2026-01-01 00:00"),
                "updated_at": ts(f"{DAY} 10:00"),
            }
        ],
    )
    insert(
        conn,
        "orders",
        [
            {
                "id": 1,
                "user_id": 1,
                "component_id": 1,
                "quantity": 2,
                "unit_price": "2.00",
                "currency": "EUR",
                "status": "paid",
                "ordered_at": ts(f"{DAY} 09:00"),
                "updated_at": ts(f"{DAY} 10:00"),
            }
        ],
    )
    conn.close()
    yield {**volt_env.env, **values}
    stack.drop_database(pg_server, volt_env.dbname)  # the role owns it: drop it before the role
    with pg_server.admin_cursor() as cur:
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def every_key() -> list[str]:
    from volt_assets.definitions import build_definitions

    return sorted(
        k.to_user_string()
        for k in build_definitions().resolve_all_asset_keys()
        if k.path[0] in ("raw", "staging", "marts", "images")
    )


def instance_texts(instance: dg.DagsterInstance, root: Path) -> dict[str, str]:
    """Everything the instance holds: each file under its folder, each event and run serialised."""
    from dagster._serdes import serialize_value

    texts = {
        str(p): p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()
    }
    for run in instance.get_runs():
        texts[f"run {run.run_id}"] = serialize_value(run)
        texts[f"events {run.run_id}"] = "\n".join(
            serialize_value(e) for e in instance.all_logs(run.run_id)
        )
    return texts


def test_a_whole_run_and_failing_runs_never_show_a_secret(
    secret_env, volt_env, tmp_path, capfd, monkeypatch
):
    home = tmp_path / "instance"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        ok = materialize(every_key(), DAY, instance=instance)
        assert ok.success
        materialized = {e.asset_key.to_user_string() for e in ok.get_asset_materialization_events()}
        assert {
            "raw/orders",
            "staging/orders",
            "marts/users_mart",
            "images/component_images",
        } <= materialized

        monkeypatch.setenv("POSTGRES_PASSWORD", WRONG_PASSWORD)
        wrong = materialize(["raw/orders"], DAY, instance=instance, raise_on_error=False)
        monkeypatch.setenv("POSTGRES_PASSWORD", PG_PASSWORD)
        url = f"postgresql://{ROLE}:{WRONG_PASSWORD}@127.0.0.1:{secret_env['POSTGRES_PORT']}/{volt_env.dbname}"
        monkeypatch.setenv("MARTS_DATABASE_URL", url)
        marts_url = materialize(["marts/users_mart"], DAY, instance=instance, raise_on_error=False)
        monkeypatch.delenv("MARTS_DATABASE_URL")

        failures = []
        for result in (wrong, marts_url):
            assert not result.success
            for event in result.all_events:
                if event.event_type_value == "STEP_FAILURE":
                    failures += error_texts(event.step_failure_data.error)
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert",
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=result.get_run_failure_event(),
            ).for_run_failure()
            failures.append(repr(failure_alert(context)))
        failure_text = "\n".join(failures)
        # the failures say what went wrong, where, with the DSN masked
        assert "password authentication failed" in failure_text
        assert (
            f"postgresql://{ROLE}@127.0.0.1:" in failure_text
            and f"{ROLE}:***@127.0.0.1" in failure_text
        )
        texts = instance_texts(instance, home)

    captured = capfd.readouterr()
    texts["stdout"], texts["stderr"] = captured.out, captured.err
    texts["failures"] = failure_text
    for key in volt_env.list_keys():
        texts[f"s3://{key}"] = volt_env.read_object(key).decode("utf-8", "replace")
    assert any("LOGS_CAPTURED" in t for t in texts.values())  # the searched texts are the real logs
    assert f"postgresql://{ROLE}@" in "\n".join(texts.values())  # DSNs are shown, masked
    found = {where: leaks(text) for where, text in texts.items() if leaks(text)}
    assert found == {}


def test_the_dagster_cli_never_prints_a_secret(secret_env, tmp_path):
    """What a user sees: `dagster asset materialize` failing on a wrong password."""
    run = CliRun(
        {**secret_env, "POSTGRES_PASSWORD": WRONG_PASSWORD}, ["raw/orders"], DAY, tmp_path / "cli"
    ).start()
    assert run.wait(180) != 0
    output = run.output
    assert "password authentication failed" in output and "POSTGRES_PASSWORD" in output
    assert leaks(output) == []
    home = Path(secret_env["DAGSTER_HOME"])
    files = {
        str(p): p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file()
    }
    assert {p: leaks(t) for p, t in files.items() if leaks(t)} == {}


# --- the repository ---------------------------------------------------------------------------------

# Credentials as literals in tracked files. Placeholders are fine: `...`, `***`, empty, a
# variable or template (`$X`, `${X}`, `{x}`, `<x>`), and values that say they are not real
# (the tests' deliberately fake secrets say so: `...-for-tests-...`, `wrong-...`).
PATTERNS = {
    "AWS access key id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    "AWS secret access key": re.compile(
        r"(?i)aws_secret_access_key\W{0,3}[=:][ \t]*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
    ),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token or webhook": re.compile(
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/T[A-Za-z0-9/]+"
    ),
    "password in a URL": re.compile(
        r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@\"'<>]+:(?P<value>[^\s@/\"'<>]+)@"
    ),
}
# NAME = "value" / NAME: value / "NAME": "value", NAME a password-like name (not `..._name`, `..._file`)
SECRET_NAME = r"\b[\w.-]*(?:password|passwd|pwd|secret|token)(?![\w.-]*(?:name|ref|file|path|_id|variable|var|env)\b)[\w.-]*\b"  # noqa: E501
QUOTED_LITERAL = re.compile(
    rf"(?i){SECRET_NAME}[\"']?[ \t]*[:=][ \t]*(?P<q>[\"'])(?P<value>[^\"'\n]*)(?P=q)"
)
BARE_LITERAL = re.compile(rf"(?i){SECRET_NAME}[\"']?[ \t]*[:=][ \t]*(?P<value>[^\s\"'#,;)]+)")
# A value that says it is not real says so in a word of its own (`wrong-secret-...`,
# `...-for-tests-...`, `a@example.com`), not as a stem inside a word (`Testing2024!` is a password).
NOT_REAL = r"example|dummy|placeholder|for-tests|for-alerts|not-for|never|wrong|fake|testing"
PLACEHOLDER = re.compile(
    r"^$|^(\*+|x+|none|null|true|false|from-secret|change-?me|redacted|secret|password|pass)$|\.\.\.|…|\*\*\*"
    rf"|^[$%<{{(\[]|\$\{{|(?:^|[-_.@/:])(?:{NOT_REAL})(?:$|[-_.@/:])",
    re.IGNORECASE,
)
# In Python a bare value after `NAME=` that is a variable, a constant, an attribute or a call is
# code; anything else is judged (a value written inside a longer string, or a mixed-case word).
PY_NAME = re.compile(
    r"(?:[a-z_][a-z0-9_]*|[A-Z_][A-Z0-9_]*|[A-Za-z_]\w*(?:\.\w+)+|[A-Za-z_][\w.]*[(\[].*)$"
)


def credential_hits(path: str, text: str) -> list[str]:
    """Credential-looking literals in a file's text (code: quoted literals only; config, docs and
    scripts: bare values too)."""
    patterns = dict(PATTERNS)
    patterns["password literal"] = QUOTED_LITERAL
    patterns["password value"] = BARE_LITERAL
    python = path.endswith(".py")
    hits = []
    for kind, pattern in patterns.items():
        for match in pattern.finditer(text):
            value = match.groupdict().get("value")
            if value is not None and (
                PLACEHOLDER.search(value) or not re.search(r"[A-Za-z0-9]", value)
            ):
                continue
            if python and kind == "password value" and PY_NAME.match(value.rstrip("}]`")):
                continue  # a variable, an attribute or a call: code
            if kind == "password value" and QUOTED_LITERAL.match(match.group(0)):
                continue  # judged as a quoted literal
            line = text.count("\n", 0, match.start()) + 1
            hits.append(f"{path}:{line}: {kind}: {match.group(0)[:60]!r}")
    return hits


def test_the_patterns_catch_real_looking_credentials():
    key_id = "AKIA" + "Q7ZX" * 4  # built here so this file holds none
    samples = [
        f"aws_access_key_id = {key_id}",
        "AWS_SECRET_ACCESS_KEY=" + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "0123456789",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "-----BEGIN OPENSSH " + "PRIVATE KEY-----",
        "POSTGRES_PASS" + "WORD=s3cr3t-Prod-2024",
        "password" + ' = "hunter42!"',
        "url = 'postgresql://volt:" + "R3alPass@db.internal:5432/volt'",
        "gh" + "p_" + "a" * 36,
    ]
    for sample in samples:
        assert credential_hits("sample.env", sample), sample
    assert credential_hits("code.py", "DB_PASS" + 'WORD = "Pr0d-' + 'Passw0rd!"')
    assert credential_hits(
        "sample.env", "POSTGRES_" + "PASSWORD=Testing" + "2024!"
    )  # a stem is not a word
    assert credential_hits("code.py", "PG_" + "PASSWORD = Testing" + "2024")  # unquoted in code
    assert credential_hits("code.py", 'env = "POSTGRES_PASS' + 'WORD=s3cr3t-Prod-2024 other=1"')
    for fine in [
        "password=pg_server.password",
        "password=self.password,",
        "token=make_token(user)",
        'password = "wrong-password-Hb4nT8sR1cYe"',
        'TOKEN = "t0ken-for-tests-5b1f0c"',
    ]:
        assert credential_hits("code.py", fine) == [], fine
    for fine in [
        "POSTGRES_PASSWORD=...",
        'password: ""',
        "POSTGRES_PASSWORD=${POSTGRES_PASSWORD}",
        "postgresql://user:***@host/db",
        "# AWS_SECRET_ACCESS_KEY=",
        "postgresqlPassword: from-secret",
        "postgresqlSecretName: volt-dagster-postgresql",
        "MINIO_KMS_SECRET_KEY=volt-key:...",
    ]:
        assert credential_hits("sample.md", fine) == [], fine


def test_no_credentials_in_tracked_files():
    root = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.split(b"\0")
    hits, scanned = [], 0
    for name in filter(None, (t.decode() for t in tracked)):
        path = root / name
        if not path.is_file():
            continue
        assert not re.search(r"(^|/)\.env$|(^|/)\.volt/|\.pem$|\.key$|id_rsa", name), (
            f"{name} must not be tracked"
        )
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        scanned += 1
        hits += credential_hits(name, data.decode("utf-8", "replace"))
    assert scanned > 100
    assert hits == []
