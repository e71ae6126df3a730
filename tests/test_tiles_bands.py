"""The pyramid built by parallel band jobs equals the one-job pyramid, file for file, byte for byte."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import vacancy.map.tiles as tiles_mod
from vacancy.images.thumbs import ThumbStore
from reference import render_tiles
from vacancy.map.tiles import TileSpec, assemble_tiles, band_plan, render_band, tile_counts


def spec_of(cols, rows, cell_px, tile_px, quality=85, background=(24, 24, 24)) -> TileSpec:
    """The tile spec the workflow would build for this grid (the schema's quality and background
    unless given)."""
    return TileSpec(cols, rows, cell_px, tile_px, background, quality=quality)


def write_thumbs(folder: Path, cols: int, rows: int, cell_px: int, seed: int = 0) -> tuple[Path, Path]:
    """A thumbs-rule HDF5 file and a grid.csv: random thumbnails on most cells of the grid.

    Some cells stay empty, and some images have no stored thumbnail (their placeholder is drawn),
    so the empty-cell and placeholder paths are both compared.
    """
    rng = np.random.default_rng(seed)
    cells = [(c, r) for r in range(rows) for c in range(cols) if rng.random() > 0.1]
    ids = [f"loc/{k}.jpg" for k in range(len(cells))]
    order = rng.permutation(len(ids))           # thumbs stored in another order than the grid
    order = order[rng.random(len(ids)) > 0.05]  # and some have none: their placeholder is drawn
    h5_path, grid = folder / "loc.h5", folder / "grid.csv"
    with h5py.File(h5_path, "w") as h5:
        h5.create_dataset("ids", data=np.array([ids[k] for k in order], dtype=object),
                          dtype=h5py.string_dtype())
        h5.create_dataset("thumbs", data=rng.integers(0, 256, (len(order), cell_px, cell_px, 3),
                                                      dtype=np.uint8))
    with open(grid, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "col", "row"])
        writer.writerows([i, c, r] for i, (c, r) in zip(ids, cells))
    (folder / "selected.csv").write_text("id,path\n" + "".join(f"{i},\n" for i in ids))
    return h5_path, grid


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def build_both(tmp_path, cols, rows, cell_px, tile_px, jobs):
    """(one-job tree, banded tree) of the same grid and thumbnails."""
    h5_path, grid = write_thumbs(tmp_path, cols, rows, cell_px)
    geometry = {"cell_px": cell_px, "tile_px": tile_px, "quality": 80, "background": (10, 20, 30)}
    render_tiles(grid, [h5_path], tmp_path / "single", cols, rows, **geometry)
    bands = [tmp_path / "bands" / str(b) for b in range(jobs)]
    for b, folder in enumerate(bands):
        render_band(grid, folder, spec_of(cols, rows, **geometry), b, jobs, [h5_path])
    assemble_tiles(bands, tmp_path / "joined", spec_of(cols, rows, **geometry))
    return tree(tmp_path / "single"), tree(tmp_path / "joined")


@pytest.mark.parametrize("cols, rows, cell_px, tile_px, jobs", [
    (60, 45, 4, 16, 4),     # 15x12 tiles at zoom 4: bands make two or three zooms
    (60, 45, 4, 16, 3),     # band rows rounded to an even count, uneven bands
    (41, 37, 3, 16, 8),     # cells straddle tile edges; odd tile counts at every zoom
    (2, 30, 4, 16, 4),      # tall and narrow
    (30, 2, 4, 16, 4),      # wide: one tile row, so three of four bands are empty
    (1, 1, 64, 256, 4),     # one image, one tile, grid narrower than the band count
    (9, 5, 64, 256, 2),     # the real tile size: 3x2 tiles at zoom 2
    (20, 20, 5, 16, 1),     # one band does every zoom
])
def test_bands_equal_the_single_job(tmp_path, cols, rows, cell_px, tile_px, jobs):
    single, joined = build_both(tmp_path, cols, rows, cell_px, tile_px, jobs)
    assert any(name.endswith(".jpg") for name in single)
    assert joined.keys() == single.keys()
    assert [name for name in single if joined[name] != single[name]] == []


def test_a_plan_that_makes_several_zooms_per_band_still_matches(tmp_path):
    plan = band_plan(60, 45, 4, 16, 4)
    assert plan["max_zoom"] - plan["low_zoom"] >= 2   # the test above does exercise deep bands
    assert plan["band_rows"] % 2 ** (plan["max_zoom"] - plan["low_zoom"]) == 0


def test_no_tile_outside_the_grid(tmp_path):
    cols, rows, cell_px, tile_px = 41, 23, 4, 16
    _, joined = build_both(tmp_path, cols, rows, cell_px, tile_px, 3)
    meta = json.loads(joined["meta.json"])
    for z in range(meta["max_zoom"] + 1):
        across, down = tile_counts(cols * cell_px, rows * cell_px, tile_px, meta["max_zoom"], z)
        found = {n for n in joined if n.startswith(f"{z}/")}
        assert found == {f"{z}/{x}/{y}.jpg" for x in range(across) for y in range(down)}, z
        assert meta["tiles_written"][str(z)] == across * down


@pytest.mark.parametrize("jobs", [1, 2, 3, 4, 5, 8, 64])
@pytest.mark.parametrize("tile_rows", [1, 2, 3, 7, 16, 77, 100, 128])
def test_band_plan_aligns_merges_and_covers_every_row(tile_rows, jobs):
    cols = rows = tile_rows * 4   # 64-px cells: four cells per 256-px tile
    plan = band_plan(cols, rows, 64, 256, jobs)
    depth = plan["max_zoom"] - plan["low_zoom"]
    assert plan["tile_rows"] == tile_rows and 0 <= plan["low_zoom"] <= plan["max_zoom"]
    assert plan["band_rows"] % 2**depth == 0
    spans = [tiles_mod._band_span(plan, b) for b in range(jobs)]
    assert spans[0][0] == 0 and spans[-1][1] == tile_rows
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_band_reads_only_its_own_thumbnails_and_no_original(tmp_path, monkeypatch):
    cols, rows, cell_px, tile_px, jobs = 30, 28, 4, 16, 4
    h5_path, grid = write_thumbs(tmp_path, cols, rows, cell_px)
    row_of = {r["id"]: int(r["row"]) for r in csv.DictReader(open(grid))}
    asked: list[list[str]] = []
    real_get = ThumbStore.get
    monkeypatch.setattr(ThumbStore, "get", lambda self, ids, px: asked.append(list(ids))
                        or real_get(self, ids, px))
    # (no original can be decoded: the tiles module has no decoder, only the thumbnail store)
    plan = band_plan(cols, rows, cell_px, tile_px, jobs)
    seen: set[str] = set()
    for b in range(jobs):
        asked.clear()
        render_band(grid, tmp_path / str(b), spec_of(cols, rows, cell_px, tile_px), b, jobs,
                    [h5_path])
        first, end = tiles_mod._band_span(plan, b)
        ids = [i for call in asked for i in call]
        assert max(map(len, asked), default=0) <= cols       # one grid row at a time
        # only the grid rows that reach into the band's tile rows
        assert all(first * tile_px < (row_of[i] + 1) * cell_px and row_of[i] * cell_px < end * tile_px
                   for i in ids)
        seen.update(ids)
    assert seen == set(row_of)


def test_join_refuses_bands_of_another_plan(tmp_path):
    cols, rows, cell_px, tile_px = 30, 28, 4, 16
    h5_path, grid = write_thumbs(tmp_path, cols, rows, cell_px)
    bands = [tmp_path / str(b) for b in range(3)]
    for b, folder in enumerate(bands):
        render_band(grid, folder, spec_of(cols, rows, cell_px, tile_px), b, 4, [h5_path])
    with pytest.raises(ValueError, match="band 0 of"):
        assemble_tiles(bands, tmp_path / "joined", spec_of(cols, rows, cell_px, tile_px))
    assert not (tmp_path / "joined").exists()


def test_joined_tiles_are_links_not_copies(tmp_path):
    cols, rows, cell_px, tile_px = 20, 20, 4, 16
    h5_path, grid = write_thumbs(tmp_path, cols, rows, cell_px)
    for b in range(2):
        render_band(grid, tmp_path / "bands" / str(b), spec_of(cols, rows, cell_px, tile_px), b,
                    2, [h5_path])
    assemble_tiles([tmp_path / "bands" / str(b) for b in range(2)], tmp_path / "joined",
                   spec_of(cols, rows, cell_px, tile_px))
    top = band_plan(cols, rows, cell_px, tile_px, 2)["max_zoom"]
    linked = list((tmp_path / "joined" / str(top)).rglob("*.jpg"))
    assert linked and all(p.stat().st_nlink == 2 for p in linked)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bands", "grid.csv", "joined", "loc.h5",
                                                          "selected.csv"]
