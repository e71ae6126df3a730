"""Dedup in an extend (issue 14): an image already placed on the saved map is kept before any
later copy of it, even a larger one, so a new scrape never leaves a hole where it was.

Real photographs through the real prepare stage (test_dedup's fixture), a saved grid.csv.
"""
from __future__ import annotations

from pathlib import Path

from test_dedup import real_prepared, run_dedup  # noqa: F401 (a fixture)
from vacancy.common import read_csv, write_csv


def saved_grid(tmp_path: Path, ids: list[str]) -> Path:
    """A saved layout's grid.csv placing ``ids`` (the columns a grid has)."""
    path = tmp_path / "layout" / "grid.csv"
    path.parent.mkdir()
    write_csv(path, [{"id": i, "col": n, "row": 0} for n, i in enumerate(ids)], ["id", "col", "row"])
    return path


def test_a_placed_image_keeps_its_cell_against_a_larger_later_copy(real_prepared, tmp_path):  # noqa: F811
    # without a saved layout the largest copy (the border one) is kept
    assert run_dedup(real_prepared, tmp_path) == {
        "real/china.jpg": "real/china-border.jpg", "real/china-crop2.jpg": "real/china-border.jpg"}
    # the 2% crop, the smallest of the three, was placed: it stays and its copies go
    grid = saved_grid(tmp_path, ["real/china-crop2.jpg", "real/flower.jpg"])
    removed = run_dedup(real_prepared, tmp_path, placed_csv=grid)
    assert removed == {"real/china.jpg": "real/china-crop2.jpg",
                       "real/china-border.jpg": "real/china-crop2.jpg"}
    # by the dHash alone too (check: none)
    by_hash = run_dedup(real_prepared, tmp_path, check="none", max_distance=7, placed_csv=grid)
    assert by_hash and "real/china-crop2.jpg" not in by_hash and "real/flower.jpg" not in by_hash
    meta = read_csv(tmp_path / "duplicates.csv")
    assert all(row["kept_id"] in {"real/china-crop2.jpg", "real/flower.jpg"} for row in meta)
