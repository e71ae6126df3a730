"""Hashes: a 64-bit difference hash (dHash) of every image, which ``dedup`` compares.

Copies of one photo (re-posted, re-encoded, resized by another listing) have hashes a few bits
apart. The hash is ``imagehash.dhash`` on an 8-bit grey Pillow image: Lanczos-resized to
``(hash_size + 1) x hash_size``, one bit per horizontal neighbour pair ("is the right pixel
brighter?"), written as ``hash_size**2 / 4`` hex digits.

It is computed here in NumPy, bit for bit as imagehash and Pillow compute it (the tests compare
the two on photos and random images): Pillow resizes 8-bit images with Lanczos weights computed
in double precision, rounded to integers of 22 fractional bits, applied horizontally and then
vertically with an 8-bit rounding in between. The same integer weights applied as float64
matrix products are exact (every product and sum is an integer below 2**53), so only the
rounding of Pillow has to be restated, not its arithmetic order. Why not imagehash itself: the
Pillow image, the conversion and the resize cost 0.3 ms per image, a tenth of ``prepare``'s loop.

The grey image is the 64x64 one the ``prepare`` stage already made for the features (from
ImageMagick's ``-colorspace gray`` of a reduced-scale JPEG decode, see
:mod:`vacancy.images.prepare`), so hashing costs no decode of its own. Reading the file defensively (content sniffing, pixel limits, truncation)
is done once, there. 16-bit images are exported by ImageMagick at full depth and scaled to 8 bits,
so they are not clipped as Pillow's ``convert("L")`` would clip them.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

HASH_COLUMNS = ["id", "dhash", "width", "height", "bytes"]


def check_hash_size(hash_size: int) -> None:
    """Refuse a hash size dedup cannot compare, before any image is read."""
    if not 2 <= hash_size <= 8:
        raise ValueError(f"hash_size must be 2..8 (dedup compares at most 64-bit hashes), got {hash_size}")


def gray8_of_unit(gray: np.ndarray) -> np.ndarray:
    """Grey values in 0..1 rounded to 8 bits (clipped: a Lanczos resize may overshoot a little)."""
    return np.clip(np.rint(np.asarray(gray) * 255), 0, 255).astype(np.uint8)


#: The grey image prepare hashes is SIDE x SIDE; other shapes go through imagehash itself.
SIDE = 64
#: Pillow's fixed point for 8-bit resampling: weights carry 32 - 8 - 2 = 22 fractional bits.
_PRECISION_BITS = 22
_LANCZOS_SUPPORT = 3.0


def _lanczos(x: float) -> float:
    """Pillow's Lanczos kernel (a = 3): sinc(x) * sinc(x / 3) inside (-3, 3), else 0."""
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3.0)
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


@lru_cache(maxsize=32)
def _fixed_weights(length: int, size: int) -> np.ndarray:
    """(size x length) float64 matrix of Pillow's integer Lanczos weights for ``length -> size``.

    The same double-precision steps as Pillow's weight computation (support scaled by the
    reduction, each output's window normalised to sum 1), then rounded half away from zero to
    22 fractional bits, as Pillow does for 8-bit images.
    """
    scale = length / size
    filterscale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filterscale
    inv = 1.0 / filterscale
    out = np.zeros((size, length))
    for xx in range(size):
        center = (xx + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        end = min(int(center + support + 0.5), length)
        weights = [_lanczos((x + first - center + 0.5) * inv) for x in range(end - first)]
        total = 0.0
        for w in weights:
            total += w
        for x, w in enumerate(weights):
            if total != 0.0:
                w = w / total
            w *= 1 << _PRECISION_BITS
            out[xx, first + x] = int(w - 0.5) if w < 0 else int(w + 0.5)
    return out


def _round_fixed(sums: np.ndarray) -> np.ndarray:
    """Pillow's 8-bit result of weighted sums: + half, shift out the fraction, clip to 0..255."""
    return np.clip(np.floor((sums + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)),
                   0, 255)


def lanczos_resize8(gray8: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pillow's ``resize((width, height), LANCZOS)`` of an 8-bit grey image, as float64 0..255.

    Horizontal pass first, rounded to 8 bits, then the vertical one (each only when that side
    changes, as Pillow skips it). That is Pillow's order for 64x64 -> (n + 1) x n, n = 2..8 (tested);
    for some other shapes (e.g. 50x70 -> 64x8) Pillow runs the vertical pass first.
    """
    pixels = np.asarray(gray8, dtype=np.float64)
    h, w = pixels.shape
    if width != w:
        pixels = _round_fixed(pixels @ _fixed_weights(w, width).T)
    if height != h:
        pixels = _round_fixed(_fixed_weights(h, height) @ pixels)
    return pixels


def dhash_of_gray(gray8: np.ndarray, hash_size: int = 8) -> str:
    """The dHash (hex) of an 8-bit grey image given as an (h, w) uint8 array.

    Equal to ``str(imagehash.dhash(Image.fromarray(gray8, "L"), hash_size))``.
    """
    check_hash_size(hash_size)
    gray8 = np.asarray(gray8, dtype=np.uint8)
    if gray8.shape != (SIDE, SIDE):
        # Pillow does the two passes in another order for some shapes: verified only for 64x64
        import imagehash
        from PIL import Image

        return str(imagehash.dhash(Image.fromarray(gray8, "L"), hash_size=hash_size))
    pixels = lanczos_resize8(gray8, hash_size + 1, hash_size)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()
    n = bits.size
    value = int.from_bytes(np.packbits(bits).tobytes(), "big") >> (-n % 8)
    return f"{value:0{-(-n // 4)}x}"

