"""dHash of a grey array: imagehash's own, on the 64x64 grey image prepare makes for features.

Reading files (formats, truncation, pixel limits) is the shared safe decoder's job and is tested
in test_triage.py and test_prepare.py; copies and 16-bit input through the whole stage there too.
"""

from __future__ import annotations

from pathlib import Path

import imagehash
import numpy as np
import pytest
import sklearn.datasets
from PIL import Image

from vacancy.images.hashes import dhash_of_gray, gray8_of_unit

PHOTOS = Path(sklearn.datasets.__file__).parent / "images"


def test_dhash_is_imagehash_of_the_same_pixels():
    gray = np.asarray(Image.open(PHOTOS / "china.jpg").convert("L"))
    assert dhash_of_gray(gray) == str(imagehash.dhash(Image.fromarray(gray, "L")))
    assert len(dhash_of_gray(gray)) == 16 and len(dhash_of_gray(gray, hash_size=4)) == 4
    with pytest.raises(ValueError, match="hash_size"):  # a config error, not a reject per image
        dhash_of_gray(gray, hash_size=16)


def test_unit_grey_is_rounded_and_clipped_to_8_bits():
    values = np.array([[-0.01, 0.0, 0.5, 1.0, 1.02]])
    assert gray8_of_unit(values).tolist() == [[0, 0, 128, 255, 255]]


def test_two_photos_hash_far_apart():
    china = np.asarray(Image.open(PHOTOS / "china.jpg").convert("L"))
    flower = np.asarray(Image.open(PHOTOS / "flower.jpg").convert("L"))
    a, b = dhash_of_gray(china), dhash_of_gray(flower)
    assert imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b) > 16
