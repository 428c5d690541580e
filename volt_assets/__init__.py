"""volt_assets: Volt's data platform, a Dagster code location.

`dagster ... -m volt_assets` loads `defs`, built lazily (`@dg.definitions`) so that importing the
package (the `volt-assets` command, the tests) does not build every asset. Configuration is
applied from the environment, `.env` and the embedded stack before anything reads it.
"""

import dagster as dg

from volt_assets.settings import apply_environment

apply_environment()


@dg.definitions
def defs() -> dg.Definitions:
    from volt_assets.definitions import build_definitions

    return build_definitions()
