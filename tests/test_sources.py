"""The inventory: a manifest is the authority where there is one; otherwise the folder's images."""
import pytest

from vacancy.common import read_csv, write_csv
from vacancy.sources.inventory import MANIFEST_COLUMNS, build_inventory, list_locations


def test_folder_without_manifest_lists_image_files_only(tmp_path):
    loc = tmp_path / "photos" / "austin"
    loc.mkdir(parents=True)
    for name in ["b.JPG", "a.png", "notes.txt", ".hidden.jpg", "x.jpg.part", "-rf.jpg"]:
        (loc / name).write_bytes(b"data")
    (tmp_path / "photos" / "boston").mkdir()
    (tmp_path / "photos" / ".git").mkdir()
    assert list_locations(tmp_path / "photos") == ["austin", "boston"]
    count = build_inventory(loc, "austin", tmp_path / "inv.csv")
    rows = read_csv(tmp_path / "inv.csv")
    assert count == 3
    assert [r["id"] for r in rows] == ["austin/-rf.jpg", "austin/a.png", "austin/b.JPG"]
    assert rows[1]["path"] == str(loc / "a.png") and rows[1]["title"] == ""


def test_phone_and_camera_photos_that_are_not_read_are_named_in_one_warning(tmp_path, caplog):
    """A folder of iPhone photos (HEIC) must not become an empty map with nothing said; a JPEG
    saved by a browser as .jfif is read."""
    loc = tmp_path / "austin"
    loc.mkdir()
    for name in ["IMG_0001.HEIC", "IMG_0002.heic", "DSC_1.NEF", "cover.avif", "saved.jfif",
                 "notes.txt", ".IMG_0003.heic"]:
        (loc / name).write_bytes(b"data")
    with caplog.at_level("INFO", logger="vacancy.sources.inventory"):
        assert build_inventory(loc, "austin", tmp_path / "inv.csv") == 1
    assert [r["filename"] for r in read_csv(tmp_path / "inv.csv")] == ["saved.jfif"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(
        "inventory austin: 1 AVIF (.avif), 2 HEIC (.heic), 1 raw (.nef) photos left out: only "
        "bmp, gif, jfif, jpe, jpeg, jpg, png, tif, tiff, webp files are read; convert them to JPEG")


def test_manifest_rows_are_the_images_with_their_listing_data(tmp_path):
    loc = tmp_path / "sfbay"
    loc.mkdir()
    (loc / "one.jpg").write_bytes(b"1")
    (loc / "stale.jpg").write_bytes(b"old")  # not in the manifest: never mapped
    base = dict.fromkeys(MANIFEST_COLUMNS, "")
    write_csv(loc / "manifest.csv", [
        {**base, "filename": "one.jpg", "title": "<b>Sunny</b> & bright", "price": "$2,100"},
        {**base, "filename": "one.jpg", "title": "cross-post of the same photo"},
        {**base, "filename": "gone.jpg", "title": "missing on disk"},
        {**base, "filename": "../escape.jpg"},
    ], MANIFEST_COLUMNS)
    build_inventory(loc, "sfbay", tmp_path / "inv.csv")
    rows = read_csv(tmp_path / "inv.csv")
    assert [r["id"] for r in rows] == ["sfbay/one.jpg", "sfbay/gone.jpg"]
    assert rows[0]["title"] == "<b>Sunny</b> & bright" and rows[0]["price"] == "$2,100"


def test_missing_source_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder.path"):
        list_locations(tmp_path / "nope")


def test_names_that_are_not_utf8_are_skipped_by_name_and_odd_entries_are_listed(tmp_path, caplog):
    """A file or location folder whose name is not UTF-8 cannot be a CSV cell, an image id or a
    Snakemake path: it is left out with a warning that shows its bytes (before, the inventory
    job crashed without naming it, and such a folder stopped Snakemake building its plan). A
    pipe, a folder or a dangling link named like a photo is listed, so prepare names it."""
    import os

    photos = tmp_path / "photos"
    loc = photos / "austin"
    loc.mkdir(parents=True)
    (loc / "ok.jpg").write_bytes(b"data")
    with open(os.path.join(os.fsencode(loc), b"bad\xff\xfe.jpg"), "wb") as handle:
        handle.write(b"data")
    os.mkdir(os.path.join(os.fsencode(photos), b"loc\xff"))
    os.mkfifo(loc / "pipe.jpg")
    (loc / "folder.jpg").mkdir()
    (loc / "dangling.jpg").symlink_to(loc / "nowhere.jpg")
    with caplog.at_level("WARNING"):
        assert list_locations(photos) == ["austin"]
        build_inventory(loc, "austin", tmp_path / "inv.csv")
    assert [r["id"] for r in read_csv(tmp_path / "inv.csv")] == [
        "austin/dangling.jpg", "austin/folder.jpg", "austin/ok.jpg", "austin/pipe.jpg"]
    warned = caplog.text
    assert "b'bad\\xff\\xfe.jpg'" in warned and "b'loc\\xff'" in warned and "not UTF-8" in warned


def test_images_outside_any_location_folder_are_named(tmp_path, caplog):
    """A flat folder of photos is what many users point at first: a clear error that says
    what to do, not "no locations"; loose images beside location folders are counted."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ["a.jpg", "b.PNG", "notes.txt", ".hidden.jpg"]:
        (photos / name).write_bytes(b"data")
    with pytest.raises(ValueError, match=r"holds 2 image files but no sub-folder: .* Move the "
                                         r"images into sub-folders .*'.*/photos/batch1'"):
        list_locations(photos)
    (photos / "austin").mkdir()
    with caplog.at_level("WARNING"):
        assert list_locations(photos) == ["austin"]
    assert "2 image files directly in it are left out" in caplog.text
    (photos / "a.jpg").unlink()
    (photos / "b.PNG").unlink()
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert list_locations(photos) == ["austin"]
    assert caplog.text == ""
