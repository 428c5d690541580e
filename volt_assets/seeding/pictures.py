"""Component pictures on local disk, as the shop keeps them: one small card per component.

A card is 320x240, coloured by category, with the category code, the category and the SKU
written on it; PNG or JPEG as the file name says. Bytes depend only on the row (no
timestamps or metadata), so the same seed writes the same files.

The database may name files that must never be written: path tricks (`../../etc/passwd`,
`/etc/hosts`), hidden names, control characters. `safe_target` is the one gate: a file is
written only as a plain name directly inside the images folder.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from volt_assets.seeding.catalogue import CATEGORIES

SIZE = (320, 240)
SKU_AT = (SIZE[0] // 2, 208)  # centre of the SKU line
GLYPH_HEIGHT, GLYPH_BASELINE = 28, 21
JPEG_QUALITY = 80
MAX_PICTURES = 50_000  # above this, seeding skips pictures (~0.6 ms each: 50,000 take ~30 s)
# Files this generator owns: cleared before a new shop's pictures are written.
OWN_FILE = re.compile(r"component_\d+\.(png|jpg)")
NOT_AN_IMAGE = b"<html><body><h1>404 Not Found</h1>This is not a picture.</body></html>\n"

CATEGORY_OF_CODE = {code: category for category, (code, _) in CATEGORIES.items()}
PALETTE = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (23, 190, 207),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (57, 59, 121),
    (99, 121, 57),
    (140, 109, 49),
    (132, 60, 57),
    (123, 65, 115),
]


@dataclass
class PictureReport:
    written: int = 0  # image files
    not_images: int = 0  # text bytes under an image name
    missing: int = 0  # rows whose picture was deliberately never written
    refused: int = 0  # unsafe file names, never written
    skipped_reason: str | None = None


def safe_target(images_dir: Path, filename: str | None) -> Path | None:
    """The path to write `filename` to, or None when it is not a plain, visible file name
    directly inside `images_dir` (no separators, `..`, hidden names or control characters)."""
    if not filename or filename != filename.strip() or filename.startswith("."):
        return None
    if (
        "/" in filename
        or "\\" in filename
        or any(unicodedata.category(ch)[0] == "C" for ch in filename)
    ):
        return None
    root = images_dir.resolve()
    target = (root / filename).resolve()
    return target if target.parent == root else None


@cache
def _fonts():
    from PIL import ImageFont

    return ImageFont.load_default(size=96), ImageFont.load_default(size=20)


@cache
def _base_card(category_code: str, category: str):
    """The part of a card shared by a category (drawn once, copied per component)."""
    from PIL import Image, ImageDraw

    big, small = _fonts()
    colour = PALETTE[sum(map(ord, category_code)) % len(PALETTE)]
    card = Image.new("RGB", SIZE, colour)
    draw = ImageDraw.Draw(card)
    draw.rounded_rectangle(
        (8, 8, SIZE[0] - 9, SIZE[1] - 9), radius=18, outline=(255, 255, 255), width=3
    )
    draw.text((SIZE[0] // 2, 100), category_code, font=big, fill=(255, 255, 255), anchor="mm")
    draw.text((SIZE[0] // 2, 170), category, font=small, fill=(240, 240, 240), anchor="mm")
    return card


@cache
def _base_card_palette(category_code: str, category: str):
    """The base card with a small palette: PNG-encodes about 5x faster than RGB."""
    from PIL import Image

    card = _base_card(category_code, category).convert("P", palette=Image.ADAPTIVE, colors=64)
    palette = card.getpalette()[: 3 * 64]
    # The entry closest to white, to write the SKU in.
    white = min(
        range(len(palette) // 3), key=lambda i: sum(255 - c for c in palette[3 * i : 3 * i + 3])
    )
    return card, white


@cache
def _glyph(ch: str):
    """One character of the SKU line as a mask, and its advance: FreeType renders each
    character once, a card only pastes them (several times faster than drawing text)."""
    from PIL import Image, ImageDraw

    font = _fonts()[1]
    advance = max(1, round(font.getlength(ch)))
    mask = Image.new("L", (advance + 4, GLYPH_HEIGHT))
    ImageDraw.Draw(mask).text((0, GLYPH_BASELINE), ch, font=font, fill=255, anchor="ls")
    return mask, mask.point(lambda a: 255 if a >= 128 else 0, "1"), advance


def _write_sku(card, sku: str, fill) -> None:
    """Paste the SKU centred on the card's bottom line (crisp on palette images)."""
    glyphs = [_glyph(ch) for ch in sku]
    x = SKU_AT[0] - sum(g[2] for g in glyphs) // 2
    y = SKU_AT[1] - GLYPH_BASELINE + 7
    for smooth, crisp, advance in glyphs:
        card.paste(fill, (x, y), crisp if card.mode == "P" else smooth)
        x += advance


def card_bytes(category_code: str, sku: str, filename: str) -> bytes:
    category = CATEGORY_OF_CODE.get(category_code, "")
    out = io.BytesIO()
    if filename.lower().endswith((".jpg", ".jpeg")):
        card = _base_card(category_code, category).copy()
        _write_sku(card, sku, (255, 255, 255))
        card.save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        base, white = _base_card_palette(category_code, category)
        card = base.copy()
        _write_sku(card, sku, white)
        card.save(out, "PNG", compress_level=1)  # flat colours compress well even at level 1
    return out.getvalue()


def clear_own_files(images_dir: Path) -> int:
    """Remove pictures a previous seed wrote (only names this generator uses)."""
    removed = 0
    if images_dir.is_dir():
        for path in images_dir.iterdir():
            if OWN_FILE.fullmatch(path.name) and path.is_file():
                path.unlink()
                removed += 1
    return removed


def write_pictures(rows, images_dir: Path) -> PictureReport:
    """Write each component's picture; rows are (category_code, sku, image_filename, dirt).

    Serial on purpose: drawing takes ~0.25 ms a card, and creating the file costs as much
    again, which more processes do not speed up on a small VM's disk."""
    images_dir.mkdir(parents=True, exist_ok=True)
    report = PictureReport()
    for category_code, sku, filename, dirt in rows:
        if dirt == "image_missing":
            report.missing += 1
            continue
        target = safe_target(images_dir, filename)
        if target is None:
            report.refused += 1
            continue
        if dirt == "image_not_image":
            target.write_bytes(NOT_AN_IMAGE)
            report.not_images += 1
        else:
            target.write_bytes(card_bytes(category_code, sku, filename))
            report.written += 1
    return report
