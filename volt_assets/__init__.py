"""volt_assets: Volt's data platform, a Dagster code location.

`dagster ... -m volt_assets` loads `defs`. Configuration is applied from the environment,
`.env` and the embedded stack before anything else reads it (see settings.py).
"""

from volt_assets.settings import apply_environment

apply_environment()

from volt_assets.definitions import build_definitions  # noqa: E402

defs = build_definitions()
