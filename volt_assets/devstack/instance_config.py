"""Which Dagster instance config DAGSTER_HOME gets: SQLite locally, PostgreSQL when configured.

Dagster's `dagster.yaml` cannot branch on environment variables, so the choice is made here,
before Dagster starts. `prepare_dagster_home(path)` copies into `path/dagster.yaml`:
- the repository's `dagster.yaml` (SQLite under DAGSTER_HOME), or
- `deploy/dagster.postgres.yaml` when DAGSTER_POSTGRES_HOST is set; its credentials are `env:`
  references resolved by Dagster at start, so no secret is written to disk.

For SQLite it also creates the instance's storage, once, under a file lock: Dagster creates its
SQLite tables on first use, and two processes doing that at the same moment (two cron lines, the
demo's run and its progress reader) leave a broken instance ("table runs already exists", or two
alembic heads).

`make dev` runs `python -m volt_assets.devstack.instance_config "$DAGSTER_HOME"`. The file in
DAGSTER_HOME is generated: edit the templates in the repository instead.
"""

import fcntl
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from volt_assets.settings import apply_environment, project_root

POSTGRES_VARS = (
    "DAGSTER_POSTGRES_HOST",
    "DAGSTER_POSTGRES_PORT",
    "DAGSTER_POSTGRES_DB",
    "DAGSTER_POSTGRES_USER",
    "DAGSTER_POSTGRES_PASSWORD",
)
LOCAL_TEMPLATE = "dagster.yaml"
POSTGRES_TEMPLATE = "deploy/dagster.postgres.yaml"
# What Dagster's default SQLite storage creates under DAGSTER_HOME on first use.
LOCAL_DATABASES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")


def uses_postgres(environ: Mapping[str, str] | None = None) -> bool:
    """True when DAGSTER_POSTGRES_HOST is set; then every DAGSTER_POSTGRES_* must be."""
    env = os.environ if environ is None else environ
    if not env.get("DAGSTER_POSTGRES_HOST"):
        return False
    missing = [name for name in POSTGRES_VARS if not env.get(name)]
    if missing:
        raise ValueError(f"DAGSTER_POSTGRES_HOST is set but these are not: {', '.join(missing)}")
    return True


def instance_template(environ: Mapping[str, str] | None = None, root: Path | None = None) -> Path:
    """The repository file to use as dagster.yaml for this environment."""
    root = project_root() if root is None else root
    template = root / (POSTGRES_TEMPLATE if uses_postgres(environ) else LOCAL_TEMPLATE)
    if not template.is_file():
        raise FileNotFoundError(f"{template} not found: run from a checkout of volt_assets")
    return template


def prepare_dagster_home(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    root: Path | None = None,
) -> Path:
    """Write the right `dagster.yaml` into `path` (created if needed); return the file written."""
    template = instance_template(environ, root)
    home = Path(path).resolve()
    target = home / "dagster.yaml"
    root = (project_root() if root is None else root).resolve()
    if home == root:
        # Copying the PostgreSQL template here would overwrite the repository's own dagster.yaml.
        raise ValueError(
            f"DAGSTER_HOME must not be the repository root ({root}); use e.g. {root / '.volt'}"
        )
    home.mkdir(parents=True, exist_ok=True)
    content = template.read_text(encoding="utf-8")
    if not target.is_file() or target.read_text(encoding="utf-8") != content:
        tmp = target.with_suffix(".yaml.tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(target)  # atomic: a starting daemon never reads half a file
    if template.name == LOCAL_TEMPLATE:
        create_local_storage(home)
    return target


def create_local_storage(home: Path) -> None:
    """Create the SQLite storage under `home` unless it exists; one process at a time."""
    with open(home / ".storage.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if all((home / db).is_file() for db in LOCAL_DATABASES):
            return
        import dagster as dg

        dg.DagsterInstance.from_config(str(home)).dispose()


def main(argv: list[str] | None = None) -> int:
    """`python -m volt_assets.devstack.instance_config [DAGSTER_HOME]`: prepare it and say which storage."""
    apply_environment()  # DAGSTER_POSTGRES_* may come from .env
    args = sys.argv[1:] if argv is None else argv
    home = args[0] if args else os.environ.get("DAGSTER_HOME")
    if not home:
        print(
            "usage: python -m volt_assets.devstack.instance_config DAGSTER_HOME (or set DAGSTER_HOME)",
            file=sys.stderr,
        )
        return 2
    try:
        target = prepare_dagster_home(home)
    except (ValueError, FileNotFoundError) as exc:
        print(f"instance_config: {exc}", file=sys.stderr)
        return 2
    if uses_postgres():
        env = os.environ
        where = f"PostgreSQL {env['DAGSTER_POSTGRES_HOST']}:{env['DAGSTER_POSTGRES_PORT']}/{env['DAGSTER_POSTGRES_DB']}"
    else:
        where = f"SQLite under {target.parent}"
    print(f"{target}: Dagster storage in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
