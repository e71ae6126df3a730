"""Tests of the triage entropy and the safe reader every stage decodes with (real ImageMagick).

The one-pass stage that uses them is tested in test_prepare.py (it imports helpers from here)."""

from __future__ import annotations

import csv
import json
import math
import re
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from wand.image import Image as WandImage

from conftest import imagemagick_cli
from vacancy.common import config_defaults

from vacancy.imaging import Rejected, decode, sniff_format
from reference import gray_entropy
from vacancy.images.triage import classify

TRIAGE = config_defaults()["triage"]

IM_CONVERT = imagemagick_cli()  # the real ImageMagick CLI, as an independent reference
INVENTORY_COLUMNS = ["id", "location", "filename", "path", "image_url", "listing_url",
                     "listing_id", "title", "price", "posted", "state"]


# --- test images (made with Pillow, not with the code under test) ---------------------------


def photo_like(width=160, height=120, seed=0) -> np.ndarray:
    """Smooth colour gradients plus noise: uses most grey levels, like a photo of a room."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 200, y / height * 220, (x + y) / (width + height) * 180], -1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    PILImage.fromarray(array).save(path, **kwargs)
    return path


def jpeg_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG header claiming a huge size, with a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def two_level(width=50, height=20) -> np.ndarray:
    """Left half black, right half white: two grey levels, half each."""
    array = np.zeros((height, width), np.uint8)
    array[:, width // 2:] = 255
    return array


def cli_histogram_entropy(path: Path) -> float:
    """Entropy in nats from the histogram ImageMagick's CLI prints."""
    out = subprocess.run(
        [IM_CONVERT, str(path), "-colorspace", "gray", "-depth", "8", "-format", "%c",
         "histogram:info:-"], check=True, capture_output=True, text=True).stdout
    counts = np.array([int(m) for m in re.findall(r"^\s*(\d+):", out, re.M)], float)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def write_inventory(path: Path, rows: list[tuple[str, str]], location="sfbay") -> Path:
    """An inventory CSV of (filename, path) rows."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, INVENTORY_COLUMNS)
        writer.writeheader()
        for filename, file_path in rows:
            writer.writerow({"id": f"{location}/{filename}", "location": location,
                             "filename": filename, "path": file_path, "state": "ok"})
    return path


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- entropy -------------------------------------------------------------------------------


def test_flat_image_has_entropy_exactly_zero(tmp_path):
    path = save(tmp_path / "flat.png", np.full((30, 40, 3), (90, 140, 200), np.uint8))
    entropy = gray_entropy(path.read_bytes())
    assert entropy == 0.0
    assert math.copysign(1, entropy) == 1  # not -0.0, which would print as "-0.000000"


def test_two_grey_levels_half_and_half_is_ln2(tmp_path):
    path = save(tmp_path / "two.png", two_level())
    assert gray_entropy(path.read_bytes()) == pytest.approx(math.log(2), abs=1e-12)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_entropy_equals_cli_histogram(tmp_path, suffix):
    path = save(tmp_path / f"photo{suffix}", photo_like())
    entropy = gray_entropy(path.read_bytes())
    assert abs(entropy - cli_histogram_entropy(path)) < 1e-6
    assert entropy > 4.4  # and the photo-like image is classed as a photo


def test_entropy_of_wand_image_leaves_it_unchanged(tmp_path):
    data = jpeg_bytes(photo_like(seed=3))
    with WandImage(blob=data, format="jpeg") as img:
        signature = img.signature
        assert gray_entropy(img) == gray_entropy(data)
        assert img.colorspace == "srgb" and img.signature == signature


@pytest.mark.parametrize("entropy, expected", [
    (0.0, "graphic"), (3.899999, "graphic"), (3.9, "maybe"), (4.15, "maybe"), (4.4, "maybe"),
    (4.400001, "photo"), (math.log(256), "photo"),
])
def test_classify_boundaries(entropy, expected):
    assert classify(entropy, TRIAGE["graphic_below"], TRIAGE["photo_above"]) == expected


def test_classify_custom_and_invalid_thresholds():
    assert classify(2.0, graphic_below=2.5, photo_above=3.0) == "graphic"
    assert classify(2.7, graphic_below=2.5, photo_above=3.0) == "maybe"
    assert classify(3.1, graphic_below=2.5, photo_above=3.0) == "photo"
    assert classify(3.0, graphic_below=3.0, photo_above=3.0) == "maybe"
    with pytest.raises(ValueError):
        classify(3.0, graphic_below=4.5, photo_above=4.4)
    with pytest.raises(ValueError):
        classify(float("nan"), 3.9, 4.4)


# --- the safe reader -----------------------------------------------------------------------


@pytest.mark.parametrize("head, expected", [
    (b"\xff\xd8\xff\xe0\0\x10JFIF", "jpeg"), (b"\x89PNG\r\n\x1a\n\0\0", "png"),
    (b"GIF89a\x01\0", "gif"), (b"RIFF\x10\0\0\0WEBPVP8 ", "webp"), (b"II*\0\x08\0\0\0", "tiff"),
    (b"MM\0*\0\0\0\x08", "tiff"), (b"BM" + bytes(12) + b"\x28\0\0\0", "bmp"),
    (b"BMW is a car brand, not a bitmap", None), (b"<svg xmlns=", None), (b"%!PS-Adobe", None),
    (b"%PDF-1.4", None), (b"push graphic-context", None), (b"<?xml version", None), (b"", None),
])
def test_sniff_accepts_only_raster_photo_formats(head, expected):
    assert sniff_format(head) == expected


def test_max_pixels_is_checked_from_the_header_before_decoding(tmp_path):
    data = save(tmp_path / "a.png", two_level(40, 30)).read_bytes()  # 1,200 pixels
    with decode(data, max_pixels=1200) as img:
        assert img.size == (40, 30)
    with pytest.raises(Rejected, match=r"40x30 .* exceeds max_pixels 1199"):
        with decode(data, max_pixels=1199):
            pass
    # 100 megapixels claimed by a 100-byte file: refused from the header, in no time.
    with pytest.raises(Rejected, match=r"10000x10000 .* exceeds max_pixels 50000000"):
        with decode(png_claiming(10_000, 10_000)):
            pass


def test_a_side_beyond_imagemagicks_policy_is_refused_by_name(tmp_path, monkeypatch):
    """A 1 x 20,000 PNG (a panorama strip: 20,000 pixels, far under max_pixels) is beyond
    Debian's ImageMagick policy (16,000 px a side), which ImageMagick reports as "no image and
    no reason": the reject names the limit instead, from the IHDR chunk, before any ping."""
    from vacancy import imaging

    most_wide, _ = imaging._side_limits()
    if most_wide >= 20_000:
        pytest.skip(f"this ImageMagick allows {most_wide} px a side")
    strip = save(tmp_path / "strip.png", np.full((1, 20_000), 90, np.uint8)).read_bytes()
    assert imaging.png_size(strip) == (20_000, 1)
    monkeypatch.setattr(imaging, "ping_size", lambda *a: pytest.fail("pinged"))
    with pytest.raises(Rejected, match=r"20000x1 is wider or taller than ImageMagick's policy "
                                       rf"allows \({most_wide}x\d+ px"):
        with decode(strip):
            pass


def test_jpeg_size_comes_from_the_sof_segment_as_imagemagick_pings_it(tmp_path, monkeypatch):
    from vacancy import imaging
    from vacancy.formats import jpeg_size

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (37, 53, 3)).astype(np.uint8)
    for kwargs in ({}, {"progressive": True}, {"quality": 30, "subsampling": 0}):
        data = save(tmp_path / "a.jpg", pixels, **kwargs).read_bytes()
        assert jpeg_size(data) == imaging.ping_size(data, "jpeg") == (53, 37)
    with_gray = save(tmp_path / "g.jpg", pixels[..., 0]).read_bytes()
    assert jpeg_size(with_gray) == (53, 37)
    # anything but a plain run of segments is left to ImageMagick's ping
    assert jpeg_size(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8) is None  # length 1
    assert jpeg_size(data[:2] + b"junk" + data[2:]) is None  # bytes between segments
    assert jpeg_size(data[:20]) is None  # cut before the frame
    # a JPEG claiming 10000x10000 in its SOF is refused from it, without a ping or a decode
    sof = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    bomb = data[:sof + 5] + struct.pack(">HH", 10_000, 10_000) + data[sof + 9:]
    assert jpeg_size(bomb) == (10_000, 10_000)
    monkeypatch.setattr(imaging, "ping_size", lambda *a: pytest.fail("pinged"))
    monkeypatch.setattr(imaging, "_new_wand", lambda *a: pytest.fail("decoded"))
    with pytest.raises(Rejected, match=r"10000x10000 .* exceeds max_pixels"):
        with decode(bomb):
            pass


def test_only_the_first_frame_of_an_animation_is_decoded(tmp_path):
    frames = [PILImage.new("L", (30, 20), level) for level in (0, 255, 128)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with decode(path.read_bytes()) as img:
        assert len(img.sequence) == 1 and img.size == (30, 20)
    assert gray_entropy(path.read_bytes()) == 0.0  # one flat frame, not three levels


# --- the signals and the model (method: model) ------------------------------------------------


def drawing(width=240, height=180) -> np.ndarray:
    """A floor-plan-like drawing: white ground, dark walls, one grey fill, anti-aliased text."""
    img = PILImage.new("RGB", (width, height), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    draw.rectangle([10, 10, width - 10, height - 10], outline="black", width=4)
    draw.rectangle([20, 20, width // 2, height // 2], fill=(200, 200, 200), outline="black")
    draw.line([width // 2, 10, width // 2, height - 10], fill="black", width=3)
    draw.text((30, height - 40), "BEDROOM 12x14  CALL NOW", fill="black")
    return np.asarray(img)


def measured(blob: bytes, method: str, **thresholds) -> dict:
    """The triage row prepare writes for one image (default config thresholds unless given)."""
    from vacancy.common import config_defaults
    from vacancy.images.prepare import decode_options, measure_image

    c = config_defaults()
    t = {**c["triage"], **thresholds}
    return measure_image(blob, decode_options(True, 64), t["graphic_below"], t["photo_above"], 8,
                         "gray", 64, (24, 24, 24), method=method,
                         score_graphic_below=t["score_graphic_below"],
                         score_photo_above=t["score_photo_above"])["triage"]


def test_signals_tell_a_drawing_from_a_photo():
    photo = measured(jpeg_bytes(photo_like(seed=3)), "model")
    plan = measured(jpeg_bytes(drawing()), "model")
    # identical neighbours and a dominant grey level are what drawn images have
    assert float(plan["same"]) > 0.5 > float(photo["same"])
    assert float(plan["peak"]) > 0.3 > float(photo["peak"])
    assert float(plan["colors"]) < float(photo["colors"])
    assert float(photo["score"]) > 0.5 > float(plan["score"])
    assert (photo["class"], plan["class"]) == ("photo", "graphic")


@pytest.mark.parametrize("seed", range(4))
def test_method_entropy_gives_exactly_the_original_classes(seed):
    for blob in (jpeg_bytes(photo_like(seed=seed)), jpeg_bytes(drawing(200 + seed * 10))):
        row = measured(blob, "entropy")
        assert row["class"] == classify(float(row["entropy"]), 3.9, 4.4)
        assert row["score"] == ""  # no score: nothing pretends the model ran
        assert float(row["same"]) >= 0.0  # the signals are written either way


def test_score_thresholds_move_the_classes():
    blob = jpeg_bytes(photo_like(seed=5))
    score = float(measured(blob, "model")["score"])
    assert measured(blob, "model", score_graphic_below=min(1.0, score + 0.01),
                    score_photo_above=1.0)["class"] == "graphic"
    assert measured(blob, "model", score_graphic_below=0.0,
                    score_photo_above=1.0)["class"] == "maybe"


def test_unknown_method_and_mismatched_model_are_refused_by_name(tmp_path):
    from vacancy.images.triage import MODEL_PATH, SIGNALS, load_model, triage_class

    with pytest.raises(ValueError, match="triage.method 'magic'"):
        triage_class(dict.fromkeys(SIGNALS, 0.0), "magic", 3.9, 4.4, 0.2, 0.5)
    model = json.loads(MODEL_PATH.read_text())
    model["signals"] = model["signals"][:-1]
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps(model))
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_model(bad)


def test_readme_signal_table_gives_the_shipped_model_weights():
    """The README's table of signals names every signal once, in SIGNALS' order, with the
    standardised weight of the model that ships (a refit must update the table too)."""
    from vacancy.images.triage import SIGNALS, load_model

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| .*?\(([+-]\d\.\d\d)", readme, flags=re.M)
    weights = dict(rows)
    assert [name for name, _ in rows if name in SIGNALS] == list(SIGNALS)
    model = load_model()
    assert {name: weights[name] for name in SIGNALS} == {
        name: f"{coef:+.2f}" for name, coef in zip(model["signals"], model["coef"])}
