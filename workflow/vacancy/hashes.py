"""Stage ``hashes``: a 64-bit difference hash (dHash) of every image of one location.

The hash is what the ``dedup`` stage compares to find copies of the same photo (the same picture
re-posted, re-encoded or resized by another listing). It is ``imagehash.dhash`` on a Pillow image:
grayscale, Lanczos-resized to ``(hash_size + 1) x hash_size``, one bit per horizontal neighbour
pair ("is the right pixel brighter?"), written as ``2 * hash_size**2 / 8`` hex digits.

Reading is defensive because the files come from the web:

* the file is read as bytes and its *content* must start like JPEG, PNG, GIF, WEBP, BMP or TIFF;
  Pillow is then allowed to use only that one decoder (so an SVG, HTML page, PostScript or
  anything else named ``.jpg`` is rejected before any decoder sees it);
* the pixel count is taken from the header and checked against ``max_pixels`` before decoding,
  and while decoding Pillow's decompression-bomb guard is set to ``max_pixels`` with its warning
  turned into an error, so it rejects instead of just warning;
* truncated files raise in Pillow (``ImageFile.LOAD_TRUNCATED_IMAGES`` is left off) and are
  rejected rather than hashed half-grey;
* a bad image is a row in the rejects CSV (``id, stage, reason``) and never stops the run.

JPEGs are decoded in draft mode (libjpeg's DCT scaling, 1/2 to 1/8 size) when ``draft=True``,
to at least ``DRAFT_MIN_SIDE`` pixels per side. It is off by default: see ``DRAFT_NOTE``.
EXIF orientation is not applied (the ImageMagick stages do not apply it either), so width and
height are the stored ones.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from . import formats
from .common import Progress, provenance, read_csv, write_csv
from .formats import Rejected

log = logging.getLogger("vacancy.hashes")

STAGE = "hashes"
HASH_COLUMNS = ["id", "dhash", "width", "height", "bytes"]
REJECT_COLUMNS = ["id", "stage", "reason"]

#: Files larger than this are not read into memory at all (a 50 MP uncompressed RGBA TIFF is 200 MB).
DEFAULT_MAX_BYTES = formats.MAX_FILE_BYTES

#: Smallest side a draft-mode JPEG decode may produce; far above the 9x8 the hash needs, so the
#: final Lanczos step still averages many pixels.
DRAFT_MIN_SIDE = 64

DRAFT_NOTE = (
    "measured on sklearn's china.jpg and flower.jpg, their resized re-encodes (320-1600 px) and "
    "20 synthetic 600x450 scenes: draft decoding flips 0-2 of 64 dHash bits on 14 of 32 images "
    "and makes resized copies of one photo disagree by up to 2 bits (full decode: 0-1), while "
    "saving only ~1 ms per 600x450 JPEG (1.7 ms -> 0.7 ms); so it is opt-in, off by default"
)

#: Pillow modes with more than 8 bits per sample, which ``convert("L")`` would clip.
HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}

class ImageRejected(Rejected, ValueError):
    """An image that must not be hashed; the message is the reason written to the rejects CSV."""


def sniff_format(blob: bytes) -> str | None:
    """The Pillow format name of the bytes (see :func:`vacancy.formats.sniff_format`), or None."""
    fmt = formats.sniff_format(blob[:32])
    return fmt.upper() if fmt else None


@contextlib.contextmanager
def pillow_guard(max_pixels: int):
    """Make Pillow's decompression-bomb check reject (not warn) anything above ``max_pixels``.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` and only raises above twice that; we lower the
    limit to ours and turn the warning into an error for the duration of the block.
    """
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = int(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def open_image(blob: bytes, max_pixels: int = 50_000_000) -> Image.Image:
    """Open (header only) a raster image from bytes, or raise :class:`ImageRejected` saying why."""
    if not blob:
        raise ImageRejected("empty file")
    fmt = sniff_format(blob)
    if fmt is None:
        raise ImageRejected("not a supported raster image (JPEG/PNG/GIF/WebP/BMP/TIFF): "
                            f"looks like {formats.describe_content(blob[:512])}")
    try:
        with pillow_guard(max_pixels):
            image = Image.open(io.BytesIO(blob), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"too many pixels: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad headers
        raise ImageRejected(f"unreadable {fmt} header: {type(exc).__name__}: {exc}") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"invalid dimensions {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(f"too many pixels: {width}x{height} = {width * height} > {max_pixels}")
    return image


def to_gray8(image: Image.Image) -> Image.Image:
    """8-bit grayscale for dHash; high-bit-depth images are stretched, not clipped.

    Pillow's ``convert("L")`` clips 16-bit and float data at 255 (a 16-bit gradient turns white),
    so those modes are min-max scaled to 0..255 first; dHash only compares neighbouring averages,
    so any increasing linear scaling gives the hash of the 8-bit version of the same picture.
    """
    if image.mode not in HIGH_DEPTH_MODES:
        return image.convert("L")
    pixels = np.asarray(image, dtype=np.float64)
    low, high = float(pixels.min()), float(pixels.max())
    scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    return Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")


def dhash_image(
    blob: bytes, hash_size: int = 8, max_pixels: int = 50_000_000, draft: bool = False
) -> tuple[str, int, int]:
    """dHash of an image given as bytes: ``(hex, width, height)``; raises :class:`ImageRejected`.

    Width and height are those of the stored image (before any draft scaling). A bad
    ``hash_size`` is a configuration error and raises ValueError instead of rejecting every image.
    """
    if not 2 <= hash_size <= 8:
        raise ValueError(f"hash_size must be 2..8 (dedup compares at most 64-bit hashes), got {hash_size}")
    image = open_image(blob, max_pixels)
    width, height = image.size
    try:
        with pillow_guard(max_pixels):
            if draft and image.format == "JPEG":
                side = max(DRAFT_MIN_SIDE, hash_size + 1)
                image.draft(image.mode, (side, side))
            image.load()
            value = imagehash.dhash(to_gray8(image), hash_size=hash_size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"too many pixels: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data surfaces as OSError etc.
        raise ImageRejected(
            f"corrupt or truncated {image.format}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        image.close()
    return str(value), width, height


def hash_row(row: dict, hash_size: int, max_pixels: int, max_bytes: int, draft: bool) -> dict:
    """Hash one inventory row; returns the output row or raises :class:`ImageRejected`."""
    blob = formats.read_blob(row["path"], max_bytes)
    hex_hash, width, height = dhash_image(blob, hash_size, max_pixels, draft)
    return {"id": row["id"], "dhash": hex_hash, "width": width, "height": height, "bytes": len(blob)}


def hash_location(
    inventory_csv,
    out_csv,
    rejects_csv,
    hash_size: int = 8,
    max_pixels: int = 50_000_000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    draft: bool = False,
) -> dict:
    """Hash every image of one location's inventory; write hashes and rejects; return counts.

    Rows keep the inventory order. Both CSVs are written atomically with provenance sidecars.
    """
    inventory = read_csv(inventory_csv)
    params = {"hash_size": hash_size, "max_pixels": max_pixels, "max_bytes": max_bytes,
              "draft": draft, "inventory": str(inventory_csv)}
    rows, rejects = [], []
    progress = Progress(f"hashes {Path(inventory_csv).stem}", len(inventory), logger=log)
    for row in inventory:
        try:
            rows.append(hash_row(row, hash_size, max_pixels, max_bytes, draft))
        except Rejected as exc:
            log.warning("reject %r (%s): %s", row.get("id"), row.get("path"), exc)
            rejects.append({"id": row.get("id", ""), "stage": STAGE, "reason": str(exc)})
        progress.update()
    progress.finish()
    write_csv(out_csv, rows, HASH_COLUMNS, prov=provenance(STAGE, params))
    write_csv(rejects_csv, rejects, REJECT_COLUMNS, prov=provenance(STAGE, params))
    counts = {"inventory": len(inventory), "hashed": len(rows), "rejected": len(rejects)}
    log.info("hashes %s: %s", Path(inventory_csv).stem, counts)
    return counts
