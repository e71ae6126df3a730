"""Tests of the features stage against the original recipe run by the real ImageMagick CLI."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from wand.version import MAGICK_VERSION_NUMBER

from conftest import imagemagick_cli

from reference import gray_features, image_features
from vacancy.images.features import wand_features
from vacancy.imaging import decode
from vacancy.images.triage import gray_q16

IM_CONVERT = imagemagick_cli()  # the real ImageMagick CLI, as an independent reference
#: Same library, same operations: only float32 rounding may differ (measured max 3e-8).
TOLERANCE = 1e-6


def photo_like(width=120, height=90, seed=0) -> np.ndarray:
    """Colour gradients, a bright window and noise: a stand-in for a photo of a room."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 200, y / height * 220, (x + y) / (width + height) * 180], -1)
    base[height // 4: height // 2, width // 2: width * 3 // 4] = 250
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt="JPEG") -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def cli_recipe(path: Path, color="gray") -> np.ndarray:
    """The original command, run by ImageMagick's CLI; 16-bit raw output scaled to 0..1."""
    gray = ["-colorspace", "gray"] if color == "gray" else []
    # For palette input (GIF) IM 6.9.11's -append labels the gray result "RGB" (linear), and the
    # raw writer would then gamma-encode it; "-set colorspace gray" only fixes that label (the
    # pixels, checked with %[fx:mean], are the same), and changes nothing for other inputs.
    tail = ["-set", "colorspace", "gray", "gray:-"] if color == "gray" else ["rgb:-"]
    if color == "rgb" and MAGICK_VERSION_NUMBER >= 0x700:
        # IM 6's raw writer encodes linear RGB to sRGB; IM 7's writes it as it is. Our features
        # are sRGB-encoded under both (wand_features encodes explicitly), so ask IM 7 for that.
        tail = ["-colorspace", "sRGB", *tail]
    out = subprocess.run(
        [IM_CONVERT, str(path), "-resize", "64x64!", "-colorspace", "RGB", *gray,
         "(", "-clone", "0", "-blur", "0x3", ")", "(", "-clone", "0", "-blur", "0x8", ")",
         "-append", "-depth", "16", "-endian", "MSB", *tail],
        check=True, capture_output=True).stdout
    values = np.frombuffer(out, ">u2").astype(np.float64) / 65535
    if color == "rgb":  # CLI output is interleaved RGBRGB...; ours is planar R, G, B
        values = values.reshape(192, 64, 3).transpose(2, 0, 1).ravel()
    return values


@pytest.mark.parametrize("name, mode, fmt", [
    ("room.jpg", "RGB", "JPEG"), ("gray.jpg", "L", "JPEG"), ("palette.gif", "P", "GIF"),
])
def test_gray_features_equal_the_cli_recipe(tmp_path, name, mode, fmt):
    path = tmp_path / name  # 120x90: squashed to 64x64, aspect ignored
    image = PILImage.fromarray(photo_like())
    image = image.convert(mode) if mode != "P" else image.quantize(64)
    image.save(path, format=fmt)
    features = image_features(path.read_bytes())
    assert features.shape == (12288,) and features.dtype == np.float32
    reference = cli_recipe(path)
    assert reference.shape == (12288,)
    assert np.abs(features - reference).max() < TOLERANCE
    # the stack order is image / blur 3 / blur 8: each copy is smoother than the one above
    rows = features.reshape(3, 64, 64)
    roughness = [np.abs(np.diff(part, axis=1)).mean() for part in rows]
    assert roughness[0] > roughness[1] > roughness[2]


def test_rgb_features_equal_the_cli_recipe_planar(tmp_path):
    path = tmp_path / "room.png"
    path.write_bytes(encode(photo_like(seed=4), "PNG"))
    features = image_features(path.read_bytes(), color="rgb")
    assert features.shape == (36864,) and features.dtype == np.float32
    assert np.abs(features - cli_recipe(path, "rgb")).max() < TOLERANCE


def test_rgb_gray_equivalent_is_close_to_gray(tmp_path):
    data = encode(photo_like(seed=5))
    gray = image_features(data).astype(np.float64)
    rgb = image_features(data, color="rgb").reshape(3, -1).astype(np.float64)
    luma = np.array([0.212656, 0.715158, 0.072186]) @ rgb  # Rec. 709, ImageMagick's weights
    diff = np.abs(luma - gray)
    assert diff[:4096].max() < 1e-4  # unblurred: gray is exactly the luma of the sRGB values
    # blurred: rgb blurs in linear light, gray after gamma, so they differ a little
    # (measured on this image: mean 0.028, max 0.149, correlation 0.985)
    assert diff[4096:].mean() < 0.05
    assert np.corrcoef(luma[4096:], gray[4096:])[0, 1] > 0.97


def test_flat_image_gives_constant_features():
    features = image_features(encode(np.full((50, 70, 3), 128, np.uint8), "PNG"))
    assert np.ptp(features) == 0.0
    assert features[0] == pytest.approx(128 / 255, abs=2e-4)  # sRGB -> linear -> gray rounding
    rgb = image_features(encode(np.full((50, 70, 3), (200, 100, 30), np.uint8), "PNG"), "rgb")
    assert [np.ptp(c) for c in rgb.reshape(3, -1)] == [0.0, 0.0, 0.0]
    assert rgb.reshape(3, -1)[:, 0] == pytest.approx([200 / 255, 100 / 255, 30 / 255], abs=5e-4)


def test_unknown_color_is_refused():
    with pytest.raises(ValueError, match="color"):
        image_features(encode(np.zeros((8, 8), np.uint8), "PNG"), color="hsv")


def test_matrix_recipe_equals_imagemagicks_on_the_same_pixels():
    """gray_features (numpy, used by prepare) against wand_features (ImageMagick) on one decode."""
    with decode(encode(photo_like(600, 450, seed=6))) as img:
        gray = gray_q16(img) / 65535
        reference = wand_features(img.clone(), "gray")
    ours = gray_features(gray)
    assert ours.shape == (12288,) and ours.dtype == np.float32
    assert np.abs(ours - reference).mean() < 5e-4 and np.abs(ours - reference).max() < 0.01
    flat = gray_features(np.full((45, 70), 0.25))
    assert np.allclose(flat, 0.25, atol=1e-6)  # weights sum to one, edges repeat
