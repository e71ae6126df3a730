"""Tests of the hashes stage on real image files (sklearn ships two real JPEG photos)."""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image
import sklearn.datasets

from vacancy.common import read_csv
from vacancy.hashes import ImageRejected, dhash_image, hash_location, sniff_format

PHOTOS = Path(sklearn.datasets.__file__).parent / "images"
INVENTORY_COLUMNS = ["id", "location", "filename", "path", "image_url", "listing_url",
                     "listing_id", "title", "price", "posted", "state"]


def china() -> bytes:
    return (PHOTOS / "china.jpg").read_bytes()


def flower() -> bytes:
    return (PHOTOS / "flower.jpg").read_bytes()


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming the given size, with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def distance(a: str, b: str) -> int:
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)


def test_dhash_matches_imagehash_on_decoded_photo():
    hex_hash, width, height = dhash_image(china())
    reference = imagehash.dhash(Image.open(PHOTOS / "china.jpg"))
    assert (hex_hash, width, height) == (str(reference), 640, 427)
    assert len(hex_hash) == 16
    assert dhash_image(china(), hash_size=4)[0] == str(imagehash.dhash(Image.open(PHOTOS / "china.jpg"), 4))
    assert len(dhash_image(china(), hash_size=4)[0]) == 4
    with pytest.raises(ValueError, match="hash_size"):  # a config error, not a reject per image
        dhash_image(china(), hash_size=16)


def test_copies_are_close_and_other_photo_is_far():
    original = dhash_image(china())[0]
    photo = Image.open(io.BytesIO(china())).convert("RGB")
    reencoded = dhash_image(encode(photo, "JPEG", quality=50))[0]
    resized = dhash_image(encode(photo.resize((320, 214), Image.LANCZOS), "JPEG", quality=90))
    brighter = dhash_image(encode(photo.point(lambda v: min(255, v + 30)), "JPEG"))[0]
    assert distance(original, reencoded) <= 2
    assert distance(original, resized[0]) <= 2 and resized[1:] == (320, 214)
    assert distance(original, brighter) <= 4
    assert distance(original, dhash_image(flower())[0]) >= 16


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_every_accepted_format_is_read(fmt):
    photo = Image.open(io.BytesIO(china())).convert("RGB")
    blob = encode(photo, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert sniff_format(blob) == fmt
    hex_hash, width, height = dhash_image(blob)
    assert (width, height) == (640, 427)
    assert distance(hex_hash, dhash_image(china())[0]) <= 2


@pytest.mark.parametrize(
    "blob, words",
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><body>gone</body></html>", "not a supported raster"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not a supported"),
        (b"%!PS-Adobe-3.0\n", "not a supported"),
        (png_header(100_000, 100_000), "too many pixels"),
        (png_header(8_000, 7_000), "too many pixels"),  # 56 MP: above ours, below Pillow's default
        (b"\xff\xd8\xff\xe0garbage", "JPEG"),
    ],
)
def test_bad_blobs_are_rejected_with_reason(blob, words):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may leak out either
        with pytest.raises(ImageRejected, match=words):
            dhash_image(blob)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the guard restores Pillow's global


@pytest.mark.parametrize("keep", [lambda n: 100, lambda n: n // 2, lambda n: n - 2],
                         ids=["header-only", "half", "no-end-marker"])
def test_truncated_jpeg_is_rejected_not_half_loaded(keep):
    blob = china()
    with pytest.raises(ImageRejected, match="(?i)truncated"):
        dhash_image(blob[: keep(len(blob))])


def test_16_bit_png_is_stretched_not_clipped():
    gray = Image.open(io.BytesIO(china())).convert("L")
    sixteen = Image.fromarray(np.asarray(gray).astype(np.uint16) * 257 // 4)  # 0..16383 of 65535
    blob = encode(sixteen, "PNG")
    assert Image.open(io.BytesIO(blob)).mode == "I;16"
    assert dhash_image(blob)[0] == dhash_image(encode(gray, "PNG"))[0]  # clipped, it would be nearly all white


def test_max_pixels_is_configurable():
    small = encode(Image.new("RGB", (100, 80), "white"), "PNG")
    assert dhash_image(small, max_pixels=8_000)[1:] == (100, 80)
    with pytest.raises(ImageRejected, match=r"too many pixels.*\(8000 pixels\).* 7999 pixels"):
        dhash_image(small, max_pixels=7_999)


def test_draft_mode_stays_close_to_full_decode():
    assert distance(dhash_image(china(), draft=True)[0], dhash_image(china())[0]) <= 2
    assert dhash_image(china(), draft=True)[1:] == (640, 427)


def write_inventory(path: Path, files: dict[str, Path]) -> None:
    lines = [",".join(INVENTORY_COLUMNS)]
    for name, file in files.items():
        row = {c: "" for c in INVENTORY_COLUMNS}
        row.update(id=f"loc/{name}", location="loc", filename=name, path=str(file))
        lines.append(",".join(f'"{row[c]}"' for c in INVENTORY_COLUMNS))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_hash_location_writes_hashes_and_rejects(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    photo = Image.open(io.BytesIO(china())).convert("RGB")
    contents = {
        "a.jpg": china(),
        "-rf.jpg": flower(),                      # hostile names are only ever opened as files
        "jpg:x.png": encode(photo, "PNG"),
        "x[0].gif": encode(photo, "GIF"),
        "png-named.jpg": encode(photo, "PNG"),    # judged by content, not name
        "empty.jpg": b"",
        "page.jpg": b"<html><body>404</body></html>",
        "cut.jpg": china()[:5000],
        "bomb.png": png_header(100_000, 100_000),
    }
    files = {}
    for name, blob in contents.items():
        (raw / name).write_bytes(blob)
        files[name] = raw / name
    files["missing.jpg"] = raw / "missing.jpg"
    inventory = tmp_path / "inventory.csv"
    write_inventory(inventory, files)
    out, rejects = tmp_path / "h" / "loc.csv", tmp_path / "h" / "loc.rejects.csv"

    counts = hash_location(inventory, out, rejects, max_pixels=50_000_000)

    assert counts == {"inventory": 10, "hashed": 5, "rejected": 5}
    rows = {row["id"]: row for row in read_csv(out)}
    assert list(rows) == ["loc/a.jpg", "loc/-rf.jpg", "loc/jpg:x.png", "loc/x[0].gif", "loc/png-named.jpg"]
    assert rows["loc/a.jpg"]["dhash"] == dhash_image(china())[0]
    assert rows["loc/-rf.jpg"]["dhash"] == dhash_image(flower())[0]
    assert rows["loc/a.jpg"]["bytes"] == str(len(china()))
    assert (rows["loc/jpg:x.png"]["width"], rows["loc/jpg:x.png"]["height"]) == ("640", "427")
    assert rows["loc/png-named.jpg"]["dhash"] == rows["loc/jpg:x.png"]["dhash"]
    reasons = {row["id"]: row["reason"] for row in read_csv(rejects)}
    assert {row["stage"] for row in read_csv(rejects)} == {"hashes"}
    assert set(reasons) == {"loc/empty.jpg", "loc/page.jpg", "loc/cut.jpg", "loc/bomb.png", "loc/missing.jpg"}
    assert "empty" in reasons["loc/empty.jpg"]
    assert "not a supported raster" in reasons["loc/page.jpg"]
    assert "truncated" in reasons["loc/cut.jpg"]
    assert "too many pixels" in reasons["loc/bomb.png"]
    assert "No such file" in reasons["loc/missing.jpg"]
    meta = json.loads((out.parent / "loc.csv.meta.json").read_text())
    assert meta["stage"] == "hashes" and meta["params"]["max_pixels"] == 50_000_000
    assert meta["columns"] == ["id", "dhash", "width", "height", "bytes"]
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "loc.csv", "loc.csv.meta.json", "loc.rejects.csv", "loc.rejects.csv.meta.json"]
