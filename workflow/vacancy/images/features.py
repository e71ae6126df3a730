"""Features: a small, blurred thumbnail of each image, the vector that PCA and t-SNE then place.

Why this recipe: it is the original project's, and it decides which rooms end up side by side.
Each image is squashed to 64 x 64 (aspect ratio ignored, so every image gives the same number of
values), and two blurred copies (sigma 3 and 8) are added so that layout and large light/dark
areas count more than fine texture. ImageMagick does every pixel operation, with the original
command's semantics:

    convert img -resize 64x64! -colorspace RGB -colorspace gray \\
        ( -clone 0 -blur 0x3 ) ( -clone 0 -blur 0x8 ) -append

Vector layout, float32 in 0..1 (Q16 value / 65535), row-major:

* ``color="gray"``: 12,288 values = the 64 x 192 stack (rows 0-63 the image, 64-127 blur 3,
  128-191 blur 8), index ``row * 64 + col``.
* ``color="rgb"``: 36,864 values, *planar*: the same 64 x 192 stack for R, then G, then B
  (index ``channel * 12288 + row * 64 + col``), without the ``-colorspace gray`` step. In
  ImageMagick >= 6.7.7 ``-colorspace RGB`` means *linear* RGB, so the blurs are done in linear
  light; the values are then encoded back to sRGB, which is what the original command's output
  (``... -append rgb:-`` or any image file) contains. The gray variant instead goes back to
  sRGB *before* blurring (``-colorspace gray`` of a linear image does that), so its first 64
  rows equal the Rec. 709 luma of the rgb ones exactly and its blurred rows only approximately.

EXIF orientation is not applied (the original did not either). :func:`wand_features` is the recipe
done by ImageMagick (the ``rgb`` variant); :func:`features_of_small` is the same recipe in NumPy on
the 64 x 64 grey image the ``prepare`` stage has already made (see there). The tests hold both to
ImageMagick's CLI and to a full-decode reference (``tests/reference.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from wand.image import Image

from ..imaging import export_pixels

SIZE = 64
SIGMAS = (3.0, 8.0)
N_GRAY = SIZE * SIZE * (1 + len(SIGMAS))  # 12,288
N_FEATURES = {"gray": N_GRAY, "rgb": 3 * N_GRAY}  # rgb: 36,864
RECIPE = (
    "ImageMagick: -resize 64x64! -colorspace RGB [-colorspace gray] "
    "( -clone 0 -blur 0x3 ) ( -clone 0 -blur 0x8 ) -append; float32 = Q16/65535; "
    "gray: 64x192 row-major (image, blur 3, blur 8); rgb: planar R, G, B stacks of 64x192, "
    "blurred in linear RGB, stored sRGB-encoded (as the command's rgb:- output)"
)
#: Gaussian kernels reach out this many sigmas: ImageMagick's 1-D blur kernel (radius 0: "as wide
#: as needed at Q16") was matched best at 4 on the demo (mean |difference| 0.0001 per value).
BLUR_TRUNCATE = 4.0


def check_color(color: str) -> None:
    """Refuse an unknown colour mode early, before hours of work write the wrong width."""
    if color not in N_FEATURES:
        raise ValueError(f"color must be one of {sorted(N_FEATURES)}, not {color!r}")


def wand_features(img: Image, color: str = "gray") -> np.ndarray:
    """The feature vector of a decoded Wand image (the image is modified: resized, recoloured)."""
    check_color(color)
    img.resize(SIZE, SIZE)  # Wand's resize ignores the aspect ratio, like "64x64!"
    img.transform_colorspace("rgb")  # linear RGB, as "-colorspace RGB" in ImageMagick 6.9
    if color == "gray":
        img.transform_colorspace("gray")
    copies = [img]
    try:
        for sigma in SIGMAS:
            blurred = img.clone()
            copies.append(blurred)
            blurred.blur(radius=0, sigma=sigma)
        planes = [_export_stack_part(copy, color) for copy in copies]
    finally:
        for copy in copies[1:]:
            copy.destroy()
    stack = np.concatenate(planes, axis=0)  # (192, 64, channels): the "-append"
    return np.ascontiguousarray(stack.transpose(2, 0, 1)).reshape(-1)


def _export_stack_part(img: Image, color: str) -> np.ndarray:
    """One 64 x 64 part of the stack as floats; rgb is encoded to sRGB as any IM writer does."""
    if color == "gray":
        return export_pixels(img, "R", "float")
    img.transform_colorspace("srgb")
    return export_pixels(img, "RGB", "float")


# ---------------------------------------------------------------------------------------------
# The same recipe as numpy matrix products, on the grey image the prepare stage has decoded


@lru_cache(maxsize=8)
def _blur_operator(sigma: float, size: int = SIZE) -> np.ndarray:
    """(size x size) matrix of a normalised Gaussian blur whose edges repeat the border pixel
    (ImageMagick's default virtual pixels), so a 2-D blur is ``B @ x @ B.T``."""
    radius = int(BLUR_TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    operator = np.zeros((size, size))
    for row in range(size):
        np.add.at(operator[row], np.clip(row + offsets, 0, size - 1), weights)
    return operator.astype(np.float32)


def features_of_small(small: np.ndarray) -> np.ndarray:
    """The 12,288-value gray vector from the 64 x 64 grey image: it, blur 3, blur 8, stacked."""
    parts = [small] + [_blur_operator(s) @ small @ _blur_operator(s).T for s in SIGMAS]
    return np.concatenate(parts).reshape(-1)
