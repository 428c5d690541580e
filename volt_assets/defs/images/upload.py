"""Component pictures from local disk to `images/components/{component_id}/`: judged, typed by
their bytes, thumbnailed and uploaded once.

A picture is uploaded only when its file name is a plain, visible name directly inside the
images folder and Pillow reads the bytes as a JPEG, PNG, GIF or WebP image; anything else is
*refused* with a reason and never read or written. The object's Content-Type comes from the
detected format, not the file name, and its user metadata records `component-id`, `sha256`,
`size` and `source-mtime`, so a later run skips a picture whose sha256 is already there.

Each component's folder holds its current picture and `thumb_{filename}` (longest side 256 px,
same format): pictures a component no longer names are removed (the bucket's versioning keeps
them), so "the" picture of a component is never ambiguous for `volt-assets presign`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from volt_assets.lib.store.layout import image_key

FORMATS = ("JPEG", "PNG", "GIF", "WEBP")  # what a browser shows; Pillow opens nothing else here
THUMB_PREFIX = "thumb_"
THUMB_SIDE = 256
MAX_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000  # far above any shop picture, far below what exhausts memory when decoded
MAX_NAME_BYTES = 255  # the usual file system limit for one name


def component_prefix(component_id: int) -> str:
    return image_key(component_id, "")


def unsafe_name(filename: str) -> str | None:
    """Why a file name may not be used (None when it is a plain, visible name)."""
    if filename == "" or not filename.strip():
        return "empty file name"
    if filename != filename.strip():
        return "unsafe file name: surrounding whitespace"
    if any(unicodedata.category(ch)[0] == "C" for ch in filename):
        return "unsafe file name: control character"
    if "\\" in filename:
        return "unsafe file name: backslash"
    if filename.startswith("/"):
        return "unsafe file name: absolute path"
    if "/" in filename:
        return "unsafe file name: path separator"
    if filename.startswith("."):  # also `.` and `..`
        return "unsafe file name: hidden file"
    if filename.startswith(THUMB_PREFIX):
        return f"unsafe file name: {THUMB_PREFIX} is reserved for thumbnails"
    if len(filename.encode("utf-8")) > MAX_NAME_BYTES:
        return "unsafe file name: longer than 255 bytes"
    return None


@dataclass(frozen=True)
class Picture:
    """A picture read and judged: the bytes to upload and their thumbnail."""

    data: bytes
    thumbnail: bytes
    content_type: str
    sha256: str
    mtime: dt.datetime


class Refused(Exception):
    """A picture that is not uploaded; the message is the reason (no path in it)."""


def _thumbnail(image: Image.Image, fmt: str) -> bytes:
    thumb = ImageOps.exif_transpose(image)  # a portrait photo stays upright once EXIF is gone
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))  # keeps the aspect ratio, never enlarges
    if fmt == "JPEG" and thumb.mode not in ("RGB", "L", "CMYK"):
        thumb = thumb.convert("RGB")
    out = io.BytesIO()
    thumb.save(out, format=fmt)
    return out.getvalue()


def read_picture(images_dir: Path, filename: str) -> Picture:
    """Read `filename` from the images folder and judge it; raises `Refused` with the reason."""
    if reason := unsafe_name(filename):
        raise Refused(reason)
    root = images_dir.resolve()
    path = root / filename
    try:
        # A symlink may point anywhere: only what it resolves to inside the folder is read.
        if path.resolve().parent != root:
            raise Refused("unsafe file name: a link leading out of the images folder")
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise Refused("not a regular file")
        if info.st_size > MAX_BYTES:
            raise Refused(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise Refused("missing file") from None
    except PermissionError:
        raise Refused("unreadable file: permission denied") from None
    except OSError as exc:
        raise Refused(f"unreadable file: {type(exc).__name__}") from None
    if not data:
        raise Refused("empty file")
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            fmt = image.format
            content_type = image.get_format_mimetype()
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise Refused(f"more than {MAX_PIXELS:,} pixels")
            image.load()  # decodes everything: a truncated or corrupt file fails here
            thumbnail = _thumbnail(image, fmt)
    except UnidentifiedImageError:
        raise Refused("not a JPEG, PNG, GIF or WebP image") from None
    except Image.DecompressionBombError:
        raise Refused(f"more than {MAX_PIXELS:,} pixels") from None
    except (OSError, SyntaxError, ValueError):
        raise Refused("damaged image") from None
    return Picture(
        data=data,
        thumbnail=thumbnail,
        content_type=content_type or "application/octet-stream",
        sha256=hashlib.sha256(data).hexdigest(),
        mtime=dt.datetime.fromtimestamp(info.st_mtime, dt.UTC),
    )


@dataclass
class Outcome:
    component_id: int
    filename: str | None
    status: str  # uploaded | skipped | refused | no_picture
    reason: str | None = None
    bytes: int = 0
    removed: int = 0  # stale pictures of the component removed from its folder


def upload_picture(
    client: Any, bucket: str, images_dir: Path, component_id: int, filename: str | None
) -> Outcome:
    """Upload one component's picture (and thumbnail) unless refused or already there."""
    if filename is None:
        return Outcome(component_id, None, "no_picture")
    if component_id <= 0:
        return Outcome(
            component_id, filename, "refused", reason="component id is not a positive integer"
        )
    try:
        picture = read_picture(images_dir, filename)
    except Refused as exc:
        return Outcome(component_id, filename, "refused", reason=str(exc))
    # `read_picture` let through only a plain name: the keys stay in the component's folder.
    prefix = component_prefix(component_id)
    key, thumb_key = prefix + filename, prefix + THUMB_PREFIX + filename

    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    present = {obj["Key"] for page in pages for obj in page.get("Contents", [])}
    outcome = Outcome(component_id, filename, "skipped")
    if (
        key not in present
        or client.head_object(Bucket=bucket, Key=key)["Metadata"].get("sha256") != picture.sha256
    ):
        metadata = {
            "component-id": str(component_id),
            "source-mtime": picture.mtime.isoformat(timespec="seconds"),
        }
        thumb_sha = hashlib.sha256(picture.thumbnail).hexdigest()
        # Thumbnail first: a picture whose sha256 is in place always has its thumbnail.
        client.put_object(
            Bucket=bucket,
            Key=thumb_key,
            Body=picture.thumbnail,
            ContentType=picture.content_type,
            Metadata={
                **metadata,
                "sha256": thumb_sha,
                "size": str(len(picture.thumbnail)),
                "thumbnail-of-sha256": picture.sha256,
            },
        )
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=picture.data,
            ContentType=picture.content_type,
            Metadata={**metadata, "sha256": picture.sha256, "size": str(len(picture.data))},
        )
        outcome.status, outcome.bytes = "uploaded", len(picture.data) + len(picture.thumbnail)
    stale = sorted(present - {key, thumb_key})
    if stale:
        client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale], "Quiet": True}
        )
        outcome.removed = len(stale)
    return outcome
