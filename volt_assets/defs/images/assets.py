"""`images/component_images`: the pictures of the components changed on day D, in the lake.

Reads staging D of `electrical_components` (complete when its `_manifest.json` exists),
keeps each live component's latest version over the run's days, and uploads its picture
with `upload.upload_picture`. Refused pictures (unsafe names, missing or broken files) are
reported in the output metadata and by the WARN check `pictures_valid`: they never block
the asset, the run or anything downstream.
"""

# No `from __future__ import annotations`: Dagster reads the asset's context/resource annotations.
import datetime as dt
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from volt_assets.defs.catalog import PICTURES_KEY, images_catalog
from volt_assets.defs.images.upload import Outcome, upload_picture
from volt_assets.defs.policies import NETWORK_RETRY, SINGLE_RUN, missing_partition, partitions
from volt_assets.defs.quality.outcome import MAX_SAMPLES
from volt_assets.defs.resources import LakeResource
from volt_assets.lib.config.partitions import context_days
from volt_assets.lib.store.lake_store import LakeStore
from volt_assets.lib.store.layout import partition_prefix

ASSET_KEY = dg.AssetKey(["images", "component_images"])
STAGING_KEY = dg.AssetKey(["staging", "electrical_components"])
CHECK = "pictures_valid"
SOURCE_TABLE = "electrical_components"
UPLOAD_THREADS = 8  # S3 round trips dominate; boto3 clients are thread-safe


class ImagesFolder(dg.ConfigurableResource):
    """The folder of component pictures (VOLT_IMAGES_DIR)."""

    path: str = ""

    def folder(self) -> Path:
        if not self.path:
            raise dg.Failure(
                "VOLT_IMAGES_DIR is not set: point it at the folder of component pictures",
                allow_retries=False,
            )
        folder = Path(self.path)
        if not folder.is_dir():
            raise dg.Failure(
                f"VOLT_IMAGES_DIR {str(folder)!r} is not a folder", allow_retries=False
            )
        return folder


def changed_components(store: LakeStore, days: list[dt.date]) -> dict[int, str | None]:
    """component id -> image_filename of the latest live version over `days` (a later day wins;
    a component deleted on a later day is dropped)."""
    latest: dict[int, str | None] = {}
    for day in days:
        prefix = partition_prefix("staging", SOURCE_TABLE, day)
        manifest = store.read_manifest(prefix)
        if manifest is None:
            raise missing_partition(f"staging/{SOURCE_TABLE}", day)
        for name in sorted(n for n in manifest.get("files", {}) if n.endswith(".parquet")):
            table = pq.read_table(
                pa.BufferReader(store.read_listed(prefix, manifest, name)),
                columns=["id", "image_filename", "_deleted"],
            )
            for row in table.to_pylist():
                if row["_deleted"]:
                    latest.pop(row["id"], None)
                else:
                    latest[row["id"]] = row["image_filename"]
    return latest


def summarise(outcomes: list[Outcome]) -> tuple[dict, dg.AssetCheckResult]:
    """Output metadata and the `pictures_valid` result of a run's outcomes."""
    counts = Counter(o.status for o in outcomes)
    refused = [o for o in outcomes if o.status == "refused"]
    reasons = dict(Counter(o.reason for o in refused).most_common())
    samples = [
        {"component_id": o.component_id, "filename": repr(o.filename), "reason": o.reason}
        for o in sorted(refused, key=lambda o: o.component_id)[:MAX_SAMPLES]
    ]
    sample_ids = [s["component_id"] for s in samples]
    metadata = {
        "components": dg.MetadataValue.int(len(outcomes)),
        "uploaded": dg.MetadataValue.int(counts["uploaded"]),
        "skipped": dg.MetadataValue.int(counts["skipped"]),
        "refused": dg.MetadataValue.int(counts["refused"]),
        "no_picture": dg.MetadataValue.int(counts["no_picture"]),
        "removed_stale": dg.MetadataValue.int(sum(o.removed for o in outcomes)),
        "bytes": dg.MetadataValue.int(sum(o.bytes for o in outcomes)),
        "refused_reasons": dg.MetadataValue.json(reasons),
        "refused_sample_ids": dg.MetadataValue.json(sample_ids),
        "refused_samples": dg.MetadataValue.json(samples),
    }
    check = dg.AssetCheckResult(
        check_name=CHECK,
        passed=not refused,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(refused)} of {len(outcomes)} pictures refused: "
            + "; ".join(f"{r} ({n})" for r, n in reasons.items())
        )
        if refused
        else "every picture uploaded",
        metadata={
            "refused": dg.MetadataValue.int(len(refused)),
            "reasons": dg.MetadataValue.json(reasons),
            "sample_ids": dg.MetadataValue.json(sample_ids),
            "samples": dg.MetadataValue.json(samples),
        },
    )
    return metadata, check


def build_component_images_asset() -> dg.AssetsDefinition:
    """Built when the definitions are, so the partitions follow VOLT_PARTITIONS_START then."""

    @dg.asset(
        key=ASSET_KEY,
        deps=[dg.AssetDep(STAGING_KEY), PICTURES_KEY],  # staging: same daily partitions (identity)
        partitions_def=partitions(),
        backfill_policy=SINGLE_RUN,
        retry_policy=NETWORK_RETRY,
        group_name="images",
        kinds={"s3", "python"},
        **images_catalog(),
        check_specs=[
            dg.AssetCheckSpec(
                CHECK,
                asset=ASSET_KEY,
                description="Every picture named by a changed component was uploaded; refused ones (unsafe "
                "names, missing, unreadable or non-image files) are listed. WARN only: they never block.",
            )
        ],
        description=(
            "Pictures of the components changed on the day, from VOLT_IMAGES_DIR to "
            "`images/components/{component_id}/{filename}` with a 256 px `thumb_{filename}`; Content-Type "
            "from the bytes, metadata component-id, sha256, size, source-mtime; unchanged pictures are skipped."
        ),
    )
    def component_images(
        context: dg.AssetExecutionContext, lake: LakeResource, images_dir: ImagesFolder
    ):
        folder = images_dir.folder()
        store = lake.store()
        days = context_days(context)
        components = changed_components(store, days)
        context.log.info(f"{len(components)} live components changed in {days[0]}..{days[-1]}")
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            outcomes = list(
                pool.map(
                    lambda item: upload_picture(
                        store.client, store.bucket, folder, item[0], item[1]
                    ),
                    sorted(components.items()),
                )
            )
        for o in outcomes:
            if o.status == "refused":
                context.log.warning(
                    f"component {o.component_id}: picture {o.filename!r} refused: {o.reason}"
                )
        metadata, check = summarise(outcomes)
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return component_images
