"""Triage: sort each image into graphic / maybe / photo by the entropy of its grey levels.

Why entropy: floor plans, logos, "call now" banners and screenshots use few, flat grey levels;
photos of rooms spread over most of the 256. The original scripts measured the Shannon entropy
of the 8-bit grayscale histogram that ImageMagick reports and cut at 3.9 and 4.4; we keep that
scale so the thresholds people tuned still mean the same thing.

Definition (exactly what ImageMagick reports): the image is converted with ImageMagick's own
``-colorspace gray`` (Rec. 709 luma of the sRGB values; a CMYK or already-gray image is handled
by ImageMagick as usual), reduced to depth 8 as ``-depth 8`` does in the Q16 build (which
*truncates*: level = q16 // 257, not rounds), counted into 256 bins, and

    H = -sum(p_i * ln p_i)   over non-empty bins, in nats: 0 (flat) .. ln 256 = 5.545 (uniform).

It equals, to 1e-6, the entropy of ``convert-im6.q16 f -colorspace gray -depth 8 -format %c
histogram:info:-`` (see tests/test_triage.py). The histogram is counted in numpy from the 16-bit
pixels ImageMagick exports; the grey conversion and quantisation are ImageMagick's.

Relation to ImageMagick's own ``%[entropy]`` (measured with ImageMagick 6.9.11-60 Q16): it is
*not* ``H / ln 256``. ImageMagick divides by the log of the number of *non-empty* bins of the
histogram at the image's current depth: ``%[entropy] = H / ln(k)``. Measured on four images,
``convert f -colorspace gray -depth 8 -format %[entropy] info:`` gave 0.916103, 0.886376,
0.266256, 0.898616 where H / ln k with k = 187, 96, 256, 208 occupied levels gives exactly those
numbers, while H / ln 256 gives 0.864216, 0.729594, 0.266256, 0.864967 (equal only when all 256
levels occur). Without ``-depth 8`` the histogram has 65536 bins in Q16 and the value changes
again (0.967, 0.968, 0.222, 0.990 for the same images). Because k varies per image,
``%[entropy]`` is not a monotonic function of H across images (an image using 96 levels evenly
scores higher than a richer photo), so it cannot replace H and the 3.9/4.4 thresholds have no
``%[entropy]`` equivalent.

In the workflow the histogram is taken from the reduced-scale decode that the ``prepare`` stage
shares between all its measurements (see :mod:`vacancy.prepare`), not from a full decode: on the
2,000-image demo that moves H by 0.05 nats on average (-0.01 net) and changes the class of 0.2% of
images. The full-decode definition is kept as the tests' reference (``tests/reference.py``).
"""

from __future__ import annotations

import math

import numpy as np
from wand.image import Image

from .imaging import export_pixels

CLASSES = ("graphic", "maybe", "photo")
OUT_COLUMNS = ("id", "entropy", "class", "width", "height")


def gray_q16(img: Image) -> np.ndarray:
    """The image's ``-colorspace gray`` (ImageMagick's own conversion) as (h, w) uint16."""
    with img.clone() as gray:
        gray.transform_colorspace("gray")
        return export_pixels(gray, "R", "short")[..., 0]


def histogram_of_q16(q16: np.ndarray) -> np.ndarray:
    """256 counts of Q16 grey values after ``-depth 8``."""
    # Q16 "-depth 8" maps q to floor(255 * q / 65535) = q // 257 (65535 = 255 * 257).
    return np.bincount((np.asarray(q16) // 257).ravel(), minlength=256)


def entropy_nats(counts: np.ndarray) -> float:
    """Shannon entropy, natural log, of a histogram (empty bins ignored)."""
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    if counts.size == 0:
        raise ValueError("empty histogram")
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p))) + 0.0  # "+ 0.0" turns -0.0 into 0.0


def classify(entropy: float, graphic_below: float = 3.9, photo_above: float = 4.4) -> str:
    """'graphic' below ``graphic_below``, 'photo' above ``photo_above``, else 'maybe'."""
    if graphic_below > photo_above:
        raise ValueError(f"graphic_below {graphic_below} > photo_above {photo_above}")
    if math.isnan(entropy):
        raise ValueError("entropy is NaN")
    if entropy < graphic_below:
        return "graphic"
    if entropy > photo_above:
        return "photo"
    return "maybe"
