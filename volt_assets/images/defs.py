"""The images domain's definitions: the pictures asset, the landing-file job and the sensors.

Uses the shared `lake` resource and adds `images_dir` (VOLT_IMAGES_DIR).
"""

from __future__ import annotations

import os

import dagster as dg

from volt_assets.images.assets import ImagesFolder, build_component_images_asset
from volt_assets.images.sensors import landing_file_job, landing_files_sensor, run_failure_alert


def images_folder() -> ImagesFolder:
    # EnvVar only when set: an unset one would fail every run; the asset says what is missing.
    return ImagesFolder(path=dg.EnvVar("VOLT_IMAGES_DIR") if os.environ.get("VOLT_IMAGES_DIR") else "")


def definitions(shared: dict) -> dg.Definitions:
    return dg.Definitions(
        assets=[build_component_images_asset()],
        jobs=[landing_file_job],
        sensors=[landing_files_sensor, run_failure_alert],
        resources={**shared, "images_dir": images_folder()},
    )
