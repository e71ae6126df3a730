"""Hashes: a 64-bit difference hash (dHash) of every image, which ``dedup`` compares.

Copies of one photo (re-posted, re-encoded, resized by another listing) have hashes a few bits
apart. The hash is ``imagehash.dhash`` on an 8-bit grey Pillow image: Lanczos-resized to
``(hash_size + 1) x hash_size``, one bit per horizontal neighbour pair ("is the right pixel
brighter?"), written as ``hash_size**2 / 4`` hex digits.

The grey image is the 64x64 one the ``prepare`` stage already made for the features (from
ImageMagick's ``-colorspace gray`` of a reduced-scale JPEG decode, see
:mod:`vacancy.images.prepare`), so hashing costs no decode of its own. Reading the file defensively (content sniffing, pixel limits, truncation)
is done once, there. 16-bit images are exported by ImageMagick at full depth and scaled to 8 bits,
so they are not clipped as Pillow's ``convert("L")`` would clip them.
"""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

HASH_COLUMNS = ["id", "dhash", "width", "height", "bytes"]


def check_hash_size(hash_size: int) -> None:
    """Refuse a hash size dedup cannot compare, before any image is read."""
    if not 2 <= hash_size <= 8:
        raise ValueError(f"hash_size must be 2..8 (dedup compares at most 64-bit hashes), got {hash_size}")


def gray8_of_unit(gray: np.ndarray) -> np.ndarray:
    """Grey values in 0..1 rounded to 8 bits (clipped: a Lanczos resize may overshoot a little)."""
    return np.clip(np.rint(np.asarray(gray) * 255), 0, 255).astype(np.uint8)


def dhash_of_gray(gray8: np.ndarray, hash_size: int = 8) -> str:
    """The dHash (hex) of an 8-bit grey image given as an (h, w) uint8 array."""
    check_hash_size(hash_size)
    return str(imagehash.dhash(Image.fromarray(np.asarray(gray8, dtype=np.uint8), "L"),
                               hash_size=hash_size))

