"""Tests of the features stage against the original recipe run by the real ImageMagick CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image as PILImage

from vacancy.features import N_FEATURES, features_for_location, image_features, rejects_path

IM_CONVERT = "/usr/bin/convert-im6.q16"  # the real ImageMagick CLI, as an independent reference
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


def test_draft_decoding_moves_features_only_slightly():
    jpeg = encode(photo_like(600, 450, seed=6))
    full, draft = image_features(jpeg), image_features(jpeg, draft=True)
    diff = np.abs(full - draft)
    assert 0 < diff.max() < 0.05 and diff.mean() < 0.005
    png = encode(photo_like(600, 450, seed=6), "PNG")  # the hint only concerns JPEG
    assert np.array_equal(image_features(png), image_features(png, draft=True))


# --- the stage -----------------------------------------------------------------------------


def write_selected(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A selected.csv of (location, filename, path) rows."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "location", "filename", "path", "class"])
        for location, filename, file_path in rows:
            writer.writerow([f"{location}/{filename}", location, filename, file_path, "photo"])
    return path


def test_features_for_location_writes_hdf5_in_order_and_skips_broken(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = []
    for i in range(7):  # 7 good images, batch size 3: batches of 3, 3 and 1
        name = f"ü-{i}.jpg"
        (raw / name).write_bytes(encode(photo_like(80 + i * 10, 60, seed=i)))
        rows.append(("sfbay", name, str(raw / name)))
        rows.append(("boston", f"b{i}.jpg", str(raw / name)))  # another location: left out
    (raw / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    rows.insert(5, ("sfbay", "broken.jpg", str(raw / "broken.jpg")))
    selected = write_selected(tmp_path / "selected.csv", rows)
    out = tmp_path / "features" / "sfbay.h5"

    counts = features_for_location(selected, "sfbay", out, batch_size=3)

    assert counts == {"images": 8, "written": 7, "rejected": 1}
    expected_ids = [f"sfbay/ü-{i}.jpg" for i in range(7)]
    with h5py.File(out) as h5:
        ids = [s.decode() for s in h5["ids"][:]]
        features = h5["features"]
        assert ids == expected_ids
        assert features.shape == (7, 12288) and features.dtype == np.float32
        assert features.chunks == (64, 12288) and features.compression == "lzf"
        for i, id_ in enumerate(ids):
            expected = image_features((raw / id_.split("/")[1]).read_bytes())
            assert np.array_equal(features[i], expected)
        assert h5.attrs["color"] == "gray" and h5.attrs["n_features"] == 12288
        assert "-resize 64x64!" in h5.attrs["recipe"]
        prov = json.loads(h5.attrs["provenance"])
        assert prov["stage"] == "features" and prov["params"]["location"] == "sfbay"
        assert prov["n_rows"] == 7
    with open(rejects_path(out), newline="", encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    assert [(r["id"], r["stage"]) for r in rejects] == [("sfbay/broken.jpg", "features")]
    assert rejects[0]["reason"].startswith("unreadable jpeg header")
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "sfbay.h5", "sfbay.h5.rejects.csv", "sfbay.h5.rejects.csv.meta.json"]  # no temp files


def test_rgb_hdf5_has_the_rgb_width(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(encode(photo_like(seed=9), "PNG"))
    selected = write_selected(tmp_path / "selected.csv", [("miami", "a.png", str(path))])
    features_for_location(selected, "miami", tmp_path / "miami.h5", color="rgb")
    with h5py.File(tmp_path / "miami.h5") as h5:
        assert h5["features"].shape == (1, N_FEATURES["rgb"]) and h5.attrs["color"] == "rgb"
        assert np.array_equal(h5["features"][0], image_features(path.read_bytes(), "rgb"))


def test_zero_rows_is_a_valid_empty_file(tmp_path):
    selected = write_selected(tmp_path / "selected.csv", [("sfbay", "x.jpg", "x.jpg")])
    counts = features_for_location(selected, "denver", tmp_path / "denver.h5")
    assert counts == {"images": 0, "written": 0, "rejected": 0}
    with h5py.File(tmp_path / "denver.h5") as h5:
        assert h5["ids"].shape == (0,) and h5["features"].shape == (0, 12288)
    assert rejects_path(tmp_path / "denver.h5").read_text().strip() == "id,stage,reason"


def test_a_failed_run_leaves_no_output(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(encode(photo_like(seed=1), "PNG"))
    selected = tmp_path / "selected.csv"
    selected.write_text(f"id,location,pathname\nsfbay/good.png,sfbay,{good}\n")  # no "path"
    with pytest.raises(KeyError):
        features_for_location(selected, "sfbay", tmp_path / "out" / "sfbay.h5")
    assert list((tmp_path / "out").iterdir()) == []
