"""Tests of the tiles stage on real image files: pixels at known places, pyramid shape, meta."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import store_thumbs, write_map_inputs
from vacancy.common import atomic_dir
from reference import render_tiles
from vacancy.map.tiles import PLACEHOLDER_RGB, max_zoom_for, tile_counts

BG = (24, 24, 24)
COLOURS = [(230, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 30),
           (220, 40, 210), (30, 210, 220), (250, 250, 250)]
TOL = 14  # JPEG at quality 85 moves a flat colour by a few levels


def write_inputs(tmp_path: Path, placed: dict[tuple[int, int], Path]) -> tuple[Path, Path]:
    """grid.csv and selected.csv for images placed at (col, row)."""
    return write_map_inputs(tmp_path, (
        ({"id": f"loc/{path.name}", "location": "loc", "filename": path.name, "path": str(path),
          "class": "photo", "title": f"t{col}{row}"}, col, row)
        for (col, row), path in placed.items()))


def stored_thumbs(tmp_path: Path, placed: dict[tuple[int, int], Path], cell_px: int) -> list[Path]:
    """The stored thumbnails of the placed images (see conftest.store_thumbs)."""
    return [store_thumbs(tmp_path, ({"id": f"loc/{p.name}", "path": str(p)}
                                    for p in placed.values()), cell_px)]


def solid(tmp_path: Path, name: str, rgb, size=(120, 90)) -> Path:
    path = tmp_path / "raw" / name
    path.parent.mkdir(exist_ok=True)
    Image.new("RGB", size, rgb).save(path, quality=95)
    return path


def tile(out: Path, z: int, x: int, y: int) -> np.ndarray:
    with Image.open(out / str(z) / str(x) / f"{y}.jpg") as img:
        assert img.size == (256, 256)
        return np.asarray(img.convert("RGB")).astype(int)


def pixel_at(out: Path, z: int, px: float, py: float) -> np.ndarray:
    """The colour at map pixel (px, py) of zoom z, whichever tile holds it."""
    px, py = int(px), int(py)
    return tile(out, z, px // 256, py // 256)[py % 256, px % 256]


def close(actual, expected, tol=TOL) -> bool:
    return bool(np.all(np.abs(np.asarray(actual) - np.asarray(expected)) <= tol))


def tile_set(out: Path) -> set[tuple[int, int, int]]:
    return {(int(p.parts[-3]), int(p.parts[-2]), int(p.stem)) for p in out.glob("*/*/*.jpg")}


def test_zoom_arithmetic():
    assert max_zoom_for(3, 3, 64, 256) == 0       # 192 px fits one tile
    assert max_zoom_for(4, 4, 64, 256) == 0       # 256 px exactly
    assert max_zoom_for(5, 1, 64, 256) == 1       # 320 px
    assert max_zoom_for(354, 354, 64, 256) == 7   # 125,000 images: 22,656 px <= 32,768
    assert tile_counts(576, 320, 256, 2, 2) == (3, 2)
    assert tile_counts(576, 320, 256, 2, 1) == (2, 1)
    assert tile_counts(576, 320, 256, 2, 0) == (1, 1)
    assert tile_counts(0, 320, 256, 2, 0) == (0, 0)


def test_three_by_three_two_zooms(tmp_path):
    """7 solid images on a 3x3 grid of 96-px cells: 288 px needs zoom 0 and 1; cells straddle tiles."""
    placed = {(i % 3, i // 3): solid(tmp_path, f"c{i}.jpg", rgb) for i, rgb in enumerate(COLOURS)}
    grid, _ = write_inputs(tmp_path, placed)
    out = tmp_path / "tiles"
    meta = render_tiles(grid, stored_thumbs(tmp_path, placed, 96), out, cols=3, rows=3, cell_px=96)

    assert meta == json.loads((out / "meta.json").read_text())
    assert meta["max_zoom"] == 1 and meta["min_zoom"] == 0
    assert (meta["width_px"], meta["height_px"], meta["count"]) == (288, 288, 7)
    assert meta["background"] == "#181818"
    assert meta["tiles_written"] == {"0": 1, "1": 4}
    assert meta["placeholders"] == 0
    assert tile_set(out) == {(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 0, 1), (1, 1, 1)}

    for (col, row), path in placed.items():
        rgb = COLOURS[int(path.stem[1:])]
        assert close(pixel_at(out, 1, (col + 0.5) * 96, (row + 0.5) * 96), rgb), (col, row)
        assert close(pixel_at(out, 0, (col + 0.5) * 48, (row + 0.5) * 48), rgb), (col, row)
    # the two empty cells (1, 2), (2, 2) and the unused part of zoom 0 show the background
    assert close(pixel_at(out, 1, 1.5 * 96, 2.5 * 96), BG, 6)
    assert close(pixel_at(out, 1, 2.5 * 96, 2.5 * 96), BG, 6)
    assert close(pixel_at(out, 1, 300, 300), BG, 6)      # tile (1,1) beyond the 288-px map
    assert close(pixel_at(out, 0, 200, 60), BG, 6)
    # no temporary sibling folders are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "grid.csv", "prepared", "raw", "selected.csv", "tiles"]


def test_several_tiles_pyramid_complete(tmp_path):
    """A 9x5 grid of 64-px cells (576x320 px): zoom 2 has 3x2 tiles, zoom 1 2x1, zoom 0 1x1."""
    rng = np.random.default_rng(7)
    colours = {}
    placed = {}
    for col in range(9):
        for row in range(5):
            if (col + row) % 4 == 3:
                continue  # leave some cells empty
            rgb = tuple(int(v) for v in rng.integers(40, 230, 3))
            colours[(col, row)] = rgb
            placed[(col, row)] = solid(tmp_path, f"i{col}_{row}.jpg", rgb, size=(64, 64))
    grid, _ = write_inputs(tmp_path, placed)
    out = tmp_path / "tiles"
    meta = render_tiles(grid, stored_thumbs(tmp_path, placed, 64), out, cols=9, rows=5, cell_px=64)

    assert meta["max_zoom"] == 2 and meta["count"] == len(placed)
    expected = {(2, x, y) for x in range(3) for y in range(2)} | {(1, 0, 0), (1, 1, 0), (0, 0, 0)}
    assert tile_set(out) == expected
    assert meta["tiles_written"] == {"2": 6, "1": 2, "0": 1}
    for (col, row), rgb in colours.items():
        assert close(pixel_at(out, 2, (col + 0.5) * 64, (row + 0.5) * 64), rgb), (col, row)
        assert close(pixel_at(out, 1, (col + 0.5) * 32, (row + 0.5) * 32), rgb), (col, row)
        # at zoom 0 a cell is 16 px; sample its centre 8x8 to stay clear of JPEG edge ringing
        assert close(pixel_at(out, 0, (col + 0.5) * 16, (row + 0.5) * 16), rgb, 24), (col, row)
    assert close(pixel_at(out, 0, 200, 200), BG, 6)   # below the 80-px-high map at zoom 0


def test_images_without_a_stored_thumbnail_get_placeholders_and_run_continues(tmp_path, caplog):
    """Bad files are rejected by prepare (no thumbnail); should one reach the grid anyway, its
    cell is the placeholder, it is named in the log, and the rest of the map is drawn."""
    raw = tmp_path / "raw"
    raw.mkdir()
    good = solid(tmp_path, "good.jpg", (30, 200, 40))
    truncated = raw / "truncated.jpg"
    Image.new("RGB", (400, 300), (200, 30, 30)).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:300])
    text = raw / "notes.jpg"
    text.write_text("this is not an image")
    hostile = solid(tmp_path, "a;rm -rf ~ $(x)'\".jpg", (40, 60, 230))
    placed = {(0, 0): good, (1, 0): truncated, (2, 0): text, (1, 1): hostile}
    grid, _ = write_inputs(tmp_path, placed)
    thumbs = stored_thumbs(tmp_path, placed, 64)
    with caplog.at_level(logging.WARNING, logger="vacancy.map.tiles"):
        meta = render_tiles(grid, thumbs, tmp_path / "tiles", cols=3, rows=2, cell_px=64)

    out = tmp_path / "tiles"
    assert meta["count"] == 4 and meta["placeholders"] == 2
    assert close(pixel_at(out, 0, 32, 32), (30, 200, 40))
    assert close(pixel_at(out, 0, 96, 96), (40, 60, 230))
    for col, row in [(1, 0), (2, 0)]:
        assert close(pixel_at(out, 0, col * 64 + 32, row * 64 + 32), PLACEHOLDER_RGB, 6)
    assert close(pixel_at(out, 0, 32, 96), BG, 6)  # an empty cell stays background
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert "loc/truncated.jpg" in warned and "loc/notes.jpg" in warned and "good" not in warned


def test_grid_rows_outside_or_duplicate_are_skipped(tmp_path, caplog):
    a = solid(tmp_path, "a.jpg", (230, 30, 30))
    b = solid(tmp_path, "b.jpg", (40, 60, 230))
    grid, _ = write_inputs(tmp_path, {(0, 0): a, (1, 0): b})
    thumbs = stored_thumbs(tmp_path, {(0, 0): a, (1, 0): b}, 64)
    with open(grid, "a", newline="") as handle:
        csv.writer(handle).writerows([["loc/b.jpg", 0, 0], ["loc/a.jpg", 5, 0], ["x", "?", 1]])
    with caplog.at_level(logging.WARNING, logger="vacancy.map.tiles"):
        meta = render_tiles(grid, thumbs, tmp_path / "tiles", cols=2, rows=1, cell_px=64)
    assert meta["count"] == 2
    assert close(pixel_at(tmp_path / "tiles", 0, 32, 32), (230, 30, 30))
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 3


def test_atomic_dir_replaces_stale_tree_and_keeps_it_on_failure(tmp_path):
    target = tmp_path / "tiles"
    (target / "9").mkdir(parents=True)
    (target / "9" / "stale.jpg").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.jpg").write_text("half")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["tiles"]
    assert (target / "9" / "stale.jpg").read_text() == "old"

    with atomic_dir(target) as tmp:
        (tmp / "new.jpg").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["tiles"]
    assert sorted(p.name for p in target.iterdir()) == ["new.jpg"]
