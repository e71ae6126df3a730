"""JPEG contact sheets: small pictures of original images with their names, in titled sections.

A curator has to see the images a threshold or the distance limit decides about, and copy their
names into an include or exclude file, so every picture carries its id (wrapped, never cut off
at the start: the file name is the part that differs) and the value that placed it. Pictures are
decoded from the original files (graphics have no stored thumbnail) with the workflow's own
safe decoder (:mod:`vacancy.imaging`: bytes, never a file name, to ImageMagick; size checked
from the header), letterboxed rather than cropped, so nothing a curator should see is cut away.
An image that cannot be decoded gets a grey square; the sheet is still made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..common import atomic_path
from ..imaging import DEFAULT_MAX_PIXELS, Rejected, decode, export_pixels, read_blob

#: Sheet colours: white paper, black text, a mid grey square where an image could not be read.
PAPER = (255, 255, 255)
INK = (0, 0, 0)
UNREADABLE = (128, 128, 128)
#: Pixels between pictures, and the height of a section's title strip.
GAP = 6
TITLE_PX = 22
#: Lines of text under each picture (the id may take two; the value line comes last).
LABEL_LINES = 3
#: JPEG quality of the sheets: text stays legible, a 40-picture sheet is ~100-200 kB.
JPEG_QUALITY = 85


@dataclass
class Item:
    """One picture of a sheet: its pixels (None: unreadable) and the text under it."""

    pixels: np.ndarray | None
    lines: list[str] = field(default_factory=list)


def font(size: int = 11) -> ImageFont.ImageFont:
    """Pillow's bundled font (no system font needed), at ``size`` px."""
    return ImageFont.load_default(size=size)


def read_picture(path: str | Path, px: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """The image at ``path`` as RGB uint8 fitting in ``px`` x ``px`` (aspect kept, upright), or
    None if it cannot be read or decoded (the report shows that rather than failing).

    JPEGs are decoded at reduced scale (``jpeg:size``), as ``prepare`` does, so a sheet of 200
    pictures costs about a second.
    """
    try:
        blob = read_blob(path)
        with decode(blob, max_pixels, {"jpeg:size": f"{px}x{px}"}) as img:
            img.auto_orient()
            if max(img.width, img.height) > 2 * px:
                img.transform(resize=f"{2 * px}x{2 * px}>")
            if img.alpha_channel:
                img.alpha_channel = "remove"
            img.transform_colorspace("srgb")
            rgb = export_pixels(img, "RGB", "char")
    except (Rejected, OSError):
        return None
    picture = Image.fromarray(rgb, "RGB")
    picture.thumbnail((px, px), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def wrap(text: str, face: ImageFont.ImageFont, width: int, max_lines: int) -> list[str]:
    """``text`` broken into lines no wider than ``width`` px (ids have no spaces, so break
    anywhere); if it needs more than ``max_lines`` the middle is elided, keeping the start (the
    location) and the end (the file name's distinctive part)."""
    lines: list[str] = []
    rest = text
    while rest:
        cut = len(rest)
        while cut > 1 and face.getlength(rest[:cut]) > width:
            cut -= 1
        lines.append(rest[:cut])
        rest = rest[cut:]
    if len(lines) <= max_lines:
        return lines
    tail = ""
    for char in reversed(text):
        if face.getlength("…" + char + tail) > width:
            break
        tail = char + tail
    return lines[: max_lines - 1] + ["…" + tail]


def _label_block(item: Item, face, px: int) -> list[str]:
    """The label lines of one picture: the id wrapped to two lines, then the other lines."""
    head, *rest = item.lines or [""]
    return (wrap(head, face, px, LABEL_LINES - len(rest)) + rest)[:LABEL_LINES]


def contact_sheet(sections: Sequence[tuple[str, Sequence[Item]]], px: int, columns: int,
                  font_px: int = 11) -> Image.Image:
    """One RGB image: each section a title strip then its pictures, ``columns`` to a row, each
    centred in a ``px`` square with its label lines underneath. An empty section shows its
    title and "(none)"."""
    face = font(font_px)
    line_px = font_px + 2
    cell_w, cell_h = px + GAP, px + LABEL_LINES * line_px + GAP
    width = GAP + columns * cell_w
    heights = [TITLE_PX + max(1, -(-len(items) // columns)) * cell_h for _, items in sections]
    sheet = Image.new("RGB", (width, GAP + sum(heights)), PAPER)
    draw = ImageDraw.Draw(sheet)
    top = GAP
    for (title, items), height in zip(sections, heights):
        draw.text((GAP, top + 4), title, fill=INK, font=font(font_px + 2))
        if not items:
            draw.text((GAP, top + TITLE_PX), "(none)", fill=INK, font=face)
        for k, item in enumerate(items):
            x = GAP + (k % columns) * cell_w
            y = top + TITLE_PX + (k // columns) * cell_h
            _paste(sheet, item.pixels, x, y, px)
            for n, line in enumerate(_label_block(item, face, px)):
                draw.text((x, y + px + 1 + n * line_px), line, fill=INK, font=face)
        top += height
    return sheet


def _paste(sheet: Image.Image, pixels: np.ndarray | None, x: int, y: int, px: int) -> None:
    """A picture centred in the ``px`` square at (x, y), or the grey square if unreadable."""
    if pixels is None:
        sheet.paste(Image.new("RGB", (px, px), UNREADABLE), (x, y))
        return
    picture = Image.fromarray(np.asarray(pixels, dtype=np.uint8), "RGB")
    if max(picture.size) > px:
        picture.thumbnail((px, px), Image.Resampling.LANCZOS)
    sheet.paste(picture, (x + (px - picture.width) // 2, y + (px - picture.height) // 2))


def save_jpeg(image: Image.Image, path: str | Path) -> None:
    """Write a sheet as JPEG, atomically (a report never embeds half a file)."""
    with atomic_path(path, suffix=".jpg") as tmp:
        image.save(tmp, "JPEG", quality=JPEG_QUALITY, optimize=True)
