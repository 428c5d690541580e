"""Where configuration comes from: the environment, then `.env`, then the embedded stack.

Precedence, highest first:
1. variables already in the process environment;
2. a `.env` file in the working directory (never committed);
3. `.volt/stack.env`, written by `volt-assets stack up`, used only for a group of settings
   (PostgreSQL, or S3) of which nothing was configured above, so a user who points
   POSTGRES_HOST at a real server never gets the embedded password mixed in.

`apply_environment()` runs once when the package is imported, so `dagster ... -m volt_assets`,
the `volt-assets` command and the tests all see the same settings. Dagster resources then
read them with `EnvVar`, never as literals.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
from pathlib import Path

# Settings that belong together: a group is taken from stack.env only when none of it is set.
POSTGRES_VARS = (
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
)
S3_VARS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
STACK_GROUPS = (POSTGRES_VARS, S3_VARS)
# Settings of their own: each is taken from stack.env when unset.
STACK_SINGLES = ("S3_BUCKET_NAME", "VOLT_IMAGES_DIR", "VOLT_PARTITIONS_START")

DEFAULTS = {
    "S3_BUCKET_NAME": "volt-data-lake",
    "AWS_DEFAULT_REGION": "eu-central-1",
    "AWS_RETRY_MODE": "standard",  # botocore's retries with backoff for 500/503/SlowDown
    # Arrow on glibc's malloc, not its mimalloc: 20-45 MB lower peaks on big days (lib/process_memory.py);
    # read as pyarrow is imported, which the package's import comes before
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}
# A local PostgreSQL when neither the environment nor the stack names one.
POSTGRES_DEFAULTS = {
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_DB": "volt",
    "POSTGRES_USER": "postgres",
}
# Used only when nothing else names a first partition (no env, no seeded stack).
FALLBACK_PARTITIONS_START = "2025-01-01"
# The embedded stack's S3 credentials: moto accepts any; these are the conventional, public dummies.
S3_DUMMY_KEY = "testing"


def project_root() -> Path:
    """The checkout the package lives in (editable install), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def state_dir() -> Path:
    """Where the embedded stack keeps its data: VOLT_STATE_DIR or `<project>/.volt`."""
    configured = os.environ.get("VOLT_STATE_DIR")
    return Path(configured).resolve() if configured else project_root() / ".volt"


def stack_env_path() -> Path:
    return state_dir() / "stack.env"


def parse_env_file(path: Path, interpolate: bool = True) -> dict[str, str]:
    """A dotenv file as python-dotenv (and so Docker Compose) reads it: `export KEY=...`,
    quoted values, inline `# comments` after a space, `${VAR}` references (unless
    `interpolate` is off); keys without a value are skipped."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    values = dotenv_values(path, interpolate=interpolate, encoding="utf-8")
    return {k: v for k, v in values.items() if v is not None}


def read_stack_env() -> dict[str, str]:
    """`.volt/stack.env` as written: its values are literal (a `$` in a path stays one)."""
    return parse_env_file(stack_env_path(), interpolate=False)


STACK_DOWN_HINT = (
    "the embedded stack is not running: start it with `volt-assets stack up` (`make dev` does)"
)


def stack_down_hint(
    endpoint_url: str | None = None, host: str | None = None, port: int | str | None = None
) -> str | None:
    """What to run when the address (an S3 endpoint, or a PostgreSQL host and port) is the
    embedded stack's and nothing listens there; None for any other address or failure."""
    stack = read_stack_env()
    if endpoint_url is not None:
        if endpoint_url.rstrip("/") != stack.get("AWS_ENDPOINT_URL", "").rstrip("/"):
            return None
        where = urllib.parse.urlsplit(endpoint_url)
        host, port = where.hostname, where.port
    elif (str(host), str(port)) != (stack.get("POSTGRES_HOST"), stack.get("POSTGRES_PORT")):
        return None
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except (OSError, TypeError, ValueError):
        return STACK_DOWN_HINT
    return None  # something answers there: the failure is another one


# Characters a value may hold and stay unquoted for dotenv, make and a shell alike.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@,+=%-]*")


def _env_line(key: str, value: str) -> str:
    """`KEY=value`, quoted when the value holds anything dotenv or a shell would read otherwise."""
    if _PLAIN_VALUE.fullmatch(value):
        return f"{key}={value}\n"
    if not set(value) & set("'\\"):
        return f"{key}='{value}'\n"  # literal for dotenv and a shell: no escapes, no ${...}
    if not set(value) & set('"\\$`'):
        return f'{key}="{value}"\n'
    # Never the value in the message: it may be a password.
    raise ValueError(f"{key}: a value holding both kinds of quote, a backslash or $ and a quote")


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write KEY=VALUE lines that `parse_env_file(path, interpolate=False)` and a shell read
    back as they were."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(_env_line(k, v) for k, v in values.items())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(body, encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def update_stack_env(**values: str) -> None:
    """Merge values into `.volt/stack.env` (e.g. the seed records VOLT_PARTITIONS_START)."""
    current = read_stack_env()
    current.update(values)
    write_env_file(stack_env_path(), current)


def apply_environment(environ: dict[str, str] | None = None) -> None:
    """Fill the process environment from `.env`, the stack and defaults (see module doc)."""
    env = os.environ if environ is None else environ
    for key, value in parse_env_file(Path.cwd() / ".env").items():
        env.setdefault(key, value)
    if env.get("VOLT_USE_STACK", "1") != "0":
        stack = read_stack_env()
        for group in STACK_GROUPS:
            if not any(env.get(k) for k in group):
                for k in group:
                    if k in stack:
                        env[k] = stack[k]
        for k in STACK_SINGLES:
            if not env.get(k) and k in stack:
                env[k] = stack[k]
    if not any(env.get(k) for k in POSTGRES_VARS):
        env.update(POSTGRES_DEFAULTS)
    for key, value in DEFAULTS.items():
        if not env.get(key):
            env[key] = value
    if not env.get("VOLT_PARTITIONS_START"):
        env["VOLT_PARTITIONS_START"] = FALLBACK_PARTITIONS_START


def mask_dsn(text: str) -> str:
    """Hide the password of a DSN or URL (`postgresql://u:secret@h/db` -> `u:***@h`)."""
    text = re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text, flags=re.IGNORECASE)
