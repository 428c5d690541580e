"""The `volt-assets` command as a newcomer meets it: `--version`, help text on every option of
every subcommand, progress while `seed` works."""

import argparse
import functools
import importlib
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from volt_assets.cli import main as cli

VOLT_ASSETS = str(Path(sys.executable).parent / "volt-assets")


def parsers(parser: argparse.ArgumentParser, path: str = "volt-assets"):
    """Every parser of the command line, subcommands of subcommands included, with its path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


def test_every_option_and_subcommand_has_help():
    missing, seen = [], 0
    for path, parser in parsers(cli.build_parser()):
        for action in parser._actions:
            seen += 1
            if isinstance(action, argparse._SubParsersAction):
                missing += [
                    f"{path} {c.dest}"
                    for c in action._choices_actions
                    if not (c.help or "").strip()
                ]
            elif not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert (
        seen >= 40
    )  # every subcommand was reached (stack, seed, demo, presign, serve, bucket, lake)
    assert missing == []


def test_every_subcommand_of_the_contract_is_there():
    commands = {path for path, _ in parsers(cli.build_parser())}
    for name in ("stack", "seed", "demo", "presign", "serve", "bucket", "lake", "lake sql"):
        assert f"volt-assets {name}" in commands


def test_version():
    done = subprocess.run([VOLT_ASSETS, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout == f"volt-assets {version('volt_assets')}\n"
    assert re.fullmatch(r"volt-assets \d+\.\d+\.\d+\S*\n", done.stdout)


def test_seed_reports_progress_before_its_summary(volt_env):
    env = {**os.environ, **volt_env.env}
    done = subprocess.run(
        [
            VOLT_ASSETS,
            "seed",
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
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"seeding postgresql://{env['POSTGRES_USER']}@{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}"
        f"/{env['POSTGRES_DB']}: 120 components, 40 users, 200 orders over 3 days"
    )
    assert re.fullmatch(r"  electrical_components: 120 rows in \d+\.\d s", lines[1])
    assert re.fullmatch(r"  users: 40 rows in \d+\.\d s", lines[2])
    orders = re.fullmatch(r"  orders: (\d+) rows in \d+\.\d s", lines[3])
    conn = volt_env.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM orders")
            assert int(orders.group(1)) == cur.fetchone()[0]
    finally:
        conn.close()
    assert lines[4] == f"  pictures: writing 120 to {volt_env.images_dir}"
    assert lines[5].startswith("seeded ")


def test_a_command_imports_only_its_own_module():
    """`volt-assets stack status` pays for neither Dagster nor FastAPI; `dagster -m volt_assets`
    still finds the code location."""
    probe = (
        "import sys; from volt_assets.cli import main; main.build_parser(only='stack');"
        "print(sorted(m for m in ('dagster', 'fastapi', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    found = "import volt_assets, dagster as dg; print(type(volt_assets.code_location).__name__)"
    out = subprocess.run([sys.executable, "-c", found], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "LazyDefinitions"


def test_a_stack_command_without_the_devstack_extra_says_how_to_install_it(capsys, monkeypatch):
    """A deployment installs volt_assets without the embedded stack (the Docker image)."""

    def without_devstack(name):
        if name == "volt_assets.devstack.stack":
            raise ModuleNotFoundError("No module named 'psutil'", name="psutil")
        return importlib.import_module(name)

    monkeypatch.setattr(cli, "build_parser", functools.partial(cli.build_parser, without_devstack))
    assert cli.main(["stack", "status"]) == 2
    err = capsys.readouterr().err
    assert "volt-assets stack: needs the embedded stack" in err
    assert "pip install 'volt_assets[devstack]'" in err
