"""dHash of a grey array: equal to imagehash's, on the 64x64 grey image prepare makes for features
(computed in NumPy there, checked here against imagehash itself).

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


def test_numpy_dhash_is_imagehash_bit_for_bit_on_64x64():
    # prepare hashes the 64x64 grey image with NumPy (Pillow's fixed-point Lanczos restated):
    # every hash size, on noise, gradients, two-level images and photos resized to 64x64
    rng = np.random.default_rng(15)
    images = [rng.integers(0, 256, (64, 64)), rng.choice([0, 255], (64, 64)),
              np.add.outer(np.arange(64), np.arange(64)) * 2 + rng.integers(-2, 3, (64, 64))]
    for name in ("china.jpg", "flower.jpg"):
        images.append(np.asarray(Image.open(PHOTOS / name).convert("L").resize((64, 64))))
    images += [rng.integers(0, 256, (64, 64)) for _ in range(40)]
    for gray in images:
        gray = np.clip(gray, 0, 255).astype(np.uint8)
        for hash_size in range(2, 9):
            assert dhash_of_gray(gray, hash_size) == \
                str(imagehash.dhash(Image.fromarray(gray, "L"), hash_size=hash_size))
