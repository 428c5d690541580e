"""`images/component_images` on the real database and S3 endpoint: keys, content types,
metadata, thumbnails, the second run skipping everything, and refused pictures reported
without anything written outside `images/components/`."""

import hashlib
import io

import dagster as dg
import pytest
from PIL import Image

from volt_assets.definitions import build_definitions
from volt_assets.defs.images.upload import THUMB_SIDE, unsafe_name, upload_picture
from volt_assets_tests.pipeline import component, create_source_schema, insert, ts

DAY = "2026-01-02"
ASSET = dg.AssetKey(["images", "component_images"])


def picture(fmt: str, size=(640, 480), colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt)
    return out.getvalue()


# component id -> (image_filename, bytes to write under that name or None)
GOOD = {
    1: ("c1.png", picture("PNG")),
    2: ("c2.jpg", picture("PNG", (100, 50))),  # a PNG named .jpg: the bytes decide the type
    3: ("c3 tall.jpeg", picture("JPEG", (300, 900))),
}
REFUSED = {
    5: ("missing.png", None),
    6: ("../../etc/passwd", None),
    7: ("/etc/hosts", None),
    8: (".hidden.png", picture("PNG")),
    9: ("bell\x07.png", None),
    10: ("..\\..\\windows\\win.ini", None),
    11: ("", None),
    12: ("notes.png", b"<html>404 Not Found</html>\n"),
    13: ("truncated.jpg", picture("JPEG")[:300]),
    14: ("folder.png", None),  # a directory, made below
    15: ("link.png", None),  # a symlink out of the images folder, made below
    16: ("thumb_c1.png", picture("PNG")),
    17: ("pictures/../../escape.png", None),
}
EXPECTED_TYPES = {1: "image/png", 2: "image/png", 3: "image/jpeg"}


@pytest.fixture
def shop(volt_env, tmp_path):
    """Components changed on DAY with good and bad pictures, one deleted, one changed later."""
    for _, (name, data) in {**GOOD, **REFUSED}.items():
        if data is not None:
            (volt_env.images_dir / name).write_bytes(data)
    (volt_env.images_dir / "folder.png").mkdir()
    outside = tmp_path / "secret.png"
    outside.write_bytes(picture("PNG"))
    (volt_env.images_dir / "link.png").symlink_to(outside)
    (volt_env.images_dir / "deleted.png").write_bytes(picture("PNG"))
    (volt_env.images_dir / "later.png").write_bytes(picture("PNG"))

    rows = [
        component(i, f"{DAY} 10:00", image_filename=name)
        for i, (name, _) in {**GOOD, **REFUSED}.items()
    ]
    rows.append(component(4, f"{DAY} 10:00", image_filename=None))
    rows.append(
        component(20, f"{DAY} 11:00", image_filename="deleted.png", deleted_at=ts(f"{DAY} 11:00"))
    )
    rows.append(component(21, "2026-01-03 09:00", image_filename="later.png"))
    conn = volt_env.connect()
    create_source_schema(conn)
    insert(conn, "electrical_components", rows)
    conn.close()
    return volt_env


def materialize(selection: list[str]):
    """Run the lake and images assets for DAY in one run."""
    defs = build_definitions()
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=DAY,
        asset_selection=[dg.AssetKey(s.split("/")) for s in selection],
    )


def materialization(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == ASSET]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_pictures_land_with_type_metadata_and_thumbnail_then_are_skipped(shop):
    result = materialize(
        ["raw/electrical_components", "staging/electrical_components", "images/component_images"]
    )
    assert result.success  # refused pictures never block

    keys = shop.list_keys("images/")
    expected = set()
    for cid, (name, _) in GOOD.items():
        expected |= {f"images/components/{cid}/{name}", f"images/components/{cid}/thumb_{name}"}
    assert set(keys) == expected  # neither refused, deleted, nor other days' pictures
    tricks = (
        "..",
        "etc/",
        "passwd",
        "hosts",
        "win.ini",
        "escape",
        "hidden",
        "secret",
        "bell",
        "\\",
    )
    assert [k for k in shop.list_keys() if any(t in k for t in tricks)] == []  # in no layer at all

    for cid, (name, data) in GOOD.items():
        head = shop.s3.head_object(Bucket=shop.bucket, Key=f"images/components/{cid}/{name}")
        assert head["ContentType"] == EXPECTED_TYPES[cid]
        assert head["Metadata"]["component-id"] == str(cid)
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert head["Metadata"]["size"] == str(len(data))
        assert head["Metadata"]["source-mtime"].endswith("+00:00")
        assert shop.read_object(f"images/components/{cid}/{name}") == data
        thumb = Image.open(io.BytesIO(shop.read_object(f"images/components/{cid}/thumb_{name}")))
        original = Image.open(io.BytesIO(data))
        assert thumb.format == original.format
        assert max(thumb.size) == min(THUMB_SIDE, max(original.size))
        assert thumb.size[0] / thumb.size[1] == pytest.approx(
            original.size[0] / original.size[1], rel=0.02
        )

    meta = materialization(result)
    assert (meta["uploaded"], meta["skipped"], meta["refused"], meta["no_picture"]) == (
        3,
        0,
        len(REFUSED),
        1,
    )
    assert meta["bytes"] > sum(len(d) for _, d in GOOD.values())
    assert sorted(meta["refused_sample_ids"]) == sorted(REFUSED)
    assert meta["refused_reasons"]["missing file"] == 1
    by_id = {s["component_id"]: s["reason"] for s in meta["refused_samples"]}
    assert by_id[6] == "unsafe file name: path separator"
    assert by_id[7] == "unsafe file name: absolute path"
    assert by_id[8] == "unsafe file name: hidden file"
    assert by_id[9] == "unsafe file name: control character"
    assert by_id[10] == "unsafe file name: backslash"
    assert by_id[11] == "empty file name"
    assert by_id[12] == "not a JPEG, PNG, GIF or WebP image"
    assert by_id[13] == "damaged image"
    assert by_id[14] == "not a regular file"
    assert by_id[15] == "unsafe file name: a link leading out of the images folder"
    assert by_id[16].startswith("unsafe file name: thumb_")
    assert by_id[17] == "unsafe file name: path separator"

    [check] = [
        c
        for c in result.get_asset_check_evaluations()
        if c.asset_key == ASSET and c.check_name == "pictures_valid"
    ]
    assert check.check_name == "pictures_valid" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN

    before = {
        o["Key"]: (o["ETag"], o["LastModified"])
        for o in shop.s3.list_objects_v2(Bucket=shop.bucket, Prefix="images/")["Contents"]
    }
    again = materialize(["images/component_images"])
    meta = materialization(again)
    assert (meta["uploaded"], meta["skipped"], meta["bytes"]) == (0, 3, 0)
    after = {
        o["Key"]: (o["ETag"], o["LastModified"])
        for o in shop.s3.list_objects_v2(Bucket=shop.bucket, Prefix="images/")["Contents"]
    }
    assert after == before


def test_changed_picture_replaces_the_old_one(volt_env):
    (volt_env.images_dir / "a.png").write_bytes(picture("PNG"))
    (volt_env.images_dir / "b.webp").write_bytes(picture("WEBP", colour=(0, 90, 200)))
    first = upload_picture(volt_env.s3, volt_env.bucket, volt_env.images_dir, 7, "a.png")
    assert first.status == "uploaded"
    (volt_env.images_dir / "a.png").write_bytes(picture("PNG", colour=(0, 0, 0)))
    assert (
        upload_picture(volt_env.s3, volt_env.bucket, volt_env.images_dir, 7, "a.png").status
        == "uploaded"
    )

    renamed = upload_picture(volt_env.s3, volt_env.bucket, volt_env.images_dir, 7, "b.webp")
    assert (renamed.status, renamed.removed) == ("uploaded", 2)
    assert volt_env.list_keys("images/") == [
        "images/components/7/b.webp",
        "images/components/7/thumb_b.webp",
    ]
    head = volt_env.s3.head_object(Bucket=volt_env.bucket, Key="images/components/7/b.webp")
    assert head["ContentType"] == "image/webp"


@pytest.mark.parametrize(
    "name, reason",
    [
        ("ok.png", None),
        ("Spaß 2.jpg", None),
        ("..", "unsafe file name: hidden file"),
        ("a/b.png", "unsafe file name: path separator"),
        (" a.png", "unsafe file name: surrounding whitespace"),
        ("a\n.png", "unsafe file name: control character"),
        ("a\u202e.png", "unsafe file name: control character"),  # right-to-left override
        ("x" * 252 + ".png", "unsafe file name: longer than 255 bytes"),
        ("   ", "empty file name"),
    ],
)
def test_unsafe_names(name, reason):
    assert unsafe_name(name) == reason
