"""Every environment variable the code reads is in the configuration table of
docs/configuration.md and in `.env.example`, and neither documents one the code does not read."""

import re

from volt_assets import settings
from volt_assets_tests.pipeline import root

# Names of settings: what the code's string literals and the instance templates' `env:` name.
NAME = r"(?:VOLT|AWS|POSTGRES|MARTS|S3|DAGSTER|ARROW)_[A-Z0-9_]+"


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in sorted((root() / "volt_assets").rglob("*.py")):
        names |= set(re.findall(rf"[\"']({NAME})[\"']", path.read_text(encoding="utf-8")))
    for path in [root() / "dagster.yaml", *sorted((root() / "deploy").glob("*.yaml"))]:
        names |= set(re.findall(rf"env:\s*({NAME})\b", path.read_text(encoding="utf-8")))
    return names


def configuration_table() -> set[str]:
    text = (root() / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text[text.index("# Configuration") : text.index("## Pointing it at real AWS")]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ")]
    return {name for cell in first_cells for name in re.findall(NAME, cell)}


def env_example() -> set[str]:
    text = (root() / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(rf"^# ({NAME})=", text, re.MULTILINE))


def test_the_grep_finds_what_the_code_reads():
    found = variables_read_by_the_code()
    # Read in different ways: EnvVar, os.environ.get, a constant, a mapping, a yaml template.
    for name in (
        "POSTGRES_HOST",
        "VOLT_S3_MAX_ATTEMPTS",
        "VOLT_FRESHNESS_LAG_HOURS",
        "VOLT_LIFECYCLE_NONCURRENT_DAYS",
        "VOLT_DAGSTER_URL",
        "DAGSTER_POSTGRES_PASSWORD",
    ):
        assert name in found
    assert set(settings.DEFAULTS) <= found


def test_the_configuration_table_lists_every_variable_and_no_other():
    assert configuration_table() == variables_read_by_the_code()


def test_env_example_lists_every_variable_and_no_other():
    assert env_example() == variables_read_by_the_code()
