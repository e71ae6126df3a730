"""Tests of the select stage on small hand-made tables: exact id sets, columns, merged rejects."""

from __future__ import annotations

import json
import logging

import pytest

from vacancy.common import read_csv, write_csv
from vacancy.images.select import SELECTED_COLUMNS, read_exclude_file, select_images

INVENTORY_COLUMNS = ["id", "location", "filename", "path", "image_url", "listing_url",
                     "listing_id", "title", "price", "posted", "state"]
HOSTILE = '<img src=x onerror=alert(1)>, "quoted" & café'

# id -> triage class (None: no triage row)
TRIAGE = {
    "a/1.jpg": "photo", "a/2.jpg": "photo", "a/3.jpg": "maybe", "a/4.jpg": "graphic",
    "a/5.jpg": "photo", "a/6.jpg": None, "b/1.jpg": "photo", "b/2.jpg": "photo",
    "b/3.jpg": "maybe", "b/4.jpg": "photo", "b/5.jpg": "maybe", "b/6.jpg": None,
}


def inventory_row(image: str) -> dict:
    location, filename = image.split("/")
    return {"id": image, "location": location, "filename": filename,
            "path": f"results/raw/{location}/{filename}", "image_url": f"https://x/{filename}",
            "listing_url": f"https://x/l/{location}", "listing_id": f"L{location}",
            "title": HOSTILE if image == "a/1.jpg" else f"Room {image}", "price": "$2,450",
            "posted": "2024-05-01T10:00:00", "state": "CA" if location == "a" else "NY"}


@pytest.fixture
def tables(tmp_path):
    """Two locations; a/2 is a copy of a/1, b/4 was rejected by hashes, a/6 by triage,
    b/2 is excluded by the curator, b/6 was never triaged (an upstream failure)."""
    paths = {}
    for location in ("a", "b"):
        ids = [i for i in TRIAGE if i.startswith(location)]
        paths[f"inv_{location}"] = tmp_path / f"inventory/{location}.csv"
        write_csv(paths[f"inv_{location}"], [inventory_row(i) for i in ids], INVENTORY_COLUMNS)
        paths[f"tri_{location}"] = tmp_path / f"triage/{location}.csv"
        write_csv(paths[f"tri_{location}"],
                  [{"id": i, "entropy": f"{4 + k / 10:.6f}", "class": c, "width": 600 + k,
                    "height": 450} for k, (i, c) in enumerate(TRIAGE.items())
                   if i in ids and c is not None],
                  ["id", "entropy", "class", "width", "height"])
    paths["dups"] = tmp_path / "duplicates.csv"
    write_csv(paths["dups"], [{"id": "a/2.jpg", "kept_id": "a/1.jpg", "distance": 0}],
              ["id", "kept_id", "distance"])
    paths["rej_tri"] = tmp_path / "triage/a.rejects.csv"
    write_csv(paths["rej_tri"], [{"id": "a/6.jpg", "stage": "triage", "reason": "empty file"}],
              ["id", "stage", "reason"])
    paths["rej_hash"] = tmp_path / "hashes/b.rejects.csv"
    write_csv(paths["rej_hash"], [{"id": "b/4.jpg", "stage": "hashes", "reason": "truncated"},
                                  {"id": "a/6.jpg", "stage": "hashes", "reason": "empty file"}],
              ["id", "stage", "reason"])
    paths["exclude"] = tmp_path / "exclude.txt"
    paths["exclude"].write_text("# culled by hand\n\n  b/2.jpg  \nzz/unknown.jpg\n#a/1.jpg\n",
                                encoding="utf-8")
    return paths


def run(paths, tmp_path, **options):
    out, rejects = tmp_path / "results/selected.csv", tmp_path / "results/rejects.csv"
    counts = select_images([paths["inv_a"], paths["inv_b"]], [paths["tri_a"], paths["tri_b"]],
                           paths["dups"], [paths["rej_tri"], paths["rej_hash"]], out, rejects,
                           **options)
    return counts, read_csv(out), read_csv(rejects)


def test_selects_photos_minus_duplicates_excluded_and_rejected(tables, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="vacancy.images.select"):
        counts, selected, rejects = run(tables, tmp_path, exclude_file=tables["exclude"])
    assert [row["id"] for row in selected] == ["a/1.jpg", "a/5.jpg", "b/1.jpg"]
    assert counts == {"inventory": 12, "photo": 6, "maybe": 3, "graphic": 1, "candidates": 6,
                      "duplicates": 1, "excluded": 1, "rejected": 2, "selected": 3,
                      "untriaged": 1, "exclude_unknown": 1, "included": 0,
                      "include_unknown": 0}
    assert "zz/unknown.jpg" in caplog.text
    assert "1 inventory images have neither a triage row nor a reject" in caplog.text
    assert [(row["id"], row["stage"]) for row in rejects] == [
        ("a/6.jpg", "hashes"), ("a/6.jpg", "triage"), ("b/4.jpg", "hashes")]
    assert rejects[2]["reason"] == "truncated"


def test_keep_maybe_adds_maybe_class(tables, tmp_path):
    counts, selected, _ = run(tables, tmp_path, keep_maybe=True)
    assert [row["id"] for row in selected] == ["a/1.jpg", "a/3.jpg", "a/5.jpg", "b/1.jpg",
                                               "b/2.jpg", "b/3.jpg", "b/5.jpg"]
    assert counts["candidates"] == 9 and counts["excluded"] == 0 and counts["selected"] == 7


def test_include_file_puts_named_maybe_on_the_map_and_nothing_else(tables, tmp_path, caplog):
    """The mirror of the exclude file: a3 and b5 (maybe) are named and mapped, b3 (maybe, not
    named) is not; a graphic, a photo, an excluded maybe and an unknown id change nothing and
    are logged, each with its reason."""
    include = tmp_path / "include.txt"
    include.write_text("# keep these\na/3.jpg\n b/5.jpg \na/4.jpg\nb/1.jpg\nzz/nope.jpg\n",
                       encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="vacancy.images.select"):
        counts, selected, _ = run(tables, tmp_path, include_file=include)
    assert [row["id"] for row in selected] == ["a/1.jpg", "a/3.jpg", "a/5.jpg", "b/1.jpg",
                                               "b/2.jpg", "b/5.jpg"]
    assert counts["included"] == 2 and counts["include_unknown"] == 1
    assert "'a/4.jpg', which is graphic" in caplog.text and "zz/nope.jpg" in caplog.text
    assert "'b/1.jpg', a photo" in caplog.text
    include.write_text("a/3.jpg\nb/5.jpg\n", encoding="utf-8")
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("b/5.jpg\n", encoding="utf-8")
    counts, selected, _ = run(tables, tmp_path, include_file=include, exclude_file=exclude)
    assert "b/5.jpg" not in {row["id"] for row in selected} and "a/3.jpg" in {r["id"] for r in selected}
    assert counts["included"] == 1


def test_selected_rows_join_inventory_and_triage(tables, tmp_path):
    _, selected, _ = run(tables, tmp_path)
    assert list(selected[0]) == SELECTED_COLUMNS
    first = selected[0]
    assert first["title"] == HOSTILE  # stored verbatim; escaping is the viewer's job
    assert (first["class"], first["entropy"], first["width"], first["height"]) == (
        "photo", "4.000000", "600", "450")
    assert (first["location"], first["filename"], first["state"], first["price"]) == (
        "a", "1.jpg", "CA", "$2,450")
    assert first["path"] == "results/raw/a/1.jpg"
    meta = json.loads((tmp_path / "results/selected.csv.meta.json").read_text())
    assert meta["stage"] == "select" and meta["params"]["keep_maybe"] is False


def test_missing_exclude_file_is_a_clear_error(tables, tmp_path):
    with pytest.raises(FileNotFoundError, match="exclude file named in the config does not exist"):
        run(tables, tmp_path, exclude_file=tmp_path / "nope.txt")
    assert not (tmp_path / "results/selected.csv").exists()


def test_read_exclude_file_format(tmp_path):
    path = tmp_path / "exclude.txt"
    path.write_text("\ufeff# comment\nsf/a b.jpg\n\n\t nyc/ünï.jpg \r\n   # indented comment\n"
                    "sf/a b.jpg\n", encoding="utf-8")
    assert read_exclude_file(path) == {"sf/a b.jpg", "nyc/ünï.jpg"}
    path.write_bytes(b"sf/\xff.jpg\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_exclude_file(path)
