"""What a check's description promises is the verdict it can reach (the rule's severity caps it)."""

import dagster as dg

from volt_assets.defs.quality.rulebook import judge, rule_spec
from volt_assets.lib.config.table_config import load_tables


def spec_of(table: str, name: str):
    config = load_tables()[table]
    rule = next(r for r in (*config.refuse, *config.checks) if r.name == name)
    spec = rule_spec(config, dg.AssetKey(["staging", table]), rule, refuse=False)
    return config, rule, spec


def test_a_warn_rule_says_it_never_errors_and_never_does():
    config, rule, spec = spec_of("orders", "component_id_references")
    assert spec.description.endswith(
        ": WARN above 0% of the day's rows, never more (the rule's severity is WARN)."
    )
    assert "ERROR" not in spec.description
    assert judge(config, rule, failing=316, rows=1000) == "WARN"  # 31.6 %, the case seen
    assert judge(config, rule, failing=1000, rows=1000) == "WARN"
    assert not spec.blocking


def test_an_error_rule_says_both_thresholds():
    config, rule, spec = spec_of("orders", "quantity_positive")
    assert "WARN above 0% of the day's rows, ERROR above 5%" in spec.description
    assert judge(config, rule, failing=50, rows=1000) == "WARN"  # 5 %: not above
    assert judge(config, rule, failing=51, rows=1000) == "ERROR"  # 5.1 %
    assert spec.blocking
