"""The code location: every asset, check, job, schedule, sensor and resource of volt_assets.

Dagster's project layout: each domain is a folder of `volt_assets/defs/` (`lake`, `marts`,
`images`, `landing`, `quality`, `operations`, and `resources.py` for the shared resources), and
`dg.load_from_defs_folder` loads every module in it. Nothing is picked by name, so a domain
cannot be skipped silently; `volt_assets_tests/integration/test_definitions.py` pins the full list.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

# Single-run backfill policies are marked beta; the project relies on them on purpose.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

# A range run stores one "planned" and one materialisation event per partition and asset: 1,460
# for a 365-day raw + staging run, one commit each unless Dagster's opt-in event batching is on
# (~13 s of a 45 s run on PostgreSQL storage, bench/RESULTS.md). Processes that load this code
# location (the CLI, run workers) batch them; the Dockerfile sets it for the webserver and daemon.
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "200")

PACKAGE_DIR = Path(__file__).parent


def build_definitions() -> dg.Definitions:
    """Every definition of the code location, loaded from `volt_assets/defs/`, and the
    freshness checks of every daily asset among them (derived, never listed by hand)."""
    from volt_assets.defs.quality.definitions import freshness_definitions

    domains = dg.load_from_defs_folder(path_within_project=PACKAGE_DIR)
    return dg.Definitions.merge(domains, freshness_definitions(domains))


_built: dict[frozenset, dg.Definitions] = {}


def loaded_definitions() -> dg.Definitions:
    """`build_definitions()`, once per process and environment. Dagster calls a code
    location's `@dg.definitions` function each time it loads it: six times in one `dagster
    asset materialize` (the command, the run, each step in process), and every build runs each
    domain's definitions again (~0.3 s). The environment is the key: it is all they read."""
    key = frozenset(os.environ.items())
    if key not in _built:
        _built.clear()
        _built[key] = build_definitions()
    return _built[key]


@dg.definitions
def defs() -> dg.Definitions:
    return loaded_definitions()
