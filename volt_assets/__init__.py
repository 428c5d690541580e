"""volt_assets: Volt's data platform, a Dagster code location.

`dagster ... -m volt_assets` loads `code_location` (`volt_assets/definitions.py`'s lazy
`@dg.definitions`). It is looked up on demand (below), so importing the package (the
`volt-assets` command, the tests) neither imports Dagster nor builds an asset. Configuration is
applied from the environment, `.env` and the embedded stack before anything reads it.
"""

from volt_assets.settings import apply_environment

apply_environment()


def __getattr__(name: str):
    # Dagster finds a module's definitions through dir() and getattr (PEP 562 covers both).
    if name != "code_location":
        raise AttributeError(f"module 'volt_assets' has no attribute {name!r}")
    from volt_assets.definitions import defs

    globals()["code_location"] = defs
    return defs


def __dir__() -> list[str]:
    return sorted({*globals(), "code_location"})
