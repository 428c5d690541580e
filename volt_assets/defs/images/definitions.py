"""The images domain's definitions: the pictures asset and its folder of pictures.

Uses the shared `lake` resource and adds `images_dir` (VOLT_IMAGES_DIR).
"""

from __future__ import annotations

import dagster as dg

from volt_assets.defs.catalog import linked
from volt_assets.defs.images.assets import ImagesFolder, build_component_images_asset
from volt_assets.defs.resources import env_or_none


def images_folder() -> ImagesFolder:
    # EnvVar only when set: an unset one would fail every run; the asset says what is missing.
    return ImagesFolder(path=env_or_none("VOLT_IMAGES_DIR") or "")


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=linked([build_component_images_asset()]), resources={"images_dir": images_folder()}
    )
