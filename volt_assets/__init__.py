"""volt_assets: Volt's data platform, a Dagster code location.

`dagster ... -m volt_assets` loads `code_location` (`volt_assets/definitions.py`; not named
`defs`, which is the `volt_assets.defs` package), built lazily (`@dg.definitions`) so that
importing the package (the `volt-assets` command, the tests) does
not build every asset. Configuration is applied from the environment, `.env` and the embedded
stack before anything reads it.
"""

import dagster as dg

from volt_assets.settings import apply_environment

apply_environment()


@dg.definitions
def code_location() -> dg.Definitions:
    from volt_assets.definitions import loaded_definitions

    return loaded_definitions()
