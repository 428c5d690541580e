"""volt_assets: Volt's data platform, a Dagster code location.

`dagster ... -m volt_assets` loads `defs`. Configuration is applied from the environment,
`.env` and the embedded stack before anything else reads it (see settings.py).
"""

import warnings

import dagster as dg

from volt_assets.settings import apply_environment

apply_environment()
# Single-run backfill policies are marked beta; the project relies on them on purpose.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from volt_assets.definitions import build_definitions  # noqa: E402

defs = build_definitions()
