"""The prepare stage: one decode per image gives triage, hash, features and thumbnail (real
ImageMagick through Wand; references are the full-decode ImageMagick recipes and imagehash)."""

from __future__ import annotations

import io
import json
import math
import subprocess
from pathlib import Path

import h5py
import hdf5plugin
import imagehash
import numpy as np
import pytest
import sklearn.datasets
from PIL import Image

from conftest import imagemagick_cli
from reference import gray_entropy, image_features
from test_triage import (jpeg_bytes, photo_like, png_claiming, read_rows, save, two_level,
                         write_inventory)
from vacancy.imaging import Rejected, decode
from vacancy.map.pca import FeatureShards
from vacancy.images.prepare import decode_options, measure_image, prepare_location
from vacancy.images.triage import OUT_COLUMNS as TRIAGE_COLUMNS

OUTPUTS = ("triage.csv", "hashes.csv", "features.h5", "thumbs.h5", "rejects.csv")


def run(tmp_path: Path, inventory: Path, out: str = "out", **params) -> tuple[dict, dict]:
    """prepare_location into tmp_path/out; returns (counts, paths by short name)."""
    paths = {name.split(".")[0]: tmp_path / out / name for name in OUTPUTS}
    counts = prepare_location(inventory, paths["triage"], paths["hashes"], paths["features"],
                              paths["thumbs"], paths["rejects"], **params)
    return counts, paths


def h5_ids(path: Path) -> list[str]:
    with h5py.File(path) as h5:
        return [i.decode() for i in h5["ids"][:]]


def measure(blob: bytes, draft=True, **overrides) -> dict:
    settings = {"graphic_below": 3.9, "photo_above": 4.4, "hash_size": 8, "color": "gray",
                "cell_px": 32, "background": (24, 24, 24), **overrides}
    return measure_image(blob, decode_options(draft, settings["cell_px"]), **settings)


def hamming(a: str, b: str) -> int:
    return imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)


def test_one_pass_sorts_good_images_and_rejects_bad_ones(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    photo = jpeg_bytes(photo_like(200, 150, seed=1))
    (raw / "photo.jpg").write_bytes(photo)
    save(raw / "flat.png", np.full((30, 40), 77, np.uint8))
    save(raw / "two.png", two_level())
    (raw / "truncated.jpg").write_bytes(photo[: len(photo) * 6 // 10])
    (raw / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    (raw / "empty.jpg").write_bytes(b"")
    (raw / "page.jpg").write_bytes(b"<!DOCTYPE html><html><body>Listing removed</body></html>")
    (raw / "vector.png").write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" '
                                     b'height="9"><rect width="9" height="9"/></svg>')
    (raw / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    names = ["photo.jpg", "truncated.jpg", "flat.png", "corrupt.jpg", "empty.jpg", "page.jpg",
             "two.png", "vector.png", "bomb.png", "missing.jpg"]
    inventory = write_inventory(tmp_path / "inv.csv", [(n, str(raw / n)) for n in names])

    counts, paths = run(tmp_path, inventory, draft=False, cell_px=16, batch_size=2)

    assert counts == {"images": 10, "graphic": 2, "maybe": 0, "photo": 1, "rejected": 7}
    triage = read_rows(paths["triage"])
    assert [(r["id"], r["class"], r["width"], r["height"]) for r in triage] == [
        ("sfbay/photo.jpg", "photo", "200", "150"),
        ("sfbay/flat.png", "graphic", "40", "30"),
        ("sfbay/two.png", "graphic", "50", "20"),
    ]
    # draft off: exactly the full-decode definition, which equals ImageMagick's CLI histogram
    assert triage[0]["entropy"] == f"{gray_entropy(photo):.6f}"
    assert [r["entropy"] for r in triage[1:]] == ["0.000000", f"{math.log(2):.6f}"]
    hashes = read_rows(paths["hashes"])
    assert [(r["id"], r["width"], r["bytes"]) for r in hashes] == [
        ("sfbay/photo.jpg", "200", str(len(photo))), ("sfbay/flat.png", "40", str(
            (raw / "flat.png").stat().st_size)), ("sfbay/two.png", "50", str(
                (raw / "two.png").stat().st_size))]
    assert all(len(r["dhash"]) == 16 for r in hashes)
    # features and thumbnails only for what can reach the map (graphics never do)
    assert h5_ids(paths["features"]) == h5_ids(paths["thumbs"]) == ["sfbay/photo.jpg"]
    with h5py.File(paths["features"]) as h5:
        assert h5["features"].shape == (1, 12288) and h5["features"].chunks == (64, 12288)
        assert str(hdf5plugin.Bitshuffle.filter_id) in h5["features"]._filters  # bitshuffle + LZ4
        reference = image_features(photo)  # ImageMagick's own recipe on the full decode
        assert np.abs(h5["features"][0] - reference).mean() < 5e-4
    with h5py.File(paths["thumbs"]) as h5:
        assert h5["thumbs"].shape == (1, 16, 16, 3) and sorted(h5) == ["ids", "thumbs"]

    rejects = {r["id"].split("/")[1]: r for r in read_rows(paths["rejects"])}
    assert set(rejects) == set(names) - {"photo.jpg", "flat.png", "two.png"}
    assert {r["stage"] for r in rejects.values()} == {"prepare"}
    reasons = {k: v["reason"] for k, v in rejects.items()}
    assert "Premature end of JPEG file" in reasons["truncated.jpg"]
    assert reasons["corrupt.jpg"] == "unreadable jpeg header: JPEG datastream contains no image"
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert "looks like HTML" in reasons["page.jpg"] and "looks like SVG" in reasons["vector.png"]
    assert reasons["bomb.png"] == "100000x100000 (10000.0 megapixels) exceeds max_pixels 50000000"
    assert "No such file" in reasons["missing.jpg"]

    meta = json.loads((tmp_path / "out" / "triage.csv.meta.json").read_text())
    assert meta["stage"] == "prepare" and meta["n_rows"] == 3 and meta["seconds"] >= 0
    assert meta["params"]["graphic_below"] == 3.9 and meta["params"]["draft"] is False
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        list(OUTPUTS) + [f"{n}.meta.json" for n in OUTPUTS if n.endswith(".csv")])  # no temps


def test_hostile_file_names_are_read_as_the_bytes_they_contain(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # inventory paths are relative to the working directory
    save(tmp_path / "-rf.jpg", photo_like(64, 48, seed=2), quality=90)
    save(tmp_path / "jpg:x.png", two_level(50, 20))  # PNG bytes despite the "jpg:" prefix
    save(tmp_path / "x[0].gif", np.full((12, 10), 200, np.uint8))
    save(tmp_path / "|echo pwned.png", two_level(8, 6))
    names = ["-rf.jpg", "jpg:x.png", "x[0].gif", "|echo pwned.png"]
    inventory = write_inventory(tmp_path / "inv.csv", [(n, n) for n in names])

    counts, paths = run(tmp_path, inventory)

    assert counts["rejected"] == 0 and read_rows(paths["rejects"]) == []
    out = {r["id"].split("/", 1)[1]: r for r in read_rows(paths["triage"])}
    assert (out["-rf.jpg"]["width"], out["-rf.jpg"]["height"]) == ("64", "48")
    assert (out["jpg:x.png"]["width"], out["jpg:x.png"]["entropy"]) == ("50", f"{math.log(2):.6f}")
    assert (out["x[0].gif"]["width"], out["x[0].gif"]["entropy"]) == ("10", "0.000000")
    assert out["|echo pwned.png"]["entropy"] == f"{math.log(2):.6f}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names + ["inv.csv", "out"])


def test_empty_location_writes_valid_empty_outputs(tmp_path):
    counts, paths = run(tmp_path, write_inventory(tmp_path / "inv.csv", []))
    assert counts == {"images": 0, "graphic": 0, "maybe": 0, "photo": 0, "rejected": 0}
    assert paths["triage"].read_text().strip() == ",".join(TRIAGE_COLUMNS)
    assert paths["rejects"].read_text().strip() == "id,stage,reason"
    with h5py.File(paths["features"]) as h5:
        assert h5["ids"].shape == (0,) and h5["features"].shape == (0, 12288)


def test_a_failed_run_leaves_no_output(tmp_path):
    good = save(tmp_path / "good.png", photo_like(seed=1))
    inventory = tmp_path / "inv.csv"
    inventory.write_text(f"id,location,pathname\nsfbay/good.png,sfbay,{good}\n")  # no "path"
    with pytest.raises(KeyError):
        run(tmp_path, inventory)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("draft_side, cell_px, decoded", [
    (128, 64, (225, 169)),  # the default: a 600x450 listing photo at 3/8 (libjpeg scales by M/8)
    (96, 64, (150, 113)),  # 2/8: at least 96 a side
    (96, 160, (300, 225)),  # big map cells raise the side: 4/8
])
def test_the_draft_side_sets_the_decoded_size(draft_side, cell_px, decoded):
    """prepare.draft_side is the smallest side ImageMagick's hint asks libjpeg for, at least the
    cell size; what a 600x450 JPEG then decodes to (the README's sizes)."""
    options = decode_options(True, cell_px, draft_side)
    assert options == {"jpeg:size": f"{max(draft_side, cell_px)}x{max(draft_side, cell_px)}"}
    with decode(jpeg_bytes(photo_like(600, 450, seed=2)), options=options) as img:
        assert (img.width, img.height) == decoded
    assert decode_options(False, cell_px, draft_side) is None
    assert decode_options(True, 64) == {"jpeg:size": "128x128"}  # the schema's default


def test_reduced_scale_decode_stays_within_the_stated_tolerance():
    """The README's tolerances: entropy within ~0.1 nats, features within 0.005 on average."""
    jpeg = jpeg_bytes(photo_like(600, 450, seed=6))
    draft, full = measure(jpeg), measure(jpeg, draft=False)
    assert draft["triage"]["width"] == 600 and draft["hash"]["height"] == 450  # stored size
    assert abs(float(draft["triage"]["entropy"]) - gray_entropy(jpeg)) < 0.1
    assert full["triage"]["entropy"] == f"{gray_entropy(jpeg):.6f}"
    assert 0 < np.abs(draft["features"] - full["features"]).mean() < 0.005
    assert np.abs(full["features"] - image_features(jpeg)).mean() < 5e-4
    assert hamming(draft["hash"]["dhash"], full["hash"]["dhash"]) <= 3


def test_copies_hash_close_and_another_photo_far():
    photos = Path(sklearn.datasets.__file__).parent / "images"  # two real JPEG photos
    china = Image.open(photos / "china.jpg").convert("RGB")
    original = measure((photos / "china.jpg").read_bytes())["hash"]["dhash"]
    resized = measure(jpeg_bytes(np.asarray(china.resize((320, 214), Image.Resampling.LANCZOS))))
    buffer = io.BytesIO()
    china.save(buffer, "JPEG", quality=40)
    reencoded = measure(buffer.getvalue())["hash"]["dhash"]
    other = measure((photos / "flower.jpg").read_bytes())["hash"]["dhash"]
    assert hamming(original, resized["hash"]["dhash"]) <= 2 and resized["hash"]["width"] == 320
    assert hamming(original, reencoded) <= 2
    assert hamming(original, other) > 16


def test_16_bit_png_hashes_like_its_8_bit_version():
    rng = np.random.default_rng(2)
    gray8 = np.clip(np.add.outer(np.arange(90), np.arange(120)) + rng.normal(0, 30, (90, 120)),
                    0, 255).astype(np.uint8)
    png8, png16 = io.BytesIO(), io.BytesIO()
    Image.fromarray(gray8).save(png8, "PNG")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(png16, "PNG")  # I;16: not clipped
    a, b = measure(png8.getvalue()), measure(png16.getvalue())
    assert a["hash"]["dhash"] == b["hash"]["dhash"]
    assert abs(float(a["triage"]["entropy"]) - float(b["triage"]["entropy"])) < 1e-6


#: Thresholds that make any image a photo, so flat test pictures get a thumbnail.
PHOTO = {"graphic_below": 0.0, "photo_above": 0.0}


def test_thumbnail_is_centre_cropped_upright_and_flattened(tmp_path):
    wide = Image.new("RGB", (300, 100), (230, 30, 30))
    wide.paste((30, 200, 40), (100, 0, 200, 100))
    wide.paste((40, 60, 230), (200, 0, 300, 100))
    thumb = measure(jpeg_bytes(np.asarray(wide)), cell_px=64, **PHOTO)["thumb"].astype(int)
    assert thumb.shape == (64, 64, 3)
    assert np.abs(thumb[4:60, 4:60].reshape(-1, 3).mean(0) - (30, 200, 40)).max() < 6

    tall = np.zeros((300, 100, 3), np.uint8)
    tall[:150], tall[150:] = (230, 30, 30), (40, 60, 230)  # top red, bottom blue
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down: the map must show blue on top
    buffer = io.BytesIO()
    Image.fromarray(tall.astype(np.uint8)).save(buffer, "JPEG", quality=95, exif=exif)
    thumb = measure(buffer.getvalue(), cell_px=64, **PHOTO)["thumb"].astype(int)
    assert np.abs(thumb[8, 32] - (40, 60, 230)).max() < 6
    assert np.abs(thumb[56, 32] - (230, 30, 30)).max() < 6

    rgba = np.random.default_rng(3).integers(0, 255, (80, 80, 4)).astype(np.uint8)
    rgba[..., 3] = 0  # fully transparent: the map background shows, not black
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    thumb = measure(buffer.getvalue(), background=(24, 120, 200), **PHOTO)["thumb"]
    assert np.abs(thumb.astype(int) - (24, 120, 200)).max() <= 1


def test_rgb_features_are_imagemagicks_rgb_recipe(tmp_path):
    path = save(tmp_path / "a.png", photo_like(seed=9))
    inventory = write_inventory(tmp_path / "inv.csv", [("a.png", str(path))], location="miami")
    run(tmp_path, inventory, color="rgb")
    with h5py.File(tmp_path / "out" / "features.h5") as h5:
        assert h5["features"].shape == (1, 36864) and h5.attrs["color"] == "rgb"
        assert np.array_equal(h5["features"][0], image_features(path.read_bytes(), "rgb"))


def test_sharded_features_equal_unsharded_bit_for_bit(tmp_path):
    """One HDF5 per location, read as one table, equals one run over all images (any batch)."""
    rng = np.random.default_rng(5)
    by_location: dict[str, list] = {"sfbay": [], "austin": [], "miami": []}
    for k in range(23):
        location = list(by_location)[k % 3]
        path = tmp_path / f"{k:02d}.jpg"
        Image.fromarray(rng.integers(0, 255, (45 + k, 60, 3), dtype=np.uint8)).save(path, quality=85)
        by_location[location].append((path.name, str(path)))
    shards = []
    for location, rows in by_location.items():
        inventory = write_inventory(tmp_path / f"{location}.csv", rows, location="all")
        run(tmp_path, inventory, out=location, batch_size=4)
        shards.append(tmp_path / location / "features.h5")
    everything = [row for rows in by_location.values() for row in rows]
    run(tmp_path, write_inventory(tmp_path / "all.csv", everything[::-1], location="all"),
        out="whole", batch_size=7)

    table = FeatureShards(shards)
    with h5py.File(tmp_path / "whole" / "features.h5") as h5:
        whole, whole_ids = h5["features"][:], [i.decode() for i in h5["ids"][:]]
    order = [whole_ids.index(i) for i in table.ids()]
    assert len(table) == 23 and sorted(order) == list(range(23))
    assert np.array_equal(table.rows(0, 23), whole[order])
    kept = set(table.ids()[3:20:2])  # PCA reads only the selection, in shard order
    subset = FeatureShards(shards, keep=kept)
    assert set(subset.ids()) == kept and len(subset) == len(kept)
    assert np.array_equal(subset.rows(0, len(kept)),
                          whole[[whole_ids.index(i) for i in subset.ids()]])


def test_a_big_png_is_shrunk_once_and_still_measured():
    """No scaled decoding for PNG: a 3000 px image is reduced before the resize matrices."""
    big = np.kron(photo_like(300, 200, seed=8), np.ones((10, 10, 1), np.uint8))  # 3000 x 2000
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "PNG", compress_level=1)
    result = measure(buffer.getvalue(), **PHOTO)
    assert (result["triage"]["width"], result["triage"]["height"]) == (3000, 2000)
    assert float(result["triage"]["entropy"]) == pytest.approx(
        gray_entropy(buffer.getvalue()), abs=1e-6)  # taken before the shrink
    assert result["features"].shape == (12288,) and result["thumb"].shape == (32, 32, 3)
    assert np.abs(result["features"] - image_features(buffer.getvalue())).mean() < 0.005


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_every_listing_format_gives_its_colour(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (90, 70), (200, 120, 30)).save(buffer, fmt)
    thumb = measure(buffer.getvalue(), **PHOTO)["thumb"].astype(int)
    assert np.abs(thumb[16, 16] - (200, 120, 30)).max() <= 8


def test_postscript_named_jpg_is_refused_before_any_decoder():
    with pytest.raises(Rejected, match="PostScript"):
        measure(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")


def test_thumbnail_matches_imagemagicks_fill_and_centre_crop(tmp_path):
    """Independent reference: the ImageMagick CLI's -resize 64x64^ -extent of a gradient."""
    yy, xx = np.mgrid[0:300, 0:500]
    arr = np.stack([xx * 255 // 499, yy * 255 // 299, (xx + yy) * 255 // 798], -1).astype(np.uint8)
    src = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(src, quality=95)
    ref = tmp_path / "ref.png"
    subprocess.run([imagemagick_cli(), str(src), "-resize", "64x64^", "-gravity",
                    "center", "-extent", "64x64", str(ref)], check=True)
    expected = np.asarray(Image.open(ref).convert("RGB")).astype(int)
    thumb = measure(src.read_bytes(), cell_px=64, **PHOTO)["thumb"].astype(int)
    assert np.abs(thumb - expected).mean() < 3


def test_thumbnail_of_q16_equals_the_thumbnail_of_its_8_bit_scaling():
    """prepare hands the thumbnail its Q16 export: every one of the 65,536 values must scale as
    ImageMagick's (q + 128) // 257 does, so the thumbnail equals the one of the uint8 image."""
    from vacancy.images.resample import planes_of_rgb
    from vacancy.images.thumbs import thumb_from_rgb

    q16 = np.arange(65536, dtype=np.uint16).reshape(256, 256)[..., None].repeat(3, axis=2)
    q16[..., 1] = q16[..., 1][::-1]
    rgb8 = ((q16.astype(np.uint32) + 128) // 257).astype(np.uint8)
    assert np.array_equal(planes_of_rgb(q16), planes_of_rgb(rgb8))
    noise = np.random.default_rng(3).integers(0, 65536, (169, 225, 3), dtype=np.uint16)
    noise8 = ((noise.astype(np.uint32) + 128) // 257).astype(np.uint8)
    for orientation in ("top_left", "right_top"):
        assert np.array_equal(thumb_from_rgb(noise, 64, orientation),
                              thumb_from_rgb(noise8, 64, orientation))


def test_pipes_devices_and_folders_named_like_photos_are_rejected_by_kind(tmp_path):
    """read_blob checks the file it opened: a named pipe (which would block the job), a link to
    /dev/zero (which never ends; it used to read as 'empty file'), a folder or a dangling link
    each become a reject that says what it is, and the photo beside them is measured."""
    import os

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "photo.jpg").write_bytes(jpeg_bytes(photo_like(200, 150, seed=1)))
    os.mkfifo(raw / "pipe.jpg")
    (raw / "zero.jpg").symlink_to("/dev/zero")
    (raw / "folder.jpg").mkdir()
    (raw / "dangling.jpg").symlink_to(raw / "nowhere.jpg")
    names = ["pipe.jpg", "zero.jpg", "photo.jpg", "folder.jpg", "dangling.jpg"]
    inventory = write_inventory(tmp_path / "inv.csv", [(n, str(raw / n)) for n in names])
    counts, paths = run(tmp_path, inventory)
    assert counts["rejected"] == 4 and counts["photo"] + counts["maybe"] == 1
    reasons = {r["id"].split("/")[1]: r["reason"] for r in read_rows(paths["rejects"])}
    assert reasons == {"pipe.jpg": "not a regular file (a named pipe)",
                       "zero.jpg": "not a regular file (a character device)",
                       "folder.jpg": "not a regular file (a folder)",
                       "dangling.jpg": "cannot read file: No such file or directory"}


def test_a_file_that_grew_after_its_size_was_taken_is_read_on_to_the_cap(tmp_path, monkeypatch):
    """read_blob asks for the size fstat gave plus one byte (not for max_bytes + 1, which cost a
    256 MB buffer per file); a file still being written is read to its end, or refused when it
    passes max_bytes, as before."""
    import os

    from vacancy import formats

    path = tmp_path / "growing.jpg"
    data = bytes(range(256)) * 40  # 10,240 bytes
    path.write_bytes(data)
    real_fstat = os.fstat

    def size_before_the_last_4000_bytes(fd):
        st = real_fstat(fd)
        return os.stat_result((*st[:6], st.st_size - 4000, *st[7:10]))

    monkeypatch.setattr(formats.os, "fstat", size_before_the_last_4000_bytes)
    assert formats.read_blob(path) == data
    with pytest.raises(formats.Rejected, match="more than 8000 bytes when read"):
        formats.read_blob(path, max_bytes=8000)
    monkeypatch.undo()
    assert formats.read_blob(path) == data


def test_png_text_chunks_never_reach_the_decoder():
    """A zTXt chunk of a gigabyte of zeros, compressed to 1 MB, cost 1 GB and 15 s in libpng,
    twice; it carries no pixel, so it is dropped before ImageMagick: the rows are those of the
    same PNG without it, and a truncated PNG keeps its tail for the decoder to judge."""
    import struct
    import zlib

    from vacancy.formats import png_without_text

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    buffer = io.BytesIO()
    Image.fromarray(photo_like(120, 90, seed=4)).save(buffer, "PNG")
    clean = buffer.getvalue()
    packer = zlib.compressobj(9)
    zeros = b"".join(packer.compress(bytes(1 << 24)) for _ in range(64)) + packer.flush()
    text = chunk(b"zTXt", b"Comment\0\0" + zeros) + chunk(b"tEXt", b"Title\0room")
    hostile = clean[:33] + text + clean[33:]  # after IHDR (8 + 25 bytes)
    assert png_without_text(hostile) == clean and png_without_text(clean) is clean
    assert png_without_text(hostile[:-100]) == clean[:-100]
    assert len(hostile) > 1_000_000
    with_text, without = measure(hostile, **PHOTO), measure(clean, **PHOTO)
    assert with_text["triage"] == without["triage"]
    assert with_text["hash"]["dhash"] == without["hash"]["dhash"]
    assert np.array_equal(with_text["thumb"], without["thumb"])


def test_a_damaged_png_is_rejected_saying_where():
    """libpng refuses a PNG whose chunk fails its CRC, and ImageMagick 6 then gives no reason:
    the reject names the chunk and its byte, or says the file was cut short."""
    buffer = io.BytesIO()
    Image.fromarray(photo_like(120, 90, seed=5)).save(buffer, "PNG")
    clean = buffer.getvalue()
    idat = clean.index(b"IDAT") - 4  # the chunk starts at its length field
    flipped = bytearray(clean)
    flipped[idat + 40] ^= 0x10
    reasons = {}
    for name, blob in {"flipped": bytes(flipped), "cut": clean[:idat + 200]}.items():
        with pytest.raises(Rejected) as caught:
            measure(blob, **PHOTO)
        reasons[name] = str(caught.value)
    assert reasons["flipped"] == ("undecodable png: decoder returned no image; chunk IDAT at "
                                  f"byte {idat} does not match its CRC: damaged")
    assert reasons["cut"].startswith("undecodable png: decoder returned no image; chunk IDAT at "
                                     f"byte {idat} runs past the end of the file: cut short (")
    assert measure(clean, **PHOTO)["triage"]["class"] == "photo"


def test_mutated_files_of_every_format_each_become_a_row_or_a_reject_with_a_reason(tmp_path):
    """Hostile files, made deterministically: 120 copies of real-looking images in the six
    formats with bytes flipped, cut, zeroed or repeated. None stops the job; each image is one
    row or one reject, and no damaged PNG is left with ImageMagick's "no reason"."""
    import random

    rng = random.Random(7)
    bases = []
    for seed, fmt, options in [(1, "JPEG", {"quality": 85}), (2, "PNG", {}), (3, "GIF", {}),
                               (4, "TIFF", {"compression": "tiff_lzw"}), (5, "BMP", {}),
                               (6, "WEBP", {"quality": 80})]:
        buffer = io.BytesIO()
        Image.fromarray(photo_like(120, 90, seed=seed)).save(buffer, fmt, **options)
        bases.append((fmt.lower(), buffer.getvalue()))
    raw = tmp_path / "raw"
    raw.mkdir()
    names = []
    for n in range(120):
        fmt, blob = bases[n % len(bases)]
        data, at = bytearray(blob), rng.randrange(len(blob))
        how = ("flip", "cut", "zero", "repeat")[n // len(bases) % 4]
        if how == "flip":
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif how == "cut":
            data = data[:max(1, at)]
        elif how == "zero":
            data[at:at + 512] = bytes(len(data[at:at + 512]))
        else:
            data[at:at] = data[at:at + 256] * 20
        names.append(f"{n:03d}-{how}.{fmt}")
        (raw / names[-1]).write_bytes(bytes(data))
    inventory = write_inventory(tmp_path / "inv.csv", [(n, str(raw / n)) for n in names])

    counts, paths = run(tmp_path, inventory, cell_px=16)

    triaged = {r["id"] for r in read_rows(paths["triage"])}
    rejects = {r["id"]: r["reason"] for r in read_rows(paths["rejects"])}
    assert counts["images"] == 120 and len(triaged) + len(rejects) == 120
    assert not triaged & set(rejects)
    assert 20 < len(rejects) < 120  # most mutations damage the image, some only its pixels
    png_rejects = [reason for name, reason in rejects.items() if name.endswith(".png")]
    assert png_rejects and not [r for r in png_rejects if "no reason" in r]


def test_transparent_parts_are_measured_as_the_map_shows_them():
    """Hidden colours under transparency are not measured: a fully transparent PNG over noise
    is a flat picture of the background (graphic, entropy 0), and a photo with a transparent
    frame is measured on the background, as its thumbnail shows it."""
    noise = np.random.default_rng(3).integers(0, 255, (80, 80, 4)).astype(np.uint8)
    noise[..., 3] = 0
    hidden = measure(png_rgba(noise), background=(24, 24, 24))
    assert hidden["triage"]["class"] == "graphic" and float(hidden["triage"]["entropy"]) == 0.0
    assert hidden["thumb"] is None  # graphics get no thumbnail

    framed = np.dstack([photo_like(120, 90, seed=8), np.full((90, 120), 255, np.uint8)])
    framed[:15, :, 3] = 0  # a transparent band on top, over white
    framed[:15, :, :3] = 255
    on_map = measure(png_rgba(framed), background=(24, 24, 24), **PHOTO)
    flat = framed[..., :3].copy()
    flat[:15] = 24  # the same picture with the band already the map background
    assert on_map["triage"] == measure(png_rgba(np.dstack([flat, framed[..., 3:] * 0 + 255])),
                                       background=(24, 24, 24), **PHOTO)["triage"]


def png_rgba(rgba: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()
